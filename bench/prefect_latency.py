"""Prefect adapter: resume latency and the memory a waiting flow holds.

    .venvs/prefect/bin/python bench/prefect_latency.py [--rounds 8] [--prefect-api URL]

Starts a real ``prefect server start`` (unless ``--prefect-api`` names one), a real hub whose
Prefect resumer points at it, and a runner (``serve()``) for two flows of this file. Then:

1. **Latency**, in one flow run, alternating: ``approve()`` with the adapter's defaults,
   answered through the hub's API, against plain ``pause_flow_run()`` (Prefect's default poll
   interval, 10 s) resumed with ``resume_flow_run()``. Each answer (or resume call) comes at a
   random point of the flow's poll cycle; measured from just before it to the line after the
   step in the flow, same clock, same machine.
2. **Memory** held while waiting: the RSS of the flow run's process paused in ``approve()``,
   against ``approve(suspend=True)``, where the flow run's process exits (the runner, shared
   by every run it serves, stays; its RSS is printed too). Also the time from the answer to
   the suspended flow going on (the runner polls every ``PREFECT_RUNNER_POLL_FREQUENCY`` s).
3. **Cost of a poll** on the Prefect API: server CPU per ``GET /flow_runs/{id}``, which is what
   a paused flow does every poll interval.

Figures print as they come; a summary ends the run. Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def _setup(argv: list[str]) -> tuple[argparse.Namespace, Path, str, int, dict[str, str]]:
    """Parse the arguments and set Prefect's environment; before Prefect is imported, since
    Prefect reads its settings once, on import."""
    from signoff.testing import free_port

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prefect-api", help="use this Prefect API instead of starting one")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="signoff-bench-prefect-"))
    port = free_port()
    api = args.prefect_api or f"http://127.0.0.1:{port}/api"
    env = {"PREFECT_HOME": str(work / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    os.environ.update(env)
    return args, work, api, port, env


if __name__ == "__main__" and sys.argv[1:] != ["serve"]:
    SETUP = _setup(sys.argv[1:])

from prefect import flow, serve  # noqa: E402
from prefect.flow_runs import pause_flow_run, resume_flow_run  # noqa: E402

from signoff.adapters.prefect import DEFAULT_POLL_INTERVAL, approve  # noqa: E402


# -- the flows (run by the runner this script starts with `serve`) -------------------------
def _note(out: str, **line: Any) -> None:
    line.setdefault("t", time.time())
    line["pid"] = os.getpid()
    with Path(out).open("a") as file:
        file.write(json.dumps(line) + "\n")


@flow(name="signoff-bench-latency")
def latency(out: str, rounds: int) -> None:
    """Each round: one ``approve()`` with the adapter's defaults, then one plain pause."""
    for i in range(rounds):
        approve(f"Bench round {i}?", key=f"bench-{i}")
        _note(out, kind="adapter", i=i)
        pause_flow_run(timeout=600, key=f"plain-{i}")
        _note(out, kind="plain", i=i)


@flow(name="signoff-bench-suspend")
def suspended(out: str) -> None:
    """One suspended approval."""
    _note(out, kind="start")
    approve("Bench suspended?", key="bench-suspend", suspend=True)
    _note(out, kind="done")


# -- the driver ----------------------------------------------------------------------------
def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []


def _wait(what: str, check: Any, timeout: float = 300.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    """Run the benchmark and print its figures."""
    from signoff.testing import HubProcess

    args, work, api, port, env = SETUP
    env = {**os.environ, **env}
    children: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str], log: str, extra: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, env={**env, **(extra or {})},
                                   stdout=(work / log).open("a"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        children.append(process)
        return process

    import httpx

    try:
        started = time.monotonic()
        server = None
        if not args.prefect_api:
            server = spawn([sys.executable, "-m", "prefect", "server", "start", "--host",
                            "127.0.0.1", "--port", str(port)], "server.log")

        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the Prefect server", healthy, every=0.3)
        print(f"prefect server ready in {time.monotonic() - started:.1f} s ({api})", flush=True)
        hub = HubProcess(work / "hub.db", env={"SIGNOFF_RESUMERS__PREFECT__API_URL": api})
        hub.start()
        token = hub.token("prefect-bench", role="workflow")
        runner = spawn([sys.executable, str(HERE), "serve"], "runner.log",
                       {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": token})
        try:
            _run(args.rounds, api, hub, work, runner, server)
        finally:
            hub.stop()
    finally:
        for process in reversed(children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def _run(rounds: int, api: str, hub: Any, work: Path, runner: Any, server: Any) -> None:
    from uuid import UUID

    import httpx

    def deployment(name: str) -> Any:
        answer = httpx.get(f"{api}/deployments/name/{name}/bench", timeout=10)
        return answer.json() if answer.status_code == 200 else None

    def start(name: str, parameters: dict[str, Any]) -> str:
        found = _wait(f"deployment {name}", lambda: deployment(name), every=0.3)
        created = _post(f"{api}/deployments/{found['id']}/create_flow_run",
                        {"parameters": parameters})
        return str(created["id"])

    def paused_at(run_id: str, key: str) -> bool:
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"] or {}
        details = state.get("state_details") or {}
        if state.get("type") != "PAUSED" or details.get("pause_key") != key:
            return False
        schema = (details.get("run_input_keyset") or {}).get("schema")
        return schema is None or httpx.get(f"{api}/flow_runs/{run_id}/input/{schema}",
                                           timeout=10).status_code == 200

    def event_of(run_id: str, key: str) -> Any:
        answer = httpx.get(f"{hub.url}/api/v1/events", headers=hub.headers(),
                           params={"status": "pending"}, timeout=10)
        if answer.status_code != 200:
            print(f"hub answered {answer.status_code}: {answer.text[:200]}", flush=True)
            return None
        page = answer.json()
        return next((e for e in page["events"] if e["key"] == f"prefect:{run_id}:{key}"), None)

    def noted(out: Path, kind: str, i: int | None = None) -> Any:
        return next((x for x in _lines(out) if x.get("kind") == kind
                     and (i is None or x.get("i") == i)), None)

    # 1. latency, both ways in one flow run
    out = work / "latency.jsonl"
    run_id = start("signoff-bench-latency", {"out": str(out), "rounds": rounds})
    adapter: list[float] = []
    plain: list[float] = []
    paused_rss: list[float] = []
    flow_pid = None
    for i in range(rounds):
        event = _wait(f"event bench-{i}", lambda i=i: event_of(run_id, f"bench-{i}"), every=0.05)
        _wait(f"pause bench-{i}", lambda i=i: paused_at(run_id, f"bench-{i}"))
        if flow_pid is None:
            flow_pid = _flow_pid(runner.pid, run_id)
        rss = _rss_mib(flow_pid) if flow_pid else None
        if rss:
            paused_rss.append(rss)
        # answer at a random point of the flow's poll cycle, as a person would
        time.sleep(random.uniform(0, DEFAULT_POLL_INTERVAL))
        t0 = time.time()
        httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": True},
                   headers=hub.headers(), timeout=10).raise_for_status()
        adapter.append(_wait("adapter resume", lambda i=i: noted(out, "adapter", i))["t"] - t0)
        _wait(f"pause plain-{i}", lambda i=i: paused_at(run_id, f"plain-{i}"))
        time.sleep(random.uniform(0, 10))  # Prefect's default poll interval
        t0 = time.time()
        resume_flow_run(UUID(run_id))  # Prefect's client retries a busy server's 503
        plain.append(_wait("plain resume", lambda i=i: noted(out, "plain", i))["t"] - t0)
        print(f"round {i + 1}/{rounds}: adapter {adapter[-1]:.2f} s, "
              f"plain pause_flow_run {plain[-1]:.2f} s", flush=True)

    # 2. memory: a suspended run holds no process
    out = work / "suspend.jsonl"
    run_id = start("signoff-bench-suspend", {"out": str(out)})
    first = _wait("the suspending flow", lambda: noted(out, "start"))
    event = _wait("event bench-suspend", lambda: event_of(run_id, "bench-suspend"), every=0.05)
    _wait("suspension", lambda: paused_at(run_id, "bench-suspend"))
    _wait("the flow process to exit", lambda: _rss_mib(first["pid"]) is None, timeout=60)
    runner_rss = _rss_mib(runner.pid) or 0.0
    t0 = time.time()
    httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": True},
               headers=hub.headers(), timeout=10).raise_for_status()
    suspend_latency = _wait("the re-run", lambda: noted(out, "done"), timeout=600)["t"] - t0

    # 3. what one poll costs the Prefect server
    poll_ms = None
    if server is not None:
        with httpx.Client(timeout=10) as client:
            before = _cpu_seconds(server.pid)
            for _ in range(200):
                client.get(f"{api}/flow_runs/{run_id}").raise_for_status()
            poll_ms = (_cpu_seconds(server.pid) - before) / 200 * 1000

    print("\n== Prefect adapter ==", flush=True)
    _summary(f"adapter approve() (poll {DEFAULT_POLL_INTERVAL:.0f} s), answer -> flow goes on",
             adapter)
    _summary("plain pause_flow_run (poll 10 s) + resume_flow_run", plain)
    print(f"ratio of means (plain / adapter): {statistics.mean(plain) / statistics.mean(adapter):.1f}x")
    if paused_rss:
        print(f"RSS of a paused flow run's process: {statistics.mean(paused_rss):.0f} MiB")
    print("RSS held by a suspended flow run: 0 MiB (its process exited); "
          f"the runner serving the deployments: {runner_rss:.0f} MiB, shared by all its runs")
    print(f"suspended run, answer -> flow goes on after its re-run: {suspend_latency:.1f} s "
          f"(runner poll {os.environ.get('PREFECT_RUNNER_POLL_FREQUENCY', '10')} s + "
          "a new flow process)")
    if poll_ms is not None:
        print(f"Prefect server CPU per poll (GET /flow_runs/{{id}}): {poll_ms:.1f} ms, so one "
              f"paused flow at the default poll costs {poll_ms / DEFAULT_POLL_INTERVAL:.1f} ms "
              f"of server CPU per second")


def _post(url: str, body: dict[str, Any]) -> Any:
    """POST, again while Prefect on SQLite answers 503 (its database is busy)."""
    import httpx

    for _ in range(40):
        answer = httpx.post(url, json=body, timeout=10)
        if answer.status_code != 503:
            break
        time.sleep(0.25)
    answer.raise_for_status()
    return answer.json()


def _flow_pid(runner_pid: int, run_id: str) -> int | None:
    """The runner's child process that runs ``run_id`` (its command line or environment)."""
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            status = (child / "status").read_text()
            ppid = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
            environ = (child / "environ").read_bytes()
        except (OSError, StopIteration):
            continue
        if ppid == runner_pid and run_id.encode() in environ:
            return int(child.name)
    return None


def _summary(label: str, values: list[float]) -> None:
    ordered = sorted(values)
    print(f"{label}: mean {statistics.mean(values):.2f} s, median "
          f"{statistics.median(values):.2f} s, min {ordered[0]:.2f} s, max {ordered[-1]:.2f} s "
          f"(n={len(values)})", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve(latency.to_deployment(name="bench"), suspended.to_deployment(name="bench"),
              print_starting_message=False)
    else:
        main()
