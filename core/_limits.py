"""The bounds on everything a workflow or a reviewer can send, so whatever is accepted can
always be stored, listed and shown again.

| what                                          | bound                                  |
| --------------------------------------------- | -------------------------------------- |
| any string                                    | valid Unicode (no lone surrogates)     |
| a text kept beside the event's JSON (idempotency ``key``, a ``comment``, a ``reason``, ``relayed_by``, a delegation's fields, the ``assignee`` filter) | no NUL character (:data:`Text`, :func:`check_text`) |
| any number                                    | finite (no NaN, no Infinity); integers within 64 bits |
| a number, integer or true/false field          | that JSON type itself: ``true`` is not 1, ``"0.5"`` not 0.5, ``1`` not ``true`` (:data:`Number`, :data:`Integer`, :data:`Flag`) |
| JSON values (context, recommendation, source params, answers, form defaults) | nested at most :data:`MAX_JSON_DEPTH` deep, at most :data:`MAX_JSON_NODES` values, keys at most :data:`MAX_KEY_LENGTH` characters |
| ``context`` / ``source.params``               | at most :data:`MAX_CONTEXT_KEYS` top-level keys |
| a form's JSON schema                          | nested at most :data:`MAX_SCHEMA_DEPTH` deep, at most :data:`MAX_JSON_NODES` values |
| ``timeout``, an escalation tier's ``after``   | at most :data:`MAX_DURATION` seconds (a year) |
| long-poll ``wait``                            | at most :data:`MAX_WAIT` seconds       |
| ``labels``                                    | at most :data:`MAX_LABELS`, keys :data:`MAX_LABEL_KEY`, values :data:`MAX_LABEL_VALUE` characters |
| ``assignees`` (event or tier)                 | at most :data:`MAX_ASSIGNEES`          |
| ``options`` (choice, multichoice)             | at most :data:`MAX_OPTIONS`, each at most :data:`MAX_OPTION_LENGTH` characters |
| a text input's ``pattern``                    | at most :data:`MAX_PATTERN_LENGTH` characters, RE2 syntax (linear-time matching) |
| a policy condition                            | at most :data:`MAX_CONDITION_LENGTH` characters, nested at most :data:`MAX_CONDITION_DEPTH` deep |
| policy route rules / escalation tiers / notify URLs | at most :data:`MAX_RULES` / :data:`MAX_TIERS` / :data:`MAX_NOTIFY` |
| the resume target ``source.params`` name (a resumer's ``target``) | at most :data:`MAX_RESUME_TARGET` bytes (UTF-8) |

The checks are pure functions shared by the client and the hub; a refusal raises
``ValueError`` (inside a pydantic validator, so the hub answers 422 naming the field) or
:class:`~signoff.InvalidInput`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, Strict, ValidationInfo

from ._errors import InvalidInput

__all__ = [
    "Flag",
    "Integer",
    "Number",
    "MAX_ASSIGNEES",
    "MAX_CONDITION_DEPTH",
    "MAX_CONDITION_LENGTH",
    "MAX_CONTEXT_KEYS",
    "MAX_DURATION",
    "MAX_JSON_DEPTH",
    "MAX_JSON_NODES",
    "MAX_KEY_LENGTH",
    "MAX_LABELS",
    "MAX_LABEL_KEY",
    "MAX_LABEL_VALUE",
    "MAX_NOTIFY",
    "MAX_OPTIONS",
    "MAX_OPTION_LENGTH",
    "MAX_PATTERN_LENGTH",
    "MAX_RESUME_TARGET",
    "MAX_RULES",
    "MAX_SCHEMA_DEPTH",
    "MAX_TEXT_LENGTH",
    "MAX_TIERS",
    "MAX_WAIT",
    "NUL_FREE",
    "STORED",
    "JsonRefused",
    "Text",
    "bounded_json",
    "check_json",
    "check_text",
    "compile_pattern",
    "first_bad_string",
    "from_store",
    "where",
]

MAX_JSON_DEPTH = 16
"""How deep a JSON value may nest (a scalar is depth 0, ``{"a": 1}`` depth 1)."""
MAX_SCHEMA_DEPTH = 32
"""How deep a form's JSON schema may nest (each property level costs two)."""
MAX_JSON_NODES = 10_000
"""How many values (scalars, lists and objects) one JSON value may hold."""
MAX_KEY_LENGTH = 200
"""The longest key of a JSON object."""
MAX_CONTEXT_KEYS = 500
"""Top-level keys of ``context`` and ``source.params``."""
Number = Annotated[float, Strict()]
"""A field that takes a JSON number (an integer too) and nothing else: pydantic's default
(lax) mode would turn ``true`` into 1.0 and ``"0.5"`` into 0.5, accepting what the API's schema
says is refused."""
Integer = Annotated[int, Strict()]
"""A field that takes a JSON integer and nothing else (not ``true``, ``"2"``, ``2.5`` or
``2.0``)."""
Flag = Annotated[bool, Strict()]
"""A field that takes ``true`` or ``false`` and nothing else (not ``1``, ``"yes"`` or
``"true"``)."""

NUL_FREE = "text without NUL characters"
"""What a :data:`Text` field expects, as a refusal says it."""


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError(NUL_FREE)
    return text


Text = Annotated[str, AfterValidator(_no_nul)]
"""A string the hub keeps as text of its own (a column, not inside the event's escaped JSON) or
matches in a query: no NUL character. PostgreSQL's text cannot hold one and SQLite's can, so
without this rule the same request would be stored by one store and refused by the other, and
the refusal would come from the database, after the checks, naming no field. A NUL is never
typed by a person, so nothing real is lost. Strings inside JSON documents (prompt, context,
labels, answers) keep theirs: they are stored and shown escaped (``\\u0000``)."""


def check_text(field: str, text: str | None) -> None:
    """:data:`Text`'s rule for a value that came another way than a pydantic model (a form, an
    internal caller).

    Raises:
        InvalidInput: ``text`` holds a NUL character; ``field`` names it.
    """
    if text is not None and "\x00" in text:
        raise InvalidInput(field, NUL_FREE, text)


MAX_DURATION = 365 * 86_400.0
"""The longest ``timeout`` or escalation ``after``: one year, in seconds."""
MAX_WAIT = 60.0
"""The longest long-poll ``wait`` on ``GET .../decision``, in seconds."""
MAX_LABELS = 50
MAX_LABEL_KEY = 100
MAX_LABEL_VALUE = 500
MAX_ASSIGNEES = 100
MAX_OPTIONS = 500
MAX_OPTION_LENGTH = 500
MAX_TEXT_LENGTH = 100_000
"""The largest ``max_length`` a text input may declare."""
MAX_PATTERN_LENGTH = 1_000
MAX_CONDITION_LENGTH = 1_000
MAX_CONDITION_DEPTH = 32
MAX_RULES = 50
MAX_TIERS = 10
MAX_NOTIFY = 20
MAX_RESUME_TARGET = 1_024
"""The longest resume target a store records, in UTF-8 bytes (see :mod:`signoff.resumers`). An
index holds it with the requester (up to 200 characters, 800 bytes): PostgreSQL's btree refuses
an entry over 2,704 bytes, and this leaves room for both on every store alike."""


def where(path: list[str | int], empty: str = "value") -> str:
    """``a.b.2`` (the way a 422 names a field), with what cannot be encoded (a lone surrogate)
    escaped so the name itself can be shown.
    """
    text = ".".join(str(p) for p in path) or empty
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonRefused(ValueError):
    """What :func:`check_json` refused: ``path`` inside the value, and ``expected``."""

    def __init__(self, path: list[str | int], expected: str) -> None:
        self.path = path
        self.expected = expected
        super().__init__(f"{where(path)}: expected {expected}" if path else f"expected {expected}")


def check_json(value: Any, *, depth: int = MAX_JSON_DEPTH, nodes: int = MAX_JSON_NODES) -> None:
    """Refuse a JSON value that could not be shown again, or is too big to show.

    Raises:
        JsonRefused: a ``ValueError`` saying where (``a.b.2``) and what was expected instead
            of a lone surrogate, a number that is not finite, nesting deeper than ``depth``,
            more than ``nodes`` values, or a key longer than :data:`MAX_KEY_LENGTH`.
    """
    count = 0
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        count += 1
        if count > nodes:
            raise JsonRefused([], f"at most {nodes} values in one JSON value")
        if isinstance(item, str):
            if not _valid_unicode(item):
                raise JsonRefused(path, "valid Unicode text (no lone surrogates)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JsonRefused(path, "a finite number")
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -(2**63) <= item < 2**63:
                raise JsonRefused(path, "an integer that fits in 64 bits")
        elif isinstance(item, (dict, list)):
            if len(path) >= depth:
                raise JsonRefused(path, f"JSON nested at most {depth} deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
                        raise JsonRefused(path, f"keys of at most {MAX_KEY_LENGTH} characters")
                    if not _valid_unicode(key):
                        raise JsonRefused(path, "keys in valid Unicode (no lone surrogates)")
                    stack.append((child, [*path, key]))
            else:
                stack.extend((child, [*path, i]) for i, child in enumerate(item))


STORED: dict[str, Any] = {"stored": True}
"""Validation context for a model read back from the store: it passed every check when it came
in, so the costly ones (patterns, form schemas, conditions, JSON bounds) are not run again,
and a value accepted under older bounds still loads.
"""


def from_store(info: ValidationInfo) -> bool:
    """Whether a validator runs on a model read back from the store (see :data:`STORED`)."""
    return isinstance(info.context, dict) and info.context.get("stored") is True


def bounded_json(value: Any, info: ValidationInfo) -> Any:
    """A pydantic after-validator: :func:`check_json` with the default bounds."""
    if not from_store(info):
        check_json(value)
    return value


def first_bad_string(value: Any) -> list[str | int] | None:
    """The path of the first string (or key) in ``value`` that is not valid Unicode."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not _valid_unicode(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not _valid_unicode(key):
                    return [*path, key]
                stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, i]) for i, child in enumerate(item))
    return None


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2, which matches in time linear in the text (no backtracking).

    Raises:
        ValueError: RE2 cannot compile it (for instance a backreference or a lookaround), or
            it is longer than :data:`MAX_PATTERN_LENGTH`.
    """
    import re2  # type: ignore[import-untyped]  # google-re2, imported on first use: light import

    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"a pattern of at most {MAX_PATTERN_LENGTH} characters")
    if not _valid_unicode(pattern):
        raise ValueError("a pattern that is valid Unicode")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"a regular expression in RE2 syntax (no backreferences or "
                         f"lookarounds): {reason}") from None
