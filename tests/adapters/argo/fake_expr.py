"""The pieces of Argo's template language the fake controller needs, implemented strictly.

- ``substitute(text, scope)``: Argo's ``{{simple}}`` and ``{{=expression}}`` tags
  (util/template): simple tags by exact name; expressions evaluated over the scope expanded
  into nested maps (util/expand); a tag whose variables are missing stays as it is.
- ``evaluate(expression, env)``: the subset of expr-lang our manifests use: string and number
  literals, variable paths (``a.b``, ``a['b-c']``), ``+``, ``==``, ``!=``, ``||``, ``&&``,
  parentheses, and Argo's ``toJson``, ``jsonpath`` and expr's ``string``. Anything else raises
  :class:`Unsupported`, so a manifest using more fails loudly instead of passing by accident.
- ``parse_selector`` / ``selector_matches``: Kubernetes field selectors
  (apimachinery fields.ParseSelector) as Argo's SelectorMatchesNode uses them.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["Missing", "Unsupported", "evaluate", "expand", "parse_selector",
           "selector_matches", "substitute"]

_TAG = re.compile(r"\{\{(=?)(.*?)\}\}", re.DOTALL)
_TOKEN = re.compile(r"""\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")
                        |(?P<op>\|\||&&|==|!=|[+().,\[\]])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))""",
                    re.VERBOSE)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


class Unsupported(Exception):
    """The expression uses syntax this fake does not implement."""


class Missing(Exception):
    """A variable the expression needs is not in scope (yet)."""


def expand(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a": 2}`` -> ``{"a": {"b": 1}}``: parents with children are dropped, as
    util/expand's removeConflicts does."""
    keys = sorted(flat)
    kept = {k: flat[k] for i, k in enumerate(keys)
            if not (i + 1 < len(keys) and keys[i + 1].startswith(k + "."))}
    tree: dict[str, Any] = {}
    for key, value in kept.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return tree


def substitute(text: str, scope: dict[str, str]) -> str:
    """Replace the tags in ``text`` that ``scope`` can resolve; leave the others."""
    env = expand(dict(scope))

    def replace(found: re.Match[str]) -> str:
        inner = found.group(2).strip()
        if found.group(1):
            try:
                result = evaluate(inner, env)
            except Missing:
                return found.group(0)
            return result if isinstance(result, str) else json.dumps(result)
        return scope[inner] if inner in scope else found.group(0)

    return _TAG.sub(replace, text)


def evaluate(expression: str, env: dict[str, Any]) -> Any:
    """Evaluate the supported subset of expr-lang."""
    tokens = _tokens(expression)
    parser = _Parser(tokens, env)
    value = parser.disjunction()
    if parser.position != len(tokens):
        raise Unsupported(f"unexpected {tokens[parser.position]!r} in {expression!r}")
    return value


def _tokens(expression: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        found = _TOKEN.match(expression, position)
        if found is None:
            raise Unsupported(f"cannot read {expression[position:]!r}")
        kind = found.lastgroup
        assert kind is not None
        out.append((kind, found.group(kind)))
        position = found.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], env: dict[str, Any]) -> None:
        self.tokens, self.env, self.position = tokens, env, 0

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise Unsupported("unexpected end of expression")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise Unsupported(f"expected {expected!r}, got {token[1]!r}")
        self.position += 1
        return token

    def disjunction(self) -> Any:
        value = self.conjunction()
        while self._peek() == "||":
            self._take()
            right = self.conjunction()
            value = bool(value) or bool(right)
        return value

    def conjunction(self) -> Any:
        value = self.comparison()
        while self._peek() == "&&":
            self._take()
            right = self.comparison()
            value = bool(value) and bool(right)
        return value

    def comparison(self) -> Any:
        value = self.sum()
        if self._peek() in ("==", "!="):
            operator = self._take()[1]
            right = self.sum()
            return (value == right) if operator == "==" else (value != right)
        return value

    def sum(self) -> Any:
        value = self.primary()
        while self._peek() == "+":
            self._take()
            right = self.primary()
            if not (isinstance(value, str) and isinstance(right, str)):
                raise Unsupported(f"+ of {type(value).__name__} and {type(right).__name__}")
            value += right
        return value

    def primary(self) -> Any:
        kind, text = self._take()
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "str":
            return _unquote(text)
        if text == "(":
            value = self.disjunction()
            self._take(")")
            return value
        if kind != "name":
            raise Unsupported(f"unexpected {text!r}")
        if self._peek() == "(":
            return self._call(text)
        return self._path(text)

    def _call(self, function: str) -> Any:
        self._take("(")
        args = [self.disjunction()]
        while self._peek() == ",":
            self._take()
            args.append(self.disjunction())
        self._take(")")
        if function == "toJson" and len(args) == 1:
            return json.dumps(args[0], separators=(",", ":"))
        if function == "string" and len(args) == 1:
            return args[0] if isinstance(args[0], str) else json.dumps(args[0])
        if function == "jsonpath" and len(args) == 2:
            return _jsonpath(args[0], args[1])
        raise Unsupported(f"function {function}/{len(args)}")

    def _path(self, name: str) -> Any:
        if name not in self.env:
            raise Missing(name)
        value = self.env[name]
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                kind, text = self._take()
                if kind != "str":
                    raise Unsupported("only string indexes are supported")
                key = _unquote(text)
                self._take("]")
            if not isinstance(value, dict) or key not in value:
                raise Missing(f"{name}...{key}")
            value = value[key]
        return value


def _unquote(text: str) -> str:
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            out.append(_ESCAPES[body[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _jsonpath(document: Any, path: str) -> Any:
    if not isinstance(document, str):
        raise Unsupported("jsonpath needs a JSON string")
    if not re.fullmatch(r"\$(\.[A-Za-z_][A-Za-z0-9_]*)+", path):
        raise Unsupported(f"jsonpath {path!r}: only $.a.b paths")
    value = json.loads(document)
    for part in path.split(".")[1:]:
        value = value[part]
    return value


def parse_selector(selector: str) -> list[tuple[str, str, str]]:
    """``a=b,c!=d`` -> ``[("a", "=", "b"), ("c", "!=", "d")]``; backslash escapes ``\\``,
    ``,`` and ``=`` in values. Raises ValueError as ParseSelector errors."""
    terms, current, index = [], "", 0
    while index < len(selector):
        char = selector[index]
        if char == "\\" and index + 1 < len(selector):
            current += selector[index:index + 2]
            index += 2
            continue
        if char == ",":
            terms.append(current)
            current = ""
        else:
            current += char
        index += 1
    terms.append(current)
    out = []
    for term in terms:
        for position in range(len(term)):
            operator = next((op for op in ("!=", "==", "=") if term.startswith(op, position)),
                            None)
            if operator:
                key, raw = term[:position].strip(), term[position + len(operator):]
                out.append((key, "!=" if operator == "!=" else "=", _unescape_value(raw)))
                break
        else:
            raise ValueError(f"invalid selector: '{selector}'; can't understand '{term}'")
    return out


def _unescape_value(raw: str) -> str:
    out, index = "", 0
    while index < len(raw):
        if raw[index] == "\\":
            if index + 1 >= len(raw) or raw[index + 1] not in "\\,=":
                raise ValueError(f"invalid escape sequence in field selector value {raw!r}")
            out += raw[index + 1]
            index += 2
        else:
            out += raw[index]
            index += 1
    return out


def selector_matches(terms: list[tuple[str, str, str]], fields: dict[str, str]) -> bool:
    """fields.Selector.Matches: a missing field reads as the empty string."""
    return all((fields.get(key, "") == value) == (op == "=") for key, op, value in terms)
