"""Context that reads: an event's JSON context as labelled tables, links, dates and diffs.

:func:`render_tree` turns the JSON into a small tree of typed nodes that the template
``_context.html`` draws; nothing here makes HTML, so Jinja2's autoescape covers every string.

| JSON | shown as |
|---|---|
| object | a table of labelled rows (a nested object is a nested table, folded when large) |
| list of objects | a table, one row per object, one column per key |
| list of scalars | a short inline list |
| number | grouped digits (``1,250,000``; ``0.912``) |
| ISO date / date-time string | ``2024-06-01`` / ``2024-06-01 14:03 UTC`` |
| ``http``/``https``/``mailto`` URL | a link (any other scheme stays text) |
| long or multi-line text | folded after its first lines |
| ``{"before": ..., "after": ...}`` or ``{"diff": "..."}`` (unified diff text) | a diff |

The raw JSON stays one click away on the page.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
from datetime import date, datetime, timezone
from typing import Any

__all__ = ["label_of", "plain_error", "readable", "render_tree"]

FOLD_CHARS = 280
"""Text longer than this (or of more than :data:`FOLD_LINES` lines) is folded."""
FOLD_LINES = 4
OPEN_ROWS = 8
"""A nested object with more rows than this starts folded."""
MAX_COLUMNS = 12
"""A list of objects with more distinct keys than this is shown row by row instead."""
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s<>\"']+\Z", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?\Z")


def label_of(key: str) -> str:
    """A key as people read it: ``previous_auc`` → ``Previous auc``, ``rowsScored`` → ``Rows Scored``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ").replace("-", " ")
    words = " ".join(words.split())
    if not words:
        return key
    return words[0].upper() + words[1:]


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{value:.3g}"


def _moment(text: str) -> str | None:
    if _DATE.match(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            return None
    if _DATETIME.match(text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return moment.strftime("%Y-%m-%d %H:%M")
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return None


def _scalar(value: Any) -> dict[str, Any]:
    if value is None:
        return {"t": "null", "text": "none"}
    if isinstance(value, bool):
        return {"t": "bool", "text": "yes" if value else "no"}
    if isinstance(value, (int, float)):
        return {"t": "number", "text": _number(value)}
    text = str(value)
    if _SAFE_URL.match(text):
        return {"t": "link", "text": text, "href": text}
    moment = _moment(text)
    if moment is not None:
        return {"t": "date", "text": moment, "iso": text}
    lines = text.splitlines()
    if len(text) > FOLD_CHARS or len(lines) > FOLD_LINES:
        head = "\n".join(lines[:FOLD_LINES])[:FOLD_CHARS]
        return {"t": "long", "text": text, "head": head.rstrip() + " …"}
    return {"t": "text", "text": text}


def _diff(before: Any, after: Any) -> dict[str, Any]:
    if isinstance(before, dict) and isinstance(after, dict):
        rows = []
        for key in list(before) + [k for k in after if k not in before]:
            old, new = before.get(key), after.get(key)
            change = ("added" if key not in before else "removed" if key not in after
                      else "same" if old == new else "changed")
            rows.append({"label": label_of(str(key)), "change": change,
                         "before": render_tree(old) if key in before else None,
                         "after": render_tree(new) if key in after else None})
        return {"t": "diff_table", "rows": rows}
    if isinstance(before, str) and isinstance(after, str):
        lines = difflib.unified_diff(before.splitlines(), after.splitlines(),
                                     "before", "after", lineterm="", n=3)
        return _diff_lines(list(lines))
    return {"t": "diff_table", "rows": [{"label": "Value", "change": "changed" if before != after
                                         else "same", "before": render_tree(before),
                                         "after": render_tree(after)}]}


def _diff_lines(lines: list[str]) -> dict[str, Any]:
    out = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append({"kind": kind, "text": line})
    return {"t": "diff_lines", "lines": out}


def _is_records(value: list[Any]) -> bool:
    if not value or not all(isinstance(v, dict) and v for v in value):
        return False
    keys = {k for v in value for k in v}
    return len(keys) <= MAX_COLUMNS and all(
        not isinstance(x, (dict, list)) for v in value for x in v.values())


def render_tree(value: Any) -> dict[str, Any]:
    """The node the template draws for one JSON value (see the module's table)."""
    if isinstance(value, dict):
        if set(value) == {"before", "after"} or set(value) == {"before", "after", "label"}:
            return _diff(value["before"], value["after"])
        if set(value) == {"diff"} and isinstance(value["diff"], str):
            return _diff_lines(value["diff"].splitlines())
        rows = [{"key": str(k), "label": label_of(str(k)), "node": render_tree(v)}
                for k, v in value.items()]
        return {"t": "object", "rows": rows, "folded": len(rows) > OPEN_ROWS}
    if isinstance(value, list):
        if _is_records(value):
            columns: list[str] = []
            for record in value:
                columns += [str(k) for k in record if str(k) not in columns]
            return {"t": "records", "columns": [{"key": c, "label": label_of(c)} for c in columns],
                    "rows": [[_scalar(r[c]) if c in r else {"t": "missing", "text": ""}
                              for c in columns] for r in value]}
        return {"t": "list", "elems": [render_tree(v) for v in value]}
    return _scalar(value)


def readable(value: Any, kind: str | None = None) -> str:
    """A decided value as people read it: Approved / Rejected, 3, text without quotes."""
    if kind == "approval" and isinstance(value, bool):
        return "Approved" if value else "Rejected"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(readable(v) for v in value) or "nothing chosen"
    if isinstance(value, dict):
        return "; ".join(f"{label_of(str(k))}: {readable(v)}" for k, v in value.items())
    return str(value)


_REPR = re.compile(r"\[[^\[\]]*\]|'(?:[^'\\]|\\.)*'")


def _unrepr(text: str) -> str:
    """Python list and string reprs inside a message, as people write them."""
    def one(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        if isinstance(value, list):
            return ", ".join(_quoted(v) for v in value)
        return _quoted(value)
    return _REPR.sub(one, text)


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return f"“{value}”"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ", ".join(_quoted(v) for v in value) or "nothing"
    return json.dumps(value, ensure_ascii=False, default=str)[:80]


def plain_error(field: str, expected: str, got: Any, message: str) -> str:
    """An :class:`InvalidInput` as one sentence without Python reprs (the field named apart)."""
    if message.startswith(f"{field}: expected "):
        shown = _quoted(got) if got not in (None, "", []) else "nothing"
        sentence = f"expected {_unrepr(expected)}, got {shown}"
    else:
        sentence = _unrepr(message.removeprefix(f"{field}: "))
    sentence = sentence.strip()
    sentence = sentence[:1].upper() + sentence[1:]
    return sentence if sentence.endswith(".") else sentence + "."
