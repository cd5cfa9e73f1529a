"""The trigger a signoff sensor defers to: it waits on the hub's long-poll and fires once.

The triggerer imports this module by its classpath,
``signoff.adapters.airflow.triggers.SignoffTrigger``, and rebuilds the trigger from plain
keyword arguments (hub URL, event id, deadline, and where to find the token). Waiting costs
one coroutine and one idle HTTP connection per event. Each trigger has its own small client,
all sharing one TLS context: httpx's connection pool does work proportional to its size on
every request, so one pool for a thousand concurrent long-polls cost 36 ms of CPU a poll
where a client each costs 1.8 ms (measured here with 600 waiting).

Where the token comes from is the one security choice here. Airflow 3.3 keeps a trigger's
keyword arguments in its metadata database as plain JSON (the task SDK's deferral path does
not encrypt them, whatever the Fernet key), so by default the token is *not* among them:

- ``conn_id`` (the default): the trigger reads the ``signoff`` connection once, when it
  starts, through the triggerer's own secrets channel (``BaseHook.aget_connection``, async;
  no database access, never in the wait loop), exactly as the sensor did;
- ``token_env``: the trigger reads an environment variable of the triggerer;
- ``token``: the token itself rides in the keyword arguments, readable by anyone who can read
  the ``trigger`` table; only for deployments that accept that.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import ssl
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from signoff import (
    AlreadyDecided,
    AsyncClient,
    Forbidden,
    HubError,
    HubUnavailable,
    NotFound,
    Unauthenticated,
)

__all__ = ["SignoffTrigger"]

CLASSPATH = "signoff.adapters.airflow.triggers.SignoffTrigger"

_FINISH = ("", "value", "approved")


class SignoffTrigger(BaseTrigger):
    """Waits for one event's decision and yields one :class:`TriggerEvent`.

    The payload is ``{"status": "decided", "event_id", "decision": {...}}`` once the hub decided,
    ``{"status": "timeout", ...}`` when ``deadline`` passed first (the hub could not be reached
    or did not decide in time), or ``{"status": "error", ...}`` when waiting cannot succeed
    (the event is gone, the token is refused, no token is found). Network errors, 5xx answers
    and hub restarts are retried with jittered exponential backoff up to ``max_backoff``.

    Under a triggerer, an answer the sensor would only turn into its return value (``finish``)
    ends the task right here with a ``TaskSuccessEvent`` carrying the sensor's XComs: no
    worker slot, no second trip through the scheduler. Every other outcome (a rejection, a
    branch, an expiry, ...) goes back to the sensor's ``execute_complete`` on a worker.

    Args:
        hub_url: the hub's base URL.
        event_id: the event to wait for.
        deadline: ISO-8601 UTC time after which the trigger stops waiting; ``None``: never.
        conn_id: the Airflow connection whose password is the token.
        token_env: the environment variable of the triggerer that holds the token.
        token: the token itself (stored in clear by Airflow; kept out of ``repr``).
        poll_seconds: how long one long-poll asks the hub to hold the request (hub max 60).
        max_backoff: the longest pause between two attempts while the hub is unreachable.
        cancel_on_kill: cancel the pending event when a person clears the task or marks it
            failed or successful in Airflow, so it leaves the reviewers' inbox.
        finish: which answers end the task in the triggerer: ``"value"`` (any answer; the
            task returns the value), ``"approved"`` (an approval; the task returns ``True``)
            or ``""`` (none: the sensor's ``execute_complete`` reads every decision).
        push_return: push the answer as the task's ``return_value`` XCom when finishing here.
        settle_seconds: under a triggerer, never fire an event that goes back to a worker
            sooner than this after starting (default 0: no pause). It guarded an Airflow race
            (apache/airflow#66374, #72716: the scheduler failed a deferred task whose trigger
            fired before it processed the deferring worker's exit); a task ended here is
            never in the states that race checks, and Airflow 3.3.2 tolerates a task put back
            to ``scheduled`` by its trigger. Kept for triggers stored by earlier versions.
    """

    def __init__(self, *, hub_url: str, event_id: str, deadline: str | None = None,
                 conn_id: str | None = None, token_env: str | None = None,
                 token: str | None = None,
                 poll_seconds: float = 55.0, max_backoff: float = 30.0,
                 cancel_on_kill: bool = True, finish: str = "", push_return: bool = True,
                 settle_seconds: float = 0.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's base is untyped
        self.hub_url = hub_url
        self.event_id = event_id
        self.deadline = deadline
        self.conn_id = conn_id
        self.token_env = token_env
        self.token = token
        self.poll_seconds = float(poll_seconds)
        self.max_backoff = float(max_backoff)
        self.cancel_on_kill = cancel_on_kill
        if finish not in _FINISH:
            raise ValueError(f"finish: expected one of {sorted(_FINISH)}, got {finish!r}")
        self.finish = finish
        self.push_return = bool(push_return)
        self.settle_seconds = float(settle_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and the plain keyword arguments that rebuild this trigger."""
        return CLASSPATH, {
            "hub_url": self.hub_url,
            "event_id": self.event_id,
            "deadline": self.deadline,
            "conn_id": self.conn_id,
            "token_env": self.token_env,
            "token": self.token,
            "poll_seconds": self.poll_seconds,
            "max_backoff": self.max_backoff,
            "cancel_on_kill": self.cancel_on_kill,
            "finish": self.finish,
            "push_return": self.push_return,
            "settle_seconds": self.settle_seconds,
        }

    def __repr__(self) -> str:
        # Airflow's repr lists every kwarg; the token must not reach a log line
        token = "***" if self.token else None
        return (f"<{CLASSPATH} hub_url={self.hub_url} event_id={self.event_id} "
                f"deadline={self.deadline} conn_id={self.conn_id} token_env={self.token_env} "
                f"token={token}>")

    def _payload(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent({  # type: ignore[no-untyped-call]
            "status": status, "event_id": self.event_id, "hub_url": self.hub_url, **fields})

    async def _resolve_token(self) -> str | None:
        """The token, from wherever the sensor said it is.

        Raises:
            LookupError: it is not there (the message says where it was looked for).
        """
        if self.token:
            return self.token
        if self.conn_id:
            from airflow.sdk import BaseHook

            try:
                conn = await BaseHook.aget_connection(self.conn_id)
            except Exception as first:  # not defined, or the secrets backend failed
                # dag.test() and `airflow dags test` run the trigger in the task's own process,
                # where the async path has no triggerer to ask and misses a connection stored
                # in Airflow's database; the sync path, which the task itself used, finds it
                try:
                    conn = await asyncio.to_thread(BaseHook.get_connection, self.conn_id)
                except Exception:
                    raise LookupError(f"the triggerer could not read the connection "
                                      f"{self.conn_id!r}: {first}") from first
            return conn.password or None
        if self.token_env:
            token = os.environ.get(self.token_env)
            if not token:
                raise LookupError(f"the triggerer's environment has no {self.token_env}: set "
                                  f"it there, or let the sensor use the connection")
            return token
        return None

    def _deadline_monotonic(self) -> float | None:
        if self.deadline is None:
            return None
        at = datetime.fromisoformat(self.deadline)
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        return time.monotonic() + (at - datetime.now(timezone.utc)).total_seconds()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Long-poll the hub until a decision, an unrecoverable error or the deadline."""
        try:
            token = await self._resolve_token()
        except LookupError as exc:
            yield self._payload("error", error="no_token", message=str(exc))
            return
        started = time.monotonic()
        deadline = self._deadline_monotonic()
        async with _client(self.hub_url, token, retry_for=0.0) as client:
            event = await self._wait(client, deadline)
        if self.task_instance is not None:  # set by a triggerer, never by dag.test()
            ended = self._task_end(event.payload)
            if ended is not None:
                yield ended
                return
            await asyncio.sleep(max(0.0, self.settle_seconds - (time.monotonic() - started)))
        yield event

    def _task_end(self, payload: dict[str, Any]) -> TriggerEvent | None:
        """The event that ends the task here, for an answer the sensor only returns."""
        if not self.finish or payload.get("status") != "decided":
            return None
        decision = payload["decision"]
        if decision.get("outcome") not in ("approved", "answered", "timed_out"):
            return None
        value = decision.get("value")
        if self.finish == "approved" and value is not True:
            return None  # a default of False at the deadline is a rejection: the sensor's job
        xcoms: dict[str, Any] = {"signoff_decision": {"event_id": self.event_id, **decision}}
        if self.push_return:
            xcoms["return_value"] = value
        self.log.info("signoff: event %s was answered by %s: %r; the task ends here",
                      self.event_id, decision.get("by"), value)
        return TaskSuccessEvent(xcoms=xcoms)

    async def _wait(self, client: AsyncClient, deadline: float | None) -> TriggerEvent:
        failures, last_error = 0, ""
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self._payload(
                    "timeout", deadline=self.deadline, last_error=last_error or None,
                    message=f"no decision for event {self.event_id} from {self.hub_url} by "
                            f"{self.deadline}" + (f" (last error: {last_error})" if last_error
                                                  else ""))
            wait = self.poll_seconds if left is None else min(self.poll_seconds, left)
            try:
                decision = await client.decision(self.event_id, wait=wait)
            except (NotFound, Unauthenticated, Forbidden) as exc:
                return self._payload("error", error=type(exc).__name__, message=(
                    f"the hub at {self.hub_url} refused to wait for event {self.event_id}: "
                    f"{exc}"))
            except (HubUnavailable, HubError) as exc:
                # a restart, a network cut or a 5xx: keep waiting, without hammering the hub
                last_error = f"{type(exc).__name__}: {exc}"
                if failures == 0:
                    self.log.warning("signoff hub unreachable, retrying with backoff: %s",
                                     last_error)
                failures += 1
                pause = min(self.max_backoff, 0.25 * 2 ** min(failures, 16))
                pause *= random.uniform(0.5, 1.0)  # spread a thousand triggers after a restart
                if left is not None:
                    pause = min(pause, max(left, 0.0))
                await asyncio.sleep(pause)
                continue
            if failures:
                self.log.info("signoff hub reachable again after %d failed attempts", failures)
                failures, last_error = 0, ""
            if decision is not None:
                return self._payload("decided", decision=decision.model_dump(mode="json"))

    async def on_kill(self) -> None:
        """Cancel the pending event: a person acted on the task in Airflow."""
        if not self.cancel_on_kill:
            return
        try:
            token = await self._resolve_token()
        except LookupError as exc:
            self.log.warning("could not cancel signoff event %s: %s", self.event_id, exc)
            return
        async with _client(self.hub_url, token, retry_for=5.0) as client:
            try:
                await client.cancel(self.event_id, comment="the Airflow task was cleared or "
                                                           "marked by hand while waiting")
            except (AlreadyDecided, NotFound):
                pass
            except (HubError, HubUnavailable) as exc:
                self.log.warning("could not cancel signoff event %s: %s", self.event_id, exc)


@functools.cache
def _tls() -> ssl.SSLContext:
    # loading the CA bundle costs milliseconds and memory: once a process, not once a trigger
    return httpx.create_ssl_context()


def _client(url: str, token: str | None, retry_for: float) -> AsyncClient:
    """A client of its own for one trigger (see the module docstring for why not a shared one)."""
    return AsyncClient(url, token, retry_for=retry_for,
                       transport=httpx.AsyncHTTPTransport(verify=_tls(), retries=0))
