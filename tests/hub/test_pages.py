"""What every answer of a real `signoff serve` carries: security headers, HEAD, 405 with Allow,
and API docs that load nothing from elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

from .test_web import sign_in

CSP_MUST = ("default-src 'self'", "script-src 'self';", "object-src 'none'",
            "frame-ancestors 'none'", "base-uri 'none'")


@pytest.fixture(scope="module")
def browser(shared_hub: HubProcess) -> Iterator[httpx.Client]:
    """A signed-in browser (the admin's session cookie), not following redirects."""
    assert shared_hub.admin_token is not None
    http = sign_in(shared_hub, shared_hub.admin_token, "admin").client
    try:
        yield http
    finally:
        http.close()


@pytest.fixture(scope="module")
def event_id(shared_hub: HubProcess) -> str:
    token = shared_hub.token("pages-flow", role="workflow")
    answer = httpx.post(f"{shared_hub.url}/api/v1/events", headers=shared_hub.headers(token),
                        json={"name": "pages", "prompt": "Headers?"}, timeout=30)
    assert answer.status_code == 201
    created: str = answer.json()["id"]
    return created


def _assert_secure(answer: httpx.Response) -> None:
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    csp = answer.headers.get("content-security-policy", "")
    for part in CSP_MUST:
        assert part in csp, f"{where}: CSP {csp!r} lacks {part!r}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp, where
    assert answer.headers.get("x-frame-options") == "DENY", where
    assert answer.headers.get("referrer-policy") in ("no-referrer", "same-origin"), where
    assert answer.headers.get("x-content-type-options") == "nosniff", where


def test_every_kind_of_answer_carries_the_security_headers(shared_hub: HubProcess,
                                                           browser: httpx.Client,
                                                           event_id: str) -> None:
    api = shared_hub.headers()
    answers = {
        "inbox": browser.get("/"),
        "event page": browser.get(f"/events/{event_id}"),
        "login page": httpx.get(f"{shared_hub.url}/login"),
        "login redirect": httpx.get(f"{shared_hub.url}/"),
        "token-link redirect": httpx.get(shared_hub.login_url or ""),
        "static file": browser.get("/static/signoff.css"),
        "api json": httpx.get(f"{shared_hub.url}/api/v1/events", headers=api),
        "api 401": httpx.get(f"{shared_hub.url}/api/v1/events"),
        "api 404": httpx.get(f"{shared_hub.url}/api/v1/events/ev_missing", headers=api),
        "api 422": httpx.post(f"{shared_hub.url}/api/v1/events", headers=api, json={}),
        "api 405": httpx.delete(f"{shared_hub.url}/api/v1/events", headers=api),
        "page 404": browser.get("/no/such/page"),
        "page 405": browser.get(f"/events/{event_id}/respond"),
        "413": httpx.post(f"{shared_hub.url}/api/v1/events", headers=api,
                          content=b"x" * 2_000_000),
        "openapi": httpx.get(f"{shared_hub.url}/openapi.json"),
        "healthz": httpx.get(f"{shared_hub.url}/healthz"),
    }
    assert answers["inbox"].status_code == 200 and answers["event page"].status_code == 200
    assert answers["login redirect"].status_code == 303
    assert answers["page 404"].status_code == 404 and answers["413"].status_code == 413
    for answer in answers.values():
        _assert_secure(answer)
    # static files may be cached (their URL is versioned); everything else may not
    assert "max-age" in answers["static file"].headers["cache-control"]
    assert answers["api json"].headers["cache-control"] == "no-store"


def test_the_error_page_of_an_unexpected_failure_carries_them_too(tmp_path: Path) -> None:
    """A 500 comes from Starlette's outermost middleware: the headers wrap even that."""
    from signoff.hub import create_app, load_settings

    app = create_app(load_settings(database=str(tmp_path / "hub.db")))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            return await http.get("/boom")

    answer = asyncio.run(fetch())
    assert answer.status_code == 500
    _assert_secure(answer)


@pytest.mark.parametrize("path", ["/healthz", "/login", "/static/signoff.css", "/openapi.json",
                                  "/api/v1/events", "/api/v1/me", "/", "/events/{event_id}"])
def test_head_answers_wherever_get_does(shared_hub: HubProcess, browser: httpx.Client,
                                        event_id: str, path: str) -> None:
    path = path.format(event_id=event_id)
    kwargs: dict[str, Any] = {}
    if path.startswith("/api/"):
        kwargs["headers"] = shared_hub.headers()
    got = browser.get(path, **kwargs)
    head = browser.head(path, **kwargs)
    assert got.status_code == 200, got.text
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if "content-length" in got.headers and path != "/" and not path.startswith("/events/"):
        # pages carry a fresh CSRF token or age each time; these do not change between calls
        assert head.headers["content-length"] == got.headers["content-length"]
    _assert_secure(head)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/healthz", "GET, HEAD"),
    ("PUT", "/login", "GET, HEAD, POST"),
    ("DELETE", "/api/v1/events", "GET, HEAD, POST"),
    ("PUT", "/api/v1/events/ev_x/responses", "POST"),
    ("POST", "/api/v1/events/ev_x", "GET, HEAD"),
    ("POST", "/static/signoff.css", "GET, HEAD"),
    ("GET", "/logout", "POST"),
])
def test_405_names_the_allowed_methods(shared_hub: HubProcess, method: str, path: str,
                                       allow: str) -> None:
    answer = httpx.request(method, f"{shared_hub.url}{path}", headers=shared_hub.headers())
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allow
    _assert_secure(answer)


def test_no_api_docs_from_a_cdn_by_default(shared_hub: HubProcess) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(f"{shared_hub.url}{path}").status_code == 404
    assert httpx.get(f"{shared_hub.url}/openapi.json").json()["info"]["title"] == "signoff hub"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(str(found[name]))
        self._in_script = tag == "script"
        if tag == "script" and not found.get("src"):
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def test_api_docs_when_on_load_nothing_from_elsewhere(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "hub.db", env={"SIGNOFF_API_DOCS": "true"}) as hub:
        page = httpx.get(f"{hub.url}/docs")
        assert page.status_code == 200
        _assert_secure_docs(page)
        assets = _Assets()
        assets.feed(page.text)
        assert assets.urls and assets.inline_scripts == 0
        for url in assets.urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = httpx.get(f"{hub.url}{url}")
            assert asset.status_code == 200, url
        assert "cdn" not in page.text and "https://" not in page.text
        assert "/openapi.json" in httpx.get(f"{hub.url}/docs/assets/init.js").text
        assert httpx.get(f"{hub.url}/redoc").status_code == 404  # ReDoc needs a CDN: never


def _assert_secure_docs(answer: httpx.Response) -> None:
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in csp and "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
