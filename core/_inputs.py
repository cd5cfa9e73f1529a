"""Input specs: what answer an event expects, and the checks a response must pass.

Each kind is a small frozen pydantic model; :data:`InputSpec` is their union,
discriminated by ``kind``. :func:`validate_value` checks a JSON value against a spec and
returns it normalised, or raises :class:`~signoff.InvalidInput` naming the field, what was
expected and what came. :func:`parse_text` turns the text a person typed (a web form field,
a CLI argument) into the JSON value for the same check. :func:`input_spec` builds a spec from
a Python type, a pydantic model, or a spec.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._errors import InvalidInput
from ._limits import (
    MAX_JSON_NODES,
    MAX_OPTION_LENGTH,
    MAX_OPTIONS,
    MAX_PATTERN_LENGTH,
    MAX_SCHEMA_DEPTH,
    MAX_TEXT_LENGTH,
    Flag,
    Integer,
    JsonRefused,
    Number,
    bounded_json,
    check_json,
    compile_pattern,
    from_store,
    where,
)

__all__ = [
    "ApprovalInput",
    "BoolInput",
    "ChoiceInput",
    "FloatInput",
    "FormInput",
    "InputSpec",
    "IntInput",
    "MultiChoiceInput",
    "TextInput",
    "input_spec",
    "parse_text",
    "validate_value",
]


Int64 = Annotated[Integer, Field(ge=-(2**63), le=2**63 - 1)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalInput(_Spec):
    """Approve or reject: the value is ``true`` (approved) or ``false`` (rejected)."""

    kind: Literal["approval"] = "approval"
    default: Flag | None = None


class BoolInput(_Spec):
    """A yes/no answer that is not an approval (rejecting is not an option)."""

    kind: Literal["bool"] = "bool"
    default: Flag | None = None


class IntInput(_Spec):
    """A whole number, optionally bounded (``min`` and ``max`` inclusive)."""

    kind: Literal["int"] = "int"
    min: Int64 | None = None
    max: Int64 | None = None
    default: Int64 | None = None

    @model_validator(mode="after")
    def _check(self) -> IntInput:
        _check_bounds(self.min, self.max, self.default)
        return self


class FloatInput(_Spec):
    """A number, optionally bounded (``min`` and ``max`` inclusive)."""

    kind: Literal["float"] = "float"
    min: Number | None = Field(default=None, allow_inf_nan=False)
    max: Number | None = Field(default=None, allow_inf_nan=False)
    default: Number | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> FloatInput:
        _check_bounds(self.min, self.max, self.default)
        return self


class TextInput(_Spec):
    """Free text, optionally limited in length or matched against a regular expression."""

    kind: Literal["text"] = "text"
    max_length: Integer | None = Field(default=None, ge=1, le=MAX_TEXT_LENGTH)
    pattern: str | None = Field(
        default=None, max_length=MAX_PATTERN_LENGTH,
        description="A regular expression in RE2 syntax the whole answer must match (matched "
                    "in linear time: no backreferences or lookarounds).")
    multiline: Flag = False
    default: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)

    @field_validator("pattern")
    @classmethod
    def _linear(cls, pattern: str | None, info: ValidationInfo) -> str | None:
        if pattern is not None and not from_store(info):
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"expected {exc}") from None
        return pattern


Option = Annotated[str, StringConstraints(max_length=MAX_OPTION_LENGTH)]


class ChoiceInput(_Spec):
    """One option out of a list."""

    kind: Literal["choice"] = "choice"
    options: list[Option] = Field(min_length=1, max_length=MAX_OPTIONS)
    default: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ChoiceInput:
        _check_options(self.options)
        if self.default is not None and self.default not in self.options:
            raise ValueError(f"default {self.default!r} is not one of the options")
        return self


class MultiChoiceInput(_Spec):
    """Any number of options out of a list, between ``min_selected`` and ``max_selected``."""

    kind: Literal["multichoice"] = "multichoice"
    options: list[Option] = Field(min_length=1, max_length=MAX_OPTIONS)
    min_selected: Integer = Field(default=0, ge=0, le=MAX_OPTIONS)
    max_selected: Integer | None = Field(default=None, ge=1, le=MAX_OPTIONS)
    default: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> MultiChoiceInput:
        _check_options(self.options)
        if self.max_selected is not None and self.max_selected < self.min_selected:
            raise ValueError("max_selected is below min_selected")
        if self.default is not None:
            validate_value(self, self.default, field="default")
        return self


class FormInput(_Spec):
    """A structured answer described by a JSON schema (for instance a pydantic model's)."""

    kind: Literal["form"] = "form"
    schema_: dict[str, Any] = Field(
        alias="schema",
        description=f"A JSON schema (draft 2020-12) of an object, nested at most "
                    f"{MAX_SCHEMA_DEPTH} deep, at most {MAX_JSON_NODES} values; its patterns "
                    "use RE2 syntax and its $refs stay inside it.")
    default: Annotated[dict[str, Any] | None, AfterValidator(bounded_json)] = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _check(cls, schema: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        if from_store(info):
            return schema

        check_json(schema, depth=MAX_SCHEMA_DEPTH)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"schema is not a valid JSON schema: {exc.message}") from exc
        if schema.get("type", "object") != "object":
            raise ValueError("a form schema must describe an object")
        _check_schema_keywords(schema)
        return schema


InputSpec = Annotated[
    ApprovalInput | BoolInput | IntInput | FloatInput | TextInput | ChoiceInput | MultiChoiceInput | FormInput,
    Field(discriminator="kind"),
]
"""Any input spec; the ``kind`` field says which."""


# Keywords whose values are data, not subschemas: a "pattern" key in there is not a pattern.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def _check_schema_keywords(schema: dict[str, Any]) -> None:
    """Every pattern compiles with RE2, every ``$ref`` stays inside the schema (nothing is
    fetched), and no keyword would match a pattern with Python's backtracking engine.
    """
    stack: list[tuple[Any, str]] = [(schema, "schema")]
    seen: set[str] = set()
    while stack:
        node, where = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        seen.update(k for k in node if isinstance(k, str))
        for key, value in node.items():
            if key in _DATA_KEYWORDS:
                continue
            if key == "pattern" and isinstance(value, str):
                _re2(value, f"{where}.pattern")
            elif key == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    _re2(pattern, f"{where}.patternProperties")
            elif key in ("$ref", "$dynamicRef") and isinstance(value, str):
                if not value.startswith("#"):
                    raise ValueError(f"{where}.{key}: expected a reference inside the schema "
                                     f"('#/$defs/NAME'), got {value[:80]!r}")
            stack.append((value, f"{where}.{key}"))
    if "unevaluatedProperties" in seen and "patternProperties" in seen:
        raise ValueError("schema: unevaluatedProperties together with patternProperties is not "
                         "supported (it would match patterns with a backtracking engine)")


def _re2(pattern: str, where: str) -> None:
    try:
        compile_pattern(pattern)
    except ValueError as exc:
        raise ValueError(f"{where}: expected {exc}") from None


def _check_bounds(low: float | None, high: float | None, default: float | None) -> None:
    if low is not None and high is not None and low > high:
        raise ValueError("min is above max")
    if default is not None:
        if (low is not None and default < low) or (high is not None and default > high):
            raise ValueError("default is outside min..max")


def _check_options(options: list[str]) -> None:
    if len(set(options)) != len(options):
        raise ValueError("options must be distinct")


def validate_value(spec: Any, value: Any, field: str = "value") -> Any:
    """Check ``value`` (as decoded from JSON) against ``spec`` and return it normalised.

    Raises:
        InvalidInput: naming ``field``, what the spec expects, and what came.
    """
    kind = spec.kind
    try:
        check_json(value)
    except JsonRefused as exc:
        raise InvalidInput(".".join([field, where(exc.path)]) if exc.path else field,
                           exc.expected, "a value that cannot be shown again") from None
    if kind in ("approval", "bool"):
        if not isinstance(value, bool):
            raise InvalidInput(field, "true or false", value)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(field, f"a whole number{_range(spec)}", value)
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidInput(field, f"a whole number{_range(spec)}", value)
            value = int(value)
        _in_range(spec, value, field)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(field, f"a number{_range(spec)}", value)
        if not math.isfinite(value):
            raise InvalidInput(field, f"a finite number{_range(spec)}", value)
        _in_range(spec, float(value), field)
        return float(value)
    if kind == "text":
        if not isinstance(value, str):
            raise InvalidInput(field, "text", value)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidInput(field, f"at most {spec.max_length} characters", value)
        if spec.pattern is not None and _fullmatch(spec.pattern, value) is None:
            raise InvalidInput(field, f"text matching {spec.pattern!r}", value)
        return value
    if kind == "choice":
        if not isinstance(value, str) or value not in spec.options:
            raise InvalidInput(field, f"one of {spec.options}", value)
        return value
    if kind == "multichoice":
        return _validate_multichoice(spec, value, field)
    if kind == "form":
        return _validate_form(spec, value, field)
    raise InvalidInput("input.kind", "a known input kind", kind)


def _fullmatch(pattern: str, value: str) -> Any:
    try:
        compiled = compile_pattern(pattern)
    except ValueError:  # stored before patterns were RE2: never fall back to backtracking
        raise InvalidInput("input.pattern", "a pattern RE2 can check", pattern) from None
    return compiled.fullmatch(value)


def _range(spec: Any) -> str:
    if spec.min is not None and spec.max is not None:
        return f" from {spec.min} to {spec.max}"
    if spec.min is not None:
        return f" of at least {spec.min}"
    if spec.max is not None:
        return f" of at most {spec.max}"
    return ""


def _in_range(spec: Any, value: float, field: str) -> None:
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        noun = "a whole number" if spec.kind == "int" else "a number"
        raise InvalidInput(field, f"{noun}{_range(spec)}", value)


def _validate_multichoice(spec: MultiChoiceInput, value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(field, f"a list of options from {spec.options}", value)
    unknown = [v for v in value if v not in spec.options]
    if unknown:
        raise InvalidInput(field, f"options from {spec.options}", value)
    if len(set(value)) != len(value):
        raise InvalidInput(field, "each option at most once", value)
    high = spec.max_selected
    if len(value) < spec.min_selected or (high is not None and len(value) > high):
        bounds = f"{spec.min_selected}..{high}" if high is not None else f"{spec.min_selected}+"
        raise InvalidInput(field, f"{bounds} options selected", value)
    return [o for o in spec.options if o in value]


def _validate_form(spec: FormInput, value: Any, field: str) -> dict[str, Any]:
    from referencing.exceptions import Unresolvable

    if not isinstance(value, dict):
        raise InvalidInput(field, "an object (a filled-in form)", value)
    validator = _form_validator()(spec.schema_, registry=_no_retrieval())
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    except (Unresolvable, RecursionError) as exc:
        raise InvalidInput(f"{field}", "a form whose schema can be checked",
                           f"{type(exc).__name__}: {exc}"[:200]) from None
    error = errors[0] if errors else None
    if error is not None:
        where = ".".join([field, *(str(p) for p in error.absolute_path)])
        expected = _expected_from_schema_error(error)
        return_value: Any = error.instance
        raise InvalidInput(where, expected, return_value, f"{where}: {error.message}")
    return value


@functools.cache
def _no_retrieval() -> Any:
    """An empty registry: a ``$ref`` outside the schema is never fetched (no egress)."""
    from referencing import Registry

    return Registry()


def _schema_pattern(pattern: str) -> Any:
    try:
        return compile_pattern(pattern)
    except ValueError:  # stored before patterns were RE2: never fall back to backtracking
        raise InvalidInput("input.schema", "a form schema whose patterns RE2 can check",
                           pattern) from None


@functools.cache
def _form_validator() -> Any:
    """Draft 2020-12 with every regular expression matched by RE2 (linear time)."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import ValidationError

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not _schema_pattern(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any,
                           schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            compiled = _schema_pattern(patrn)
            for key, child in instance.items():
                if compiled.search(key):
                    yield from validator.descend(child, subschema, path=key, schema_path=patrn)

    def additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        known = schema.get("properties", {})
        patterns = [_schema_pattern(p) for p in schema.get("patternProperties", {})]
        extras = [k for k in instance
                  if k not in known and not any(p.search(k) for p in patterns)]
        if validator.is_type(extra, "object"):
            for key in extras:
                yield from validator.descend(instance[key], extra, path=key)
        elif not extra and extras:
            yield ValidationError(f"Additional properties are not allowed "
                                  f"({', '.join(repr(k) for k in sorted(extras))} unexpected)")

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"pattern": pattern, "patternProperties": pattern_properties,
                               "additionalProperties": additional_properties})


def _expected_from_schema_error(error: Any) -> str:
    keyword, constraint = error.validator, error.validator_value
    if keyword == "required":
        return f"the required fields {constraint}"
    if keyword == "type":
        return f"type {constraint}"
    if keyword == "enum":
        return f"one of {constraint}"
    return f"{keyword} {constraint!r}"


def parse_text(spec: Any, text: str, field: str = "value") -> Any:
    """Turn what a person typed into the JSON value for ``spec`` (before :func:`validate_value`).

    Web forms and the CLI send text; this is the one place that reads it. A multichoice
    takes a comma-separated list, a form takes a JSON object.
    """
    kind = spec.kind
    stripped = text.strip()
    if kind in ("approval", "bool"):
        words = {"true": True, "yes": True, "approve": True, "approved": True, "y": True,
                 "false": False, "no": False, "reject": False, "rejected": False, "n": False}
        if stripped.lower() in words:
            return words[stripped.lower()]
        raise InvalidInput(field, "yes/no (true, false, approve, reject)", text)
    if kind in ("int", "float"):
        try:
            number = float(stripped) if kind == "float" else int(stripped)
        except ValueError:
            noun = "a whole number" if kind == "int" else "a number"
            raise InvalidInput(field, f"{noun}{_range(spec)}", text) from None
        return number
    if kind == "multichoice":
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind == "form":
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # JSONDecodeError, too deep, too many digits
            raise InvalidInput(field, "a JSON object", text) from None
    return text


def input_spec(kind: Any) -> Any:
    """Build an input spec from a Python type, a pydantic model class, or a spec.

    ``bool`` → bool, ``int`` → int, ``float`` → float, ``str`` → text, an ``Enum`` or
    ``Literal[...]`` → choice, ``list[Literal[...]]`` → multichoice, a pydantic model → form.
    """
    if isinstance(kind, _Spec):
        return kind
    if isinstance(kind, dict):
        from pydantic import TypeAdapter

        return TypeAdapter(InputSpec).validate_python(kind)
    simple: dict[Any, _Spec] = {
        bool: BoolInput(), int: IntInput(), float: FloatInput(), str: TextInput()
    }
    if kind in simple:
        return simple[kind]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return ChoiceInput(options=[str(m.value) for m in kind])
    origin = typing.get_origin(kind)
    if origin is Literal:
        return ChoiceInput(options=[str(v) for v in typing.get_args(kind)])
    if origin is list:
        (inner,) = typing.get_args(kind)
        choice = input_spec(inner)
        if isinstance(choice, ChoiceInput):
            return MultiChoiceInput(options=choice.options)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return FormInput(schema=kind.model_json_schema())
    raise TypeError(
        f"input: expected bool, int, float, str, an Enum, a Literal, list of a Literal, "
        f"a pydantic model or an input spec, got {kind!r}"
    )
