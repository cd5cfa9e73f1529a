"""Sensitive context fields: masked for every reader, shown only on an explicit, audited reveal.

A field is sensitive when the workflow lists its dotted path in the event's ``sensitive``
(``customer.ssn``), or when its path matches one of the hub's ``sensitive_fields`` patterns
(``*.ssn``, ``*.email``; shell-style, where a leading ``*.`` also matches at the top level).
Paths join object keys with dots and pass through lists: ``orders[2].email`` is
``orders.email``, so one mark covers every item.

Every reader gets such fields replaced by :data:`MASK` — in the API, the inbox pages, the live
inbox and so in ``signoff export`` — and :attr:`~signoff.Event.masked` lists their paths.
Nobody sees them by default, not even an admin: whoever is named in the hub's
``reveal_allowed`` (users and ``group:NAME``) may ``POST /api/v1/events/{id}/reveal`` (or use the
event page's Reveal button), which answers the event unmasked once and appends a ``revealed``
entry with who, when, the channel and the paths to the event's audit log. Why not a token
role: a reveal right is a narrow privacy grant that auditors review, and a list in the hub's
config is where they can read it; it needs no new kind of token.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .._model import Event
from .._rules import Identity

__all__ = ["MASK", "may_reveal", "sensitive_paths", "shown"]

MASK = "[masked]"
"""What a reader without a reveal sees in place of a sensitive value."""


@lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled expression for all the hub's patterns (one match per context field)."""
    if not patterns:
        return None
    parts: list[str] = []
    for pattern in patterns:
        parts.append(fnmatch.translate(pattern))
        if pattern.startswith("*."):
            parts.append(fnmatch.translate(pattern[2:]))
    return re.compile("|".join(f"(?:{p})" for p in parts))


def sensitive_paths(context: dict[str, Any], marked: Iterable[str],
                    patterns: tuple[str, ...]) -> list[str]:
    """The paths of ``context`` that are sensitive (outermost only), in document order."""
    marks = set(marked)
    matcher = _matcher(patterns)
    if not marks and matcher is None:
        return []
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if here in marks or (matcher is not None and matcher.fullmatch(here)):
                    if here not in found:
                        found.append(here)
                else:
                    walk(item, here)
        elif isinstance(value, list):
            for item in value:
                walk(item, path)

    walk(context, "")
    return found


def _masked(value: Any, paths: set[str], path: str) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            out[key] = MASK if here in paths else _masked(item, paths, here)
        return out
    if isinstance(value, list):
        return [_masked(item, paths, path) for item in value]
    return value


def shown(event: Event, patterns: tuple[str, ...]) -> Event:
    """The event as a reader sees it: sensitive context fields replaced by :data:`MASK`."""
    paths = sensitive_paths(event.context, event.sensitive, patterns)
    if not paths:
        return event
    return event.model_copy(update={"context": _masked(event.context, set(paths), ""),
                                    "masked": paths})


def may_reveal(who: Identity, allowed: Iterable[str]) -> bool:
    """Whether the caller is named, as a user or through a group, in ``reveal_allowed``."""
    return bool(who.principals.intersection(allowed))
