"""A payload codec for the tests: workers and the hub's resumer must share it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/signoff-test-reversed"


class ReversingCodec(PayloadCodec):
    """Stands in for an encryption codec: reverses the serialised payload."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata={"encoding": ENCODING}, data=p.SerializeToString()[::-1])
                for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if any(p.metadata.get("encoding") != ENCODING for p in payloads):
            raise ValueError("a payload was not encoded with the test codec")
        return [Payload.FromString(p.data[::-1]) for p in payloads]


converter = dataclasses.replace(DataConverter.default, payload_codec=ReversingCodec())
