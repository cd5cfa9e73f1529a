"""Evidence: what a reviewer was shown, hashed; each decision signed by the hub; both checked.

Logic only, no I/O, shared by the hub (which computes digests and signs) and by the client and
the adapters (which verify before a workflow acts). See ``docs/evidence.md``.

**Canonical form.** Every digest and every signature is over RFC 8785 (JSON Canonicalization
Scheme) bytes: sorted keys, no spaces, numbers in their shortest ECMAScript form, UTF-8. JCS
cannot carry integers beyond ±(2**53 - 1); such an integer is hashed as its decimal string.

**Payload digest.** An event's ``digest_parts`` holds one ``sha256:<hex>`` per field a
reviewer is shown (:data:`SHOWN`, each the field's JSON form); its ``digest`` is the SHA-256 of
the canonical ``digest_parts``. Two digests that differ name the fields that changed.

**Signed decision.** The hub signs, with Ed25519, the canonical form of
:func:`decision_claims`: the event's id, key and digest and the decision's value, outcome,
responder, channel, rule, time and verified flag. A key's id (``kid``) is derived from its
public key, so a keyring of public keys verifies any decision any of its keys signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._errors import SignoffError

if TYPE_CHECKING:
    from ._model import Decision, Event, EventCreate

__all__ = [
    "SHOWN",
    "DecisionUnverified",
    "Keyring",
    "canonical_json",
    "changed_fields",
    "decision_claims",
    "export_record",
    "digest_parts",
    "parts_digest",
    "shown_parts",
    "verify_decision",
    "verify_delivery",
    "verify_record",
]

SHOWN = ("name", "prompt", "input", "context", "recommendation", "confidence", "impact")
"""The fields of an event a reviewer is shown, which its digest covers."""

_SAFE = 2**53 - 1


class DecisionUnverified(SignoffError):
    """A decision whose signature or payload digest does not verify: never act on it.

    ``event_id`` and ``reason`` say which and why.
    """

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id}: the decision does not verify: {reason}; "
                         "it is refused and must not be acted on")
        self.event_id = event_id
        self.reason = reason


def _jcs_safe(value: Any) -> Any:
    """``value`` with integers JCS cannot carry replaced by their decimal string."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return value if -_SAFE <= value <= _SAFE else str(value)
    if isinstance(value, Mapping):
        return {k: _jcs_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jcs_safe(v) for v in value]
    return value


def _plain(value: Any) -> bool:
    """Whether ``json.dumps(sort_keys=True)`` writes ``value`` exactly as RFC 8785 does: no
    floats (their forms differ: ``1.0``/``1``, ``1e-07``/``1e-7``), integers JCS can carry, and
    keys within the BMP (where code point order is RFC 8785's UTF-16 order). Strings escape
    alike: quote, backslash, the short escapes (b, t, n, f, r) and ``u00xx`` for the other
    control characters.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE <= value <= _SAFE)
    if kind is dict:
        return all(type(k) is str and (k.isascii() or max(k) < "\U00010000") and _plain(v)
                   for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """``value`` as RFC 8785 canonical JSON bytes.

    The common case (no floats, see :func:`_plain`) goes through the C JSON encoder; the rest
    through ``rfc8785``. The two agree byte for byte where both apply (tests/test_evidence.py).
    """
    if _plain(value):
        try:
            return json.dumps(value, ensure_ascii=False, sort_keys=True,
                              separators=(",", ":")).encode()
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it as before
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(_jcs_safe(value))


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_parts(event: Event | EventCreate) -> dict[str, str]:
    """One digest per field a reviewer is shown, over the field's JSON form."""
    return shown_parts(event.model_dump(mode="json", include=set(SHOWN), by_alias=True))


def shown_parts(shown: Mapping[str, Any]) -> dict[str, str]:
    """:func:`digest_parts` of the shown fields given as JSON (an export row, say)."""
    return {name: _sha256(canonical_json(shown.get(name))) for name in SHOWN}


def parts_digest(parts: Mapping[str, str]) -> str:
    """The event's digest: SHA-256 over its canonical ``digest_parts``."""
    return _sha256(canonical_json(dict(parts)))


def changed_fields(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The shown fields whose digests differ (missing on one side counts as changed)."""
    return [name for name in SHOWN if before.get(name) != after.get(name)]


def _time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decision_claims(event_id: str, key: str | None, digest: str | None,
                    decision: Decision) -> dict[str, Any]:
    """What the hub signs about a decision (version ``v`` 1)."""
    return _claims(event_id, key, digest, value=decision.value, outcome=decision.outcome.value,
                   by=decision.by, channel=decision.channel, rule=decision.rule,
                   at=decision.at, verified=decision.verified)


def _claims(event_id: str, key: str | None, digest: str | None, *, value: Any, outcome: str,
            by: str, channel: str, rule: str | None, at: datetime,
            verified: bool) -> dict[str, Any]:
    return {"v": 1, "event_id": event_id, "key": key, "digest": digest, "value": value,
            "outcome": outcome, "by": by, "channel": channel, "rule": rule, "at": _time(at),
            "verified": verified}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public: Ed25519PublicKey) -> str:
    """A key's id: ``ed25519-`` and the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes_raw()
    return "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class Keyring:
    """Public keys by kid, and the private key that signs (the newest), if this side signs.

    The hub holds every key it ever signed with (retired ones public only); a client holds the
    public keys it fetched from ``GET /api/v1/keys`` or was given (pinned).
    """

    public: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    signer: Ed25519PrivateKey | None = None
    signer_kid: str | None = None

    @classmethod
    def of(cls, keys: Iterable[Ed25519PrivateKey | Ed25519PublicKey]) -> Keyring:
        """A keyring of ``keys`` in age order; the last private one signs."""
        ring = cls()
        for key in keys:
            public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
            kid = key_id(public)
            ring.public[kid] = public
            if isinstance(key, Ed25519PrivateKey):
                ring.signer, ring.signer_kid = key, kid
        return ring

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> Keyring:
        """Public keys from a JWKS-like document (``{"keys": [{"kid", "kty": "OKP", "crv":
        "Ed25519", "x"}]}``); a key whose kid does not match its bytes is refused.

        Raises:
            ValueError: not such a document.
        """
        ring = cls()
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise ValueError("keys: expected a list of public keys")
        for entry in keys:
            if not isinstance(entry, Mapping) or entry.get("kty") != "OKP" or \
                    entry.get("crv") != "Ed25519" or not isinstance(entry.get("x"), str):
                raise ValueError(f"keys: expected OKP Ed25519 keys with x, got {entry!r:.200}")
            public = Ed25519PublicKey.from_public_bytes(_unb64(entry["x"]))
            if entry.get("kid") != key_id(public):
                raise ValueError(f"keys: kid {entry.get('kid')!r} is not the id of its key")
            ring.public[key_id(public)] = public
        return ring

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS-like document; ``active`` marks the one that signs now."""
        return {"keys": [{"kid": kid, "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                          "use": "sig", "x": _b64(key.public_bytes_raw()),
                          "active": kid == self.signer_kid}
                         for kid, key in self.public.items()]}

    def sign(self, claims: Mapping[str, Any]) -> tuple[str, str]:
        """``(kid, signature)`` over the canonical ``claims``, signature base64url."""
        if self.signer is None or self.signer_kid is None:
            raise RuntimeError("this keyring holds no private key")
        return self.signer_kid, _b64(self.signer.sign(canonical_json(claims)))

    def verifies(self, claims: Mapping[str, Any], kid: str, signature: str) -> str | None:
        """None when ``signature`` by ``kid`` verifies ``claims``; else why not."""
        public = self.public.get(kid)
        if public is None:
            return f"signed by key {kid!r}, which is not among the hub's public keys"
        try:
            public.verify(_unb64(signature), canonical_json(claims))
        except (InvalidSignature, ValueError):
            return f"the signature by key {kid!r} does not match the decision"
        return None


def verify_decision(event: Event, keyring: Keyring, arrived: Decision | None = None) -> Decision:
    """The event's decision (or the decision that ``arrived`` for it by another road: an
    engine's signal, resume or run input), once its signature and the event's digest verify.

    The digest is recomputed from what the event shows and must equal the one the hub signed;
    the signature must be by a key in ``keyring`` over the decision as it reads now.

    Raises:
        DecisionUnverified: no decision, no signature, or either check fails.
    """
    decision = arrived if arrived is not None else event.decision
    if decision is None:
        raise DecisionUnverified(event.id, "the event has no decision")
    if decision.signature is None or decision.kid is None:
        raise DecisionUnverified(event.id, "the decision is not signed")
    if decision.digest is None and (event.digest is not None or event.digest_parts):
        raise DecisionUnverified(event.id, "the decision names no payload digest")
    if event.digest is not None and decision.digest != event.digest:
        raise DecisionUnverified(event.id, f"the decision was made against another payload "
                                 f"({decision.digest}), not this event's ({event.digest})")
    now = digest_parts(event)
    if decision.digest is not None and parts_digest(now) != decision.digest:
        changed = changed_fields(event.digest_parts, now) if event.digest_parts else []
        what = f" (changed: {', '.join(changed)})" if changed else ""
        raise DecisionUnverified(event.id, "the event's shown content is not what was approved"
                                 f"{what}")
    why = keyring.verifies(decision_claims(event.id, event.key, decision.digest, decision),
                           decision.kid, decision.signature)
    if why is not None:
        raise DecisionUnverified(event.id, why)
    return decision


def export_record(event: Event) -> dict[str, Any]:
    """The evidence fields of a decided event's export row: enough, with the shown fields
    beside them, for :func:`verify_record` to check it offline.
    """
    decision = event.decision
    assert decision is not None
    return {"key": event.key, "digest": decision.digest, "outcome": decision.outcome.value,
            "value": decision.value, "by": decision.by, "channel": decision.channel,
            "rule": decision.rule, "verified": decision.verified,
            "decided_at": _time(decision.at), "kid": decision.kid,
            "signature": decision.signature}


def verify_record(row: Mapping[str, Any], keyring: Keyring) -> str | None:
    """None when an export row (``signoff export``) verifies offline: its shown fields hash to
    the digest, and the signature by one of ``keyring``'s keys covers the row's decision.
    Otherwise, why not.
    """
    if not row.get("signature") or not row.get("kid"):
        return "the decision is not signed"
    if parts_digest(shown_parts(row)) != row.get("digest"):
        return "the shown fields (" + ", ".join(SHOWN) + ") do not hash to its digest"
    try:
        at = datetime.fromisoformat(str(row["decided_at"]).replace("Z", "+00:00"))
        claims = _claims(str(row["id"]), row.get("key"), row["digest"], value=row.get("value"),
                         outcome=row["outcome"], by=row["by"], channel=row["channel"],
                         rule=row.get("rule"), at=at, verified=row.get("verified", True))
    except (KeyError, ValueError, TypeError) as missing:
        return f"a field the signature covers is missing or malformed ({missing})"
    return keyring.verifies(claims, str(row["kid"]), str(row["signature"]))


def verify_delivery(body: Mapping[str, Any], keyring: Keyring,
                    expected_digest: str | None = None) -> Decision:
    """The decision a webhook delivery carries (``{"event_id", "key", "decision", ...}``,
    :mod:`signoff.resumers.webhook`), once the hub's signature over it verifies; with
    ``expected_digest`` (the digest of the event the receiver asked, from its create) it must
    also have been made against that payload.

    Raises:
        DecisionUnverified: unsigned, a signature that does not match, or another payload.
    """
    from ._model import Decision

    event_id = str(body.get("event_id"))
    try:
        decision = Decision.model_validate(body.get("decision"))
    except ValueError as exc:
        raise DecisionUnverified(event_id, f"no decision in the delivery ({exc})") from None
    if decision.signature is None or decision.kid is None:
        raise DecisionUnverified(event_id, "the decision is not signed")
    if expected_digest is not None and decision.digest != expected_digest:
        raise DecisionUnverified(event_id, f"the decision was made against {decision.digest}, "
                                 f"not {expected_digest}")
    key = body.get("key")
    why = keyring.verifies(decision_claims(event_id, key if isinstance(key, str) else None,
                                           decision.digest, decision),
                           decision.kid, decision.signature)
    if why is not None:
        raise DecisionUnverified(event_id, why)
    return decision
