"""Dashboard benchmark: each page's analytics time, and its render time in headless Chromium.

    python -m bench.bench_dashboard --db data/bench_10000000.duckdb
    python -m bench.bench_dashboard --messages 1000000      # builds data/bench_1000000.duckdb if missing
    python -m bench.bench_dashboard --demo                  # the small test warehouse, seconds

1. **Analytics per page.** Runs every page through Streamlit's ``AppTest`` (the real
   ``dashboard/app.py``: sidebar defaults, last 30 days of data) with the result cache
   cleared, timing every ``dashboard.data.run`` call: the page's analytics (the
   sidebar's bookkeeping queries, paid once per snapshot, are reported apart). Cold = empty cache (a new snapshot or filter);
   warm = the same view again (cache hits).
2. **Render in Chromium.** The real ``streamlit run`` server, Debian's headless
   Chromium; for each page, click its sidebar link and time until the page has drawn:
   title of that page shown, the script finished, every Plotly chart has its SVG (and the
   map its country shapes). Measured cold (first visit: empty cache) and warm (second visit).
   A full page load (new browser session) is reported separately: it adds Streamlit's
   own front-end start-up.

Targets (issue 6, at 10M messages): analytics per page < 500 ms; rendered < 3 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PAGES = {  # title -> page file (relative to dashboard/)
    "Overview": "app_pages/overview.py",
    "Countries": "app_pages/countries.py",
    "Errors": "app_pages/errors.py",
    "Voice & fallback": "app_pages/voice.py",
    "Experiments": "app_pages/experiments.py",
    "Templates": "app_pages/templates.py",
    "Send test campaign": "app_pages/send_campaign.py",
    "Data": "app_pages/data_health.py",
}
ANALYTICS_TARGET_MS = 500
# The sidebar's own queries (date bounds, filter choices): once per snapshot, shared by every page.
SIDEBAR_CALLS = ("data._bounds", "data._filter_options")
RENDER_TARGET_S = 3.0

DRAWN_JS = """(title) => {
  const h = document.querySelector('[data-testid="stMain"] h1');
  if (!h || h.innerText.trim() !== title) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (!c.querySelector('.main-svg')) return false;
    if (c.querySelector('.geo') && c.querySelectorAll('path.choroplethlocation').length === 0) return false;
  }
  return true;
}"""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def warehouse_env(db: Path) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in ("SWITCHBOARD_DATA_DIR", "SWITCHBOARD_WAREHOUSE_NAME")}
    os.environ["SWITCHBOARD_DATA_DIR"] = str(db.parent)
    os.environ["SWITCHBOARD_WAREHOUSE_NAME"] = db.name
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- 1. analytics per page -----------------------------------------------------------------------


def page_analytics(db: Path, pages: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per page: cold and warm total of data.run calls, the slowest call, script wall time."""
    from streamlit.testing.v1 import AppTest

    from switchboard.dashboard import data

    calls: list[tuple[str, float]] = []
    original = data.run

    def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(fn, *args, **kwargs)
        finally:
            name = fn if isinstance(fn, str) else f"{fn.__module__}.{fn.__qualname__}"
            calls.append((name.replace("switchboard.", "").replace("analytics.", "").replace("dashboard.data.", "data."), time.perf_counter() - t))

    data.run = timed  # pages call data.run through the module, so this sees every call
    out: dict[str, dict[str, Any]] = {}
    app = str(REPO / "dashboard" / "app.py")
    try:
        with warehouse_env(db):
            for title, file in pages.items():
                result: dict[str, Any] = {}
                at = AppTest.from_file(app, default_timeout=600)
                at.run()  # the default page first, as a visitor arrives; not timed
                for label in ("cold", "warm"):
                    if label == "cold":
                        data.forget_connections()  # empty cache, reopen the snapshot
                    calls.clear()
                    t = time.perf_counter()
                    at.switch_page(file).run()
                    script = time.perf_counter() - t
                    page_calls = [c for c in calls if not c[0].startswith(SIDEBAR_CALLS)]
                    sidebar_calls = [c for c in calls if c[0].startswith(SIDEBAR_CALLS)]
                    result[label] = {
                        "analytics_s": sum(s for _, s in page_calls),
                        "sidebar_s": sum(s for _, s in sidebar_calls),
                        "script_s": script,
                        "calls": len(page_calls),
                        "slowest": max(page_calls, key=lambda c: c[1]) if page_calls else ("", 0.0),
                        "each": list(page_calls),
                        "exceptions": [e.value for e in at.exception],
                    }
                out[title] = result
                say(f"  analytics {title}: cold {result['cold']['analytics_s'] * 1000:,.0f} ms")
    finally:
        data.run = original
    return out


# --- 2. render in Chromium -----------------------------------------------------------------------


def render_times(db: Path, titles: list[str]) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    from tests.browser_util import StreamlitServer, launch_chromium

    out: dict[str, dict[str, float]] = {}
    with warehouse_env(db), tempfile.TemporaryDirectory() as logs, StreamlitServer(
        db.parent, log=Path(logs) / "streamlit.log"
    ) as server, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        t = time.perf_counter()
        page.goto(server.url + "/")
        page.wait_for_function(DRAWN_JS, arg="Overview", timeout=600_000, polling=25)
        first_load = time.perf_counter() - t
        for visit in ("cold", "warm"):
            for title in titles:
                if title == "Overview" and visit == "cold":
                    out.setdefault(title, {})[visit] = first_load
                    continue
                link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
                t = time.perf_counter()
                link.click()
                page.wait_for_function(DRAWN_JS, arg=title, timeout=600_000, polling=25)
                out.setdefault(title, {})[visit] = time.perf_counter() - t
                if page.locator('[data-testid="stException"]').count():
                    out[title]["exception"] = 1.0
        # A full load of a warm page in a fresh browser session (front-end start-up included).
        fresh = browser.new_page(viewport={"width": 1440, "height": 1000})
        t = time.perf_counter()
        fresh.goto(server.url + "/")
        fresh.wait_for_function(DRAWN_JS, arg="Overview", timeout=600_000, polling=25)
        out["Overview"]["full_load_warm"] = time.perf_counter() - t
        browser.close()
    return out


# --- main ----------------------------------------------------------------------------------------


def _existing_pages() -> dict[str, str]:
    return {t: f for t, f in PAGES.items() if (REPO / "dashboard" / f).exists()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--db", type=Path, help="a published warehouse file to read")
    src.add_argument("--messages", type=int, help="build (or reuse) data/bench_<N>.duckdb with bench.bench_analytics")
    src.add_argument("--demo", action="store_true", help="the small warehouse the dashboard tests use")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--pages", default="", help="comma-separated page titles (default: every page)")
    ap.add_argument("--calls", action="store_true", help="also list every cold call of each page with its time")
    args = ap.parse_args(argv)

    if args.db:
        db = args.db.resolve()
    elif args.messages:
        db = REPO / "data" / f"bench_{args.messages}.duckdb"
        if not db.exists():
            from bench.bench_analytics import build

            say(f"building {db} ({args.messages:,} messages)…")
            build(db, args.messages)
    else:
        from tests.browser_util import build_demo_warehouse

        db = Path(tempfile.mkdtemp(prefix="bench_dashboard_")) / "warehouse.duckdb"
        build_demo_warehouse(db)
    if not db.exists():
        ap.error(f"{db} does not exist")

    pages = _existing_pages()
    if args.pages:
        wanted = {p.strip() for p in args.pages.split(",")}
        pages = {t: f for t, f in pages.items() if t in wanted}
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM message_facts").fetchone()[0]
    say(f"warehouse {db}: {n:,} messages")

    say("analytics per page (AppTest, cold then warm cache)…")
    analytics = page_analytics(db, pages)
    renders: dict[str, dict[str, float]] = {}
    if not args.skip_browser:
        say("render per page (streamlit run + headless Chromium)…")
        renders = render_times(db, list(pages))

    print(f"\nDashboard on {n:,} messages ({db.name}); targets: analytics < {ANALYTICS_TARGET_MS} ms, "
          f"render < {RENDER_TARGET_S:.0f} s")
    header = (f"{'page':<20} {'analytics cold':>15} {'warm':>8} {'calls':>6}  {'slowest call':<38}"
              f" {'script cold':>12} {'render cold':>12} {'warm':>8}")
    print(header)
    print("-" * len(header))
    misses = 0
    for title in pages:
        a = analytics[title]["cold"]
        w = analytics[title]["warm"]
        r = renders.get(title, {})
        ok_a = a["analytics_s"] * 1000 < ANALYTICS_TARGET_MS
        ok_r = not r or (r.get("cold", 0) < RENDER_TARGET_S and r.get("warm", 0) < RENDER_TARGET_S)
        misses += (not ok_a) + (not ok_r)
        slow_name, slow_s = a["slowest"]
        rc = f"{r['cold']:.2f} s" if "cold" in r else "–"
        rw = f"{r['warm']:.2f} s" if "warm" in r else "–"
        flag = "" if ok_a and ok_r else "  MISS"
        if a["exceptions"] or r.get("exception"):
            flag += "  EXCEPTION"
        print(f"{title:<20} {a['analytics_s'] * 1000:>12,.0f} ms {w['analytics_s'] * 1000:>5,.0f} ms {a['calls']:>6}  "
              f"{slow_name[:28]:<28} {slow_s * 1000:>6,.0f} ms {a['script_s'] * 1000:>9,.0f} ms {rc:>12} {rw:>8}{flag}")
        if args.calls:
            for name, secs in a["each"]:
                print(f"    {secs * 1000:>8,.0f} ms  {name}")
    sidebar = max(analytics[t]["cold"]["sidebar_s"] for t in pages)
    print(f"\nSidebar (date bounds + filter choices, once per snapshot, not in the page totals): "
          f"{sidebar * 1000:,.0f} ms cold")
    if "Overview" in renders and "full_load_warm" in renders["Overview"]:
        print(f"\nFull page load of Overview in a new browser session (warm cache, front-end start-up included): "
              f"{renders['Overview']['full_load_warm']:.2f} s")
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
