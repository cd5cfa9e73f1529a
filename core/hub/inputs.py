r"""Strict JSON request bodies for the API: what Python's ``json`` lets through but could not be
shown again is refused at parse time with a 422 naming the field.

Python's ``json.loads`` accepts ``NaN``, ``Infinity`` and ``1e999`` (infinite), and turns
``"\ud800"`` (or raw surrogate bytes) into a lone surrogate that later breaks every encoder.
:class:`StrictJsonRoute` reads the body itself, before FastAPI does: invalid UTF-8, a number
that is not finite or a lone surrogate is an :class:`~signoff.InvalidInput` naming where it
is, and a body over the hub's limit still ends as 413 (not FastAPI's generic 400).

:data:`EventId`, :data:`DeliveryId`, :data:`TokenId` and :data:`DelegationId` type the ids in
paths: one that could not be an id (a NUL, a space, another prefix) is a 404 like any unknown
id, before a store is asked.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.routing import APIRoute

from .._errors import InvalidInput, NotFound
from .._ids import well_formed
from .._limits import first_bad_string, where

__all__ = ["DelegationId", "DeliveryId", "EventId", "StrictJsonRoute", "TokenId", "invalid_body",
           "invalid_fields", "strict_json"]


def _path_id(name: str, prefix: str, noun: str) -> Callable[..., Coroutine[Any, Any, str]]:
    """The dependency that reads the path parameter ``name`` as an id of ``prefix``: one that
    could not be an id raises :class:`NotFound` as an unknown one would.

    One function for every kind of id; its signature names the path parameter, which is what
    FastAPI reads (and documents) from a dependency.
    """
    async def path_id(**found: str) -> str:  # a coroutine: a plain function dependency
        # runs in a worker thread, a handoff that costs more than the check
        value = found[name]
        if not well_formed(value, prefix):
            raise NotFound(f"no {noun} {value!r}")
        return value

    article = "An" if noun[0] in "aeiou" else "A"
    described = Path(description=f"{article} {noun}'s id (`{prefix}_...`).")
    path_id.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                           annotation=Annotated[str, described])], return_annotation=str)
    path_id.__name__ = path_id.__qualname__ = f"_{name}"
    return path_id


EventId = Annotated[str, Depends(_path_id("event_id", "ev", "event"))]
"""An event id from the path. One that could not be an id answers 404 as an unknown one does,
and the same on every store: asked for it, SQLite finds nothing while PostgreSQL refuses a NUL
outright. A pattern on the path parameter would answer 422 instead, telling a malformed id
from a missing one for no gain. The check runs before the token's (an id that cannot exist is
like a path no route serves)."""
DeliveryId = Annotated[str, Depends(_path_id("delivery_id", "dl", "delivery"))]
"""A delivery id from the path, checked as :data:`EventId` is."""
TokenId = Annotated[str, Depends(_path_id("token_id", "tk", "token"))]
"""An API token's public id from the path, checked as :data:`EventId` is."""
DelegationId = Annotated[str, Depends(_path_id("delegation_id", "dl", "delegation"))]
"""A delegation id from the path, checked as :data:`EventId` is (delegations are ``dl_`` too:
the prefix says what could be an id, the store which it is)."""


class _NotFinite:
    """Stands where a ``NaN``/``Infinity`` was, so the check can say where."""

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _NotFinite:
    number = float(text)
    return number if math.isfinite(number) else _NotFinite(text)


def _find(value: Any, path: list[str | int]) -> tuple[list[str | int], str] | None:
    stack: list[tuple[Any, list[str | int]]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, _NotFinite):
            return at, item.text
        if isinstance(item, dict):
            stack.extend((v, [*at, k]) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, [*at, i]) for i, v in enumerate(item))
    return None


def strict_json(body: bytes) -> Any:
    """Parse a request body as JSON that can be shown again.

    Raises:
        InvalidInput: the body is not UTF-8 JSON, holds a number that is not finite, or a
            string that is not valid Unicode; ``field`` says where.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("body", "UTF-8 text", f"invalid byte at {exc.start}") from None
    found_constant = False

    def constant(name: str) -> _NotFinite:
        nonlocal found_constant
        found_constant = True
        return _NotFinite(name)

    def number(literal: str) -> float | _NotFinite:
        nonlocal found_constant
        parsed = _float(literal)
        found_constant = found_constant or isinstance(parsed, _NotFinite)
        return parsed

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise InvalidInput("body", "JSON", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                           ) from None
    except RecursionError:
        raise InvalidInput("body", "JSON nested less deeply", "too deep to parse") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InvalidInput("body", "JSON with numbers Python can hold", str(exc)[:200]) from None
    if found_constant:
        hit = _find(value, [])
        if hit is not None:
            raise InvalidInput(where(hit[0], "body"), "a finite number", hit[1])
    if "\\u" in text:  # raw surrogate bytes are not UTF-8: only an escape makes one
        bad = first_bad_string(value)
        if bad is not None:
            raise InvalidInput(where(bad, "body"), "valid Unicode text (no lone surrogates)",
                               "a lone surrogate")
    return value


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def invalid_fields(errors: Sequence[Any], prefix: tuple[str | int, ...] = ()) -> InvalidInput:
    """Pydantic's validation errors as one :class:`InvalidInput` naming the first field;
    ``prefix`` goes before each location (an item of a batch: ``("events", 3)``).
    """
    first = errors[0]
    got = first.get("input")
    error = InvalidInput(_field((*prefix, *first["loc"])),
                         first["msg"].removeprefix("Value error, "),
                         got if not isinstance(got, dict) or len(str(got)) < 200 else "...")
    error.message = f"{error.field}: {first['msg']}"
    return error


def invalid_body(errors: Sequence[Any], prefix: tuple[str | int, ...] = ()) -> dict[str, Any]:
    """The API's 422 body for pydantic's validation errors: the first field named, and every
    error listed under ``errors``.
    """
    body = invalid_fields(errors, prefix).to_dict()
    body["error"]["errors"] = [{"field": _field((*prefix, *e["loc"])), "message": e["msg"]}
                               for e in errors]
    return body


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json(await self.body())
        return self._json


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/")
                                          and main.endswith("+json"))


class StrictJsonRoute(APIRoute):
    """An API route whose JSON body is parsed by :func:`strict_json`, outside FastAPI's own
    parsing (which would turn every failure, even a body over the size limit, into a 400).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, behind a strict read of the body."""
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict(request: Request) -> Response:
            strict_request = _StrictRequest(request.scope, request.receive)
            if _is_json(request.headers.get("content-type")):
                body = await strict_request.body()  # over the limit: 413 from here
                if body:
                    await strict_request.json()
            return await handler(strict_request)

        return strict
