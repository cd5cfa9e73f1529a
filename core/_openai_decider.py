"""A built-in AI decider for any OpenAI-compatible chat-completions endpoint (issue 21).

``[deciders.NAME] kind = "openai"`` with ``base_url``, ``model`` and ``api_key`` (and
optionally ``min_confidence``, default 0.8; ``timeout``). Where a policy hands an event to it
(an escalation tier's ``fallback``), the hub sends the event's prompt, context and input spec
as one chat completion, asking for a structured answer (``response_format`` with a strict JSON
schema): ``{"value": ..., "confidence": 0..1, "reason": "..."}``. The verdict's comment says
the model, its confidence and its reason; the hub validates the value against the input spec
like any answer and records it with ``by`` = the decider's name, channel ``fallback`` (which
never counts towards a human quorum above one).

Anything but a confident, well-formed answer leaves the event to the humans (the tier is spent,
the audit says why): a refusal, a cut-off or invalid JSON, a value of the wrong shape, a
confidence under ``min_confidence``, an error status, a timeout. The call goes through the hub's
egress guard like a webhook decider's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from ._egress import EgressGuard, EgressRefused, origin_of
from ._model import Event

__all__ = ["OpenAIDecider", "answer_schema"]

_MAX_ANSWER_BYTES = 262_144
_SYSTEM = ("You decide human-approval steps of data workflows. Answer only with the JSON object "
           "the schema asks for: the value, your confidence between 0 and 1, and a one-sentence "
           "reason. If you are unsure, give a low confidence.")


def answer_schema(event: Event) -> dict[str, Any]:
    """The JSON schema of the structured answer, its ``value`` shaped by the event's input."""
    spec = event.input
    value: dict[str, Any]
    if spec.kind == "form":
        value = dict(spec.schema_)
    elif spec.kind in ("approval", "bool"):
        value = {"type": "boolean"}
    elif spec.kind == "int":
        value = {"type": "integer"}
    elif spec.kind == "float":
        value = {"type": "number"}
    elif spec.kind == "text":
        value = {"type": "string"}
    elif spec.kind == "choice":
        value = {"type": "string", "enum": list(spec.options)}
    elif spec.kind == "multichoice":
        value = {"type": "array", "items": {"type": "string", "enum": list(spec.options)}}
    else:  # every kind is named above
        raise ValueError(f"no answer schema for input kind {spec.kind!r}")
    return {"type": "object", "additionalProperties": False,
            "required": ["value", "confidence", "reason"],
            "properties": {"value": value, "confidence": {"type": "number"},
                           "reason": {"type": "string"}}}


class OpenAIDecider:
    """Asks a chat-completions endpoint; one guarded HTTP client for its lifetime."""

    def __init__(self, settings: Mapping[str, Any], egress: EgressGuard | None = None) -> None:
        from .deciders import DeciderFailed

        missing = [k for k in ("base_url", "model") if not settings.get(k)]
        if missing:
            raise DeciderFailed(f"an openai decider needs {', '.join(missing)}")
        self.url = str(settings["base_url"]).rstrip("/") + "/chat/completions"
        self.model = str(settings["model"])
        self.min_confidence = float(settings.get("min_confidence", 0.8))
        self.egress = egress or EgressGuard()
        key = settings.get("api_key")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = self.egress.client(timeout=float(settings.get("timeout", 30)),
                                          headers=headers)

    def request(self, event: Event) -> dict[str, Any]:
        """The chat-completions request for ``event``."""
        facts = {"name": event.name, "prompt": event.prompt, "context": event.context,
                 "input": event.input.model_dump(mode="json", by_alias=True),
                 "recommendation": event.recommendation, "confidence": event.confidence,
                 "impact": event.impact, "priority": event.priority.value}
        return {"model": self.model, "temperature": 0,
                "messages": [{"role": "system", "content": _SYSTEM},
                             {"role": "user", "content": json.dumps(facts, default=str)}],
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "signoff_answer", "strict": True, "schema": answer_schema(event)}}}

    async def decide(self, event: Event) -> Any:
        """The verdict, or :class:`~signoff.deciders.DeciderFailed` saying why not."""
        from .deciders import DeciderFailed, Verdict

        where = f"decider {origin_of(self.url)} ({self.model})"
        try:
            self.egress.check_url(self.url)
            answer = await self._client.post(self.url, json=self.request(event))
        except EgressRefused as exc:
            raise DeciderFailed(f"{where}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise DeciderFailed(f"{where}: {type(exc).__name__}") from exc
        if answer.status_code != 200:
            raise DeciderFailed(f"{where} answered {answer.status_code}")
        if len(answer.content) > _MAX_ANSWER_BYTES:
            raise DeciderFailed(f"{where}: the answer is over {_MAX_ANSWER_BYTES} bytes")
        try:
            choice = answer.json()["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DeciderFailed(f"{where}: not a chat completion") from None
        if message.get("refusal"):
            raise DeciderFailed(f"{where} refused to answer")
        if choice.get("finish_reason") not in (None, "stop"):
            raise DeciderFailed(f"{where}: the answer was cut off "
                                f"({choice.get('finish_reason')})")
        try:
            parsed = json.loads(message.get("content") or "")
            value, confidence, reason = parsed["value"], parsed["confidence"], parsed["reason"]
            confidence = float(confidence)
        except (ValueError, KeyError, TypeError):
            raise DeciderFailed(f"{where}: the answer is not the JSON asked for") from None
        if not 0 <= confidence <= 1:
            raise DeciderFailed(f"{where}: confidence {confidence} is not between 0 and 1")
        if confidence < self.min_confidence:
            raise DeciderFailed(f"{where}: confidence {confidence:.2f} is under "
                                f"{self.min_confidence:.2f}; left to the humans")
        comment = f"{self.model}, confidence {confidence:.2f}: {str(reason)[:1000]}"
        return Verdict(value=value, comment=comment)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
