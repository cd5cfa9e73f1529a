"""The small condition language of policy rules, e.g. ``confidence >= 0.95 and impact == 'low'``.

It reads like a Python expression but is never given to ``eval``: the text is parsed with
:mod:`ast` and only these forms are accepted, then walked by :func:`evaluate`.

| form | examples |
| --- | --- |
| names | ``confidence``, ``impact``, ``recommendation``, ``name``, ``priority``, ``kind``, ``requested_by`` |
| fields | ``labels.team``, ``source.orchestrator``, ``source.run``, ``source.step`` |
| literals | ``0.95``, ``'low'``, ``true``/``True``, ``false``/``False``, ``null``/``None``, ``['high', 'critical']`` |
| comparisons | ``==  !=  <  <=  >  >=  in  not in`` (chains like ``0.5 <= confidence < 0.9`` work) |
| logic | ``and``, ``or``, ``not``, parentheses |

A value that is missing (no confidence given, no such label) is ``None``; an ordering
comparison with ``None`` is false, so ``confidence >= 0.9`` never matches an event without one.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ._limits import MAX_CONDITION_DEPTH, MAX_CONDITION_LENGTH

__all__ = ["NAMES", "check_condition", "evaluate"]

NAMES = frozenset({"confidence", "impact", "recommendation", "name", "priority", "kind",
                   "requested_by", "labels", "source"})
_FIELDS = {"labels": None, "source": {"orchestrator", "run", "step"}}
_WORDS = {"true": True, "false": False, "null": None}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is None or a not in b,
}


def _parse(text: str) -> ast.expr:
    if len(text) > MAX_CONDITION_LENGTH:
        raise ValueError(f"a condition of at most {MAX_CONDITION_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a condition: {exc.msg} at column {exc.offset}") from None
    except (RecursionError, MemoryError, ValueError):  # nesting the parser cannot hold
        raise ValueError("not a condition: nested too deeply") from None
    _check(tree.body)
    return tree.body


def _check(node: ast.expr, depth: int = 0) -> None:
    if depth > MAX_CONDITION_DEPTH:
        raise ValueError(f"a condition nested at most {MAX_CONDITION_DEPTH} deep")
    depth += 1
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, depth)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, depth)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ValueError(f"operator {type(op).__name__} is not allowed")
        for part in (node.left, *node.comparators):
            _check(part, depth)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (str, int, float, bool, type(None))):
            raise ValueError(f"literal {node.value!r} is not allowed")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ValueError("numbers in a condition must be finite")
    elif isinstance(node, (ast.List, ast.Tuple)):
        for element in node.elts:
            if not isinstance(element, ast.Constant):
                raise ValueError("lists may hold only literals")
            _check(element, depth)
    elif isinstance(node, ast.Name):
        if node.id not in NAMES and node.id not in _WORDS:
            raise ValueError(f"unknown name {node.id!r}; known: {', '.join(sorted(NAMES))}")
    elif isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name) or node.value.id not in _FIELDS:
            raise ValueError("only labels.NAME and source.FIELD may be read")
        allowed = _FIELDS[node.value.id]
        if allowed is not None and node.attr not in allowed:
            raise ValueError(f"source has no field {node.attr!r}; known: {sorted(allowed)}")
    else:
        raise ValueError(f"{type(node).__name__} is not allowed in a condition")


def check_condition(text: str) -> str:
    """Return ``text`` if it is a valid condition; raise ``ValueError`` saying why not."""
    _parse(text)
    return text


def evaluate(text: str, facts: Mapping[str, Any]) -> bool:
    """Whether the condition holds for ``facts`` (a mapping of the names above)."""
    return bool(_eval(_parse(text), facts))


def _eval(node: ast.expr, facts: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_eval(v, facts) for v in node.values)
        return any(_eval(v, facts) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, facts)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, facts)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, facts)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, facts) for e in node.elts]
    if isinstance(node, ast.Name):
        return _WORDS[node.id] if node.id in _WORDS else facts.get(node.id)
    if isinstance(node, ast.Attribute):
        assert isinstance(node.value, ast.Name)
        container = facts.get(node.value.id) or {}
        return container.get(node.attr) if isinstance(container, Mapping) else None
    raise ValueError(f"{type(node).__name__} is not allowed in a condition")


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    ordering = isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE))
    if ordering and (left is None or right is None):
        return False
    try:
        return _COMPARE[type(op)](left, right)
    except TypeError:
        return False
