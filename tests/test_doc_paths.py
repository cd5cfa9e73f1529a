"""No page tells a newcomer to open a file that is not in the repository.

Every relative link in README.md and docs/*.md, and every repository path the text names
(``examples/...``, ``docs/...``, ``bench/...``, in prose, code or commands), must name a file or
folder that exists. Links resolve from the page's folder, as a Markdown viewer resolves them;
named paths from the checkout's root, where the pages say to run the commands (a test file may
also be named from ``tests/``, as docs/security.md says it does; ``file.py::test_name`` names
the file). A placeholder such as ``bench/NAME.py`` is not a path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# a path under one of the repository's folders, not inside a URL or a longer path
_NAMED = re.compile(r"(?<![\w/.$-])((?:examples|docs|bench|deploy|tests|core|adapters|\.ci)"
                    r"/[\w./-]*\w)")
# names that look like paths and are not files: kubectl's deployment/NAME
NOT_FILES = {"deploy/signoff"}


def _links(text: str) -> list[str]:
    found = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor on the same page
        found.append(target.split("#", 1)[0])
    return [t for t in found if t]


def _code_paths(text: str) -> list[str]:
    return [path for path in _NAMED.findall(text)
            if path not in NOT_FILES and not re.search(r"/[A-Z_]+(\.\w+)?$", path)]


def _exists(path: str) -> bool:
    if (ROOT / path).exists():
        return True
    return Path(path).name.startswith("test_") and (ROOT / "tests" / path).exists()


def test_the_pages_are_found() -> None:
    assert len(PAGES) > 5 and all(page.exists() for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_file_a_page_names_exists(page: Path) -> None:
    text = page.read_text()
    missing = [f"link {target}" for target in _links(text)
               if not (page.parent / target).exists()]
    missing += [f"`{path}`" for path in _code_paths(text) if not _exists(path)]
    assert not missing, f"{page.relative_to(ROOT)} names files not in the repository: {missing}"


def test_the_checks_catch_a_missing_file(tmp_path: Path) -> None:
    """The patterns find what a page would name (so an empty result above means something)."""
    text = ("See [the guide](docs/nope.md#top), [web](https://x.org), [here](#a), "
            "`examples/missing_example.py`, `bench/NAME.py`, https://x.org/docs/a.md, "
            "`SIGNOFF_URL`, run adapters/argo/test_nope.py::test_x.")
    assert _links(text) == ["docs/nope.md"]
    assert _code_paths(text) == ["docs/nope.md", "examples/missing_example.py",
                                 "adapters/argo/test_nope.py"]
    assert not _exists("examples/missing_example.py")
    assert not _exists("adapters/argo/test_nope.py")
    assert _exists("adapters/argo/test_cli.py") and _exists("examples/quickstart.py")
