"""A counter shared by every process on one machine that opens the same SQLite database.

The hub checks on every request whether any token was revoked since it cached the caller's
token. Asking the database costs a query per request on the event loop (and hands the GIL
to the writer thread while SQLite runs): instead, every process that revokes a token bumps
this counter, kept in a file beside the database (``<database>.revocations``) and mapped into
each process's memory, so a check is a read of eight bytes. A bump from ``signoff token
revoke`` in another process is seen by the hub's very next request.

The counter only says *something changed*: the token itself is always read from the database
after it moves. A revocation written by hand into the database, behind signoff's back, moves
no counter: the hub sees it when its cached token ages out (``token_cache_seconds``).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
from pathlib import Path

__all__ = ["Signal"]

log = logging.getLogger("signoff.store")
_SIZE = 8


class Signal:
    """The counter in ``path``, mapped into memory. :meth:`open` returns None where no file
    can be kept (a read-only directory): the caller then asks the database each time.
    """

    def __init__(self, fd: int, mapped: mmap.mmap, path: Path) -> None:
        self._fd = fd
        self._map = mapped
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Signal | None:
        """Map the counter file at ``path``, creating it (owner-only) if it is missing."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("revocation counter %s unavailable (%s): reading the database on "
                        "every request instead", path, exc)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)  # zeros: a counter at 0
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            mapped = mmap.mmap(fd, _SIZE)
        except OSError as exc:
            os.close(fd)
            log.warning("revocation counter %s unavailable (%s): reading the database on "
                        "every request instead", path, exc)
            return None
        return cls(fd, mapped, path)

    def read(self) -> int:
        """The counter now (a memory read: no system call, no query)."""
        return int.from_bytes(self._map[:_SIZE], "little")

    def bump(self) -> None:
        """Move the counter on, under a lock shared with every other process."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._map[:_SIZE] = ((self.read() + 1) % 2**63).to_bytes(_SIZE, "little")
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Unmap the counter and close its file."""
        self._map.close()
        os.close(self._fd)
