"""The client's side of evidence (issue 22), without I/O: the keys it verifies with, the
payload digests of the events it asked, and the check of a decision before it is returned.
:class:`~signoff.Client` and :class:`~signoff.AsyncClient` only fetch (see ``docs/evidence.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ._evidence import DecisionUnverified, Keyring, digest_parts, parts_digest, verify_decision
from ._model import Decision, Event, EventCreate

__all__ = ["Verifying"]


class Verifying:
    """Mixed into the clients: verification state and logic, shared by both surfaces."""

    _keyring: Keyring | None
    _pinned: bool
    _asked: dict[str, str]

    def _init_verifying(self, keys: Keyring | Mapping[str, Any] | None) -> None:
        self._keyring = keys if isinstance(keys, Keyring) or keys is None \
            else Keyring.from_jwks(keys)
        self._pinned = keys is not None
        self._asked = {}  # event id -> the digest of what this client sent

    def _remember(self, body: dict[str, Any], created: Event) -> Event:
        """Check the hub holds what this client asked (its digest), and remember it: a
        decision this client returns must have been made against exactly that payload.

        Raises:
            DecisionUnverified: the hub's event shows something else than was sent.
        """
        if created.digest is None:  # a hub from before digests
            return created
        expected = parts_digest(digest_parts(EventCreate.model_validate(body)))
        if created.digest != expected:
            raise DecisionUnverified(created.id, f"the hub holds another payload ({created.digest})"
                                     f" than this client sent ({expected})")
        if len(self._asked) >= 10_000:
            self._asked.clear()
        self._asked[created.id] = expected
        return created

    def _keys_needed(self, decision: Decision | None) -> bool:
        """Fetch the hub's keys first: none yet, or (unpinned) a kid not seen yet (rotation)."""
        kid = decision.kid if decision else None
        return not self._pinned and (self._keyring is None or
                                     (kid is not None and kid not in self._keyring.public))

    def _set_keys(self, answer: httpx.Response) -> None:
        self._keyring = Keyring.from_jwks(answer.json())

    def _checked(self, event: Event,
                 arrived: Decision | None) -> tuple[Decision | None, str | None]:
        """The event's (or the ``arrived``) decision if it verifies
        (:func:`signoff._evidence.verify_decision`), else ``(None, why)`` for the caller to
        report and raise.
        """
        try:
            decision = verify_decision(event, self._keyring or Keyring(), arrived)
        except DecisionUnverified as refused:
            return None, refused.reason
        asked = self._asked.get(event.id)
        if asked is not None and decision.digest != asked:
            return None, (f"the decision was made against {decision.digest}, not the payload "
                          f"this client asked ({asked})")
        return decision, None
