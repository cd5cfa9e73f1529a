"""Golden files: compare rendered text with ``golden/<name>``; regenerate with
``SIGNOFF_REGENERATE_GOLDEN=1 pytest tests/adapters/argo``."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("SIGNOFF_REGENERATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing; run with SIGNOFF_REGENERATE_GOLDEN=1"
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            f"golden/{name}", "rendered"))
        raise AssertionError(f"rendered output differs from golden/{name} (regenerate with "
                             f"SIGNOFF_REGENERATE_GOLDEN=1 if intended):\n{diff}")
