"""The package's shape: the import boundary, the packages list, and honest __all__."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

import signoff

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("fastapi", "starlette", "uvicorn", "prefect", "airflow", "flytekit", "flyte", "hera",
         "temporalio", "psycopg", "jinja2", "jsonschema", "sqlite3")


def test_import_signoff_loads_nothing_heavy() -> None:
    code = ("import sys, signoff, signoff.resumers; "
            "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert "pydantic" in loaded and "httpx" in loaded
    assert not loaded.intersection(HEAVY), loaded.intersection(HEAVY)


def test_packages_list_matches_the_folders() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    assert set(config["packages"]) == found


def test_all_is_honest() -> None:
    public = {name for name in dir(signoff) if not name.startswith("_")}
    modules = {"store", "resumers", "deciders", "hub", "cli", "testing", "adapters"}
    assert set(signoff.__all__) == public - modules - {"annotations"}
    for name in signoff.__all__:
        assert getattr(signoff, name) is not None


def test_nothing_imports_core_or_adapters_directly() -> None:
    offenders = []
    for folder in ("core", "adapters", "tests", "examples", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                stripped = line.strip()
                if stripped.startswith(("import core", "from core", "import adapters",
                                        "from adapters")):
                    offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []
