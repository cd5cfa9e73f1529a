"""Listing at scale: the inbox's first page and ``GET /api/v1/events`` over 100,000 pending events.

1. Fill a SQLite store (or, with ``--db postgresql://...``, a PostgreSQL database) with
   ``--events`` pending events through the store's ``create_event`` (the hub is not running
   yet), ``--batch`` events per transaction: a mix of priorities, input kinds, creation times
   over 30 days, and assignees (nobody, one of 200 users, one of 20 groups, or both).
   ``--dir`` with an already filled store skips this. ``--decided N`` adds N decided events
   beside them (a policy decision, as ``create_event`` writes it).

   ``--clone K`` (for a million rows) writes only ``1/K`` of each through the store and the
   rest as copies of those rows made in SQL (``INSERT ... SELECT``, new ids, creation times
   moved): the rows read back exactly as the store's own, but the copies have no audit
   entries, so ``signoff audit verify`` does not pass on such a database. The list and the
   inbox never read the audit table. PostgreSQL then gets ``VACUUM (ANALYZE)``, which
   autovacuum would run soon after such a load: the pages are timed on the database as it
   settles, not while autovacuum works through a million new rows.
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
import secrets
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
from signoff._model import Decision, Event, Outcome
from signoff._rules import Identity
from signoff.store import SQLiteStore, Store, open_store

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
def _one_transaction(store: Any) -> Iterator[None]:
    # Bench-only shortcut: run many create_event calls in ONE transaction by letting the
    # store's private _write() join an open one. The rows are exactly what create_event
    # writes (events, assignees, hash-chained audit); only the per-event fsync is skipped.
    if not isinstance(store, SQLiteStore):
        from signoff.store.postgres import _Conn

        with store._pool.connection() as raw, raw.transaction():
            conn = _Conn(raw)

            @contextlib.contextmanager
            def joined_pg(*, alongside: bool = False) -> Iterator[Any]:
                yield conn  # alongside or not: one transaction, its entries chained at once

            store._write = joined_pg
            try:
                yield
            finally:
                del store._write
        return
    writer, lock = store._writer, store._lock

    @contextlib.contextmanager
    def joined(*, alongside: bool = False) -> Iterator[Any]:
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


def _decided(event: Event) -> Decision:
    return Decision(value=True, outcome=Outcome.approved, by="policy", channel="policy",
                    at=event.created_at + timedelta(seconds=30), rule="bench")


def _fill_status(store: Store, status: str, want: int, batch: int, clone: int, seed: int,
                 now: datetime) -> None:
    """Make ``want`` events of ``status`` (pending or decided) through the store, ``1/clone``
    of them when cloning (the copies come after)."""
    have = store.count_events(status=status)
    target = -(-want // clone)  # written through the store; the rest are copies
    if have >= target:
        return
    rng = random.Random(seed + have + (0 if status == "pending" else 10**9))
    done = have
    while done < target:
        size = min(batch, target - done)
        made = [_one_event(rng, now, done + k) for k in range(size)]
        # a decided event is read back after its write, outside a shared transaction: each
        # in a transaction of its own
        with _one_transaction(store) if status == "pending" else contextlib.nullcontext():
            for event in made:
                store.create_event(event, channel="bench",
                                   decision=_decided(event) if status == "decided" else None)
        done += size
        print(f"   {status} through the store: {done}/{target}", flush=True)


def _columns(conn: Any, table: str, postgres: bool) -> list[str]:
    if postgres:
        rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE"
                            " table_name = ? AND table_schema = current_schema()"
                            " ORDER BY ordinal_position", (table,)).fetchall()
    else:
        rows = conn.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
    return [r[0] for r in rows]


def _clone(store: Any, status: str, copies: int, postgres: bool) -> int:
    """Add ``copies - 1`` SQL copies of every event of ``status`` (with its assignees and
    decision): new ids (the template's first 24 hex digits and the copy's number), creation
    times moved back by a few seconds per copy. Returns the events added."""
    if copies <= 1:
        return 0
    new_id = ("'ev_' || substr({col}, 4, 24) || lpad(to_hex(n.i), 8, '0')" if postgres
              else "'ev_' || substr({col}, 4, 24) || printf('%08x', n.i)")
    series = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    before = store.count_events(status=status)
    with _one_transaction(store):
        with store._write() as conn:
            for table, id_col in (("events", "id"), ("event_assignees", "event_id"),
                                  ("decisions", "event_id")):
                cols = _columns(conn, table, postgres)
                picked = []
                for c in cols:
                    if c == id_col:
                        picked.append(new_id.format(col=f"t.{c}"))
                    elif c == "created_at":  # an event's, and its assignments' copy
                        picked.append("t.created_at - n.i * 7.5")
                    else:
                        picked.append(f't."{c}"')
                where = ("t.status = ?" if table == "events" else
                         "t.event_id IN (SELECT id FROM events WHERE status = ?)")
                quoted = ", ".join(f'"{c}"' for c in cols)
                conn.execute(
                    f"{series}INSERT INTO {table} ({quoted}) SELECT {', '.join(picked)}"
                    f" FROM {table} t, n WHERE {where}"
                    + (" AND length(t.id) = 35" if table == "events" else
                       " AND length(t.event_id) = 35"),
                    (copies - 1, status))
    return store.count_events(status=status) - before


def fill(target: Path | str, events: int, batch: int, seed: int, decided: int = 0,
         clone: int = 1, audit_key: bytes | None = None) -> tuple[str, float]:
    """Fill the store (unless already filled); returns an admin token and the seconds taken."""
    postgres = isinstance(target, str)
    store: Any = open_store(target, audit_key=audit_key) if postgres else SQLiteStore(target)
    store.migrate()
    try:
        began = time.perf_counter()
        now = datetime.now(timezone.utc)
        for status, want in (("pending", events), ("decided", decided)):
            if want and store.count_events(status=status) < want:
                _fill_status(store, status, want, batch, clone, seed, now)
                if clone > 1:
                    written = -(-want // clone)  # ceil: what _fill_status wrote
                    added = _clone(store, status, -(-want // written), postgres)
                    print(f"   {status}: {added} events copied in SQL", flush=True)
        if postgres:
            with store._pool.connection() as raw:
                raw.execute("VACUUM (ANALYZE)")
        have = store.count_events(status="pending")
        if have != events:
            print(f"   note: the store holds {have} pending events (--events {events})")
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
                    raise SystemExit(f"hub_list: the {who} sees only {number} page(s) of 50 "
                                     "pending events; pages 2 and 10 need more: raise --events "
                                     "(the reviewer sees about 40% of them)")
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
    cli.add_argument("--decided", type=int, default=0,
                     help="decided events beside the pending ones (0)")
    cli.add_argument("--clone", type=int, default=1, metavar="K",
                     help="write 1/K of the events through the store and the rest as SQL copies "
                          "(1: all through the store); see the module docstring")
    args = cli.parse_args()
    if not 500 <= args.events <= 5_000_000 or not 1 <= args.requests <= 10_000:
        cli.error("--events must be 500..5000000 and --requests 1..10000")
    if not 1 <= args.batch <= 100_000:
        cli.error("--batch must be 1..100000")
    if not 0 <= args.decided <= 5_000_000 or not 1 <= args.clone <= 10_000:
        cli.error("--decided must be 0..5000000 and --clone 1..10000")
    if args.replicas != 1:
        cli.error("--replicas: this bench measures one hub")
    report = Report("hub_list")
    report.header(f"{args.events} pending events"
                  + (f" and {args.decided} decided" if args.decided else "")
                  + f"; inbox and API pages, {args.requests} requests each, one at a time")
    made = args.dir is None
    where = Path(tempfile.mkdtemp(prefix="signoff-bench-") if made else args.dir)
    database = where / "hub_list.db"
    env = hub_env(args.hub_env)
    try:
        if args.db:
            env.setdefault("SIGNOFF_AUDIT_KEY", secrets.token_hex(32))
            admin, filled = fill(args.db, args.events, args.batch, args.seed, args.decided,
                                 args.clone, env["SIGNOFF_AUDIT_KEY"].encode())
            print(f"   store ready in {filled:.1f} s")
        else:
            admin, filled = fill(database, args.events, args.batch, args.seed, args.decided,
                                 args.clone)
            print(f"   store ready in {filled:.1f} s "
                  f"({database.stat().st_size / 2**20:.0f} MiB)")
        with bench_hub(str(where), args.keep, database=None if args.db else database,
                       admin_token=admin, env=env, url=args.db) as hub:
            reviewer = hub.token(REVIEWER.user, role="reviewer", groups=REVIEWER.groups)
            results = asyncio.run(measure(hub.url, admin, reviewer, args.requests,
                                          args.warmup, report))
    finally:
        if made and not args.keep:
            shutil.rmtree(where, ignore_errors=True)
    report.figures.update(events=args.events, decided=args.decided, requests=args.requests,
                          database="postgresql" if args.db else "sqlite")
    for label, samples in results.items():
        if isinstance(samples, str):
            print(f"   {label:28s} {samples}")
            report.check(f"{label} p95 < 50 ms", None, samples)
            continue
        s = summarize(samples)
        print(f"   {label:28s} {s.line()}")
        report.figures[label] = s.__dict__
        report.check(f"{label} p95 < 50 ms", s.p95 < 50, f"{s.p95:.1f} ms")
        if label.endswith(("page 1", "first page")):  # issue 16's target for the first page
            report.check(f"{label} p95 <= 20 ms", s.p95 <= 20, f"{s.p95:.1f} ms")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
