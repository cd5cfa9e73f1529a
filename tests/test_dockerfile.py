"""The container image's recipe, checked without a docker daemon (none runs on these machines,
and no Dockerfile linter is installed): its structure is read here, and its HEALTHCHECK command
is run against a real hub.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomllib

from signoff.testing import HubProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SECRETS = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|PASSWD|CREDENTIAL", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in joined:
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _env(arguments: str) -> dict[str, str]:
    pairs = shlex.split(arguments)
    if len(pairs) == 2 and "=" not in pairs[0]:  # the old `ENV NAME value` form
        return {pairs[0]: pairs[1]}
    return dict(p.split("=", 1) for p in pairs)


def final_stage() -> dict[str, Any]:
    """The last stage's instructions by name (ENV as one dictionary)."""
    steps = instructions()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    stage: dict[str, Any] = {"ENV": {}}
    for word, arguments in steps[last:]:
        if word == "ENV":
            stage["ENV"].update(_env(arguments))
        else:
            stage.setdefault(word, []).append(arguments)
    return stage


def test_the_image_is_slim_and_runs_as_a_non_root_user() -> None:
    for word, arguments in instructions():
        if word == "FROM":
            assert "-slim" in arguments.split()[0], arguments
    stage = final_stage()
    user = stage["USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric uid (runAsNonRoot checks it)"
    assert not gid or int(gid) != 0
    steps = [w for w, _ in instructions()]
    # nothing after USER runs as root again
    assert "RUN" not in steps[len(steps) - 1 - steps[::-1].index("USER"):]


def test_the_command_serves_the_hub_on_every_interface() -> None:
    (command,) = final_stage()["CMD"]
    assert json.loads(command) == ["signoff", "serve", "--host", "0.0.0.0"]
    assert "ENTRYPOINT" not in final_stage()  # `kubectl exec ... signoff token create` works


def test_the_package_is_installed_from_the_checkout_with_the_hub_and_postgres() -> None:
    runs = " ".join(a for w, a in instructions() if w == "RUN")
    assert 'pip install ".[hub,postgres]"' in runs
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"hub", "postgres"} <= set(pyproject["project"]["optional-dependencies"])


def test_no_secret_is_baked_into_the_image() -> None:
    for word, arguments in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            names = _env(arguments) if word != "ARG" else {arguments.split("=")[0]: ""}
            for name in names:
                assert not SECRETS.search(name), f"{word} {name}: secrets come at run time"
    database = final_stage()["ENV"]["SIGNOFF_DATABASE"]
    assert "://" not in database and "@" not in database


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out: the last matching rule wins, a rule matches a
    path or any folder above it, ``**/NAME`` matches that name at any depth (docker's rules,
    for the patterns this repository uses)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        rule = pattern.lstrip("!").rstrip("/")
        if rule.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, rule[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, rule) for prefix in prefixes)
        if hit:
            ignored = not pattern.startswith("!")
    return ignored


def test_the_build_context_holds_the_sources_and_nothing_private() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", pyproject["project"]["readme"]["file"],
              *pyproject["project"]["license-files"],
              *(f"{folder}/__init__.py" for folder in
                pyproject["tool"]["setuptools"]["package-dir"].values())]
    copied = [a.split()[:-1] for w, a in instructions() if w == "COPY" and "--from" not in a]
    sources = {s.rstrip("/") for group in copied for s in group}
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not _ignored(path, patterns), f"{path} is left out of the build context"
        assert any(path == s or path.startswith(s + "/") for s in sources), f"{path} not copied"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
    for private in (".git/config", ".venv/bin/python", "hub.db", "core/hub.db",
                    "hub.db.audit-key", ".env", "tests/test_cli.py", "core/__pycache__/x.pyc"):
        assert _ignored(private, patterns), f"{private} would be sent to the docker daemon"


def _healthcheck() -> list[str]:
    (check,) = final_stage()["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3:].strip())
    assert command[0] == "python"
    assert any("/healthz" in part for part in command)
    return [sys.executable, *command[1:]]


def test_the_healthcheck_passes_on_a_running_hub_and_fails_without_one(
        shared_hub: HubProcess) -> None:
    command = _healthcheck()
    up = subprocess.run(command, env={"SIGNOFF_PORT": str(shared_hub.port)},
                        capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(command, env={"SIGNOFF_PORT": str(free_port())},
                          capture_output=True, timeout=30)
    assert down.returncode != 0
