"""Ids for events, responses and deliveries: a prefix and 32 random hex digits (a version-4
UUID, as ``uuid.uuid4().hex`` makes).

``uuid.uuid4`` asks the kernel for 16 bytes on every call, and the system call lets go of the
GIL: in a hub whose store writer is another thread, getting it back can cost milliseconds under
load. This draws randomness from ``os.urandom`` a few kilobytes at a time instead.
"""

from __future__ import annotations

import os
import re
import threading
import uuid

__all__ = ["new_id", "random_hex", "well_formed"]

_TAIL = re.compile(r"[A-Za-z0-9_-]{1,64}")

_CHUNK = 4096  # 256 ids per system call
_lock = threading.Lock()
_pool = b""
_at = 0


def new_id(prefix: str) -> str:
    """``<prefix>_<32 hex digits>``, unpredictable (from ``os.urandom``)."""
    return f"{prefix}_{random_hex()}"


def well_formed(text: str, prefix: str) -> bool:
    """Whether ``text`` has the shape of an id of ``prefix``: ``<prefix>_`` then at most 64
    letters, digits, ``_`` or ``-``.

    Looser than what :func:`new_id` makes (32 hex digits), so the rule is about what could be
    an id, not how ids are drawn; strict enough that a NUL, a space or a non-ASCII character
    never reaches a query, where one store would answer "not found" and another refuse it.
    """
    return text.startswith(f"{prefix}_") and _TAIL.fullmatch(text, len(prefix) + 1) is not None


def random_hex() -> str:
    """32 hex digits of a version-4 UUID (a request id, say), from the pool."""
    global _pool, _at
    with _lock:
        if _at + 16 > len(_pool):
            _pool, _at = os.urandom(_CHUNK), 0
        raw = _pool[_at:_at + 16]
        _at += 16
    return uuid.UUID(bytes=raw, version=4).hex
