"""Who is calling: API tokens, browser sessions and one-time login links, for one hub.

A checked token is cached for ``token_cache_seconds``, but only together with the store's
token generation, read for the request after it arrived: a revocation anywhere (another
replica, or ``signoff token revoke`` straight on the database) moves the generation, so the
very next request reads the token again and gets 401. Requests that wait at once share the
read (:class:`FreshReads`): a request that arrives while one is on its way waits for the next,
which starts when that one ends and serves every request that came meanwhile, so none uses a
read sent before it came (measured with 16 clients: about one read for every three requests).
(On SQLite the generation is a counter in a file beside the database that every revoking
process bumps, read from memory: no query per request; see :mod:`signoff.store._signal`.)
Expiry is checked on every request against the cached expiry. Sessions and login links are
not cached at all: they live in the store, so any replica can serve them and a logout ends
them everywhere.

A token's last-used time is written at most once per ``token_touch_seconds`` per token and
process; the write is queued for the store and never awaited by the request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors import InvalidInput, Unauthenticated
from .._rules import Identity
from ..store import SessionInfo, Store, TokenInfo, token_id

if TYPE_CHECKING:
    from .service import Hub
    from .settings import Settings

__all__ = ["LINK_PATH", "MAX_TOKEN_DAYS", "Access", "FreshReads", "login_link", "parse_expires"]

log = logging.getLogger("signoff.hub")
_CACHE_MAX = 10_000
MAX_TOKEN_DAYS = 730
"""A token's expiry is at most this many days ahead (two years); without one it never expires."""
_SPAN = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


LINK_PATH = "/login/link/"
"""Where a login link points: ``{base_url}/login/link/{code}``."""


def login_link(settings: Settings, store: Store, token_id: str) -> str:
    """A fresh one-time login link for the token with that public id, valid for
    ``login_link_seconds``.
    """
    expires = _wall() + timedelta(seconds=settings.login_link_seconds)
    code = store.create_login_link(token_id, expires_at=expires)
    return f"{settings.base_url}{LINK_PATH}{code}"


def parse_expires(text: str, now: datetime | None = None) -> datetime:
    """When a token made now with ``--expires TEXT`` expires: a span (``90m``, ``12h``,
    ``30d``, ``2w``) or a date or time (``2027-01-01``, ``2027-01-01T12:00:00+02:00``; UTC
    when no offset is given), in the future and at most :data:`MAX_TOKEN_DAYS` days ahead.

    Raises:
        InvalidInput: naming ``expires``, what was expected and what came.
    """
    now = now or _wall()
    expected = "a span like 90m, 12h, 30d or 2w, or a date like 2027-01-01"
    text = text.strip()
    span = _SPAN.fullmatch(text)
    if span:
        delta = timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
        if delta > timedelta(days=MAX_TOKEN_DAYS):  # checked before adding: no overflow
            raise InvalidInput("expires", f"at most {MAX_TOKEN_DAYS} days ahead", text)
        at = now + delta
    else:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput("expires", expected, text) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
    if at <= now:
        raise InvalidInput("expires", "a moment in the future", text)
    if at > now + timedelta(days=MAX_TOKEN_DAYS):
        raise InvalidInput("expires", f"at most {MAX_TOKEN_DAYS} days ahead", text)
    return at


def _wall() -> datetime:
    # tokens expire in real time, whatever clock the hub runs its events on
    return datetime.now(timezone.utc)


T = TypeVar("T")


class FreshReads(Generic[T]):
    """A read shared by the callers that wait at once, each given a read that started after it
    asked (see the module docstring); a caller cancelled while it waits leaves the read to the
    others.
    """

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._sent: asyncio.Future[T] | None = None
        """The read on its way."""
        self._next: asyncio.Future[T] | None = None
        """What the callers that came while it was on its way wait for."""

    async def get(self) -> T:
        """The value, as read after this call began."""
        if self._sent is None:
            self._sent = wanted = self._send()
        else:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            wanted = self._next
        return await asyncio.shield(wanted)

    def _send(self) -> asyncio.Future[T]:
        sent = asyncio.ensure_future(self._read())
        sent.add_done_callback(self._answered)
        return sent

    def _answered(self, sent: asyncio.Future[T]) -> None:
        if not sent.cancelled():
            sent.exception()  # its callers get it; nobody left waiting is not an error
        waiting, self._next, self._sent = self._next, None, None
        if waiting is not None:
            self._sent = self._send()
            self._sent.add_done_callback(lambda read: _pass_on(read, waiting))


def _pass_on(read: asyncio.Future[T], to: asyncio.Future[T]) -> None:
    """Give ``to`` what ``read`` ended with."""
    if read.cancelled():
        to.cancel()
        return
    error = read.exception()
    if error is not None:
        to.set_exception(error)
    else:
        to.set_result(read.result())


class Access:
    """Tokens, sessions and login links as one hub process sees them."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.store = hub.store
        self.settings = hub.settings
        self._cache: dict[str, tuple[TokenInfo, int, float]] = {}
        self._touched: dict[str, float] = {}
        self._touching: set[asyncio.Future[Any]] = set()
        self._generation = FreshReads(lambda: hub._run(hub.store.token_generation))

    # tokens ------------------------------------------------------------------------------
    async def token(self, secret: str | None) -> TokenInfo:
        """The active token behind a bearer secret.

        Raises:
            Unauthenticated: no token, an unknown one, or one revoked or expired.
        """
        if not secret:
            raise Unauthenticated("an API token is required (Authorization: Bearer TOKEN)")
        ttl = self.settings.token_cache_seconds
        generation = 0
        if ttl > 0:  # read after the request came: what makes a revocation count at once
            batching = self.hub._batching
            if batching is not None and batching.inline_reads:
                generation = self.store.token_generation()
            else:
                generation = await self._generation.get()
        now = time.monotonic()
        cached = self._cache.get(secret)
        if cached is not None and cached[1] == generation and cached[2] > now:
            info = cached[0]
        else:
            found = await self.hub._read_one(self.store.find_token, secret)
            if found is None:
                raise Unauthenticated("unknown API token")
            info = found
            if ttl > 0:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[secret] = (info, generation, now + ttl)
        self._check(info)
        self._used(info)
        return info

    @staticmethod
    def _check(info: TokenInfo) -> None:
        if info.revoked_at is not None:
            raise Unauthenticated(f"API token {info.id} was revoked")
        if info.expires_at is not None and info.expires_at <= _wall():
            raise Unauthenticated(f"API token {info.id} expired at "
                                  f"{info.expires_at.isoformat(timespec='seconds')}")

    def _used(self, info: TokenInfo) -> None:
        """Queue a last-used write if this process has not written one for a while."""
        now = time.monotonic()
        last = self._touched.get(info.id)
        if last is not None and now - last < self.settings.token_touch_seconds:
            return
        if len(self._touched) >= _CACHE_MAX:
            self._touched.clear()
        self._touched[info.id] = now
        write = self.hub._submit(self.store.touch_tokens, {info.id: _wall()})
        self._touching.add(write)
        write.add_done_callback(self._touched_done)

    def _touched_done(self, write: asyncio.Future[Any]) -> None:
        self._touching.discard(write)
        if not write.cancelled() and write.exception() is not None:
            log.warning("recording a token's last use failed: %s", write.exception())

    # sessions and login links --------------------------------------------------------------
    def _session_ends(self) -> datetime:
        return _wall() + timedelta(seconds=self.settings.session_seconds)

    async def session(self, session_id: str | None) -> SessionInfo:
        """The live session behind a cookie.

        Raises:
            Unauthenticated: no cookie, or a session that ended (logout, expiry, revocation).
        """
        if not session_id:
            raise Unauthenticated("sign in first")
        info = await self.hub._read_one(self.store.session_for, session_id)
        if info is None:
            raise Unauthenticated("the session ended; sign in again")
        self._used(info.token)
        return info

    async def sign_in(self, secret: str) -> tuple[str, SessionInfo]:
        """Start a session with a pasted API token; returns the session's id and the session."""
        info = await self.token(secret)
        return await self.hub._write(self.store.create_session, info.id,
                                     expires_at=self._session_ends())

    async def sign_in_as(self, identity: Identity, via: str) -> tuple[str, SessionInfo]:
        """Start a session for an identity the hub authenticated itself (single sign-on).

        The session is bound, like every session, to a token: an internal one named ``via``,
        expiring with the session, whose secret is dropped here (never shown, never usable as
        a bearer token). Revoking it ends the session; ``signoff token list`` shows it.
        """
        ends = self._session_ends()
        secret = await self.hub._write(self.store.create_token, identity, name=via,
                                       expires_at=ends, actor=identity.user, channel="web")
        return await self.hub._write(self.store.create_session, token_id(secret),
                                     expires_at=ends)

    async def link(self, code: str) -> TokenInfo | None:
        """The token a login link would sign in with (nothing is spent)."""
        return await self.hub._read_one(self.store.login_link, code)

    async def use_link(self, code: str) -> tuple[str, SessionInfo] | None:
        """Spend a login link for a session; ``None`` if it is unknown, used or expired."""
        return await self.hub._write(self.store.use_login_link, code,
                                     session_expires_at=self._session_ends())

    async def sign_out(self, session_id: str) -> None:
        """End a session (its row is deleted)."""
        await self.hub._write(self.store.end_session, session_id)
