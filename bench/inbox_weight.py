"""Page weight and first contentful paint of the inbox in Chromium, over 100,000 pending events.

1. Fill a SQLite store with ``--events`` pending events (``hub_list.fill``: the same mix of
   priorities, kinds, ages and assignees), or reuse one with ``--dir``.
2. Start the hub on it; for the admin and for a reviewer with two groups, fetch the inbox
   ``/`` and the first event's page, and count the bytes a browser downloads for each (HTML +
   CSS + JS, each gzip-compressed at level 6 as a proxy would, and uncompressed).
3. In Debian's Chromium (Playwright), at 1280×800 and 390×844, load each page ``--loads``
   times with a cold cache and read ``first-contentful-paint`` from the Paint Timing API.

Run: ``python bench/inbox_weight.py [--events 100000] [--loads 10] [--json]``
"""

from __future__ import annotations

import gzip
import re
import shutil
import statistics
import tempfile
from pathlib import Path

import httpx
from _common import Report, bench_hub, hub_env, parser
from hub_list import REVIEWER, fill

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIZES = {"1280x800": {"width": 1280, "height": 800}, "390x844": {"width": 390, "height": 844}}


def _login(http: httpx.Client, token: str) -> None:
    csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text)
    assert csrf is not None
    assert http.post("/login", data={"token": token, "csrf": csrf.group(1)}).status_code == 303


def weight(http: httpx.Client, path: str) -> tuple[int, int, str]:
    """Compressed and raw bytes of the page and the stylesheet and script it links."""
    page = http.get(path)
    assert page.status_code == 200, page.text[:200]
    parts = [page.content]
    for asset in re.findall(r'(?:href|src)="(/static/signoff\.(?:css|js)\?v=\w+)"', page.text):
        parts.append(http.get(asset).content)
    first = re.search(r'href="(/events/[^"]+)"', page.text)
    return (sum(len(gzip.compress(p, 6)) for p in parts), sum(len(p) for p in parts),
            first.group(1) if first else "")


def fcp(url: str, token: str, loads: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for size, viewport in SIZES.items():
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                page.goto(f"{url}/login")
                page.fill("#token", token)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/")
                event = page.locator(".row-prompt").first.get_attribute("href")
                for name, path in (("inbox", "/"), ("event", event)):
                    samples = []
                    for _ in range(loads):
                        cdp = context.new_cdp_session(page)
                        cdp.send("Network.clearBrowserCache")
                        page.goto(f"{url}{path}")
                        samples.append(page.evaluate(
                            "() => new Promise(done => new PerformanceObserver((list, obs) => {"
                            " const e = list.getEntriesByName('first-contentful-paint')[0];"
                            " if (e) { obs.disconnect(); done(e.startTime); } })"
                            ".observe({type: 'paint', buffered: true}))"))
                    out[f"{name} {size}"] = {"median_ms": statistics.median(samples),
                                             "max_ms": max(samples)}
                context.close()
        finally:
            browser.close()
    return out


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--events", type=int, default=100_000, help="pending events (100000)")
    cli.add_argument("--batch", type=int, default=5000, help="events per insert transaction")
    cli.add_argument("--loads", type=int, default=10, help="cold loads per page and size")
    cli.add_argument("--seed", type=int, default=7)
    args = cli.parse_args()
    report = Report("inbox_weight")
    report.header(f"{args.events} pending events; page weight and first contentful paint "
                  f"in Chromium, {args.loads} cold loads each")
    made = args.dir is None
    where = Path(tempfile.mkdtemp(prefix="signoff-bench-") if made else args.dir)
    database = where / "hub_list.db"
    try:
        admin, filled = fill(database, args.events, args.batch, args.seed)
        print(f"   store ready in {filled:.1f} s")
        with bench_hub(str(where), args.keep, database=database, admin_token=admin,
                       env=hub_env(args.hub_env)) as hub:
            reviewer = hub.token(REVIEWER.user, role="reviewer", groups=REVIEWER.groups)
            for who, token in (("admin", admin), ("reviewer", reviewer)):
                with httpx.Client(base_url=hub.url, timeout=30) as http:
                    _login(http, token)
                    zipped, raw, event = weight(http, "/")
                    print(f"   {who:8s} inbox  {zipped:7,d} B gzip  {raw:8,d} B raw  "
                          "(HTML+CSS+JS)")
                    report.figures[f"{who} inbox bytes gzip"] = zipped
                    zipped, raw, _ = weight(http, event)
                    print(f"   {who:8s} event  {zipped:7,d} B gzip  {raw:8,d} B raw")
                    report.figures[f"{who} event bytes gzip"] = zipped
                for label, figure in fcp(hub.url, token, args.loads).items():
                    print(f"   {who:8s} FCP {label:16s} median {figure['median_ms']:6.0f} ms"
                          f"  max {figure['max_ms']:6.0f} ms")
                    report.figures[f"{who} FCP {label} median ms"] = figure["median_ms"]
    finally:
        if made and not args.keep:
            shutil.rmtree(where, ignore_errors=True)
    return report.finish(args.json)


if __name__ == "__main__":
    raise SystemExit(main())
