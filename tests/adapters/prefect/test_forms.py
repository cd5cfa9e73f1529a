"""The Prefect form built from an input spec, and values turned back into Python types."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Literal

import pytest
from prefect._internal.pydantic.v2_schema import create_v2_schema
from pydantic import BaseModel

from signoff import (
    ChoiceInput,
    Decision,
    Event,
    FormInput,
    IntInput,
    InvalidInput,
    MultiChoiceInput,
    Outcome,
    Source,
    TextInput,
    input_spec,
)
from signoff.adapters.prefect._common import check_pause_key, run_input_for
from signoff.adapters.prefect._forms import python_value, run_input_class, value_schema


class Leaf(BaseModel):
    size: int


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


class Pot(BaseModel):
    leaf: Leaf
    spare: Leaf | None = None


class Colour(enum.Enum):
    red = "r"
    blue = "b"


@pytest.mark.parametrize("spec, schema", [
    (input_spec(bool), {"type": "boolean", "title": "Answer"}),
    (IntInput(min=1, max=9, default=3),
     {"type": "integer", "title": "Answer", "minimum": 1, "maximum": 9, "default": 3}),
    (TextInput(max_length=5, pattern="a|b"),
     {"type": "string", "title": "Answer", "maxLength": 5, "pattern": "^(?:a|b)$"}),
    (ChoiceInput(options=["x", "y"]), {"type": "string", "title": "Answer", "enum": ["x", "y"]}),
    (MultiChoiceInput(options=["x", "y"], min_selected=1, max_selected=2),
     {"type": "array", "title": "Answer", "uniqueItems": True, "minItems": 1, "maxItems": 2,
      "items": {"type": "string", "enum": ["x", "y"]}}),
])
def test_value_schema(spec: object, schema: dict[str, object]) -> None:
    assert value_schema(spec) == schema


def test_form_schema_is_inlined() -> None:
    schema = value_schema(input_spec(Pot))
    assert schema["properties"]["leaf"]["properties"]["size"]["type"] == "integer"
    spare = schema["properties"]["spare"]["anyOf"][0]
    assert spare["properties"]["size"] == {"title": "Size", "type": "integer"}
    assert "$defs" not in schema and "$ref" not in str(schema)


def test_recursive_form_falls_back_to_an_object() -> None:
    assert value_schema(FormInput(schema=Tree.model_json_schema())) == {
        "title": "Answer", "type": "object"}


def test_run_input_class_schema_and_extras() -> None:
    form = run_input_class(IntInput(min=1), "How **many**?")
    assert form._description == "How **many**?"
    schema = create_v2_schema(form.__name__, model_base=form)
    assert schema["additionalProperties"] is True
    assert not schema.get("required")  # the form is optional: a resume may carry no answer
    assert schema["properties"]["value"] == {"type": "integer", "title": "Answer", "minimum": 1}
    assert "default" not in schema["properties"]["comment"]
    loaded = form(value=3, signoff={"event_id": "ev_1"})
    assert (loaded.value, loaded.model_extra) == (3, {"signoff": {"event_id": "ev_1"}})
    assert form().value is None


def test_python_values() -> None:
    assert python_value(Pot, {"leaf": {"size": 2}}) == Pot(leaf=Leaf(size=2))
    assert python_value(Colour, "b") is Colour.blue
    assert python_value(list[Colour], ["r", "b"]) == [Colour.red, Colour.blue]
    assert python_value(list[Literal["a", "b"]], ["a"]) == ["a"]
    assert python_value(float, 2) == 2.0 and isinstance(python_value(float, 2), float)
    assert python_value(int, 2) == 2
    assert python_value({"kind": "int"}, 5) == 5
    assert python_value(Pot, None) is None
    with pytest.raises(InvalidInput, match="value.leaf.size"):
        python_value(Pot, {"leaf": {"size": "big"}})


def test_run_input_for_a_decision() -> None:
    at = datetime(2026, 1, 2, tzinfo=timezone.utc)
    event = Event(id="ev_1", key=None, name="n", prompt="?", input=IntInput(), context={},
                  assignees=[], priority="normal", timeout=None, on_timeout="reject",
                  source=Source(orchestrator="prefect"), labels={}, requested_by="f",
                  status="decided", created_at=at, deadline=None,
                  decision=Decision(value=None, outcome=Outcome.cancelled, by="ana",
                                    comment="no", channel="api", at=at))
    assert run_input_for(event) == {
        "comment": "no",
        "signoff": {"event_id": "ev_1", "outcome": "cancelled", "by": "ana",
                    "at": "2026-01-02T00:00:00+00:00"}}


@pytest.mark.parametrize("key", ["deploy", "step-2", "a" * 100])
def test_good_pause_keys(key: str) -> None:
    assert check_pause_key(key) == key


@pytest.mark.parametrize("key", ["", "Deploy", "a_b", "-a", "a" * 101, "a.b"])
def test_bad_pause_keys(key: str) -> None:
    with pytest.raises(ValueError, match="key: expected"):
        check_pause_key(key)
