"""The hub's ``prefect`` resumer: resume a paused or suspended flow run with its decision.

It runs inside the hub and imports only signoff and httpx, so a hub without Prefect installed
can resume flows on a Prefect server elsewhere. It speaks Prefect's REST API:

1. A decision relayed from Prefect itself (channel ``prefect``) needs no delivery.
2. ``GET /flow_runs/{id}``: if the run waits at this event's pause key, ``POST
   /flow_runs/{id}/resume`` with ``{"run_input": ...}``. Prefect answers 200/201 with a status:
   ``ACCEPT`` is a delivery; ``REJECT`` with a ``FAILED`` state means the pause timed out (final);
   ``REJECT`` because the run input schema is not saved yet is the moment between the flow's
   pause and its form being stored (retried); any other ``REJECT`` is final; ``ABORT`` and
   ``WAIT`` mean the run moved meanwhile: delivered when the stored answer is this decision
   (a paused flow watches the hub too and resumes itself with it), otherwise retried.
3. Otherwise the run does not wait there (any more, or yet). Prefect's stored answer for the
   pause says it was resumed already: by an earlier delivery of this decision, or by someone in
   Prefect's UI (same answer: delivered; another answer: failed, with both answers in the
   reason, while the flow itself continues with the hub's decision and logs the difference).
   A stored answer carrying another event's signoff marker is no answer: the flow ignored it.
   The adapter's ``signoff-<key>-taken`` input says the flow read the decision from the hub.
   A finished run can no longer be resumed (final); a run that has not reached its pause yet
   is retried.

Its target (see :mod:`signoff.resumers`) is the flow run id: the hub refuses an event naming a
flow run that another identity's events already name.

Settings (``[resumers.prefect]`` or ``SIGNOFF_RESUMERS__PREFECT__<KEY>``):

- ``api_url`` (required): Prefect's API, as in ``PREFECT_API_URL``, e.g.
  ``http://prefect:4200/api``. Until it is set, deliveries are retried, so fixing the
  configuration and restarting the hub delivers what waited.
- ``api_key``: sent as ``Authorization: Bearer`` (Prefect Cloud).
- ``auth_string``: ``user:password`` for a Prefect server with
  ``PREFECT_SERVER_API_AUTH_STRING`` (HTTP basic auth).
- ``timeout``: seconds per request, default 10.
- ``self_resume_grace``: seconds after a decision during which the resumer leaves a *paused*
  flow run to resume itself, default 2 (0: no wait). A paused flow watches the hub and
  resumes its own run the moment the decision exists; two resumes at once make Prefect's
  SQLite database answer 503 to one of them (and Prefect's client waits seconds before
  retrying). The resumer stays the backup: after the grace it finds the run resumed (and
  counts the delivery done) or resumes it itself. Suspended runs have no process and are
  resumed at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import httpx

from signoff import Event
from signoff.resumers import DeliveryFailed, RetryDelivery, target_name

from ._common import MODES, from_prefect, input_key, run_input_for, taken_key

__all__ = ["PrefectResumer"]

_FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


class PrefectResumer:
    """Deliver decisions to flow runs waiting in Prefect's ``pause_flow_run``/``suspend_flow_run``.

    Args:
        settings: the hub's ``[resumers.prefect]`` table (see the module docstring).
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        url = settings.get("api_url")
        self.api_url: str | None = str(url).rstrip("/") if url else None
        headers = {"Accept": "application/json"}
        if settings.get("api_key"):
            headers["Authorization"] = f"Bearer {settings['api_key']}"
        auth: tuple[str, str] | None = None
        if settings.get("auth_string"):
            user, _, password = str(settings["auth_string"]).partition(":")
            auth = (user, password)
        self._client = httpx.AsyncClient(headers=headers, auth=auth,
                                         timeout=float(settings.get("timeout", 10)))
        grace = settings.get("self_resume_grace", 2.0)
        try:
            self.self_resume_grace = float(grace)
        except (TypeError, ValueError):
            raise ValueError(f"[resumers.prefect] self_resume_grace: expected seconds, "
                             f"got {grace!r}") from None
        if not 0 <= self.self_resume_grace <= 10:
            raise ValueError(f"[resumers.prefect] self_resume_grace: expected 0 to 10 seconds, "
                             f"got {grace!r}")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def target(self, event: Event) -> str | None:
        """The flow run id (canonical UUID form) the decision would resume; ``None`` when the
        params name none (the delivery fails then, naming the field).
        """
        try:
            run_id, _, _ = _target(event)
        except DeliveryFailed:
            return None
        return target_name(run_id)

    async def deliver(self, event: Event) -> None:
        """Resume the event's flow run with its decision, or say why it cannot be done."""
        decision = event.decision
        assert decision is not None, "only decided events are delivered"
        if from_prefect(decision):
            return  # answered in Prefect: the flow resumed with it and relayed it here
        if self.api_url is None:
            raise RetryDelivery("the prefect resumer has no api_url: set [resumers.prefect] "
                                "api_url (or SIGNOFF_RESUMERS__PREFECT__API_URL) and restart")
        run_id, pause_key, mode = _target(event)
        if mode == "pause":  # the flow process watches the hub: let it resume its own run
            since = (datetime.now(timezone.utc) - decision.at).total_seconds()
            if since < self.self_resume_grace:
                await asyncio.sleep(self.self_resume_grace - max(since, 0.0))
        run = await self._call("GET", f"/flow_runs/{run_id}")
        state = run.get("state") or {}
        details = state.get("state_details") or {}
        if state.get("type") == "PAUSED" and details.get("pause_key") == pause_key:
            moved = await self._resume(run_id, event)
            if moved is None:
                return
            # the flow, watching the hub, may have resumed itself a moment before: its
            # stored answer says so; otherwise look again next attempt
            if await self._ours_stored(run_id, event, mode, pause_key):
                return
            raise RetryDelivery(moved)
        answered = await self._input(run_id, input_key(mode, pause_key, "response"))
        if answered is not None and not _for_another_event(answered, event):
            _check_same_answer(event, answered, run_id)
            return
        # a resume carrying another event's decision was ignored by the flow, which then
        # waits on the hub and marks this decision taken
        if await self._input(run_id, taken_key(pause_key)) is not None:
            return  # the flow read the decision from the hub; nothing waits in Prefect
        where = f"flow run {run_id} is {state.get('type', 'without a state')}"
        if state.get("type") in _FINAL:
            raise DeliveryFailed(f"{where}: it no longer waits for this decision")
        if state.get("type") == "PAUSED":
            where += f" at pause {details.get('pause_key')!r}"
        raise RetryDelivery(f"{where}, not yet waiting at pause {pause_key!r}")

    async def _ours_stored(self, run_id: str, event: Event, mode: str, pause_key: str) -> bool:
        """True when Prefect holds this event's decision as the pause's answer already."""
        answered = await self._input(run_id, input_key(mode, pause_key, "response"))
        marker = answered.get("signoff") if isinstance(answered, dict) else None
        return isinstance(marker, dict) and marker.get("event_id") == event.id

    async def _resume(self, run_id: str, event: Event) -> str | None:
        """Resume the run; ``None`` when done, or why the run had moved (to retry)."""
        answer = await self._call("POST", f"/flow_runs/{run_id}/resume",
                                  json={"run_input": run_input_for(event)})
        status = answer.get("status")
        reason = (answer.get("details") or {}).get("reason") or ""
        if status == "ACCEPT":
            return None
        if status == "REJECT":
            state = answer.get("state") or {}
            if state.get("type") == "FAILED":
                raise DeliveryFailed(f"flow run {run_id} can no longer be resumed: {reason}")
            if "schema not found" in reason.lower():
                # the flow proposes its Paused state first and stores its form right after
                raise RetryDelivery(f"flow run {run_id} is pausing: {reason}")
            raise DeliveryFailed(f"Prefect refused the decision for flow run {run_id}: {reason}")
        # ABORT (not paused any more) or WAIT: the run moved
        return f"Prefect answered {status} for flow run {run_id}: {reason}"

    async def _input(self, run_id: str, key: str) -> Any:
        """A stored run input's value, or ``None`` when there is none."""
        return await self._call("GET", f"/flow_runs/{run_id}/input/{key}", missing_ok=True)

    async def _call(self, method: str, path: str, *, missing_ok: bool = False,
                    **kwargs: Any) -> Any:
        url = f"{self.api_url}{path}"
        try:
            answer = await self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise RetryDelivery(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code == 404 and missing_ok:
            return None
        if not answer.is_success:
            reason = f"{method} {url} answered {answer.status_code}: {answer.text[:300]}"
            if answer.status_code in (408, 429) or answer.status_code >= 500:
                raise RetryDelivery(reason)
            if answer.status_code in (401, 403):
                reason += " (check [resumers.prefect] api_key or auth_string)"
            raise DeliveryFailed(reason)
        try:
            return answer.json()
        except ValueError as exc:
            raise RetryDelivery(f"{method} {url}: not JSON: {answer.text[:200]!r}") from exc


def _target(event: Event) -> tuple[str, str, str]:
    """The flow run id, pause key and mode from the event's source, checked."""
    params = event.source.params
    run_id, pause_key, mode = params.get("flow_run_id"), params.get("pause_key"), \
        params.get("mode", "pause")
    try:
        run_id = str(uuid.UUID(str(run_id)))
    except ValueError:
        raise DeliveryFailed(f"source.params.flow_run_id: expected a flow run UUID, "
                             f"got {run_id!r}") from None
    if not isinstance(pause_key, str) or not pause_key:
        raise DeliveryFailed(f"source.params.pause_key: expected the pause key, got {pause_key!r}")
    if mode not in MODES:
        raise DeliveryFailed(f"source.params.mode: expected one of {sorted(MODES)}, got {mode!r}")
    return run_id, pause_key, str(mode)


def _for_another_event(answered: Any, event: Event) -> bool:
    """True when the stored run input is a signoff delivery of another event (the flow
    ignores those), not an answer given in Prefect.
    """
    if not isinstance(answered, dict) or "signoff" not in answered:
        return False
    marker = answered["signoff"]
    return not (isinstance(marker, dict) and marker.get("event_id") == event.id)


def _check_same_answer(event: Event, answered: Any, run_id: str) -> None:
    """The run was resumed already: fine if by this decision or with the same answer."""
    assert event.decision is not None
    marker = answered.get("signoff") if isinstance(answered, dict) else None
    if isinstance(marker, dict) and marker.get("event_id") == event.id:
        return  # an earlier attempt of this delivery got through; its answer was lost
    given = answered.get("value") if isinstance(answered, dict) else answered
    if given == event.decision.value:
        return
    raise DeliveryFailed(
        f"flow run {run_id} was resumed from Prefect with the answer {given!r} before the "
        f"hub's decision ({event.decision.outcome.value}, {event.decision.value!r} by "
        f"{event.decision.by}) arrived; the flow continues with the hub's decision and logs "
        f"the answer given in Prefect")
