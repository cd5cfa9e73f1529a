"""Listing at scale: the inbox's first page and ``GET /api/v1/events`` over 100,000 pending events.

1. Fill a SQLite store with ``--events`` pending events through ``SQLiteStore.create_event``
   (the hub is not running yet), ``--batch`` events per transaction: a mix of priorities,
   input kinds, creation times over 30 days, and assignees (nobody, one of 200 users, one of
   20 groups, or both). ``--dir`` with an already filled store skips this.
2. Start the hub on it and, one request at a time, time ``--requests`` fetches of each:
   the web inbox ``GET /`` signed in (the token pasted on ``/login`` starts a session) as
   the admin and as a reviewer with two groups; ``GET /api/v1/events?status=pending&limit=50``
   with the admin's and that reviewer's token; and the 2nd and 10th API page by cursor.
   Each answer is checked (status, 50 rows, pending only, urgent-then-oldest order, only
   events the reviewer may see).

Run: ``python bench/hub_list.py [--events 100000] [--requests 100] [--json]``
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from _common import EVENTS, Report, bench_hub, hub_env, parser, summarize

from signoff import EventCreate
from signoff._model import Event
from signoff._rules import Identity
from signoff.store import SQLiteStore

REVIEWER = Identity(user="u007", groups=("g03", "g11"), role="reviewer")
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


def _one_event(rng: random.Random, now: datetime, i: int) -> Event:
    roll = rng.random()
    assignees: list[str] = []
    if roll < 0.35:
        assignees = [f"u{rng.randrange(200):03d}"]
    elif roll < 0.60:
        assignees = [f"group:g{rng.randrange(20):02d}"]
    elif roll < 0.70:
        assignees = [f"u{rng.randrange(200):03d}", f"group:g{rng.randrange(20):02d}"]
    kind = rng.random()
    spec: dict[str, Any] = {"kind": "approval"}
    if kind > 0.85:
        spec = {"kind": "choice", "options": ["rollback", "retry", "ignore"]}
    elif kind > 0.70:
        spec = {"kind": "int", "min": 0, "max": 100}
    body = EventCreate(
        name=f"step-{i % 37}", prompt=f"Approve change #{i} to service {rng.randrange(50)}?",
        input=spec, assignees=assignees,
        priority=rng.choices(list(PRIORITY_RANK), weights=(20, 50, 20, 10))[0],
        context={"change": i, "service": f"svc-{rng.randrange(50)}", "diff_lines": i % 400,
                 "author": f"dev{rng.randrange(80)}"},
        labels={"team": f"t{rng.randrange(8)}"},
        timeout=90 * 86_400.0 if rng.random() < 0.1 else None,  # deadlines far in the future
        source={"orchestrator": "api", "run": f"run-{i}", "step": "approve"},
    )
    created = now - timedelta(seconds=rng.uniform(60, 30 * 86_400))
    deadline = created + timedelta(seconds=body.timeout) if body.timeout else None
    return Event(**body.model_dump(), id=f"ev_{uuid.uuid4().hex}",
                 requested_by=f"flow{rng.randrange(10)}", status="pending", created_at=created,
                 deadline=deadline)


@contextlib.contextmanager
def _one_transaction(store: SQLiteStore) -> Iterator[None]:
    # Bench-only shortcut: run many create_event calls in ONE transaction by letting the
    # store's private _write() join an open one. The rows are exactly what create_event
    # writes (events, assignees, hash-chained audit); only the per-event fsync is skipped.
    writer, lock = store._writer, store._lock

    @contextlib.contextmanager
    def joined() -> Iterator[Any]:
        yield writer

    with lock:
        writer.execute("BEGIN IMMEDIATE")
        store._write = joined
        try:
            yield
        except BaseException:
            writer.execute("ROLLBACK")
            raise
        else:
            writer.execute("COMMIT")
        finally:
            del store._write  # back to the class's method


def fill(path: Path, events: int, batch: int, seed: int) -> tuple[str, float]:
    """Fill the store (unless already filled); returns an admin token and the seconds taken."""
    store = SQLiteStore(path)
    store.migrate()
    try:
        have = store.count_events(status="pending")
        began = time.perf_counter()
        if have < events:
            batched = hasattr(store, "_writer") and hasattr(store, "_lock")
            rng, now = random.Random(seed + have), datetime.now(timezone.utc)
            done = have
            while done < events:
                size = min(batch, events - done)
                made = [_one_event(rng, now, done + k) for k in range(size)]
                with _one_transaction(store) if batched else contextlib.nullcontext():
                    for event in made:
                        store.create_event(event, channel="bench")
                done += size
                if sys.stdout.isatty():
                    print(f"\r   filling the store: {done}/{events}", end="", flush=True)
                elif done % 20_000 < size or done == events:
                    print(f"   filling the store: {done}/{events}", flush=True)
            if sys.stdout.isatty():
                print()
        elif have > events:
            print(f"   note: the store holds {have} pending events (more than --events)")
        return store.create_token(Identity(user="bench-admin", role="admin")), \
            time.perf_counter() - began
    finally:
        store.close()


def _check_page(body: dict[str, Any], who: Identity | None, limit: int) -> None:
    events = body["events"]
    if len(events) != limit:
        raise RuntimeError(f"expected {limit} events, got {len(events)}")
    keys = [(-PRIORITY_RANK[e["priority"]], e["created_at"]) for e in events]
    if any(e["status"] != "pending" for e in events) or keys != sorted(keys):
        raise RuntimeError("page not pending-only or not urgent-then-oldest")
    if who is not None:
        for e in events:
            if e["assignees"] and not who.principals.intersection(e["assignees"]):
                raise RuntimeError(f"{who.user} was shown {e['id']} assigned to {e['assignees']}")


async def _time(label: str, fetch: Callable[[], Awaitable[httpx.Response]],
                check: Callable[[httpx.Response], None], requests: int,
                warmup: int) -> list[float]:
    samples = []
    for k in range(warmup + requests):
        began = time.perf_counter()
        answer = await fetch()
        took = time.perf_counter() - began
        if answer.status_code != 200:
            raise RuntimeError(f"{label}: {answer.status_code} {answer.text[:300]}")
        check(answer)
        if k >= warmup:
            samples.append(took)
    return samples


async def _login(http: httpx.AsyncClient, token: str) -> bool:
    form = await http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        return False
    answer = await http.post("/login", data={"token": token, "csrf": csrf.group(1)})
    return answer.status_code in (302, 303, 307) and "signoff_session" in http.cookies


async def measure(url: str, admin: str, reviewer: str, requests: int, warmup: int,
                  report: Report) -> dict[str, list[float] | str]:
    results: dict[str, list[float] | str] = {}
    params: dict[str, str | int] = {"status": "pending", "limit": 50}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for who, token, ident in (("admin", admin, None), ("reviewer", reviewer, REVIEWER)):
            headers = {"Authorization": f"Bearer {token}"}

            def check(answer: httpx.Response, ident: Identity | None = ident) -> None:
                _check_page(answer.json(), ident, 50)

            def page(cursor: str | None,
                     headers: dict[str, str] = headers) -> Callable[[], Awaitable[httpx.Response]]:
                query = dict(params) if cursor is None else {**params, "cursor": cursor}

                async def fetch() -> httpx.Response:
                    return await http.get(EVENTS, params=query, headers=headers)
                return fetch

            results[f"api {who} page 1"] = await _time(
                f"api {who} page 1", page(None), check, requests, warmup)
            cursor = None
            cursors: dict[int, str] = {}
            for number in range(1, 10):  # walk to the cursors of pages 2 and 10
                answer = await page(cursor)()
                cursor = answer.json()["next_cursor"]
                if cursor is None:
                    raise RuntimeError(f"{who}: no page {number + 1}")
                cursors[number + 1] = cursor
            for number in (2, 10):
                results[f"api {who} page {number}"] = await _time(
                    f"api {who} page {number}", page(cursors[number]), check, requests, warmup)

        for who, token in (("admin", admin), ("reviewer", reviewer)):
            async with httpx.AsyncClient(base_url=url, timeout=60) as browser:
                if not await _login(browser, token):
                    report.note(f"inbox: /login did not sign the {who} in (no "
                                "signoff_session cookie); inbox not measured")
                    results[f"inbox {who} first page"] = "not available"
                    continue

                def rows(answer: httpx.Response) -> None:
                    shown = answer.text.count('href="/events/ev_')
                    if shown < 50:
                        raise RuntimeError(f"inbox shows {shown} events, expected 50")

                async def inbox(b: httpx.AsyncClient = browser) -> httpx.Response:
                    return await b.get("/")

                results[f"inbox {who} first page"] = await _time(
                    f"inbox {who}", inbox, rows, requests, warmup)
    return results


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--events", type=int, default=100_000, help="pending events (100000)")
    cli.add_argument("--batch", type=int, default=5000, help="events per insert transaction")
    cli.add_argument("--requests", type=int, default=100, help="timed fetches per endpoint")
    cli.add_argument("--warmup", type=int, default=5, help="untimed fetches first")
    cli.add_argument("--seed", type=int, default=7)
    args = cli.parse_args()
    if not 500 <= args.events <= 5_000_000 or not 1 <= args.requests <= 10_000:
        cli.error("--events must be 500..5000000 and --requests 1..10000")
    if not 1 <= args.batch <= 100_000:
        cli.error("--batch must be 1..100000")
    report = Report("hub_list")
    report.header(f"{args.events} pending events; inbox and API pages, {args.requests} "
                  "requests each, one at a time")
    made = args.dir is None
    where = Path(tempfile.mkdtemp(prefix="signoff-bench-") if made else args.dir)
    database = where / "hub_list.db"
    try:
        admin, filled = fill(database, args.events, args.batch, args.seed)
        print(f"   store ready in {filled:.1f} s ({database.stat().st_size / 2**20:.0f} MiB)")
        with bench_hub(str(where), args.keep, database=database, admin_token=admin,
                       env=hub_env(args.hub_env)) as hub:
            reviewer = hub.token(REVIEWER.user, role="reviewer", groups=REVIEWER.groups)
            results = asyncio.run(measure(hub.url, admin, reviewer, args.requests,
                                          args.warmup, report))
    finally:
        if made and not args.keep:
            shutil.rmtree(where, ignore_errors=True)
    report.figures.update(events=args.events, requests=args.requests)
    for label, samples in results.items():
        if isinstance(samples, str):
            print(f"   {label:28s} {samples}")
            report.check(f"{label} p95 < 50 ms", None, samples)
            continue
        s = summarize(samples)
        print(f"   {label:28s} {s.line()}")
        report.figures[label] = s.__dict__
        report.check(f"{label} p95 < 50 ms", s.p95 < 50, f"{s.p95:.1f} ms")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
