from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.testing import HubProcess

from .postgres import PostgresServer, find_bin

PG_AUDIT_KEY = "pg-test-audit-key-0123456789abcdef"
"""The audit key of every PostgreSQL store the tests open (a server keeps no key file)."""
PG_SIGNING_KEYS = "private " + "5e" * 32
"""The decision-signing keyring of every hub on PostgreSQL (likewise given, not kept beside)."""


def hub_process(request: pytest.FixtureRequest, where: Path,
                env: dict[str, str] | None = None, store: str | None = None) -> HubProcess:
    """A hub (not started) on a fresh store: a SQLite file in ``where``, or, with
    ``SIGNOFF_TEST_DB=postgresql``, a fresh database on the run's PostgreSQL server (the switch
    that runs the store-agnostic hub tests on PostgreSQL). ``store`` (``sqlite`` or
    ``postgresql``) overrides the switch, for a test that must hold on both stores in one run.
    """
    if (store or os.environ.get("SIGNOFF_TEST_DB", "sqlite")) == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return HubProcess(server.create_database(template="signoff_template"),
                          env={"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY,
                               "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS, **(env or {})}, log_dir=where)
    return HubProcess(where / "hub.db", env=env)


@pytest.fixture
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubProcess]:
    """A real `signoff serve` on loopback with a fresh store (SQLite unless SIGNOFF_TEST_DB)."""
    with hub_process(request, tmp_path, {"SIGNOFF_SWEEP_INTERVAL": "0.2"}) as process:
        yield process


@pytest.fixture(scope="module")
def shared_hub(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for a whole module, for tests that do not restart it."""
    with hub_process(request, tmp_path_factory.mktemp("hub")) as process:
        yield process


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the run (skipped where none is installed: CI installs
    Debian's postgresql-15 in `.ci/run`). Clients get its password through ``PGPASSWORD``.
    """
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql-15)")
    with PostgresServer(bin_dir).running() as server:
        server.create_database()  # warm: the first CREATE DATABASE pays for a checkpoint
        server.sql("CREATE DATABASE signoff_template")
        from signoff.store import open_store

        open_store(server.url("signoff_template"), audit_key=PG_AUDIT_KEY.encode()).close()
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, migrated signoff database of its own, as a URL without the password."""
    return postgres.create_database(template="signoff_template")
