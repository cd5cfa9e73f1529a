"""Tokens you can list, revoke and expire; one-time login links; server-side sessions.

Against real `signoff serve` processes; the CLI runs straight on the hub's database while the
hub runs, as an operator would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result

from signoff import Identity
from signoff.cli import main
from signoff.store import open_store, token_id
from signoff.testing import HubProcess

from .test_web import Page

T = TypeVar("T")
LINK = re.compile(r"^(http\S+/login/link/\S+)$", re.M)


def until(check: Callable[[], T], timeout: float = 20.0, what: str = "the condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def cli(hub: HubProcess, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--db", hub.database])


def me(hub: HubProcess, token: str | None) -> int:
    return httpx.get(f"{hub.url}/api/v1/me", headers=hub.headers(token)).status_code


def new_link(hub: HubProcess, user: str, role: str = "reviewer") -> str:
    made = cli(hub, "token", "create", "--user", user, "--role", role, "--login-link")
    assert made.exit_code == 0, made.output
    found = LINK.search(made.stdout)
    assert found, made.stdout
    assert "so_" not in made.stdout  # the token's secret is never shown
    # the link is built from the configured URL (here the default port): point it at this hub
    return hub.url + urlsplit(found.group(1)).path


def confirm_page(client: httpx.Client, link: str) -> str:
    """GET the link's page; returns the sign-in CSRF token of its button's form."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    csrf = Page(page.text).one("input", name="csrf")["value"]
    assert csrf
    return csrf


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with HubProcess(tmp_path_factory.mktemp("tokens") / "hub.db") as process:
        yield process


# --- one-time login links -----------------------------------------------------------------------
def test_the_printed_link_signs_in_once_and_leaves_the_address_bar(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "fresh.db") as fresh:
        link = fresh.login_url
        assert link is not None and link.startswith(f"{fresh.url}/login/link/")
        assert "token=" not in link
        with httpx.Client(base_url=fresh.url) as browser:
            page = browser.get(link)
            assert "Sign in as admin" in page.text
            csrf = Page(page.text).one("input", name="csrf")["value"]
            assert csrf
            signed = browser.post(link, data={"csrf": csrf})
            assert signed.status_code == 303 and signed.headers["location"] == "/"
            assert browser.get("/").status_code == 200
            assert "Signed in as <strong>admin</strong>" in browser.get("/").text
        with httpx.Client(base_url=fresh.url) as other:
            again = other.get(link)
            assert again.status_code == 401 and "already used" in again.text
            assert not Page(again.text).find("input", name="csrf")
            assert "signoff_session" not in other.cookies


def test_a_link_used_twice_is_refused_the_second_time(hub: HubProcess) -> None:
    link = new_link(hub, "rita")
    with httpx.Client() as first, httpx.Client() as second:
        csrf_first = confirm_page(first, link)
        csrf_second = confirm_page(second, link)  # both browsers opened it before either used it
        assert first.post(link, data={"csrf": csrf_first}).status_code == 303
        refused = second.post(link, data={"csrf": csrf_second})
        assert refused.status_code == 401 and "already used" in refused.text
        assert "signoff_session" not in second.cookies
        assert "signoff_session" in first.cookies


def test_an_expired_link_is_refused(hub: HubProcess) -> None:
    rita = hub.token("rita-expired")
    store = open_store(hub.database)
    try:
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        code = store.create_login_link(token_id(rita), expires_at=past)
    finally:
        store.close()
    link = f"{hub.url}/login/link/{code}"
    with httpx.Client() as browser:
        page = browser.get(link)
        assert page.status_code == 401 and "expired" in page.text
        assert not Page(page.text).find("input", name="csrf")
        csrf = confirm_page(browser, new_link(hub, "someone"))  # a valid sign-in CSRF pair
        refused = browser.post(link, data={"csrf": csrf})
        assert refused.status_code == 401
        assert "signoff_session" not in browser.cookies


def test_a_link_expires_by_the_hub_setting(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "short.db", env={"SIGNOFF_LOGIN_LINK_SECONDS": "1"}) as short:
        assert short.login_url is not None
        link = short.login_url
        with httpx.Client() as browser:
            until(lambda: browser.get(link).status_code == 401, what="the link's expiry")
            assert "expired" in browser.get(link).text


def test_opening_a_link_changes_nothing(hub: HubProcess) -> None:
    link = new_link(hub, "sam")
    with httpx.Client() as browser:
        for _ in range(3):  # a mail scanner, a preview, the person
            page = browser.get(link)
            assert page.status_code == 200 and "Sign in as sam" in page.text
            assert "signoff_session" not in browser.cookies
            assert all(not c.startswith("signoff_session")
                       for c in page.headers.get_list("set-cookie"))
        assert browser.get(f"{hub.url}/").headers["location"] == "/login"
        csrf = Page(page.text).one("input", name="csrf")["value"]
        assert browser.post(link, data={"csrf": csrf}).status_code == 303  # still usable
        assert "Signed in as <strong>sam</strong>" in browser.get(f"{hub.url}/").text


def test_a_cross_site_post_cannot_sign_a_victim_in(hub: HubProcess) -> None:
    link = new_link(hub, "mallory")
    with httpx.Client() as attacker:
        attacker_csrf = confirm_page(attacker, link)  # the attacker opens their own link
    with httpx.Client() as victim:
        # the victim's browser posts the attacker's form from another site: no sign-in
        # cookie of its own (SameSite=Strict), or the wrong one, or a cross-site fetch
        for data, headers in [({}, {}), ({"csrf": attacker_csrf}, {}),
                              ({"csrf": "0" * 64}, {})]:
            refused = victim.post(link, data=data, headers=headers)
            assert refused.status_code == 403, refused.text
        own = confirm_page(victim, link)
        refused = victim.post(link, data={"csrf": own}, headers={"sec-fetch-site": "cross-site"})
        assert refused.status_code == 403
        assert victim.post(link, data={"csrf": attacker_csrf}).status_code == 403
        assert "signoff_session" not in victim.cookies
        # none of that spent the link
        assert victim.post(link, data={"csrf": own}).status_code == 303


def test_login_links_are_not_for_workflow_tokens(hub: HubProcess) -> None:
    refused = cli(hub, "token", "create", "--user", "flow", "--role", "workflow",
                  "--login-link")
    assert refused.exit_code == 2 and "login links are for reviewer and admin" in refused.output


# --- sessions -----------------------------------------------------------------------------------
@contextmanager
def sign_in(hub: HubProcess, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url) as browser:
        link = new_link(hub, user)
        assert browser.post(link, data={"csrf": confirm_page(browser, link)}).status_code == 303
        yield browser


def csrf_of(browser: httpx.Client) -> str:
    value = Page(browser.get("/").text).find("input", name="csrf")[0]["value"]
    assert value
    return value


def test_logout_ends_the_session_in_the_store(hub: HubProcess) -> None:
    with sign_in(hub, "lou") as browser:
        session = browser.cookies["signoff_session"]
        assert browser.get("/").status_code == 200
        out = browser.post("/logout", data={"csrf": csrf_of(browser)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
    with httpx.Client(base_url=hub.url, cookies={"signoff_session": session}) as kept:
        old = kept.get("/")  # the old cookie value, kept by someone
        assert old.status_code == 303 and old.headers["location"] == "/login"
        assert kept.post("/logout", data={"csrf": "x"}).headers["location"] == "/login"
    assert me(hub, session) == 401  # a session id is no API token, before or after


def test_signing_in_again_ends_the_previous_session(hub: HubProcess) -> None:
    with sign_in(hub, "ada") as browser:
        first = browser.cookies["signoff_session"]
        link = new_link(hub, "bea")
        assert browser.post(link, data={"csrf": confirm_page(browser, link)}).status_code == 303
        assert browser.cookies["signoff_session"] != first
        assert "Signed in as <strong>bea</strong>" in browser.get("/").text
    with httpx.Client(base_url=hub.url, cookies={"signoff_session": first}) as kept:
        assert kept.get("/").headers["location"] == "/login"


def test_sessions_work_on_every_replica(hub: HubProcess) -> None:
    replica = HubProcess(hub.database)  # a second hub on the same store
    replica.admin_token = hub.admin_token
    with replica, sign_in(hub, "rhea") as browser:
        session = browser.cookies["signoff_session"]
        with httpx.Client(base_url=replica.url, cookies={"signoff_session": session}) as there:
            assert "Signed in as <strong>rhea</strong>" in there.get("/").text
            csrf = Page(there.get("/").text).find("input", name="csrf")[0]["value"]
            assert csrf == csrf_of(browser)  # CSRF lives with the session, in the store
            assert there.post("/logout", data={"csrf": csrf}).status_code == 303
        assert browser.get("/").headers["location"] == "/login"  # ended on the first hub too


def test_pasting_a_token_on_login_still_works(hub: HubProcess) -> None:
    token = hub.token("paula")
    with httpx.Client(base_url=hub.url) as browser:
        csrf = Page(browser.get("/login").text).one("input", name="csrf")["value"]
        signed = browser.post("/login", data={"token": token, "csrf": csrf})
        assert signed.status_code == 303
        assert browser.cookies["signoff_session"] != token
        assert "Signed in as <strong>paula</strong>" in browser.get("/").text


# --- revocation and expiry ----------------------------------------------------------------------
def test_a_token_revoked_by_the_cli_gets_401_at_once_on_the_running_hub(hub: HubProcess) -> None:
    token = hub.token("victor")
    with httpx.Client(base_url=hub.url) as browser:
        csrf = Page(browser.get("/login").text).one("input", name="csrf")["value"]
        assert browser.post("/login", data={"token": token, "csrf": csrf}).status_code == 303
        for _ in range(3):  # well inside token_cache_seconds (5 s): the hub has it cached
            assert me(hub, token) == 200
        assert browser.get("/").status_code == 200
        revoked = cli(hub, "token", "revoke", token_id(token))
        assert revoked.exit_code == 0, revoked.output
        assert f"token {token_id(token)} of victor revoked" in revoked.stdout
        answer = httpx.get(f"{hub.url}/api/v1/me", headers=hub.headers(token))
        assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]
        assert browser.get("/").headers["location"] == "/login"  # its sessions ended too


def test_a_token_revoked_on_one_replica_is_refused_by_the_other(hub: HubProcess) -> None:
    replica = HubProcess(hub.database)
    replica.admin_token = hub.admin_token
    token = hub.token("rory")
    with replica:
        assert me(hub, token) == 200 and me(replica, token) == 200
        gone = httpx.post(f"{replica.url}/api/v1/tokens/{token_id(token)}/revoke",
                          headers=replica.headers())
        assert gone.status_code == 200 and gone.json()["state"] == "revoked"
        assert me(hub, token) == 401


def test_expired_tokens_get_401(hub: HubProcess) -> None:
    store = open_store(hub.database)
    try:
        now = datetime.now(timezone.utc)
        old = store.create_token(Identity(user="old"), expires_at=now - timedelta(seconds=1))
        soon_at = now + timedelta(seconds=5)
        soon = store.create_token(Identity(user="soon"), expires_at=soon_at)
    finally:
        store.close()
    answer = httpx.get(f"{hub.url}/api/v1/me", headers=hub.headers(old))
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
    with httpx.Client(base_url=hub.url) as browser:
        csrf = Page(browser.get("/login").text).one("input", name="csrf")["value"]
        assert browser.post("/login", data={"token": soon, "csrf": csrf}).status_code == 303
        assert browser.get("/").status_code == 200
        assert me(hub, soon) == 200  # cached from here on
        until(lambda: me(hub, soon) == 401, what="the expiry of a cached token")
        assert datetime.now(timezone.utc) >= soon_at
        assert browser.get("/").headers["location"] == "/login"  # its session ended with it
        refused = browser.post("/login", data={"token": old, "csrf": csrf_again(browser)})
        assert refused.status_code == 401 and "expired" in refused.text


def csrf_again(browser: httpx.Client) -> str:
    value = Page(browser.get("/login").text).one("input", name="csrf")["value"]
    assert value
    return value


def test_last_use_is_recorded(hub: HubProcess) -> None:
    token = hub.token("ulla")
    assert me(hub, token) == 200

    def used() -> Any:
        listed = httpx.get(f"{hub.url}/api/v1/tokens", headers=hub.headers()).json()["tokens"]
        return next(t for t in listed if t["id"] == token_id(token))["last_used_at"]

    assert until(used, what="the last-used write")


# --- the CLI and the API ------------------------------------------------------------------------
def test_token_create_list_revoke_on_the_cli(hub: HubProcess) -> None:
    made = cli(hub, "token", "create", "--user", "cleo", "--group", "ops", "--role", "admin",
               "--name", "cleo laptop", "--expires", "30d")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("so_") and me(hub, secret) == 200
    assert token_id(secret) in made.stderr and "expires" in made.stderr
    listed = cli(hub, "token", "list")
    assert listed.exit_code == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "USER", "ROLE", "GROUPS", "NAME", "CREATED", "EXPIRES",
                              "LAST", "USED", "STATE"]
    [row] = [r for r in rows if r.startswith(token_id(secret))]
    assert " cleo " in row and " admin " in row and " ops " in row and " cleo laptop " in row
    assert row.rstrip().endswith("active")
    assert header.index("STATE") == row.index("active")  # aligned
    assert secret not in listed.stdout and secret[3:] not in listed.stdout
    assert cli(hub, "token", "revoke", token_id(secret)).exit_code == 0
    [row] = [r for r in cli(hub, "token", "list").stdout.splitlines()
             if r.startswith(token_id(secret))]
    assert row.rstrip().endswith("revoked")
    assert me(hub, secret) == 401
    unknown = cli(hub, "token", "revoke", "tk_0000000000000000")
    assert unknown.exit_code == 1 and "no token tk_0000000000000000" in unknown.output


@pytest.mark.parametrize(("expires", "says"), [
    ("soon", "a span like 90m"), ("0d", "a span like 90m"), ("2001-01-01", "in the future"),
    ("9999d", "at most 730 days ahead"), ("999999w", "at most 730 days ahead"),
    ("2999-01-01", "at most 730 days ahead")])
def test_cli_expiry_is_bounded(hub: HubProcess, expires: str, says: str) -> None:
    before = len(cli(hub, "token", "list").stdout.splitlines())
    refused = cli(hub, "token", "create", "--user", "x", "--expires", expires)
    assert refused.exit_code == 2 and "--expires" in refused.output and says in refused.output
    assert len(cli(hub, "token", "list").stdout.splitlines()) == before  # nothing written


def test_tokens_over_the_api_for_admins_only(hub: HubProcess) -> None:
    admin = hub.headers()
    made = httpx.post(f"{hub.url}/api/v1/tokens", headers=admin, json={
        "user": "api-made", "groups": ["ops"], "role": "reviewer", "name": "bot",
        "expires": "12h"})
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body["token"]
    assert body["id"] == token_id(secret) and body["state"] == "active"
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=11) < expires_at - datetime.now(timezone.utc) <= timedelta(hours=12)
    assert me(hub, secret) == 200

    listed = httpx.get(f"{hub.url}/api/v1/tokens", headers=admin)
    assert listed.status_code == 200 and secret not in listed.text
    [row] = [t for t in listed.json()["tokens"] if t["id"] == body["id"]]
    assert (row["user"], row["groups"], row["role"], row["name"]) == (
        "api-made", ["ops"], "reviewer", "bot")
    assert "token" not in row

    for who in (secret, hub.token("wf", role="workflow")):  # reviewer, workflow
        headers = hub.headers(who)
        assert httpx.get(f"{hub.url}/api/v1/tokens", headers=headers).status_code == 403
        assert httpx.post(f"{hub.url}/api/v1/tokens", headers=headers,
                          json={"user": "me-too", "role": "admin"}).status_code == 403
        assert httpx.post(f"{hub.url}/api/v1/tokens/{body['id']}/revoke",
                          headers=headers).status_code == 403
    assert me(hub, secret) == 200  # the refused revoke changed nothing

    bad = httpx.post(f"{hub.url}/api/v1/tokens", headers=admin,
                     json={"user": "late", "expires": "3000d"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "expires"
    assert "late" not in httpx.get(f"{hub.url}/api/v1/tokens", headers=admin).text

    gone = httpx.post(f"{hub.url}/api/v1/tokens/{body['id']}/revoke", headers=admin)
    assert gone.status_code == 200 and gone.json()["state"] == "revoked"
    assert me(hub, secret) == 401
    missing = httpx.post(f"{hub.url}/api/v1/tokens/tk_0000000000000000/revoke", headers=admin)
    assert missing.status_code == 404


def test_token_changes_are_in_the_audit_log(hub: HubProcess) -> None:
    import sqlite3

    made = httpx.post(f"{hub.url}/api/v1/tokens", headers=hub.headers(),
                      json={"user": "audited"}).json()
    httpx.post(f"{hub.url}/api/v1/tokens/{made['id']}/revoke", headers=hub.headers())
    conn = sqlite3.connect(hub.database)
    try:
        rows = conn.execute("SELECT action, actor, channel, data FROM audit"
                            " WHERE data LIKE ? ORDER BY seq", (f"%{made['id']}%",)).fetchall()
    finally:
        conn.close()
    assert [r[:3] for r in rows] == [("token.created", "admin", "api"),
                                    ("token.revoked", "admin", "api")]
    assert all(made["token"] not in r[3] for r in rows)
