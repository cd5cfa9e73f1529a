"""The hub's side of evidence (issue 22): payloads bound to their digests, answers checked
against the digest they were given, refusals reported by a waiting workflow recorded.

The fields a digest covers (:data:`signoff._evidence.SHOWN`) never change through the API after
creation: escalation changes only assignees, and a key re-sent with another payload is refused
(:class:`KeyReused`) rather than stored over the old one. So an event whose shown content no
longer matches its digest was edited in the database, and an answer given against another
digest was given against something else (or a stale page): both are refused.
"""

from __future__ import annotations

import re
from typing import Any

from .._errors import DigestChanged, InvalidInput, KeyReused
from .._evidence import changed_fields, digest_parts, parts_digest
from .._model import Event

__all__ = ["check_answer_digest", "form_digest", "same_payload"]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def form_digest(form: Any) -> str | None:
    """The digest an inbox form was rendered with (its hidden ``digest`` field), checked.

    Raises:
        InvalidInput: a field that is not ``sha256:<64 hex>``.
    """
    given = form.get("digest")
    if not isinstance(given, str) or not given:
        return None
    if not _DIGEST.fullmatch(given):
        raise InvalidInput("digest", "sha256:<64 hex digits>", given[:80])
    return given


def same_payload(asked: Event, stored: Event) -> None:
    """Refuse an idempotent re-request whose payload differs from the stored event's: it
    must never receive the old event's decision.

    Raises:
        KeyReused: naming the shown fields that differ; nothing was written.
    """
    if stored.id == asked.id or stored.digest is None or stored.digest == asked.digest:
        return
    changed = changed_fields(stored.digest_parts, asked.digest_parts)
    raise KeyReused(f"key {stored.key!r} already names event {stored.id} with another payload "
                    f"(differs in: {', '.join(changed) or 'digest'}); use a new key for a new "
                    "question", changed=changed, expected=stored.digest, got=asked.digest)


def check_answer_digest(event: Event, given: str | None) -> None:
    """Refuse an answer given against ``given`` when the event does not show that now, or
    when the event's shown content no longer matches the digest it was created with.

    Raises:
        DigestChanged: naming the fields that changed and both digests; nothing is written.
    """
    if given is None:
        return
    now = digest_parts(event)
    current = parts_digest(now)
    if current == given and (event.digest is None or current == event.digest):
        return
    changed = changed_fields(event.digest_parts, now) if event.digest_parts else []
    if event.digest is not None and current != event.digest:
        why = (f"the event's shown content changed since it was created (changed: "
               f"{', '.join(changed) or 'unknown'})")
    else:
        why = "the event shows other content than the answer was given against"
    raise DigestChanged(f"event {event.id}: digest: {why}; answered against {given}, the "
                        f"event now shows {current}; reload it and answer again",
                        changed=changed, expected=current, got=given)
