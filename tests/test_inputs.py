from __future__ import annotations

import enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from signoff import (
    ChoiceInput,
    EventCreate,
    FormInput,
    IntInput,
    InvalidInput,
    MultiChoiceInput,
    TextInput,
    input_spec,
    parse_text,
    validate_value,
)


class Refund(BaseModel):
    amount: float = Field(ge=0)
    reason: str
    urgent: bool = False


GOOD: list[tuple[dict[str, Any], Any, Any]] = [
    ({"kind": "approval"}, True, True),
    ({"kind": "approval"}, False, False),
    ({"kind": "bool"}, False, False),
    ({"kind": "int", "min": 1, "max": 10}, 10, 10),
    ({"kind": "int"}, 3.0, 3),
    ({"kind": "float", "min": 0}, 2, 2.0),
    ({"kind": "text", "max_length": 5, "pattern": "[a-z]+"}, "abc", "abc"),
    ({"kind": "choice", "options": ["a", "b"]}, "b", "b"),
    ({"kind": "multichoice", "options": ["a", "b", "c"], "max_selected": 2}, ["c", "a"],
     ["a", "c"]),
    ({"kind": "form", "schema": Refund.model_json_schema()}, {"amount": 4.5, "reason": "x"},
     {"amount": 4.5, "reason": "x"}),
]

BAD: list[tuple[dict[str, Any], Any, str, str]] = [
    ({"kind": "approval"}, "yes", "value", "true or false"),
    ({"kind": "approval"}, 1, "value", "true or false"),
    ({"kind": "int", "min": 1, "max": 10}, 11, "value", "a whole number from 1 to 10"),
    ({"kind": "int"}, True, "value", "a whole number"),
    ({"kind": "int"}, 2.5, "value", "a whole number"),
    ({"kind": "float", "max": 1}, 1.5, "value", "a number of at most 1"),
    ({"kind": "float"}, "1", "value", "a number"),
    ({"kind": "text", "max_length": 3}, "abcd", "value", "at most 3 characters"),
    ({"kind": "text", "pattern": "[a-z]+"}, "ABC", "value", "text matching '[a-z]+'"),
    ({"kind": "choice", "options": ["a", "b"]}, "c", "value", "one of ['a', 'b']"),
    ({"kind": "multichoice", "options": ["a", "b"], "min_selected": 1}, [], "value",
     "1+ options selected"),
    ({"kind": "multichoice", "options": ["a", "b"]}, ["a", "z"], "value", "options from"),
    ({"kind": "form", "schema": Refund.model_json_schema()}, {"amount": -1, "reason": "x"},
     "value.amount", "minimum 0"),
    ({"kind": "form", "schema": Refund.model_json_schema()}, {"amount": 1}, "value",
     "the required fields"),
    ({"kind": "form", "schema": Refund.model_json_schema()}, [1], "value", "an object"),
]


def _spec(raw: dict[str, Any]) -> Any:
    return input_spec(raw)


@pytest.mark.parametrize(("raw", "value", "normalised"), GOOD)
def test_good_values_pass_normalised(raw: dict[str, Any], value: Any, normalised: Any) -> None:
    assert validate_value(_spec(raw), value) == normalised


@pytest.mark.parametrize(("raw", "value", "field", "expected"), BAD)
def test_bad_values_name_field_expected_and_got(raw: dict[str, Any], value: Any, field: str,
                                                expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_value(_spec(raw), value)
    error = caught.value
    assert error.field == field
    assert expected in error.expected, error.expected
    assert error.status == 422
    body = error.to_dict()["error"]
    assert body["field"] == field and "got" in body


@pytest.mark.parametrize("raw", [
    {"kind": "int", "min": 5, "max": 1},
    {"kind": "int", "max": 1, "default": 5},
    {"kind": "choice", "options": []},
    {"kind": "choice", "options": ["a", "a"]},
    {"kind": "choice", "options": ["a"], "default": "b"},
    {"kind": "multichoice", "options": ["a"], "min_selected": 2, "max_selected": 1},
    {"kind": "text", "pattern": "("},
    {"kind": "form", "schema": {"type": "array"}},
    {"kind": "form", "schema": {"type": "object", "properties": {"x": {"type": "nope"}}}},
    {"kind": "unknown"},
])
def test_bad_specs_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        input_spec(raw)


class Colour(enum.Enum):
    red = "red"
    blue = "blue"


def test_specs_from_python_types() -> None:
    assert input_spec(int) == IntInput()
    assert input_spec(str) == TextInput()
    assert input_spec(Colour) == ChoiceInput(options=["red", "blue"])
    assert input_spec(Literal["a", "b"]) == ChoiceInput(options=["a", "b"])
    assert input_spec(list[Literal["a", "b"]]) == MultiChoiceInput(options=["a", "b"])
    form = input_spec(Refund)
    assert isinstance(form, FormInput) and form.schema_["required"] == ["amount", "reason"]
    with pytest.raises(TypeError, match="input: expected"):
        input_spec(bytes)


@pytest.mark.parametrize(("raw", "text", "value"), [
    ({"kind": "approval"}, "Approve", True),
    ({"kind": "bool"}, "no", False),
    ({"kind": "int"}, " 42 ", 42),
    ({"kind": "float"}, "2.5", 2.5),
    ({"kind": "multichoice", "options": ["a", "b"]}, "a, b", ["a", "b"]),
    ({"kind": "form", "schema": {"type": "object"}}, '{"x": 1}', {"x": 1}),
    ({"kind": "text"}, "hello", "hello"),
])
def test_parse_text(raw: dict[str, Any], text: str, value: Any) -> None:
    assert parse_text(_spec(raw), text) == value


def test_parse_text_refuses_nonsense() -> None:
    with pytest.raises(InvalidInput, match="value: expected a whole number"):
        parse_text(IntInput(), "seven")


def test_event_create_checks_its_fields() -> None:
    with pytest.raises(ValidationError, match="on_timeout 'default' needs input.default"):
        EventCreate(name="x", prompt="p", on_timeout="default", timeout=5)
    with pytest.raises(ValidationError, match="assignee"):
        EventCreate(name="x", prompt="p", assignees=["bad name!"])
    with pytest.raises(ValidationError, match="link must be an http"):
        EventCreate(name="x", prompt="p", source={"link": "javascript:alert(1)"})
    with pytest.raises(ValidationError):
        EventCreate(name="x", prompt="p", timeout=-1)
    ok = EventCreate(name="x", prompt="p", assignees=["ann", "group:ops", "ann"])
    assert ok.assignees == ["ann", "group:ops"]
