"""The hub never stalls: one slow or broken integration at a time, and what everyone else sees.

For each case (see ``tests/hub/stall_cases.py``, shared with ``tests/hub/test_stall.py``), a real
``signoff serve`` runs while one integration misbehaves: the hub's first notification (apprise
loads), a decider that takes 10 s, a webhook receiver that hangs, deliveries to an engine nobody
listens for, 1,000 notifications falling due at once. Meanwhile a probe process polls
``/healthz`` every 20 ms and a long-poll wake in a loop, and watches a witness event whose
escalation tier is due 1 s and whose deadline 2.5 s after the trouble starts.

Prints, per case: worst ``/healthz`` latency, worst wake latency (the answer's 200 → the
waiter's 200), worst answer round trip, worst deadline lateness (the tier and the timeout), and what else the case noted. Targets:
probe < 100 ms, lateness < 1 s.

Run: ``python bench/hub_stall.py [--case NAME ...] [--json]``. To measure another source
tree's hub (e.g. the code before this change), ``--hub-pythonpath DIR`` where ``DIR/signoff``
is that tree's ``core/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hub.stall_cases import CASES, Figures, run_case  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _ms(seconds: float | None) -> str:
    return "      -" if seconds is None else f"{seconds * 1000:7.0f}"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--case", action="append", choices=sorted(CASES),
                     help="run only this case (repeatable; default: all five)")
    cli.add_argument("--hub-pythonpath", default=None,
                     help="PYTHONPATH for the hub process (measure another source tree)")
    cli.add_argument("--label", default="this tree", help="a name for the figures")
    cli.add_argument("--json", action="store_true",
                     help="also write bench/results/hub_stall[-LABEL].json")
    args = cli.parse_args()
    env = {"PYTHONPATH": args.hub_pythonpath} if args.hub_pythonpath else None
    rows: list[Figures] = []
    for name in args.case or list(CASES):
        tmp = Path(tempfile.mkdtemp(prefix=f"signoff-stall-{name}-"))
        try:
            figures = run_case(name, tmp, env=env)
        except Exception as exc:  # a case that breaks still prints the others
            print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append(figures)
        print(f"{name:<20} healthz {_ms(figures.healthz_worst)} ms (p99 "
              f"{_ms(figures.healthz_p99).strip()})  wake "
              f"{_ms(figures.wake_worst)} ms  answer {_ms(figures.answer_worst)} ms  tier late {_ms(figures.tier_late)} ms  "
              f"deadline late {_ms(figures.deadline_late)} ms  loop lag max "
              f"{_ms(figures.loop_lag_max)} ms  ({figures.probes} probes) {figures.notes}",
              flush=True)
    print(f"\n{args.label}: case, worst probe latency, worst deadline lateness")
    for f in rows:
        probe_ok = "PASS" if f.probe_worst < 0.1 else "MISS"
        late = f.deadline_worst
        late_ok = "PASS" if late is not None and late < 1.0 else "MISS"
        print(f"  {f.case:<20} probe {_ms(f.probe_worst)} ms {probe_ok}   "
              f"lateness {_ms(late)} ms {late_ok}")
    if args.json:
        RESULTS.mkdir(exist_ok=True)
        suffix = "" if args.label == "this tree" else "-" + args.label.replace(" ", "-")
        out = RESULTS / f"hub_stall{suffix}.json"
        out.write_text(json.dumps([{**f.__dict__, "probe_worst": f.probe_worst,
                                    "deadline_worst": f.deadline_worst} for f in rows],
                                  indent=2, default=str))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
