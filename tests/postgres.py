"""A real PostgreSQL 15 server for the tests, in a temporary folder.

Debian's ``postgresql-15`` puts ``initdb`` and ``pg_ctl`` off PATH (``/usr/lib/postgresql/15/
bin``); they refuse to run as root, so as root the server runs as the ``postgres`` system user
(``runuser``), in a folder that user owns. It listens on a free loopback port and asks TCP
clients for a password (SCRAM): the tests give it through ``PGPASSWORD``, the way an operator
keeps it off the command line. One server serves the whole run; each test gets a fresh database
copied from a migrated template (``CREATE DATABASE ... TEMPLATE``), which takes milliseconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from signoff.testing import free_port

__all__ = ["PostgresServer", "find_bin"]

USER = "postgres"


def wide_text(count: int, seed: int) -> str:
    """``count`` characters of four UTF-8 bytes each, in no pattern: PostgreSQL cannot compress
    them into an index entry, so the longest requester (200) and key (500) of them make a
    ``(requested_by, key)`` entry over the btree's 2,704 bytes."""
    pick = random.Random(seed)
    return "".join(chr(pick.randrange(0x20000, 0x2A6E0)) for _ in range(count))


def find_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, if a PostgreSQL server is installed."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` in a temporary folder; :meth:`stop` removes it all."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False) -> None:
        self.bin = bin_dir
        self.fsync = fsync  # off for tests (nothing here must survive a power cut)
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.root = Path(tempfile.mkdtemp(prefix="signoff-pg-"))
        self.data = self.root / "data"
        self._as_root = os.geteuid() == 0
        self._template: str | None = None

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._as_root:
            command = ["runuser", "-u", USER, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        """Make the cluster (first time) and start the server; returns when it accepts."""
        if not self.data.exists():
            pwfile = self.root / "pw"
            pwfile.write_text(self.password + "\n")
            if self._as_root:
                shutil.chown(self.root, USER, USER)
                shutil.chown(pwfile, USER, USER)
            os.chmod(self.root, 0o700)
            self._run(self.bin / "initdb", "-D", self.data, "-U", USER, "--pwfile", pwfile,
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                      "--no-sync")
            pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync={'on' if self.fsync else 'off'} "
                   "-c max_connections=200")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "log", "-w",
                  "-t", "60", "-o", options, "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``, or ``immediate`` as a crash would)."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A URL for ``database``, without the password (it is in ``PGPASSWORD``)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (autocommit: CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(self.url(database), password=self.password,
                             autocommit=True) as conn:
            conn.execute(statement.encode())

    @contextlib.contextmanager
    def running(self) -> Iterator[PostgresServer]:
        """Started, with its password in ``PGPASSWORD`` (for this process and the hubs it
        starts); afterwards the variable is as it was and the server and its folder are gone.
        """
        before = os.environ.get("PGPASSWORD")
        os.environ["PGPASSWORD"] = self.password
        try:
            yield self.start()
        finally:
            if before is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = before
            self.remove()

    def create_database(self, template: str | None = None) -> str:
        """A new, empty database (or a copy of ``template``); returns its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)
