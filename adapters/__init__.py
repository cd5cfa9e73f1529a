"""Adapters: one per orchestrator, each behind its own extra (``signoff[prefect]``, ...).

Two things every adapter shares live here: :class:`MissingExtra`, the error an adapter raises
when its extra is not installed (each adapter's own error subclasses it, so
``except signoff.adapters.MissingExtra`` catches any of them), and :func:`lazy_exports`, the
module ``__getattr__`` that lets the hub import an adapter's resumer without paying for the
orchestrator's SDK.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["MissingExtra", "lazy_exports"]


class MissingExtra(ImportError):
    """An adapter is used without its extra; the message says what to install."""


def lazy_exports(package: str, where: Mapping[str, str], *,
                 public: Iterable[str] | None = None,
                 before: Callable[[str], None] | None = None,
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` (PEP 562) that import names on first use.

    ``where`` maps each lazy name to the submodule of ``package`` that defines it;
    ``before(name)`` runs first (to raise :class:`MissingExtra` with a clear message). A loaded
    name is kept in the package, so the second use costs nothing. ``public`` is what
    ``dir()`` lists (``where``'s names by default).

    ```python
    __getattr__, __dir__ = lazy_exports(__name__, {"approve": "_api"})
    ```
    """
    names = sorted(where if public is None else public)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if before is not None:
            before(name)
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
