"""Between HTML forms and answers: the fields an input spec shows, and the answer posted back.

Scalar kinds read their one field with :func:`signoff.parse_text`; a ``form`` input shows one
field per top-level property of its JSON schema (following ``$ref``; anything it cannot show
as a simple field becomes a JSON box) and converts each posted value by the schema's type.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.datastructures import FormData

from .._errors import InvalidInput
from .._inputs import parse_text
from .._model import Event
from .._rules import proposal_of
from .context import label_of

__all__ = ["answer_from", "form_fields", "initial_values", "text_of"]

def text_of(form: FormData, name: str) -> str:
    """One posted field as text ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def answer_from(event: Event, form: FormData) -> Any:
    """The JSON value the posted form stands for (checked by the hub afterwards)."""
    spec = event.input
    if spec.kind == "approval":
        choice = text_of(form, "choice")
        if choice not in ("approve", "reject"):
            raise InvalidInput("choice", "approve or reject", choice or None)
        return choice == "approve"
    if spec.kind == "multichoice":
        return [v for v in form.getlist("value") if isinstance(v, str)]
    if spec.kind == "form":
        return _form_value(form_fields(spec.schema_), form)
    text = text_of(form, "value")
    if spec.kind == "text":
        return text.replace("\r\n", "\n")
    if spec.kind == "bool" and not text:
        raise InvalidInput("value", "yes or no", None)
    return parse_text(spec, text)


def _option(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Follow local ``$ref``s and unwrap ``X | None`` (pydantic's ``anyOf`` with null)."""
    nullable = False
    for _ in range(8):
        ref = prop.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in prop.items() if k != "$ref"}
            prop = {**defs.get(ref.removeprefix("#/$defs/"), {}), **rest}
            continue
        variants = prop.get("anyOf") or prop.get("oneOf")
        if isinstance(variants, list):
            real = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(real) == 1 and len(real) < len(variants):
                nullable = True
                prop = {**{k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")},
                        **real[0]}
                continue
        kind = prop.get("type")
        if isinstance(kind, list) and "null" in kind and len(kind) == 2:
            nullable = True
            prop = {**prop, "type": next(k for k in kind if k != "null")}
        break
    return prop, nullable


def form_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One widget per top-level property of a form's JSON schema."""
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, raw in schema.get("properties", {}).items():
        prop, nullable = _resolve(raw if isinstance(raw, dict) else {}, defs)
        kind = prop.get("type")
        enum = prop.get("enum", [prop["const"]] if "const" in prop else None)
        items = _resolve(prop.get("items", {}), defs)[0] if kind == "array" else {}
        field: dict[str, Any] = {
            "name": name, "input": f"f.{name}", "path": f"value.{name}",
            "label": prop.get("title") or label_of(name), "help": prop.get("description"),
            "required": name in required, "nullable": nullable, "default": prop.get("default"),
            "type": kind, "options": []}
        if isinstance(enum, list) and kind != "array":
            field.update(widget="select", options=[_option(o) for o in enum], enum=enum)
        elif kind == "string":
            formats = {"date": "date", "email": "email", "uri": "url", "date-time": "text"}
            field.update(widget="text", maxlength=prop.get("maxLength"),
                         minlength=prop.get("minLength"), pattern=prop.get("pattern"),
                         html_type=formats.get(prop.get("format", ""), "text"))
        elif kind in ("integer", "number"):
            field.update(widget="number", min=prop.get("minimum"), max=prop.get("maximum"),
                         step="1" if kind == "integer" else "any")
        elif kind == "boolean":
            field.update(widget="checkbox")
        elif kind == "array" and isinstance(items.get("enum"), list):
            field.update(widget="checkboxes", options=[_option(o) for o in items["enum"]],
                         enum=items["enum"])
        else:
            field.update(widget="json")
        fields.append(field)
    return fields


def _form_value(fields: list[dict[str, Any]], form: FormData) -> dict[str, Any]:
    """Build the answer object from the posted fields, coercing each by its schema type."""
    answer: dict[str, Any] = {}
    for field in fields:
        name, key, path, widget = field["name"], field["input"], field["path"], field["widget"]
        if widget == "checkbox":
            answer[name] = key in form
            continue
        if widget == "checkboxes":
            chosen = [v for v in form.getlist(key) if isinstance(v, str)]
            by_text = dict(zip(field["options"], field["enum"], strict=True))
            unknown = [v for v in chosen if v not in by_text]
            if unknown:
                raise InvalidInput(path, f"options from {field['options']}", unknown)
            answer[name] = [by_text[v] for v in chosen]
            continue
        text = text_of(form, key)
        if widget != "text":
            text = text.strip()
        if text == "":
            if field["nullable"]:
                answer[name] = None
            elif field["required"] and widget == "text":
                answer[name] = ""
            elif field["required"]:
                raise InvalidInput(path, "a value (this field is required)", "")
            continue
        answer[name] = _coerce(field, text)
    return answer


def _coerce(field: dict[str, Any], text: str) -> Any:
    path, widget = field["path"], field["widget"]
    if widget == "select":
        by_text = dict(zip(field["options"], field["enum"], strict=True))
        if text not in by_text:
            raise InvalidInput(path, f"one of {field['options']}", text)
        return by_text[text]
    if widget == "number":
        try:
            if field["type"] == "integer":
                return int(text)
            number = float(text)
        except ValueError:
            noun = "a whole number" if field["type"] == "integer" else "a number"
            raise InvalidInput(path, noun, text) from None
        if not math.isfinite(number):
            raise InvalidInput(path, "a finite number", text)
        return number
    if widget == "json":
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # JSONDecodeError, too deep, too many digits
            raise InvalidInput(path, "JSON", text) from None
    return text.replace("\r\n", "\n")


def initial_values(event: Event, fields: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What the form shows before anything was typed: the workflow's proposal to approve or
    amend (:func:`signoff._rules.proposal_of`), else the input's defaults.
    """
    spec = event.input
    proposal = proposal_of(event)
    default: Any = spec.default if proposal is None else proposal
    if spec.kind == "form":
        given = default or {}
        values: dict[str, list[str]] = {}
        for field in fields:
            value = given.get(field["name"], field["default"])
            if value is None:
                continue
            if field["widget"] == "checkbox":
                values[field["input"]] = ["on"] if value else []
            elif field["widget"] == "checkboxes":
                values[field["input"]] = [_option(v) for v in value]
            elif field["widget"] == "json":
                values[field["input"]] = [json.dumps(value, indent=2, ensure_ascii=False, default=str)]
            else:
                values[field["input"]] = [_option(value)]
        return values
    if default is None or spec.kind == "approval":
        return {}
    if spec.kind == "multichoice":
        return {"value": list(default)}
    if spec.kind == "bool":
        return {"value": ["true" if default else "false"]}
    return {"value": [str(default)]}

