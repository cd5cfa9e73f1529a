"""``Client`` and ``AsyncClient``: the hub's JSON API from Python.

Both share :class:`_BaseClient`, which builds requests and reads answers without I/O; the two
surfaces only send. The base URL and token come from the arguments or ``SIGNOFF_URL`` and
``SIGNOFF_TOKEN`` (or a file, ``SIGNOFF_TOKEN_FILE``, read at every request). Connection
failures are retried with backoff (any call when the request never left; reads, waits, and
creates with a key also after a broken answer). A hub that says "not now" (429 over a
per-token limit, 503 unavailable) did nothing, so any call waits its ``Retry-After`` and tries
again while the retry budget lasts; past it, the 429 raises :class:`RateLimited` and the 503
:class:`HubUnavailable`. Errors from the hub become the exception classes of
:mod:`signoff._errors`, carrying the hub's message.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from ._errors import (
    HUB_ERRORS,
    DigestChanged,
    HubError,
    HubUnavailable,
    InvalidInput,
    KeyReused,
    RateLimited,
    SignoffError,
    Unauthenticated,
    WaitTimeout,
)
from ._evidence import DecisionUnverified, Keyring
from ._inputs import input_spec
from ._model import Decision, Event, EventCreate, EventPage
from ._token_file import TokenFile
from ._verifying import Verifying

__all__ = ["AsyncClient", "Client"]

DEFAULT_URL = "http://127.0.0.1:8765"
MAX_WAIT = 60.0
MAX_BATCH = 500  # items per `create_events` call (the hub's limit)
_RETRY_ALWAYS = (httpx.ConnectError, httpx.ConnectTimeout)
_RETRY_IDEMPOTENT = (*_RETRY_ALWAYS, httpx.ReadError, httpx.RemoteProtocolError,
                     httpx.ReadTimeout, httpx.WriteError)
_NOT_NOW = (429, 503)  # the hub (or a proxy in front) did nothing: come back later


class _BaseClient(Verifying):
    def __init__(self, url: str | None, token: str | None, channel: str | None,
                 retry_for: float, keys: Keyring | Mapping[str, Any] | None = None) -> None:
        self._init_verifying(keys)
        self.url = (url or os.environ.get("SIGNOFF_URL") or DEFAULT_URL).rstrip("/")
        self.token = token or os.environ.get("SIGNOFF_TOKEN")
        # no token given: a token file read at every request (a rotated workload token)
        file = None if self.token else os.environ.get("SIGNOFF_TOKEN_FILE")
        self.auth = TokenFile(file) if file else None
        self.retry_for = retry_for
        self.headers = {"Accept": "application/json"}
        if self.token:
            self.headers["Authorization"] = f"Bearer {self.token}"
        if channel:
            self.headers["X-Signoff-Channel"] = channel

    @staticmethod
    def _event_body(event: EventCreate | None, fields: dict[str, Any]) -> dict[str, Any]:
        if event is not None and fields:
            raise TypeError("create: pass an EventCreate or keyword fields, not both")
        if event is None:
            if "input" in fields:
                fields["input"] = input_spec(fields["input"])
            fields.setdefault("name", "event")
            event = EventCreate(**fields)
        body = event.model_dump(mode="json", by_alias=True, exclude_none=True)
        # a key makes the create idempotent, so a retry after a lost answer is safe
        body.setdefault("key", f"client:{uuid.uuid4().hex}")
        return body

    @classmethod
    def _batch_body(cls, events: Sequence[EventCreate | dict[str, Any]]) -> dict[str, Any]:
        if not 1 <= len(events) <= MAX_BATCH:
            raise ValueError(f"create_events: 1 to {MAX_BATCH} events per call, got {len(events)}")
        # a dict goes as it is (the hub checks it and answers for that item alone), with a key
        # like every create, so a retried request creates nothing twice
        return {"events": [{"key": f"client:{uuid.uuid4().hex}", **e} if isinstance(e, dict)
                           else cls._event_body(e, {}) for e in events]}

    @staticmethod
    def _batch_results(answer: httpx.Response) -> builtins.list[Event | HubError]:
        results: builtins.list[Event | HubError] = []
        for item in answer.json()["results"]:
            if item.get("event") is not None:
                results.append(Event.model_validate(item["event"]))
                continue
            error = item.get("error") or {}
            cls = HUB_ERRORS.get(error.get("code", ""), HubError)
            message = str(error.get("message", f"status {item.get('status')}"))
            if cls is InvalidInput:
                results.append(InvalidInput(error.get("field", "?"), error.get("expected", "?"),
                                            error.get("got"), message))
            elif cls is RateLimited:
                results.append(RateLimited(str(error.get("limit", "?")),
                                           float(error.get("value") or 0),
                                           int(error.get("retry_after") or 1), message))
            else:
                results.append(cls(message))
        return results

    @classmethod
    def _pause_for(cls, answer: httpx.Response, attempt: int, give_up: float) -> float | None:
        """How long to wait before sending again after a 429 or 503, or ``None`` when the
        answer is final (any other status, or a wait that would outlast the retry budget).
        """
        if answer.status_code not in _NOT_NOW:
            return None
        pause = _retry_after(answer.headers.get("retry-after"))
        if pause is None:
            pause = cls._backoff(attempt)
        return pause if time.monotonic() + pause <= give_up else None

    @staticmethod
    def _raise_for(answer: httpx.Response) -> None:
        if answer.is_success:
            return
        if answer.status_code == 503:
            raise HubUnavailable(f"hub answered 503 (unavailable): {answer.text[:300]}")
        try:
            error = answer.json()["error"]
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            raise HubError(f"hub answered {answer.status_code}: {answer.text[:300]}") from None
        cls = HUB_ERRORS.get(code)
        if cls is Unauthenticated and "Authorization" not in answer.request.headers:
            message = (f"{message}; no token was given: pass --token or set SIGNOFF_TOKEN "
                       "(Client(token=...) in Python)")
        if cls is InvalidInput:
            raise InvalidInput(error.get("field", "?"), error.get("expected", "?"),
                               error.get("got"), message)
        if cls is RateLimited:
            retry_after = _retry_after(answer.headers.get("retry-after"))
            raise RateLimited(str(error.get("limit", "?")), float(error.get("value") or 0),
                              int(error.get("retry_after") or retry_after or 1), message)
        if cls is DigestChanged or cls is KeyReused:
            raise cls(message, changed=error.get("changed"), expected=error.get("expected"),
                      got=error.get("got"))
        if cls is not None:
            raise cls(message)
        raise HubError(f"hub answered {answer.status_code}: {message}")

    @staticmethod
    def _retryable(method: str, idempotent: bool) -> tuple[type[Exception], ...]:
        return _RETRY_IDEMPOTENT if idempotent or method == "GET" else _RETRY_ALWAYS

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(0.1 * 2**attempt, 2.0))

    @staticmethod
    def _wait_params(wait: float) -> dict[str, Any]:
        return {"wait": min(max(wait, 0.0), MAX_WAIT)}

    @staticmethod
    def _relay_body(value: Any, comment: str | None, actor: str | None) -> dict[str, Any]:
        body = {"value": value, "comment": comment}
        return body if actor is None else {**body, "relayed_by": actor}

    @staticmethod
    def _decision(answer: httpx.Response) -> Decision | None:
        if answer.status_code == 204:
            return None
        return Decision.model_validate(answer.json())


class Client(_BaseClient):
    """A synchronous client for the hub.

    Args:
        url: the hub's base URL (default ``SIGNOFF_URL`` or ``http://127.0.0.1:8765``).
        token: an API token (default ``SIGNOFF_TOKEN``; without either, the text of the file
            ``SIGNOFF_TOKEN_FILE`` names, read again at every request).
        channel: the channel the hub records for responses (``api`` when not given).
        retry_for: how long, in seconds, to keep retrying a hub that cannot be reached.
        keys: the hub's public keys, pinned (a :class:`~signoff._evidence.Keyring` or the JWKS
            document ``signoff keys`` prints); default: fetched from the hub once and cached.
            Every decision returned is verified against them (docs/evidence.md).
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 channel: str | None = None, retry_for: float = 30.0,
                 transport: httpx.BaseTransport | None = None,
                 keys: Keyring | Mapping[str, Any] | None = None) -> None:
        super().__init__(url, token, channel, retry_for, keys)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, auth=self.auth,
                                  timeout=httpx.Timeout(10.0, read=MAX_WAIT + 10),
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, *, idempotent: bool = False,
                 retry_for: float | None = None, **kwargs: Any) -> httpx.Response:
        retryable = self._retryable(method, idempotent)
        give_up = time.monotonic() + (self.retry_for if retry_for is None else retry_for)
        attempt = 0
        while True:
            try:
                answer = self._http.request(method, path, **kwargs)
            except retryable as exc:
                if time.monotonic() >= give_up:
                    raise HubUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
                time.sleep(self._backoff(attempt))
                attempt += 1
                continue
            except httpx.HTTPError as exc:
                raise HubUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            pause = self._pause_for(answer, attempt, give_up)
            if pause is not None:
                time.sleep(pause)
                attempt += 1
                continue
            self._raise_for(answer)
            return answer

    def create(self, event: EventCreate | None = None, /, **fields: Any) -> Event:
        """Create an event (or get the existing one with the same key)."""
        body = self._event_body(event, fields)
        answer = self._request("POST", "/api/v1/events", json=body, idempotent=True)
        return self._remember(body, Event.model_validate(answer.json()))

    def create_events(self, events: Sequence[EventCreate | dict[str, Any]]
                      ) -> builtins.list[Event | HubError]:
        """Create up to 500 events in one request; one result per event, in order.

        Each event is created (or found by its key) on its own: a result is the
        :class:`Event`, or the error the hub gave that item (e.g. :class:`InvalidInput`,
        :class:`RateLimited`), returned, not raised. An event without a key gets one, so a
        retried request creates nothing twice.

        Raises:
            ValueError: no events or more than 500.
            HubError: the request as a whole was refused (e.g. a reviewer token).
        """
        body = self._batch_body(events)
        answer = self._request("POST", "/api/v1/events:batch", json=body, idempotent=True)
        return self._batch_results(answer)

    def get(self, event_id: str) -> Event:
        """One event, with its decision, responses and deliveries."""
        return Event.model_validate(self._request("GET", f"/api/v1/events/{event_id}").json())

    def list(self, *, status: str | None = None, assignee: str | None = None,
             limit: int = 50, cursor: str | None = None) -> EventPage:
        """One page of events the token may see."""
        params = {k: v for k, v in (("status", status), ("assignee", assignee),
                                    ("limit", limit), ("cursor", cursor)) if v is not None}
        return EventPage.model_validate(
            self._request("GET", "/api/v1/events", params=params).json())

    def iter_events(self, *, status: str | None = None, assignee: str | None = None,
                    page_size: int = 100) -> Iterator[Event]:
        """Every matching event, page after page."""
        cursor = None
        while True:
            page = self.list(status=status, assignee=assignee, limit=page_size, cursor=cursor)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def respond(self, event_id: str, value: Any, comment: str | None = None) -> Event:
        """Answer an event as the token's identity."""
        answer = self._request("POST", f"/api/v1/events/{event_id}/responses",
                               json={"value": value, "comment": comment})
        return Event.model_validate(answer.json())

    def relay(self, event_id: str, value: Any, comment: str | None = None, *, engine: str,
              actor: str | None = None) -> Event:
        """Relay an answer a person gave in ``engine``'s own UI or CLI (a workflow token, on
        its own event from that engine). The hub records it as given by ``actor`` (the person
        the engine names) or, without one, as unverified from the engine; never in the
        token's name.

        Raises:
            Forbidden: the hub refused the relay (the message says why: the channel, or the
                relay policy); the refusal is in the event's audit trail.
        """
        answer = self._request("POST", f"/api/v1/events/{event_id}/responses",
                               json=self._relay_body(value, comment, actor),
                               headers={"X-Signoff-Channel": engine})
        return Event.model_validate(answer.json())

    def decision(self, event_id: str, wait: float = 0.0) -> Decision | None:
        """The decision, verified, waiting up to ``wait`` seconds (at most 60) for it; ``None``
        if none.

        Raises:
            DecisionUnverified: the decision's signature or digest does not verify.
        """
        answer = self._request("GET", f"/api/v1/events/{event_id}/decision",
                               params=self._wait_params(wait))
        found = self._decision(answer)
        return None if found is None else self.verified(event_id)

    def verified(self, event_id: str, arrived: Decision | None = None) -> Decision:
        """The event's decision once its signature (by one of the hub's keys) and its payload
        digest verify; a refusal is reported to the hub (audited) and raised.

        The one check every adapter runs before its workflow continues: ``arrived`` is a
        decision that came by the engine's own road (a signal, a resume, a run input), checked
        against the event as the hub holds it.

        Raises:
            DecisionUnverified: no decision, or one that does not verify: never act on it.
        """
        event = self.get(event_id)
        if self._keys_needed(arrived or event.decision):
            self._set_keys(self._request("GET", "/api/v1/keys", idempotent=True))
        decision, why = self._checked(event, arrived)
        if decision is not None:
            return decision
        assert why is not None
        self.refuse(event_id, why)
        raise DecisionUnverified(event_id, why)

    def public_keys(self) -> dict[str, Any]:
        """The hub's public signing keys (``GET /api/v1/keys``), as the JWKS-like document."""
        document: dict[str, Any] = self._request("GET", "/api/v1/keys", idempotent=True).json()
        return document

    def refuse(self, event_id: str, reason: str) -> None:
        """Tell the hub a decision did not verify here (it logs and audits it); best effort."""
        try:
            self._request("POST", f"/api/v1/events/{event_id}/refusals",
                          json={"reason": reason[:1000]}, retry_for=5.0)
        except SignoffError:
            pass  # the refusal stands whether or not the hub heard of it

    def wait(self, event_id: str, timeout: float | None = None) -> Decision:
        """Block until the event is decided, across hub restarts.

        Raises:
            WaitTimeout: ``timeout`` seconds passed with no decision.
            DecisionUnverified: the decision's signature or digest does not verify.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = MAX_WAIT if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no decision for {event_id} within {timeout} s")
            answer = self._request("GET", f"/api/v1/events/{event_id}/decision",
                                   params=self._wait_params(min(left, MAX_WAIT)),
                                   retry_for=left if deadline else 365 * 86400.0)
            if self._decision(answer) is not None:
                return self.verified(event_id)

    def cancel(self, event_id: str, comment: str | None = None) -> Event:
        """Cancel a pending event."""
        answer = self._request("POST", f"/api/v1/events/{event_id}/cancel",
                               json={"comment": comment})
        return Event.model_validate(answer.json())

    def audit(self, event_id: str) -> builtins.list[dict[str, Any]]:
        """The audit trail of one event, oldest first."""
        entries: builtins.list[dict[str, Any]] = self._request(
            "GET", f"/api/v1/events/{event_id}/audit").json()["entries"]
        return entries


class AsyncClient(_BaseClient):
    """The asynchronous twin of :class:`Client`, with the same methods as coroutines."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 channel: str | None = None, retry_for: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 keys: Keyring | Mapping[str, Any] | None = None) -> None:
        super().__init__(url, token, channel, retry_for, keys)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers,
                                       auth=self.auth,
                                       timeout=httpx.Timeout(10.0, read=MAX_WAIT + 10),
                                       transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, *, idempotent: bool = False,
                       retry_for: float | None = None, **kwargs: Any) -> httpx.Response:
        retryable = self._retryable(method, idempotent)
        give_up = time.monotonic() + (self.retry_for if retry_for is None else retry_for)
        attempt = 0
        while True:
            try:
                answer = await self._http.request(method, path, **kwargs)
            except retryable as exc:
                if time.monotonic() >= give_up:
                    raise HubUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            except httpx.HTTPError as exc:
                raise HubUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            pause = self._pause_for(answer, attempt, give_up)
            if pause is not None:
                await asyncio.sleep(pause)
                attempt += 1
                continue
            self._raise_for(answer)
            return answer

    async def create(self, event: EventCreate | None = None, /, **fields: Any) -> Event:
        """Create an event (or get the existing one with the same key)."""
        body = self._event_body(event, fields)
        answer = await self._request("POST", "/api/v1/events", json=body, idempotent=True)
        return self._remember(body, Event.model_validate(answer.json()))

    async def create_events(self, events: Sequence[EventCreate | dict[str, Any]]
                            ) -> builtins.list[Event | HubError]:
        """Create up to 500 events in one request (see :meth:`Client.create_events`)."""
        body = self._batch_body(events)
        answer = await self._request("POST", "/api/v1/events:batch", json=body,
                                     idempotent=True)
        return self._batch_results(answer)

    async def get(self, event_id: str) -> Event:
        """One event, with its decision, responses and deliveries."""
        answer = await self._request("GET", f"/api/v1/events/{event_id}")
        return Event.model_validate(answer.json())

    async def list(self, *, status: str | None = None, assignee: str | None = None,
                   limit: int = 50, cursor: str | None = None) -> EventPage:
        """One page of events the token may see."""
        params = {k: v for k, v in (("status", status), ("assignee", assignee),
                                    ("limit", limit), ("cursor", cursor)) if v is not None}
        answer = await self._request("GET", "/api/v1/events", params=params)
        return EventPage.model_validate(answer.json())

    async def iter_events(self, *, status: str | None = None, assignee: str | None = None,
                          page_size: int = 100) -> AsyncIterator[Event]:
        """Every matching event, page after page."""
        cursor = None
        while True:
            page = await self.list(status=status, assignee=assignee, limit=page_size,
                                   cursor=cursor)
            for event in page.events:
                yield event
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def respond(self, event_id: str, value: Any, comment: str | None = None) -> Event:
        """Answer an event as the token's identity."""
        answer = await self._request("POST", f"/api/v1/events/{event_id}/responses",
                                     json={"value": value, "comment": comment})
        return Event.model_validate(answer.json())

    async def relay(self, event_id: str, value: Any, comment: str | None = None, *,
                    engine: str, actor: str | None = None) -> Event:
        """See :meth:`Client.relay`."""
        answer = await self._request("POST", f"/api/v1/events/{event_id}/responses",
                                     json=self._relay_body(value, comment, actor),
                                     headers={"X-Signoff-Channel": engine})
        return Event.model_validate(answer.json())

    async def decision(self, event_id: str, wait: float = 0.0) -> Decision | None:
        """As :meth:`Client.decision`."""
        answer = await self._request("GET", f"/api/v1/events/{event_id}/decision",
                                     params=self._wait_params(wait))
        found = self._decision(answer)
        return None if found is None else await self.verified(event_id)

    async def verified(self, event_id: str, arrived: Decision | None = None) -> Decision:
        """As :meth:`Client.verified`."""
        event = await self.get(event_id)
        if self._keys_needed(arrived or event.decision):
            self._set_keys(await self._request("GET", "/api/v1/keys", idempotent=True))
        decision, why = self._checked(event, arrived)
        if decision is not None:
            return decision
        assert why is not None
        await self.refuse(event_id, why)
        raise DecisionUnverified(event_id, why)

    async def refuse(self, event_id: str, reason: str) -> None:
        """As :meth:`Client.refuse`."""
        try:
            await self._request("POST", f"/api/v1/events/{event_id}/refusals",
                                json={"reason": reason[:1000]}, retry_for=5.0)
        except SignoffError:
            pass

    async def wait(self, event_id: str, timeout: float | None = None) -> Decision:
        """Wait until the event is decided, across hub restarts.

        Raises:
            WaitTimeout: ``timeout`` seconds passed with no decision.
            DecisionUnverified: the decision's signature or digest does not verify.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = MAX_WAIT if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no decision for {event_id} within {timeout} s")
            answer = await self._request("GET", f"/api/v1/events/{event_id}/decision",
                                         params=self._wait_params(min(left, MAX_WAIT)),
                                         retry_for=left if deadline else 365 * 86400.0)
            if self._decision(answer) is not None:
                return await self.verified(event_id)

    async def cancel(self, event_id: str, comment: str | None = None) -> Event:
        """Cancel a pending event."""
        answer = await self._request("POST", f"/api/v1/events/{event_id}/cancel",
                                     json={"comment": comment})
        return Event.model_validate(answer.json())

    async def audit(self, event_id: str) -> builtins.list[dict[str, Any]]:
        """The audit trail of one event, oldest first."""
        answer = await self._request("GET", f"/api/v1/events/{event_id}/audit")
        entries: builtins.list[dict[str, Any]] = answer.json()["entries"]
        return entries


def _retry_after(header: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta form; the hub never sends a date), or ``None``."""
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    return min(max(seconds, 0.0), 3600.0) if seconds == seconds else None
