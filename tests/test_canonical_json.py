"""canonical_json's fast path (the C JSON encoder) writes the same bytes as RFC 8785 (the
``rfc8785`` package) for every JSON value, and falls back to it where the two would differ."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff._evidence import _plain, canonical_json

_scalars = (st.none() | st.booleans() | st.text()
            | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
            | st.floats(allow_nan=False, allow_infinity=False))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


@settings(max_examples=600, deadline=None)
@given(_json)
def test_the_fast_path_writes_what_rfc8785_writes(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize("value", [
    1.0, 1e-7, 1e16, [2.0], {"a": -0.0},     # float forms differ between the two encoders
    {"\U0001f600": 1, "\uffff": 2},          # UTF-16 order is not code point order here
])
def test_values_the_c_encoder_writes_differently_take_the_rfc8785_path(value: Any) -> None:
    assert not _plain(value)
    plain = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    assert plain != rfc8785.dumps(value)  # so the fallback is needed, and taken
    assert canonical_json(value) == rfc8785.dumps(value)


def test_integers_beyond_jcs_are_written_as_strings() -> None:
    assert not _plain([2**53])
    assert canonical_json({"n": 2**53, "m": [-(2**60)]}) == b'{"m":["-1152921504606846976"],"n":"9007199254740992"}'
