"""Input that cannot poison: the bounds of the shared models, RE2 patterns, strict JSON."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from signoff import EventCreate, InputSpec, InvalidInput, ResponseCreate, validate_value
from signoff._expr import check_condition
from signoff._limits import (
    MAX_ASSIGNEES,
    MAX_CONTEXT_KEYS,
    MAX_DURATION,
    MAX_JSON_DEPTH,
    MAX_JSON_NODES,
    MAX_LABELS,
    MAX_OPTIONS,
    check_json,
)
from signoff._policy import Policy
from signoff.hub.inputs import strict_json

SPEC: TypeAdapter[Any] = TypeAdapter(InputSpec)
CATASTROPHIC = "(a+)+$"
EVIL = "a" * 50 + "!"  # a backtracking engine takes 2**50 steps on this


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def refused(**fields: Any) -> str:
    """The field pydantic names when EventCreate refuses ``fields``."""
    with pytest.raises(ValidationError) as caught:
        EventCreate(**{"name": "n", "prompt": "p", **fields})
    return ".".join(str(p) for p in caught.value.errors()[0]["loc"])


# --- JSON values ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "reason"), [
    ({"x": float("nan")}, "x: expected a finite number"),
    ({"x": [1, float("inf")]}, "x.1: expected a finite number"),
    ({"x": "\ud800"}, "x: expected valid Unicode text"),
    ({"\udfff": 1}, "expected keys in valid Unicode"),
    ({"k" * 201: 1}, "expected keys of at most 200"),
    (nested(MAX_JSON_DEPTH + 1), f"nested at most {MAX_JSON_DEPTH} deep"),
    (list(range(MAX_JSON_NODES)), f"at most {MAX_JSON_NODES} values"),
    ({"n": 2**63}, "n: expected an integer that fits in 64 bits"),
    ({"n": [-(2**63) - 1]}, "n.0: expected an integer"),
])
def test_check_json_refuses_what_could_not_be_shown_again(value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_json(value)


def test_check_json_takes_the_limits_themselves() -> None:
    check_json(nested(MAX_JSON_DEPTH))
    check_json(list(range(MAX_JSON_NODES - 1)))
    check_json({"rtl": "\u202eevil\u202c", "zw": "a\u200bb", "astral": "\U0001f600𝔘", "nul": "\x00"})


@pytest.mark.parametrize(("fields", "field"), [
    ({"context": {"x": float("nan")}}, "context"),
    ({"context": nested(MAX_JSON_DEPTH + 1)}, "context"),
    ({"context": {str(i): i for i in range(MAX_CONTEXT_KEYS + 1)}}, "context"),
    ({"recommendation": {"x": "\ud800"}}, "recommendation"),
    ({"source": {"params": nested(MAX_JSON_DEPTH + 1)}}, "source.params"),
    ({"timeout": MAX_DURATION + 1}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"confidence": float("nan")}, "confidence"),
    ({"labels": {str(i): "v" for i in range(MAX_LABELS + 1)}}, "labels"),
    ({"labels": {"k" * 101: "v"}}, "labels"),
    ({"labels": {"k": "v" * 501}}, "labels.k"),
    ({"assignees": [f"u{i}" for i in range(MAX_ASSIGNEES + 1)]}, "assignees"),
    ({"input": {"kind": "choice", "options": [str(i) for i in range(MAX_OPTIONS + 1)]}},
     "input.choice.options"),
    ({"input": {"kind": "multichoice", "options": ["x" * 501]}}, "input.multichoice.options.0"),
    ({"input": {"kind": "float", "max": float("inf")}}, "input.float.max"),
    ({"input": {"kind": "int", "max": 10**30}}, "input.int.max"),
    ({"input": {"kind": "text", "max_length": 10**9}}, "input.text.max_length"),
    ({"input": {"kind": "text", "pattern": "x" * 1001}}, "input.text.pattern"),
    ({"policy": {"escalate": [{"after": MAX_DURATION + 1}]}}, "policy.escalate.0.after"),
    ({"policy": {"escalate": [{"after": 60 * (i + 1)} for i in range(11)]}}, "policy.escalate"),
    ({"policy": {"route": [{"when": "true", "then": "review"}] * 51}}, "policy.route"),
    ({"policy": {"route": [{"when": "x" * 1001, "then": "review"}]}}, "policy.route.0.when"),
    ({"policy": {"notify": ["json://x"] * 21}}, "policy.notify"),
])
def test_event_create_bounds_name_the_field(fields: dict[str, Any], field: str) -> None:
    assert refused(**fields).startswith(field)


# what the API's schema says is refused is refused, not converted: pydantic's lax mode reads
# true as 1, "0.5" as 0.5 and 1 as true (schemathesis found true accepted as a confidence)
@pytest.mark.parametrize(("fields", "field"), [
    ({"confidence": True}, "confidence"),
    ({"confidence": "0.5"}, "confidence"),
    ({"timeout": True}, "timeout"),
    ({"timeout": "60"}, "timeout"),
    ({"policy": {"quorum": True}}, "policy.quorum"),
    ({"policy": {"quorum": 2.0}}, "policy.quorum"),
    ({"policy": {"quorum": "2"}}, "policy.quorum"),
    ({"policy": {"forbid_self_approval": 1}}, "policy.forbid_self_approval"),
    ({"policy": {"rejection_rejects": "false"}}, "policy.rejection_rejects"),
    ({"policy": {"escalate": [{"after": True}]}}, "policy.escalate.0.after"),
    ({"policy": {"escalate": [{"after": 60, "keep_previous": 0}]}},
     "policy.escalate.0.keep_previous"),
    ({"input": {"kind": "approval", "default": "yes"}}, "input.approval.default"),
    ({"input": {"kind": "int", "min": True}}, "input.int.min"),
    ({"input": {"kind": "float", "default": "1.5"}}, "input.float.default"),
    ({"input": {"kind": "text", "max_length": True}}, "input.text.max_length"),
    ({"input": {"kind": "text", "multiline": 1}}, "input.text.multiline"),
    ({"input": {"kind": "multichoice", "options": ["a"], "max_selected": True}},
     "input.multichoice.max_selected"),
])
def test_a_value_of_another_json_type_is_refused_not_converted(fields: dict[str, Any],
                                                                field: str) -> None:
    assert refused(**fields).startswith(field)


def test_numbers_still_take_integers() -> None:
    event = EventCreate(name="n", prompt="p", timeout=60, confidence=1,
                        input={"kind": "float", "min": 0, "max": 10})
    assert (event.timeout, event.confidence) == (60.0, 1.0)


def test_response_value_is_bounded() -> None:
    with pytest.raises(ValidationError) as caught:
        ResponseCreate(value=nested(MAX_JSON_DEPTH + 1))
    assert caught.value.errors()[0]["loc"] == ("value",)
    ResponseCreate(value=nested(MAX_JSON_DEPTH))


def test_a_tier_after_a_year_exactly_is_fine() -> None:
    policy = Policy.model_validate({"escalate": [{"after": MAX_DURATION}]})
    assert policy.escalate[0].after == timedelta(days=365)


# --- conditions -------------------------------------------------------------------------------
@pytest.mark.parametrize("condition", [
    "not " * 200 + "true",
    "(" * 300 + "true" + ")" * 300,
    " and ".join(["(confidence > 1 or (impact == 'low' and not (name == 'x')))"] * 40)[:1000],
    "confidence > 1e999",
])
def test_conditions_are_bounded_in_size_and_depth(condition: str) -> None:
    with pytest.raises(ValueError):
        check_condition(condition)


def test_a_deep_condition_within_the_limit_is_fine() -> None:
    check_condition("not " * 20 + "true")


# --- regular expressions ----------------------------------------------------------------------
def test_a_catastrophic_text_pattern_is_linear() -> None:
    spec = SPEC.validate_python({"kind": "text", "pattern": CATASTROPHIC})
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as caught:
        validate_value(spec, EVIL)
    assert time.perf_counter() - started < 0.5
    assert caught.value.field == "value"
    assert validate_value(spec, "aaaa") == "aaaa"


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"(?<!b)a", "(unclosed"])
def test_a_pattern_re2_cannot_compile_is_refused_at_creation(pattern: str) -> None:
    assert refused(input={"kind": "text", "pattern": pattern}) == "input.text.pattern"


def test_a_catastrophic_form_schema_pattern_is_linear() -> None:
    schema = {"type": "object",
              "properties": {"code": {"type": "string", "pattern": CATASTROPHIC}},
              "patternProperties": {CATASTROPHIC: {"type": "integer"}},
              "additionalProperties": False}
    spec = SPEC.validate_python({"kind": "form", "schema": schema})
    started = time.perf_counter()
    for value in ({"code": EVIL}, {EVIL: 1}, {"code": "aa", EVIL + "x": "x"}):
        with pytest.raises(InvalidInput):
            validate_value(spec, value)
    assert time.perf_counter() - started < 0.5
    assert validate_value(spec, {"code": "aa", "aaa": 3}) == {"code": "aa", "aaa": 3}


@pytest.mark.parametrize(("schema", "where"), [
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": r"(a)\1"}}},
     "schema.properties.a.pattern"),
    ({"type": "object", "patternProperties": {"(?=x)": {}}}, "schema.patternProperties"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
     "schema.properties.a.$ref"),
    ({"type": "object", "patternProperties": {"a": {}}, "unevaluatedProperties": False},
     "unevaluatedProperties"),
    (nested(40) | {"type": "object"}, "nested at most 32 deep"),
])
def test_form_schemas_are_refused_naming_where(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SPEC.validate_python({"kind": "form", "schema": schema})
    assert where in str(caught.value)


def test_a_pattern_inside_form_data_is_not_taken_for_a_pattern() -> None:
    schema = {"type": "object", "properties": {"pattern": {"type": "string"}},
              "examples": [{"pattern": r"(a)\1"}]}
    SPEC.validate_python({"kind": "form", "schema": schema})


# --- strict JSON bodies -----------------------------------------------------------------------
@pytest.mark.parametrize(("body", "field", "expected"), [
    (b'{"context": {"x": NaN}}', "context.x", "a finite number"),
    (b'{"a": [1, Infinity]}', "a.1", "a finite number"),
    (b'{"a": -Infinity}', "a", "a finite number"),
    (b'{"timeout": 1e999}', "timeout", "a finite number"),
    (b'{"prompt": "\\ud800"}', "prompt", "valid Unicode"),
    (b'{"\\udc00": 1}', "\\udc00", "valid Unicode"),
    (b'{"prompt": "\xed\xa0\x80"}', "body", "UTF-8"),
    (b'{"prompt": "\xff"}', "body", "UTF-8"),
    (b'[' * 100_000 + b']' * 100_000, "body", "nested less deeply"),
    (b'{"n": ' + b'9' * 5000 + b'}', "body", "numbers"),
    (b'{nope', "body", "JSON"),
])
def test_strict_json_refuses_naming_where(body: bytes, field: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        strict_json(body)
    assert caught.value.field == field
    assert expected in caught.value.expected
    json.dumps(caught.value.to_dict(), ensure_ascii=False).encode()  # the refusal itself shows


def test_strict_json_keeps_what_python_would() -> None:
    body = '{"a": "\\ud83d\\ude00 \u202e \u200b 𝔘", "n": [1, 2.5, -0.0, 1e308]}'.encode()
    assert strict_json(body) == json.loads(body)
