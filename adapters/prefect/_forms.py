"""The Prefect form a paused flow waits for, and the Python value a decision becomes.

:func:`run_input_class` builds a ``prefect.input.RunInput`` subclass from a signoff input spec.
Its JSON schema carries the spec's constraints (bounds, options, length, pattern, a form's own
schema), so Prefect's UI shows a fitting form and Prefect's server refuses a bad answer before
the flow resumes. The Python side accepts anything (the hub is the one judge of a value), and
allows the extra ``signoff`` field the hub's resumer sends.

:func:`python_value` turns the decision's JSON value back into what ``ask`` was given: an
instance of a pydantic model, an ``Enum`` member, a list of members, or the plain value.
"""

from __future__ import annotations

import enum
import typing
from typing import Annotated, Any

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from signoff import InvalidInput

__all__ = ["python_value", "run_input_class", "value_schema"]


def value_schema(spec: Any) -> dict[str, Any]:
    """The JSON schema of an answer to ``spec``, as Prefect's form shows and checks it."""
    kind = spec.kind
    schema: dict[str, Any]
    if kind in ("approval", "bool"):
        schema = {"type": "boolean", "title": "Approve" if kind == "approval" else "Answer"}
    elif kind in ("int", "float"):
        schema = {"type": "integer" if kind == "int" else "number", "title": "Answer"}
        if spec.min is not None:
            schema["minimum"] = spec.min
        if spec.max is not None:
            schema["maximum"] = spec.max
    elif kind == "text":
        schema = {"type": "string", "title": "Answer"}
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
        if spec.pattern is not None:
            schema["pattern"] = f"^(?:{spec.pattern})$"  # the hub matches the whole text
    elif kind == "choice":
        schema = {"type": "string", "title": "Answer", "enum": list(spec.options)}
    elif kind == "multichoice":
        schema = {"type": "array", "title": "Answer", "uniqueItems": True,
                  "items": {"type": "string", "enum": list(spec.options)}}
        if spec.min_selected:
            schema["minItems"] = spec.min_selected
        if spec.max_selected is not None:
            schema["maxItems"] = spec.max_selected
    elif kind == "form":
        schema = {"title": "Answer", **_inline_refs(spec.schema_)}
        schema.pop("$defs", None)
        schema.pop("definitions", None)
    else:  # a kind this adapter does not know yet: Prefect checks nothing, the hub does
        schema = {"title": "Answer"}
    if spec.default is not None:
        schema["default"] = spec.default
    return schema


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its local ``$ref``s replaced by their definitions.

    Prefect nests the answer's schema inside the form's, where ``#/$defs/...`` would point at
    the wrong document. A recursive model cannot be inlined; its answer is then checked only
    as an object here (the hub still checks it against the full schema).
    """
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in seen or name not in defs:
                raise RecursionError(name)
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**walk(defs[name], (*seen, name)), **walk(rest, seen)}
        return {k: walk(v, seen) for k, v in node.items() if k not in ("$defs", "definitions")}

    try:
        inlined: dict[str, Any] = walk(schema, ())
    except RecursionError:
        return {"type": "object"}
    return inlined


def _drop_null_defaults(schema: dict[str, Any], cls: Any = None) -> None:
    # "default": null would prefill Prefect's form with an empty value
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


def run_input_class(spec: Any, prompt: str) -> type[RunInput]:
    """A ``RunInput`` subclass for ``spec``; Prefect's UI shows ``prompt`` above the form."""
    answer = Annotated[Any, WithJsonSchema(value_schema(spec))]

    class SignoffAnswer(RunInput):
        # extra="allow": the resumer's ``signoff`` field passes Prefect's check and reaches us
        model_config = ConfigDict(extra="allow", json_schema_extra=_drop_null_defaults)

        value: answer = None
        comment: str | None = Field(default=None, title="Comment")

    return SignoffAnswer.with_initial_data(description=prompt)


def python_value(kind: Any, value: Any) -> Any:
    """Turn a decided JSON ``value`` into the Python type ``ask`` was given as ``input``.

    Raises:
        InvalidInput: a pydantic model's own validators refuse the value (the hub checks the
            JSON schema only, which cannot carry custom validators).
    """
    if value is None:
        return value
    if _subclass(kind, BaseModel):
        try:
            return kind.model_validate(value)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(["value", *(str(p) for p in error["loc"])])
            raise InvalidInput(where, error["msg"], error.get("input"),
                               f"{where}: the answer passed the form's schema but not "
                               f"{kind.__name__}: {error['msg']}") from exc
    if _subclass(kind, enum.Enum):
        return _member(kind, value)
    if typing.get_origin(kind) is list:
        (inner,) = typing.get_args(kind)
        if _subclass(inner, enum.Enum) and isinstance(value, list):
            return [_member(inner, item) for item in value]
        return value
    if kind is float and isinstance(value, int):
        return float(value)
    return value


def _subclass(kind: Any, base: type) -> bool:
    # ``list[X]`` passes isinstance(..., type) on some Pythons; it is no class to check
    return isinstance(kind, type) and typing.get_origin(kind) is None and issubclass(kind, base)


def _member(kind: type[enum.Enum], value: Any) -> enum.Enum:
    # choice options are ``str(member.value)`` (see signoff.input_spec)
    for member in kind:
        if str(member.value) == value:
            return member
    raise InvalidInput("value", f"one of {[str(m.value) for m in kind]}", value)
