"""The ``--db`` option of the commands that open the hub's database themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["db_option"]


def db_option(help: str) -> Callable[[F], F]:  # noqa: A002  (click's own name)
    """``--db DATABASE``, refusing a URL that carries its password."""
    return click.option("--db", "database", default=None, help=help, callback=_no_password)


def _no_password(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A command line is shown to every user of the machine (``ps``, ``/proc``) and kept in
    shell history: the database password never comes from one.
    """
    from .store import has_password, shown

    if value is not None and has_password(value):
        raise click.BadParameter(
            f"expected a database URL without its password (a command line is visible to "
            f"every user of the machine and kept in shell history); give the password in "
            f"PGPASSWORD or a PGPASSFILE, or the whole URL in SIGNOFF_DB; got {shown(value)}",
            ctx=ctx, param=param)
    return value
