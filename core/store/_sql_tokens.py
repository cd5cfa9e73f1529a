"""API tokens, browser sessions, one-time login links and stored secrets, as every SQL store
keeps them: the part of :class:`~signoff.store._sql.SQLStore` about who may call the hub.

:class:`TokenRecords` is a base of ``SQLStore``; it uses the same three things a backend
supplies (``_write``, ``_read``) and the audit chain's ``_append_audit``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone
from typing import Any

from .._errors import NotFound
from .._rules import Identity
from ._protocol import SessionInfo, TokenInfo, token_id
from ._sql_backend import SQLBackend

__all__ = ["TokenRecords"]


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def hash_token(token: str) -> str:
    """The SHA-256 a secret is kept as (tokens, session ids, login codes)."""
    # 256 random bits each, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRecords(SQLBackend):
    """Tokens, sessions, login links and secrets on a SQL store (see the module docstring)."""

    _INSERTION = "id"

    # tokens -----------------------------------------------------------------------------
    def create_token(self, identity: Identity, *, name: str | None = None,
                     expires_at: datetime | None = None, actor: str = "admin",
                     channel: str = "cli") -> str:
        """Mint a token; only its SHA-256 is stored."""
        with self._write() as conn:
            return self._insert_token(conn, identity, name, expires_at, actor, channel)

    def create_first_token(self, identity: Identity, *, name: str | None = None,
                           actor: str = "hub", channel: str = "serve") -> str | None:
        """Mint a token only if the store has none yet, in the same transaction as the check:
        of several hubs starting together on a new database, exactly one mints the first
        admin. None if a token exists.
        """
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM tokens LIMIT 1").fetchone() is not None:
                return None
            return self._insert_token(conn, identity, name, None, actor, channel)

    def _insert_token(self, conn: Any, identity: Identity, name: str | None,
                      expires_at: datetime | None, actor: str, channel: str) -> str:
        token = "so_" + secrets.token_urlsafe(32)
        now = _ts(_now())
        public = token_id(token)
        conn.execute(
            "INSERT INTO tokens (hash, id, \"user\", groups, role, name, created_at, expires_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (hash_token(token), public, identity.user, json.dumps(list(identity.groups)),
             identity.role, name, now, _ts(expires_at) if expires_at else None))
        self._append_audit(conn, "token.created", actor=actor, channel=channel,
                           event_id=None,
                           data={"token": public, "user": identity.user,
                                 "role": identity.role, "groups": list(identity.groups),
                                 "name": name,
                                 "expires_at": expires_at.isoformat() if expires_at else None},
                           at=now)
        return token

    @staticmethod
    def _token_info(r: Any) -> TokenInfo:
        return TokenInfo(
            id=r["id"], name=r["name"],
            identity=Identity(user=r["user"], groups=tuple(json.loads(r["groups"])),
                              role=r["role"]),
            created_at=_at(r["created_at"]), expires_at=_dt(r["expires_at"]),
            last_used_at=_dt(r["last_used_at"]), revoked_at=_dt(r["revoked_at"]))

    _TOKEN_COLUMNS = ('id, "user", groups, role, name, created_at, expires_at, last_used_at,'
                      ' revoked_at')

    def find_token(self, token: str) -> TokenInfo | None:
        """What is known about a token, whatever its state."""
        rows = self._read(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE hash = ?",
                          (hash_token(token),))
        return self._token_info(rows[0]) if rows else None

    def identity_for(self, token: str) -> Identity | None:
        """The identity behind an active token, or ``None``."""
        info = self.find_token(token)
        if info is None or info.state(_now()) != "active":
            return None
        return info.identity

    def get_token(self, token_id: str) -> TokenInfo | None:
        """A token by its public id."""
        rows = self._read(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
        return self._token_info(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        return [self._token_info(r) for r in self._read(
            f"SELECT {self._TOKEN_COLUMNS} FROM tokens ORDER BY created_at, {self._INSERTION}")]

    def revoke_token(self, token_id: str, *, actor: str, channel: str) -> TokenInfo:
        """Revoke a token, end its sessions and links, move the generation on; audited."""
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT revoked_at FROM tokens WHERE id = ?",
                               (token_id,)).fetchone()
            if row is None:
                raise NotFound(f"no token {token_id}")
            if row["revoked_at"] is None:
                conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now, token_id))
                conn.execute("DELETE FROM sessions WHERE token_id = ?", (token_id,))
                conn.execute("DELETE FROM login_links WHERE token_id = ?", (token_id,))
                conn.execute("UPDATE token_generation SET value = value + 1")
                self._append_audit(conn, "token.revoked", actor=actor, channel=channel,
                                   event_id=None, data={"token": token_id}, at=now)
            rows = conn.execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?",
                                (token_id,)).fetchall()
        return self._token_info(rows[0])

    def token_generation(self) -> int:
        """Moves on at every revocation."""
        return int(self._read("SELECT value FROM token_generation")[0][0])

    def touch_tokens(self, used: dict[str, datetime]) -> None:
        """Record last use; never moves a time backwards."""
        if not used:
            return
        with self._write() as conn:
            conn.executemany(
                "UPDATE tokens SET last_used_at = ? WHERE id = ?"
                " AND (last_used_at IS NULL OR last_used_at < ?)",
                [(_ts(at), tid, _ts(at)) for tid, at in used.items()])

    def count_tokens(self) -> int:
        """How many tokens exist."""
        return int(self._read("SELECT COUNT(*) FROM tokens")[0][0])

    # browser sessions and login links ---------------------------------------------------
    @staticmethod
    def _require_token(conn: Any, token_id: str) -> None:
        if conn.execute("SELECT 1 FROM tokens WHERE id = ?", (token_id,)).fetchone() is None:
            raise NotFound(f"no token {token_id}")

    def create_login_link(self, token_id: str, *, expires_at: datetime) -> str:
        """A one-time code; only its hash is stored."""
        code = secrets.token_urlsafe(32)
        now = _ts(_now())
        with self._write() as conn:
            self._require_token(conn, token_id)
            conn.execute("DELETE FROM login_links WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO login_links (hash, token_id, created_at, expires_at)"
                         " VALUES (?, ?, ?, ?)", (hash_token(code), token_id, now,
                                                  _ts(expires_at)))
        return code

    _ACTIVE = "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)"

    def login_link(self, code: str) -> TokenInfo | None:
        """The active token an unused, unexpired code signs in with."""
        now = _ts(_now())
        rows = self._read(
            f"SELECT {', '.join('t.' + c for c in self._TOKEN_COLUMNS.split(', '))}"
            f" FROM login_links l JOIN tokens t ON t.id = l.token_id"
            f" WHERE l.hash = ? AND l.expires_at > ? AND {self._ACTIVE}",
            (hash_token(code), now, now))
        return self._token_info(rows[0]) if rows else None

    def use_login_link(self, code: str, *,
                       session_expires_at: datetime) -> tuple[str, SessionInfo] | None:
        """Spend a code and start a session, in one transaction."""
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("DELETE FROM login_links WHERE hash = ? AND expires_at > ?"
                               " RETURNING token_id", (hash_token(code), now)).fetchone()
            if row is None:
                return None
            active = conn.execute(f"SELECT 1 FROM tokens t WHERE t.id = ? AND {self._ACTIVE}",
                                  (row["token_id"], now)).fetchone()
            if active is None:
                return None  # the link is spent anyway: its token cannot sign in any more
            return self._start_session(conn, row["token_id"], session_expires_at, now)

    def create_session(self, token_id: str, *,
                       expires_at: datetime) -> tuple[str, SessionInfo]:
        """Start a session; only the hash of its id is stored."""
        now = _ts(_now())
        with self._write() as conn:
            self._require_token(conn, token_id)
            return self._start_session(conn, token_id, expires_at, now)

    def _start_session(self, conn: Any, token_id: str, expires_at: datetime,
                       now: float) -> tuple[str, SessionInfo]:
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_hex(32)
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        conn.execute("INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (hash_token(session_id), token_id, csrf, now, _ts(expires_at)))
        row = conn.execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?",
                           (token_id,)).fetchone()
        return session_id, SessionInfo(token=self._token_info(row), csrf=csrf,
                                       expires_at=_at(_ts(expires_at)))

    def session_for(self, session_id: str) -> SessionInfo | None:
        """The live session with this id."""
        now = _ts(_now())
        rows = self._read(
            f"SELECT {', '.join('t.' + c for c in self._TOKEN_COLUMNS.split(', '))},"
            f" s.csrf, s.expires_at AS session_expires_at"
            f" FROM sessions s JOIN tokens t ON t.id = s.token_id"
            f" WHERE s.hash = ? AND s.expires_at > ? AND {self._ACTIVE}",
            (hash_token(session_id), now, now))
        if not rows:
            return None
        return SessionInfo(token=self._token_info(rows[0]), csrf=rows[0]["csrf"],
                           expires_at=_at(rows[0]["session_expires_at"]))

    def end_session(self, session_id: str) -> None:
        """Delete a session."""
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE hash = ?", (hash_token(session_id),))

    def secret(self, name: str) -> bytes:
        """A random secret kept in the store, made on first use."""
        with self._write() as conn:
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return bytes(row["value"])
            value = secrets.token_bytes(32)
            conn.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
            return value
