"""The hub loads the Argo resumer without hera; without hera the workflow side names the extra."""

from __future__ import annotations

import subprocess
import sys

import signoff.adapters.argo as argo_adapter

BLOCK_HERA = "import sys; sys.modules['hera'] = None; sys.modules['yaml'] = None\n"


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_resumer_and_package_import_without_hera() -> None:
    done = python(BLOCK_HERA + """
import signoff.adapters.argo
from signoff.resumers import load_resumer
factory = load_resumer("argo")
resumer = factory({"url": "http://127.0.0.1:2746"})
print(type(resumer).__name__, sorted(m for m in sys.modules if m.split('.')[0] in ('hera', 'yaml') and sys.modules[m] is not None))
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ArgoResumer []"


def test_workflow_side_without_hera_names_the_extra() -> None:
    done = python(BLOCK_HERA + """
try:
    from signoff.adapters.argo import approval
except ImportError as exc:
    print(type(exc).__name__, exc)
""")
    assert done.stdout.strip() == ("ArgoExtraMissing the Argo adapter needs hera: "
                                   "pip install 'signoff[argo]'")


def test_signoff_argo_command_without_hera_names_the_extra() -> None:
    done = python(BLOCK_HERA + "from signoff.cli import run; sys.argv = ['signoff', 'argo']; "
                               "run()")
    assert done.returncode == 1
    # one line, naming the command and the extra
    assert done.stderr.strip().splitlines() == [
        "error: signoff argo needs signoff[argo]: the Argo adapter needs PyYAML: "
        "pip install 'signoff[argo]'"]


def test_import_signoff_loads_no_hera() -> None:
    done = python("import sys, signoff, signoff.adapters.argo, signoff.adapters.argo.resumer; "
                  "print([m for m in sys.modules if m.startswith('hera')])")
    assert done.stdout.strip() == "[]"


def test_all_is_honest() -> None:
    for name in argo_adapter.__all__:
        assert getattr(argo_adapter, name) is not None
    assert sorted(argo_adapter.__all__) == dir(argo_adapter)


def test_verify_decision_runs_without_hera() -> None:
    """The verify step runs in the hub's image, which has no hera: the command must load."""
    done = python(BLOCK_HERA + "from signoff.cli import run; sys.argv = ['signoff', "
                               "'verify-decision', '--help']; run()")
    assert done.returncode == 0, done.stderr
    assert "--outcome" in done.stdout
