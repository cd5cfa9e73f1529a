"""The keyed audit chain, shared by every store backend.

Each audit entry's ``hash`` is HMAC-SHA256, under the **audit key**, of the entry and the hash
before it. The key is kept out of the database (a file beside it, or the hub's settings), so
someone who can write the database but not read the key cannot rewrite an entry, or forge a
new one, without ``verify`` noticing. Entries written before the log was keyed (schema 3 and
older) stay as they were, as ``legacy`` plain SHA-256 entries: the keyed chain starts with an
``audit_keyed`` entry that counts them and seals every response and decision row they covered.

Response and decision entries also carry a SHA-256 digest of the row as written (``data.row``),
so ``verify`` can name a row edited behind the hub's back. ``check_chain`` and ``check_rows``
hold the checks; a backend only reads the rows and hands them over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._protocol import AuditAnchor, AuditProblem

__all__ = [
    "GENESIS",
    "KEYED",
    "LEGACY",
    "AuditKey",
    "AuditKeyError",
    "ChainResult",
    "check_anchor",
    "check_chain",
    "check_rows",
    "entry_hash",
    "key_file_for",
    "load_audit_key",
    "row_digest",
    "row_seal",
]

GENESIS = "0" * 64
KEYED = "hmac-sha256"
LEGACY = "sha256"
_MIN_KEY = 16


class AuditKeyError(ValueError):
    """The audit key is missing, unreadable, too short, or not the one the log was written with."""


@dataclass(frozen=True)
class AuditKey:
    """The secret the audit chain is keyed with, and where it came from (for messages)."""

    secret: bytes
    source: str
    created: bool = False

    def __repr__(self) -> str:  # never the secret
        return f"AuditKey(source={self.source!r}, created={self.created})"


def key_file_for(database: str) -> Path:
    """Where the hub keeps the audit key when none is configured: ``<database>.audit-key``."""
    return Path(database + ".audit-key")


def _checked(text: str, source: str) -> AuditKey:
    secret = text.strip()
    if len(secret) < _MIN_KEY:
        raise AuditKeyError(f"audit key from {source}: at least {_MIN_KEY} characters expected, "
                            f"got {len(secret)}")
    return AuditKey(secret.encode(), source)


def load_audit_key(database: str, *, key: str | None = None, key_file: str | Path | None = None,
                   create: bool = False) -> AuditKey:
    """The audit key: ``key`` itself, else the file ``key_file``, else ``<database>.audit-key``.

    With ``create``, a missing default file is made (32 random bytes as hex, mode 0600); an
    in-memory database gets a random key of its own. Given both ``key`` and ``key_file``, they
    must agree. The key is the file's text without surrounding whitespace, so the file's
    content can be copied into a Kubernetes Secret as ``SIGNOFF_AUDIT_KEY``.

    Raises:
        AuditKeyError: no key, an unreadable or short one, or two that differ.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            from_file = _checked(path.read_text(), str(path))
        except OSError as exc:
            raise AuditKeyError(f"audit key file {path}: {exc.strerror or exc}") from exc
        if key is not None and _checked(key, "audit_key").secret != from_file.secret:
            raise AuditKeyError(f"audit_key and audit_key_file ({path}) are two different keys; "
                                "give one")
        return from_file
    if key is not None:
        return _checked(key, "the audit_key setting (SIGNOFF_AUDIT_KEY)")
    if "://" in database:  # a database server: nothing can be kept beside it
        raise AuditKeyError(f"no audit key: a database server ({database.split('://')[0]}) keeps "
                            "no key file beside it; give the key with SIGNOFF_AUDIT_KEY or "
                            "SIGNOFF_AUDIT_KEY_FILE")
    if database == ":memory:":
        if not create:
            raise AuditKeyError("an in-memory database has no audit key file")
        return AuditKey(secrets.token_hex(32).encode(), "a random key for this in-memory store",
                        created=True)
    path = key_file_for(database)
    if path.exists() or not create:
        try:
            return _checked(path.read_text(), str(path))
        except FileNotFoundError:
            raise AuditKeyError(
                f"no audit key: {path} does not exist; give the key the log was written with "
                "(SIGNOFF_AUDIT_KEY or SIGNOFF_AUDIT_KEY_FILE)") from None
        except OSError as exc:
            raise AuditKeyError(f"audit key file {path}: {exc.strerror or exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _checked(path.read_text(), str(path))
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return AuditKey(_checked(path.read_text(), str(path)).secret, str(path), created=True)


def _line(prev: str, seq: int, at: float, event_id: str | None, actor: str, action: str,
          channel: str, data: str) -> bytes:
    return json.dumps([prev, seq, repr(at), event_id, actor, action, channel, data]).encode()


def entry_hash(key: bytes | None, prev: str, seq: int, at: float, event_id: str | None,
               actor: str, action: str, channel: str, data: str) -> str:
    """An entry's hash: HMAC-SHA256 under ``key``, or plain SHA-256 (legacy) without one."""
    line = _line(prev, seq, at, event_id, actor, action, channel, data)
    if key is None:
        return hashlib.sha256(line).hexdigest()
    return hmac.new(key, line, hashlib.sha256).hexdigest()


def row_digest(table: str, row: Mapping[str, Any], columns: Iterable[str]) -> str:
    """SHA-256 of the row's ``columns`` as canonical JSON (sorted keys, no spaces)."""
    picked = {c: row.get(c, _ABSENT) for c in columns}
    text = json.dumps({"table": table, "row": picked}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_ABSENT = {"absent": "column"}  # a sealed column the table no longer has: never a real value


def row_seal(table: str, row_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit entry carries about the row it wrote (``data["row"]``): the digest and the
    columns it covers, so a column a later migration adds does not break older seals.
    """
    columns = sorted(row)
    return {"table": table, "id": row_id, "columns": columns,
            "sha256": row_digest(table, row, columns)}


@dataclass
class ChainResult:
    """What walking the chain found, and the seals it collected on the way."""

    entries: int
    legacy: int
    problems: list[AuditProblem]
    head: AuditAnchor | None
    seals: dict[tuple[str, str], tuple[int, dict[str, Any]]]
    hashes: dict[int, str]


def check_chain(rows: Iterable[Mapping[str, Any]], key: bytes) -> ChainResult:
    """Walk the audit entries in ``seq`` order (each a mapping of the audit table's columns).

    Legacy entries may only come before the first keyed one, which must then be the
    ``audit_keyed`` entry that says how many there were. Every entry must link to the one
    before; every keyed one must verify under ``key``. When no keyed entry verifies at all,
    that is reported once as a wrong key rather than as every entry changed.
    """
    problems: list[AuditProblem] = []
    bad_macs: list[int] = []
    seals: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    hashes: dict[int, str] = {}
    prev, entries, legacy, keyed = GENESIS, 0, 0, 0
    head: AuditAnchor | None = None
    for r in rows:
        seq, alg = int(r["seq"]), r.get("alg") or LEGACY
        entries += 1
        hashes[seq] = r["hash"]
        head = AuditAnchor(seq=seq, hash=r["hash"])
        if r["prev_hash"] != prev:
            problems.append(AuditProblem(
                "chain", f"entry {seq}: does not follow the entry before it (an entry was "
                         "removed, inserted or rewritten here)", seq=seq))
        args = (r["prev_hash"], seq, r["at"], r["event_id"], r["actor"], r["action"],
                r["channel"], r["data"])
        if alg == LEGACY:
            legacy += 1
            if keyed:
                problems.append(AuditProblem(
                    "chain", f"entry {seq}: an unkeyed entry after the log was keyed", seq=seq))
            elif r["hash"] != entry_hash(None, *args):
                problems.append(AuditProblem(
                    "chain", f"entry {seq}: its hash does not match its content (legacy "
                             "entry changed)", seq=seq))
        else:
            if keyed == 0 and legacy and r["action"] != "audit_keyed":
                problems.append(AuditProblem(
                    "chain", f"entry {seq}: the keyed chain does not start with the audit_keyed "
                             "entry", seq=seq))
            keyed += 1
            if not hmac.compare_digest(r["hash"], entry_hash(key, *args)):
                bad_macs.append(seq)
            else:
                try:
                    data = json.loads(r["data"])
                except ValueError:
                    data = None
                row = data.get("row") if isinstance(data, dict) else None
                if isinstance(row, dict) and {"table", "id", "sha256", "columns"} <= row.keys():
                    seals[(str(row["table"]), str(row["id"]))] = (seq, row)
        prev = r["hash"]
    if legacy and not keyed:  # the migration writes audit_keyed with the legacy entries' count
        problems.append(AuditProblem(
            "chain", f"{legacy} unkeyed entries and no keyed one: the keyed chain the schema-4 "
                     "migration starts is gone (cut off, or the log rewritten without the key)",
            seq=legacy + 1))
    if keyed and len(bad_macs) == keyed:
        problems.append(AuditProblem(
            "key", f"none of the {keyed} keyed entries verifies with this audit key: the key is "
                   "wrong (or every entry was rewritten)"))
    else:
        problems += [AuditProblem(
            "chain", f"entry {seq}: its keyed hash does not match its content (the entry was "
                     "changed)", seq=seq) for seq in bad_macs]
    problems.sort(key=lambda p: p.seq or 0)
    return ChainResult(entries, legacy, problems, head, seals, hashes)


def check_rows(seals: Mapping[tuple[str, str], tuple[int, dict[str, Any]]],
               rows: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[AuditProblem]:
    """Compare the current ``(table, id, row)`` rows with what the audit sealed: a row that
    differs is ``changed``, a sealed row that is gone is ``missing``, a row no entry sealed is
    ``extra``.
    """
    problems: list[AuditProblem] = []
    seen: set[tuple[str, str]] = set()
    for table, row_id, row in rows:
        seen.add((table, row_id))
        sealed = seals.get((table, row_id))
        if sealed is None:
            problems.append(AuditProblem(
                "extra", f"{table} row {row_id}: no audit entry wrote it (inserted behind the "
                         "hub's back)", table=table, row_id=row_id))
        elif row_digest(table, row, sealed[1]["columns"]) != sealed[1]["sha256"]:
            problems.append(AuditProblem(
                "changed", f"{table} row {row_id}: changed since audit entry {sealed[0]} sealed "
                           "it", seq=sealed[0], table=table, row_id=row_id))
    for (table, row_id), (seq, _) in sorted(seals.items()):
        if (table, row_id) not in seen:
            problems.append(AuditProblem(
                "missing", f"{table} row {row_id}: gone, though audit entry {seq} wrote it",
                seq=seq, table=table, row_id=row_id))
    return problems


def check_anchor(anchor: AuditAnchor, hashes: Mapping[int, str],
                 head: AuditAnchor | None) -> list[AuditProblem]:
    """Whether the log still reaches the anchor and holds the same entry there."""
    if head is None or head.seq < anchor.seq:
        ends = "is empty" if head is None else f"ends at entry {head.seq}"
        return [AuditProblem(
            "anchor", f"the log {ends}, but the anchor was taken at entry {anchor.seq}: entries "
                      "were deleted from its end", seq=anchor.seq)]
    found = hashes.get(anchor.seq)
    if found is None or not hmac.compare_digest(found, anchor.hash):
        return [AuditProblem(
            "anchor", f"entry {anchor.seq} is not the one the anchor was taken at: the log was "
                      "cut and written again, or rewritten", seq=anchor.seq)]
    return []
