"""Shared helpers for the hub benchmarks (``bench/hub_*.py``); not part of the package.

Each benchmark starts a real ``signoff serve`` (``signoff.testing.HubProcess``) on loopback
with a SQLite store in a temporary directory (or, with ``--db postgresql://...``, on that
PostgreSQL database: an empty one, its password in ``PGPASSWORD`` or ``PGPASSFILE``), drives it over HTTP from this process, prints
its figures and ends with one ``PASS``/``MISS`` line per target. ``--json`` also writes the
figures to ``bench/results/<name>.json`` (git-ignored).

The hub runs with its per-token limits lifted (:data:`NO_LIMITS`): a benchmark drives
thousands of events and long-polls through one token on purpose. ``--hub-env`` overrides
them, e.g. ``--hub-env SIGNOFF_CREATE_RATE=50`` to measure with the default rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from signoff.testing import HubProcess

__all__ = ["EVENTS", "NO_LIMITS", "LockWaits", "RawAnswer", "RawConnection", "Report", "Summary", "bench_hub",
           "bench_replicas", "cpu_seconds", "cpu_times", "die", "event_body", "fast_loop",
           "hub_env", "parser", "profiled", "raise_nofile", "rss_kib", "summarize",
           "wait_parked"]

RESULTS = Path(__file__).resolve().parent / "results"
EVENTS = "/api/v1/events"
NO_LIMITS = {"SIGNOFF_CREATE_RATE": "0", "SIGNOFF_ANSWER_RATE": "0",
             "SIGNOFF_PENDING_PER_TOKEN": "0", "SIGNOFF_LONG_POLLS_PER_TOKEN": "0"}
"""The hub settings that lift every per-token limit (0 = unlimited)."""


def _database_url(value: str) -> str:
    """``--db``: a URL without its password (the hubs are started with it on their command
    line, which ``signoff serve`` refuses)."""
    from signoff.store import has_password, shown

    if has_password(value):
        raise argparse.ArgumentTypeError(f"give the password in PGPASSWORD or PGPASSFILE, not "
                                         f"in the URL: {shown(value)}")
    return value


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every hub benchmark shares."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--json", action="store_true",
                     help="also write the figures to bench/results/<name>.json")
    cli.add_argument("--dir", default=None,
                     help="directory for the hub's database (default: a fresh temp dir)")
    cli.add_argument("--db", default=None, metavar="URL", type=_database_url,
                     help="run the hub on this (empty) PostgreSQL database, "
                          "postgresql://user@host:port/name, instead of a temporary SQLite file "
                          "(password in PGPASSWORD or PGPASSFILE)")
    cli.add_argument("--replicas", type=int, default=1, metavar="N",
                     help="run N hubs on the --db PostgreSQL database (default 1)")
    cli.add_argument("--keep", action="store_true", help="keep the temp dir (database, hub log)")
    cli.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE",
                     help="extra environment for the hub process, e.g. SIGNOFF_SWEEP_INTERVAL=5 "
                          "(repeatable)")
    return cli


def hub_env(pairs: Sequence[str]) -> dict[str, str]:
    """``--hub-env KEY=VALUE`` options as a dict."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            die(f"--hub-env: expected KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


@dataclass(frozen=True)
class Summary:
    """Percentiles of a sample, in milliseconds."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float
    min: float
    mean: float

    def line(self) -> str:
        """``p50 … p95 … p99 … max …`` on one line."""
        return (f"n={self.n}  p50 {self.p50:7.2f} ms  p95 {self.p95:7.2f} ms  "
                f"p99 {self.p99:7.2f} ms  max {self.max:7.2f} ms  (min {self.min:.2f}, "
                f"mean {self.mean:.2f})")


def _rank(ordered: Sequence[float], q: float) -> float:
    # nearest-rank percentile: the smallest value with at least q of the sample at or below it
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(seconds: Sequence[float]) -> Summary:
    """Percentiles (nearest rank) of durations given in seconds, reported in milliseconds."""
    if not seconds:
        raise ValueError("summarize: no samples")
    ms = sorted(s * 1000.0 for s in seconds)
    return Summary(n=len(ms), p50=_rank(ms, 0.50), p95=_rank(ms, 0.95), p99=_rank(ms, 0.99),
                   max=ms[-1], min=ms[0], mean=sum(ms) / len(ms))


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass
class Report:
    """Collects figures and verdicts; prints them and writes the JSON file."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    verdicts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def header(self, what: str) -> None:
        """Print what runs where, and how busy the machine is (the figures are only as quiet
        as the machine)."""
        print(f"== {self.name}: {what}")
        print(f"   python {platform.python_version()}, {os.cpu_count()} cores, "
              f"load average {_loadavg()} at start")
        self.figures["load_start"] = _loadavg()

    def check(self, target: str, ok: bool | None, measured: str) -> None:
        """Record one target's verdict: PASS, MISS, or SKIP when it could not be measured."""
        verdict = "SKIP" if ok is None else ("PASS" if ok else "MISS")
        self.verdicts.append((verdict, f"{target}: {measured}"))

    def info(self, what: str, measured: str) -> None:
        """Record a figure the issue asks to report, without a target (an INFO line)."""
        self.verdicts.append(("INFO", f"{what}: {measured}"))

    def note(self, text: str) -> None:
        """A caveat printed with the verdicts."""
        self.notes.append(text)
        print(f"   note: {text}")

    def finish(self, write_json: bool) -> int:
        """Print the verdicts (one line each), write JSON if asked; exit status 1 on a MISS."""
        self.figures["load_end"] = _loadavg()
        print(f"   load average {self.figures['load_end']} at end")
        for verdict, text in self.verdicts:
            print(f"{verdict} {self.name}: {text}")
        if write_json:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{self.name}.json"
            path.write_text(json.dumps({
                "name": self.name, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()},
                "figures": self.figures, "notes": self.notes,
                "verdicts": [{"verdict": v, "target": t} for v, t in self.verdicts],
            }, indent=2, default=str))
            print(f"   figures written to {path}")
        return 1 if any(v == "MISS" for v, _ in self.verdicts) else 0


@contextlib.contextmanager
def bench_hub(directory: str | None, keep: bool, *, db_name: str = "hub.db",
              env: dict[str, str] | None = None, database: Path | None = None,
              admin_token: str | None = None, url: str | None = None) -> Iterator[HubProcess]:
    """A started hub on a store in ``directory`` (or a fresh temp dir, removed afterwards), or
    on the database ``url`` names (``--db``; the log then goes to the directory).

    ``admin_token``: an admin token already in the store (the hub then prints no login URL).
    """
    made = directory is None
    where = Path(directory or tempfile.mkdtemp(prefix="signoff-bench-"))
    where.mkdir(parents=True, exist_ok=True)
    env = {**NO_LIMITS, **(env or {})}
    given = {**os.environ, **env}
    if url is not None and "SIGNOFF_AUDIT_KEY" not in given:
        env["SIGNOFF_AUDIT_KEY"] = secrets.token_hex(32)  # a server keeps no key file beside it
    if url is not None and "SIGNOFF_SIGNING_KEYS" not in given:
        env["SIGNOFF_SIGNING_KEYS"] = f"private {secrets.token_hex(32)}"  # nor a keyring
    hub = HubProcess(url or database or where / db_name, env=env,
                     log_dir=where if url is not None else None)
    print(f"   store: {'PostgreSQL ' + url.split('@')[-1] if url else 'SQLite in ' + str(where)}")
    hub.admin_token = admin_token
    try:
        hub.start(timeout=60)
        yield hub
    finally:
        hub.stop()
        if made and not keep:
            shutil.rmtree(where, ignore_errors=True)
        elif keep:
            print(f"   kept {where} (hub log: {hub.log_path})")


@contextlib.contextmanager
def bench_replicas(args: argparse.Namespace,
                   env: dict[str, str] | None = None) -> Iterator[list[HubProcess]]:
    """``args.replicas`` started hubs on one store: the first as :func:`bench_hub` starts it,
    the others beside it on the same ``--db`` database (several need PostgreSQL).
    """
    if args.replicas < 1 or (args.replicas > 1 and args.db is None):
        die("--replicas N needs N >= 1, and --db postgresql://... for N > 1")
    with bench_hub(args.dir, args.keep, env=env, url=args.db) as first, \
            contextlib.ExitStack() as others:
        hubs = [first]
        for _ in range(args.replicas - 1):
            hub = HubProcess(args.db, env=first.env, log_dir=first.log_path.parent)
            hub.admin_token = first.admin_token  # the store has its admin: no login link
            hub.start(timeout=60)
            others.callback(hub.stop)
            hubs.append(hub)
        if len(hubs) > 1:
            print(f"   replicas: {len(hubs)} hubs on the one database")
        yield hubs


class LockWaits:
    """While inside: how many of the hubs' PostgreSQL sessions wait for, or hold, each of the
    store's advisory locks (the audit lock, the write lock), and how often the audit lock's
    holder was waiting for its hub to send the next statement (``ClientRead``), sampled from
    ``pg_locks`` and ``pg_stat_activity`` every 5 ms on a connection of its own. Does nothing
    without a ``url`` (SQLite).
    """

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.samples = 0
        self.mean: dict[tuple[str, bool], float] = {}
        self.audit_client = 0
        """Samples where the audit lock's holder waited for its hub (``ClientRead``)."""

    def __enter__(self) -> LockWaits:
        if self.url is not None:
            import threading

            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, name="lock-waits", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        import psycopg

        from signoff.store.postgres import _AUDIT_LOCK, _WRITE_LOCK

        names = {_AUDIT_LOCK: "audit", _WRITE_LOCK: "write"}
        totals: dict[tuple[str, bool], int] = {}
        assert self.url is not None
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.005):
                rows = conn.execute(
                    "SELECT l.objid, l.granted, count(*), count(*) FILTER (WHERE"
                    " a.wait_event = 'ClientRead') FROM pg_locks l JOIN pg_stat_activity a"
                    " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = 0"
                    " GROUP BY 1, 2")
                for objid, granted, count, reading in rows:
                    if objid in names:
                        key = (names[objid], granted)
                        totals[key] = totals.get(key, 0) + count
                        if granted and names[objid] == "audit":
                            self.audit_client += reading
                self.samples += 1
        self.mean = {k: v / max(self.samples, 1) for k, v in totals.items()}

    def __exit__(self, *exc: object) -> None:
        if self.url is not None:
            self._stop.set()
            self._thread.join(timeout=10)

    def line(self) -> str | None:
        """The means as one line (None on SQLite)."""
        if self.url is None:
            return None
        if not self.samples:
            return "PostgreSQL sessions: no lock sample taken (the sampler could not connect)"

        def of(lock: str, granted: bool) -> float:
            return self.mean.get((lock, granted), 0.0)
        return (f"PostgreSQL sessions, mean of {self.samples} samples: audit lock "
                f"{of('audit', False):.2f} waiting / {of('audit', True):.2f} holding; "
                f"write lock {of('write', False):.2f} waiting / {of('write', True):.2f} "
                f"holding (shared holders count each); the audit lock's holder waited for "
                f"its hub in {self.audit_client / max(self.samples, 1):.0%} of the samples")


@contextlib.contextmanager
def profiled(pid: int, path: str | None) -> Iterator[None]:
    """Record the hub with ``py-spy`` (``pip install py-spy``) into ``path`` while inside.

    The output is py-spy's ``raw`` format (collapsed stacks with counts, one per line), which
    flamegraph tools and speedscope read. Does nothing when ``path`` is None.
    """
    if path is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        die("--profile needs py-spy: pip install py-spy")
    import subprocess

    recorder = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "500", "--nonblocking", "--threads",
         "--format", "raw", "--output", path],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let py-spy attach before the measured phase starts
    try:
        yield
    finally:
        recorder.send_signal(2)  # SIGINT: py-spy writes its file and exits
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
        print(f"   py-spy profile of the hub written to {path}")


def rss_kib(pid: int) -> int:
    """The resident set size of a process, from ``/proc/<pid>/status`` (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used so far (``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name may hold spaces; fields after it start at ") "
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    return sum(cpu_times(pid))


def raise_nofile() -> int:
    """Raise this process's open-file soft limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def wait_parked(http: httpx.AsyncClient, count: int, timeout: float,
                      watch: Sequence[asyncio.Task[Any]] = ()) -> int:
    """Poll ``/healthz`` until the hub holds at least ``count`` parked long-polls.

    Returns how many are parked; raises ``TimeoutError`` when ``timeout`` runs out first and
    ``RuntimeError`` as soon as one of the ``watch`` tasks (the waiters) has returned.
    """
    deadline = time.monotonic() + timeout
    waiting = -1
    while time.monotonic() < deadline:
        for task in watch:
            if task.done():
                raise RuntimeError(f"a waiter returned before it was answered: {task.result()}")
        answer = await http.get("/healthz")
        answer.raise_for_status()
        waiting = int(answer.json()["waiting"])
        if waiting >= count:
            return waiting
        await asyncio.sleep(0.001 if count == 1 else 0.05)
    raise TimeoutError(f"only {waiting} of {count} long-polls parked after {timeout} s")


@dataclass
class RawAnswer:
    """One HTTP answer read by :class:`RawConnection`."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode(errors="replace")


class RawConnection:
    """One keep-alive HTTP/1.1 connection, a request at a time, for loopback load only.

    httpx spends several times the hub's CPU per request at 16 concurrent requests; on a
    2-core machine shared with the hub that measures the client. This speaks just enough
    HTTP/1.1 for the hub's JSON API: ``Content-Length`` bodies, no chunking, no redirects.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        host_port = url.split("://", 1)[1].rstrip("/")
        self.host, _, port = host_port.partition(":")
        self.port = int(port or 80)
        fixed = {"Host": host_port, **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None,
                      headers: dict[str, str] | None = None) -> RawAnswer:
        """Send one request and read its whole answer."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body is not None:
            extra += "Content-Type: application/json\r\n"
        head = (f"{method} {path} HTTP/1.1\r\n{self._fixed}{extra}"
                f"Content-Length: {len(data)}\r\n\r\n")
        self._writer.write(head.encode() + data)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise RuntimeError("RawConnection reads Content-Length bodies only")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return RawAnswer(status, payload)

    async def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def fast_loop() -> None:
    """Use uvloop for this process's asyncio loop when installed (it comes with the hub extra):
    the less CPU the client takes, the more the hub gets."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def event_body(i: int, **extra: Any) -> dict[str, Any]:
    """A small approval event, as a workflow would send it."""
    return {"name": "bench", "prompt": f"Approve bench event {i}?",
            "context": {"i": i, "note": "signoff benchmark"}, **extra}


def die(message: str) -> None:
    """Stop with a message on stderr."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
