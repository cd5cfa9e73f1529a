"""The JSON body a workflow POSTs to the hub, with Argo's template tags made JSON-safe.

Argo substitutes ``{{...}}`` tags as raw text. In a JSON body a value carrying a quote or a
backslash (a loop item, a node name, a workflow parameter typed by a person) would break the
JSON, or worse, add fields. So every string that holds a tag is replaced by one Argo
*expression* tag that builds the whole string and encodes it with ``toJson``::

    "prompt": "Release {{inputs.parameters.version}}?"
    ->  "prompt": {{=toJson('Release ' + inputs.parameters['version'] + '?')}}

Argo inserts the result of an expression as text (it escapes it only for the template's own
JSON layer, then undoes that), so the body receives a correctly quoted JSON string. Strings
without tags stay plain JSON. Pure functions, no hera: the fake controller in the tests and
the renderer share them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["body_json", "tag_to_expr", "to_expr"]

_TAG = re.compile(r"\{\{(=?)(.*?)\}\}", re.DOTALL)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Argo variables whose last part is one name that may hold dots or dashes (a label key, a
# parameter name): everything after the prefix is that one name.
_NAMED = (
    "inputs.parameters.",
    "workflow.parameters.",
    "workflow.labels.",
    "workflow.annotations.",
    "workflow.outputs.parameters.",
)
_MARK = "@@signoff-argo-expr-{}@@"


def tag_to_expr(tag: str) -> str:
    """The expr path for a simple tag.

    ``inputs.parameters.my-name`` becomes ``inputs.parameters['my-name']``: hyphenated names
    must be indexed in expressions.
    """
    tag = tag.strip()
    for prefix in _NAMED:
        if tag.startswith(prefix) and len(tag) > len(prefix):
            return _path(prefix[:-1].split(".")) + f"[{_literal(tag[len(prefix):])}]"
    parts = tag.split(".")
    if not parts or not all(parts):
        raise ValueError(f"{{{{{tag}}}}} is not an Argo variable")
    return _path(parts)


def _path(parts: list[str]) -> str:
    if not _IDENT.match(parts[0]):
        raise ValueError(f"{'.'.join(parts)!r} does not start with an Argo variable name")
    out = parts[0]
    for part in parts[1:]:
        out += f".{part}" if _IDENT.match(part) else f"[{_literal(part)}]"
    return out


def _literal(text: str) -> str:
    """An expr string literal (single-quoted, Go escapes)."""
    escaped = (text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def to_expr(text: str, where: str = "value") -> str | None:
    """An expr expression that evaluates to ``text`` with its tags resolved.

    ``None`` when ``text`` holds no tag.

    Raises:
        ValueError: ``text`` holds a lone ``{{``/``}}`` or a tag that is no Argo variable;
            the message names ``where``.
    """
    if "{{" not in text and "}}" not in text:
        return None
    pieces: list[str] = []
    position = 0
    for found in _TAG.finditer(text):
        _add_literal(pieces, text[position:found.start()], where)
        inner = found.group(2).strip()
        if not inner:
            raise ValueError(f"{where}: empty tag {{{{}}}} in {text!r}")
        try:
            pieces.append(f"string({inner})" if found.group(1) else tag_to_expr(inner))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        position = found.end()
    _add_literal(pieces, text[position:], where)
    return " + ".join(pieces) if pieces else "''"


def _add_literal(pieces: list[str], literal: str, where: str) -> None:
    if "{{" in literal or "}}" in literal:
        raise ValueError(f"{where}: unbalanced '{{{{' or '}}}}' in {literal!r}; Argo would "
                         "read it as a tag")
    if literal:
        pieces.append(_literal(literal))


def body_json(body: Mapping[str, Any], indent: int | None = 2) -> str:
    """``body`` as JSON text, each string with a tag replaced by a ``toJson`` expression tag.

    Raises:
        ValueError: a tag in a key, or a malformed tag (naming where it is).
    """
    expressions: list[str] = []

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, str):
            if "@@signoff-argo-expr-" in value:
                raise ValueError(f"{where}: the text '@@signoff-argo-expr-' is reserved")
            expression = to_expr(value, where)
            if expression is None:
                return value
            expressions.append(expression)
            return _MARK.format(len(expressions) - 1)
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if "{{" in str(key):
                    raise ValueError(f"{where}.{key}: Argo tags are not allowed in keys")
                out[key] = walk(item, f"{where}.{key}")
            return out
        if isinstance(value, (list, tuple)):
            return [walk(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return value

    text = json.dumps(walk(body, "body"), indent=indent, ensure_ascii=False)
    for index, expression in enumerate(expressions):
        text = text.replace(json.dumps(_MARK.format(index)), f"{{{{=toJson({expression})}}}}")
    return text
