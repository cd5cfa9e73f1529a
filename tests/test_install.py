"""The package installs like any other: ``uv build`` makes a wheel and an sdist that
``twine check`` accepts, and the wheel with the ``hub`` extra works in a fresh venv.

Bounded on purpose: one venv, the ``hub`` extra only. Each adapter is checked *without* its
extra (importing it raises :class:`signoff.adapters.MissingExtra` naming the extra); installing
every engine's extra here would take many minutes — each adapter's nox session installs its
own extra from the checkout and runs its scenarios instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]
# (the statement a user writes first, the extra it needs)
ADAPTERS = {
    "airflow": ("import signoff.adapters.airflow", "airflow"),
    "argo": ("from signoff.adapters.argo import approval", "argo"),
    "flyte": ("from signoff.adapters.flyte import approve", "flyte"),
    "flyte2": ("import signoff.adapters.flyte.v2", "flyte2"),
    "prefect": ("from signoff.adapters.prefect import approve", "prefect"),
    "temporal": ("import signoff.adapters.temporal", "temporal"),
}


def _uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    if found is None:
        pytest.skip("uv is not installed (the README installs it with `pip install uv`)")
    return found


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "VIRTUAL_ENV": ""})
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(_uv(), "build", "-q", "-o", out, ROOT, cwd=ROOT)
    return out


def test_the_wheel_and_sdist_pass_twine_check(dist: Path) -> None:
    wheel, sdist = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheel) == len(sdist) == 1
    checked = _run(_uv(), "tool", "run", "twine", "check", "--strict", *wheel, *sdist)
    assert checked.count("PASSED") == 2
    with zipfile.ZipFile(wheel[0]) as archive:
        meta = archive.read(next(n for n in archive.namelist()
                                 if n.endswith("dist-info/METADATA"))).decode()
        names = archive.namelist()
    assert "Description-Content-Type: text/markdown" in meta
    assert "Classifier: Typing :: Typed" in meta and "Requires-Dist: fastapi" in meta
    assert "signoff/py.typed" in names and "signoff/hub/templates/inbox.html" in names


def test_the_wheel_with_the_hub_extra_works_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    uv = _uv()
    [wheel] = dist.glob("*.whl")
    venv = tmp_path / "venv"
    _run(uv, "venv", "-q", "-p", f"{sys.version_info.major}.{sys.version_info.minor}", venv)
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "-q", "-p", python, wheel)  # without the hub extra first
    bare = subprocess.run([venv / "bin" / "signoff", "serve", "--port", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and "Traceback" not in bare.stderr
    assert bare.stderr.startswith("error: the signoff hub needs the hub extra")
    assert "pip install '.[hub]'" in bare.stderr and not list(tmp_path.glob("*.db"))
    _run(uv, "pip", "install", "-q", "-p", python, f"{wheel}[hub]")
    helped = _run(venv / "bin" / "signoff", "--help")
    assert "serve" in helped and "list" in helped and "(needs signoff[argo])" in helped
    _run(python, "-c", "import signoff, signoff.hub, signoff.hub.app; "
                       "assert signoff.__file__.startswith(" + repr(str(venv)) + ")")
    for name, (statement, extra) in ADAPTERS.items():
        probe = (f"from signoff.adapters import MissingExtra\n"
                 f"try:\n    {statement}\n"
                 f"except MissingExtra as exc:\n    print('MissingExtra:', exc)\n"
                 f"else:\n    raise SystemExit('{name}: no MissingExtra')\n")
        said = _run(python, "-c", probe)
        assert said.startswith("MissingExtra:") and f"signoff[{extra}]" in said, (name, said)
