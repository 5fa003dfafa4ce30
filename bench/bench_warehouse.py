"""Warehouse-level measurements the orchestrator (``python -m bench``) needs and the per-area
benches do not provide: bare DuckDB loads, the real ingest in a measured child process,
every analytics function against a bare single-table aggregate and pandas, and the
dashboard's pages (analytics time per page through AppTest, render time in headless
Chromium, memory of the streamlit server).

Each part is a function the orchestrator calls; the ingest part also runs as a child
process (``python -m bench.bench_warehouse ingest-child …``) so its peak memory is its own.
Run a part alone, e.g.::

    python -m bench.bench_warehouse analytics --warehouse data/warehouse.duckdb --repeats 15
    python -m bench.bench_warehouse dashboard --data-dir bench/results/work/n1000000-s7/full
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    Results,
    median,
    p95,
    say,
    self_peak_mb,
    sql_list,
    timings,
)

# --------------------------------------------------------------------------- bare loads


def bare_load(paths: list[Path], fmt: str, db_path: Path, table: str = "t") -> tuple[int, float]:
    """DuckDB's bare ``CREATE TABLE … AS SELECT * FROM read_…`` of ``paths`` into a fresh file."""
    import duckdb

    if db_path.exists():
        db_path.unlink()
    reader = {
        "parquet": f"read_parquet({sql_list(paths)})",
        "jsonl": f"read_json({sql_list(paths)}, format='newline_delimited')",
        "csv": f"read_csv({sql_list(paths)}, header=true)",
        "json.gz": f"read_json({sql_list(paths)}, format='newline_delimited', compression='gzip')",
    }[fmt]
    con = duckdb.connect(str(db_path))
    try:
        t = time.perf_counter()
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM {reader}")
        con.execute("CHECKPOINT")
        secs = time.perf_counter() - t
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    db_path.unlink(missing_ok=True)
    return int(rows), secs


# --------------------------------------------------------------------------- ingest (child process)


def _report_json(report: Any, total_s: float) -> dict[str, Any]:
    out = []
    for r in getattr(report, "results", []):
        out.append({
            "source": r.source, "status": r.status, "read": r.read, "loaded": r.loaded, "rejected": r.rejected,
            "seconds": r.seconds, "error": r.error, "detail": getattr(r, "detail", ""),
        })
    return {"sources": out, "seconds": total_s, "report_seconds": getattr(report, "seconds", None),
            "published": getattr(report, "published", None), "ok": getattr(report, "ok", None),
            "peak_mb": self_peak_mb()}


def run_ingest_child(argv: list[str]) -> int:
    """``ingest-child``: run the real ``ingest.pipeline.run_ingest`` once and print a JSON line."""
    p = argparse.ArgumentParser(prog="bench.bench_warehouse ingest-child")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--sources", required=True, help="comma list: twilio, send-logs, bulk-export")
    p.add_argument("--send-logs", action="append", default=[], help="glob of send-log files (repeatable)")
    p.add_argument("--bulk-dir", default=None, help="BulkExport folder")
    a = p.parse_args(argv)

    from switchboard.core.settings import Settings
    from switchboard.ingest.pipeline import run_ingest

    settings = Settings.from_env(data_dir=a.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    report = run_ingest(
        settings,
        sources=a.sources.split(","),
        send_logs=a.send_logs or None,
        bulk_export_dir=a.bulk_dir,
        progress=False,
    )
    total = time.perf_counter() - t
    print(json.dumps(_report_json(report, total), default=str), flush=True)
    return 0 if getattr(report, "ok", True) else 1


def serve_sandbox(argv: list[str]) -> int:
    """``serve-sandbox``: generate the benchmark world and serve it until stdin closes or we are killed.

    Prints one JSON line (base_url, account_sid, auth_token) when ready. A separate process so
    the server and the ingest do not share one interpreter's GIL.
    """
    p = argparse.ArgumentParser(prog="bench.bench_warehouse serve-sandbox")
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    a = p.parse_args(argv)
    from bench.common import scenario
    from switchboard.sandbox.server import SandboxServer
    from switchboard.sandbox.world import generate

    world = generate(scenario(a.messages, a.seed))
    server = SandboxServer(world)
    server.start()
    print(json.dumps({"base_url": server.base_url, "account_sid": server.account_sid,
                      "auth_token": server.auth_token, "messages": len(world.messages),
                      "calls": len(world.calls)}), flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin (or kills us) when done
    finally:
        server.stop()
    return 0


# --------------------------------------------------------------------------- analytics

# Bare single-table aggregates over the raw tables (no views, no joins) and the same
# computation in pandas on in-memory frames. Each analytics function is compared with the
# baseline whose grouping is closest to its own (BASELINE_FOR, by name).
BARE_SQL: dict[str, str] = {
    "total": """SELECT count(*) AS n, count(*) FILTER (WHERE status IN ('delivered','read')) AS delivered,
                       sum(price_usd) AS cost FROM twilio_messages WHERE date_sent >= $s AND date_sent < $e""",
    "day": """SELECT CAST(date_sent AS DATE) AS d, count(*) AS n,
                     count(*) FILTER (WHERE status IN ('delivered','read')) AS delivered, sum(price_usd) AS cost
              FROM twilio_messages WHERE date_sent >= $s AND date_sent < $e GROUP BY 1""",
    "country": """SELECT to_country, count(*) AS n, count(*) FILTER (WHERE status IN ('delivered','read')) AS delivered,
                         sum(price_usd) AS cost
                  FROM twilio_messages WHERE date_sent >= $s AND date_sent < $e GROUP BY 1""",
    "error": """SELECT error_code, count(*) AS n FROM twilio_messages
                WHERE date_sent >= $s AND date_sent < $e AND error_code IS NOT NULL GROUP BY 1""",
    "error_day": """SELECT error_code, CAST(date_sent AS DATE) AS d, count(*) AS n FROM twilio_messages
                    WHERE date_sent >= $s AND date_sent < $e AND error_code IS NOT NULL GROUP BY 1, 2""",
    "cells": """SELECT to_country, error_code, to_carrier, count(*) AS n FROM twilio_messages
                WHERE date_sent >= $s AND date_sent < $e GROUP BY 1, 2, 3""",
    "calls": """SELECT to_country, status, count(*) AS n, sum(duration_s) AS dur, sum(price_usd) AS cost
                FROM twilio_calls WHERE start_time >= $s AND start_time < $e GROUP BY 1, 2""",
    "sends_variant": """SELECT experiment_id, variant, channel, count(*) AS n, count(DISTINCT user_id) AS users
                        FROM send_log WHERE sent_at >= $s AND sent_at < $e AND experiment_id IS NOT NULL
                        GROUP BY 1, 2, 3""",
    "sends_channel": """SELECT country, channel, count(*) AS n, count(fallback_of) AS fallbacks FROM send_log
                        WHERE sent_at >= $s AND sent_at < $e GROUP BY 1, 2""",
    "sends_template": """SELECT template_id, country, count(*) AS n FROM send_log
                         WHERE sent_at >= $s AND sent_at < $e GROUP BY 1, 2""",
}


def baseline_for(name: str) -> str:
    n = name.lower()
    rules = [
        ("trend", "error_day"), ("error", "error"), ("what_changed", "cells"), ("insight", "cells"),
        ("voice", "calls"), ("call", "calls"), ("experiment", "sends_variant"), ("variant", "sends_variant"),
        ("template", "sends_template"), ("fallback", "sends_channel"), ("channel", "sends_channel"),
        ("latency", "country"), ("country", "country"), ("delivery_by", "day"), ("summary", "total"),
    ]
    for key, base in rules:
        if key in n:
            return base
    return "country"


def _pandas_frames(con: Any) -> dict[str, Any]:
    """The raw columns the baselines need, as in-memory pandas frames (loaded once, untimed)."""
    msgs = con.execute(
        "SELECT date_sent, status, error_code, CAST(price_usd AS DOUBLE) AS price_usd, to_country, to_carrier "
        "FROM twilio_messages"
    ).df()
    for c in ("status", "to_country", "to_carrier"):
        msgs[c] = msgs[c].astype("category")
    calls = con.execute(
        "SELECT start_time, status, duration_s, CAST(price_usd AS DOUBLE) AS price_usd, to_country FROM twilio_calls"
    ).df()
    sends = con.execute(
        "SELECT sent_at, channel, country, template_id, experiment_id, variant, user_id, fallback_of FROM send_log"
    ).df()
    for c in ("channel", "country", "template_id", "experiment_id", "variant"):
        sends[c] = sends[c].astype("category")
    return {"messages": msgs, "calls": calls, "sends": sends}


def pandas_baseline(kind: str, frames: dict[str, Any], s: Any, e: Any) -> Any:
    import pandas as pd

    if kind in ("total", "day", "country", "error", "error_day", "cells"):
        m = frames["messages"]
        m = m[(m["date_sent"] >= s) & (m["date_sent"] < e)]
        delivered = m["status"].isin(["delivered", "read"])
        if kind == "total":
            return pd.DataFrame({"n": [len(m)], "delivered": [int(delivered.sum())], "cost": [m["price_usd"].sum()]})
        if kind == "day":
            g = m.assign(d=m["date_sent"].dt.floor("D"), delivered=delivered)
            return g.groupby("d").agg(n=("status", "size"), delivered=("delivered", "sum"), cost=("price_usd", "sum"))
        if kind == "country":
            g = m.assign(delivered=delivered)
            return g.groupby("to_country", observed=True).agg(
                n=("status", "size"), delivered=("delivered", "sum"), cost=("price_usd", "sum"))
        if kind == "error":
            return m[m["error_code"].notna()].groupby("error_code").size()
        if kind == "error_day":
            f = m[m["error_code"].notna()]
            return f.groupby([f["error_code"], f["date_sent"].dt.floor("D")]).size()
        return m.groupby(["to_country", "error_code", "to_carrier"], observed=True, dropna=False).size()
    if kind == "calls":
        c = frames["calls"]
        c = c[(c["start_time"] >= s) & (c["start_time"] < e)]
        return c.groupby(["to_country", "status"], dropna=False).agg(
            n=("status", "size"), dur=("duration_s", "sum"), cost=("price_usd", "sum"))
    f = frames["sends"]
    f = f[(f["sent_at"] >= s) & (f["sent_at"] < e)]
    if kind == "sends_variant":
        f = f[f["experiment_id"].notna()]
        return f.groupby(["experiment_id", "variant", "channel"], observed=True).agg(
            n=("user_id", "size"), users=("user_id", "nunique"))
    if kind == "sends_channel":
        return f.groupby(["country", "channel"], observed=True).agg(n=("user_id", "size"), fallbacks=("fallback_of", "count"))
    return f.groupby(["template_id", "country"], observed=True).size()


def discover_analytics() -> list[tuple[str, Callable[..., Any], list[str]]]:
    """Public analytics functions ``fn(con, [required…], *, [start,] end, filters=…)``.

    Returns (dotted name, function, names of required positional arguments after con).
    """
    import importlib
    import pkgutil

    from switchboard import analytics
    found = []
    for info in sorted(pkgutil.iter_modules(analytics.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in ("filters", "stats_basic", "experiments_stats"):
            continue
        try:
            module = importlib.import_module(f"switchboard.analytics.{info.name}")
        except Exception as exc:  # noqa: BLE001 - a module mid-rewrite is reported, not fatal
            say(f"analytics: cannot import analytics.{info.name}: {exc}")
            continue
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or fn.__module__ != module.__name__:
                continue
            params = list(inspect.signature(fn).parameters.values())
            if not params or params[0].name != "con":
                continue
            names = {p.name for p in params}
            if "end" not in names or "filters" not in names:
                continue
            required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty
                        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            kw_required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty
                           and p.kind == p.KEYWORD_ONLY and p.name not in ("start", "end")]
            if kw_required or any(r not in ("experiment_id", "code") for r in required):
                continue
            found.append((f"{module.__name__}.{name}", fn, required))
    return found


def analytics_period(con: Any, days: int) -> tuple[date, date]:
    """The dashboard's default view: the last ``days`` days with data."""
    last = con.execute("SELECT max(sent_day) FROM message_facts").fetchone()[0]
    if last is None:
        raise RuntimeError("the warehouse has no messages")
    return last - timedelta(days=days - 1), last


def bench_analytics(warehouse: Path, results: Results, *, repeats: int = 15, period_days: int = 30,
                    messages: int | None = None) -> dict[str, Any]:
    """Median and p95 of every analytics function vs its bare aggregate and pandas."""
    from switchboard.ingest.warehouse import connect

    area = "Analytics"
    con = connect(warehouse, read_only=True)
    start, end = analytics_period(con, period_days)
    from switchboard.analytics.filters import day_bounds

    s, e = day_bounds(start, end)
    results.note(f"analytics: period {start} … {end} ({period_days} days, the dashboard's default view), "
                 f"{repeats} timed runs after one warm-up, no filters")
    exp = con.execute("SELECT experiment_id FROM attempt_facts WHERE experiment_id IS NOT NULL LIMIT 1").fetchone()
    code = con.execute("SELECT error_code FROM message_facts WHERE error_code IS NOT NULL "
                       "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
    say("analytics: loading pandas frames (untimed)")
    t = time.perf_counter()
    frames = _pandas_frames(con)
    say(f"analytics: pandas frames in {time.perf_counter() - t:.1f} s")
    bare: dict[str, tuple[float, float]] = {}
    pandas_t: dict[str, float] = {}
    for kind, sql in BARE_SQL.items():
        ts = timings(lambda sql=sql: con.execute(sql, {"s": s, "e": e}).fetchall(), repeats)
        bare[kind] = (median(ts), p95(ts))
        pt = timings(lambda kind=kind: pandas_baseline(kind, frames, s, e), max(3, repeats // 3))
        pandas_t[kind] = median(pt)
        results.add(area, f"bare aggregate `{kind}` (DuckDB, raw table)", bare[kind][0] * 1000, "ms",
                    note=f"pandas {pandas_t[kind] * 1000:,.0f} ms")
    out: dict[str, Any] = {"functions": {}}
    target_ms = 150.0
    for name, fn, required in discover_analytics():
        args: list[Any] = []
        ok = True
        for r in required:
            if r == "experiment_id":
                ok = exp is not None
                args.append(exp[0] if exp else None)
            elif r == "code":
                ok = code is not None
                args.append(int(code[0]) if code else None)
        if not ok:
            results.add(area, f"`{name}`", None, "ms", target_ms, "<=", note="no data for its required argument")
            continue
        kwargs: dict[str, Any] = {"end": end, "filters": None}
        if "start" in inspect.signature(fn).parameters:
            kwargs["start"] = start

        def call(fn: Callable[..., Any] = fn, args: list[Any] = args, kwargs: dict[str, Any] = kwargs) -> Any:
            cur = con.cursor()
            try:
                return fn(cur, *args, **kwargs)
            finally:
                cur.close()

        try:
            ts = timings(call, repeats)
        except Exception as exc:  # noqa: BLE001 - report and go on
            results.add(area, f"`{name}`", None, "ms", target_ms, "<=", note=f"failed: {type(exc).__name__}: {exc}"[:200])
            continue
        kind = baseline_for(name)
        med, tail = median(ts), p95(ts)
        ratio_bare = med / bare[kind][0] if bare[kind][0] > 0 else float("nan")
        speedup = pandas_t[kind] / med if med > 0 else float("nan")
        results.add(area, f"`{name}` median", med * 1000, "ms", target_ms, "<=", note=f"p95 {tail * 1000:,.1f} ms")
        results.add(area, f"`{name}` vs bare `{kind}`", ratio_bare, "×", 3.0, "<=",
                    note=f"bare {bare[kind][0] * 1000:,.1f} ms")
        results.add(area, f"`{name}` speed-up vs pandas `{kind}`", speedup, "×", 5.0, ">=",
                    note=f"pandas {pandas_t[kind] * 1000:,.0f} ms")
        out["functions"][name] = {"median_ms": med * 1000, "p95_ms": tail * 1000, "baseline": kind,
                                  "bare_ms": bare[kind][0] * 1000, "pandas_ms": pandas_t[kind] * 1000}
    con.close()
    return out


# --------------------------------------------------------------------------- dashboard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page_analytics_times(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Per dashboard page: the analytics calls its run makes (cold cache) and their total time.

    Runs ``dashboard/app.py`` through Streamlit's AppTest and wraps ``dashboard.data._resolve``
    (how every cached analytics call finds its function), so every ``data.run(fn, …)`` of the
    page and of the shared sidebar is timed, whatever the page.
    """
    os.environ["SWITCHBOARD_DATA_DIR"] = str(data_dir)
    from streamlit.testing.v1 import AppTest

    from switchboard.dashboard import data

    original = data._resolve
    calls: list[tuple[str, float]] = []

    def timed_resolve(dotted: str) -> Callable[..., Any]:
        fn = original(dotted)

        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                calls.append((dotted, time.perf_counter() - t))

        return wrapper

    app = REPO / "dashboard" / "app.py"
    pages = sorted((REPO / "dashboard" / "app_pages").glob("*.py"))
    out: dict[str, dict[str, Any]] = {}
    data._resolve = timed_resolve  # type: ignore[assignment]
    try:
        for page in pages:
            if page.name.startswith("_"):
                continue
            data.forget_connections()
            at = AppTest.from_file(str(app), default_timeout=120)
            at.run()
            calls.clear()
            data.forget_connections()  # cold cache for the page itself
            t = time.perf_counter()
            at.switch_page(f"app_pages/{page.name}")
            at.run()
            wall = time.perf_counter() - t
            errors = [str(x.value)[:200] for x in at.exception] if at.exception else []
            out[page.stem] = {
                "analytics_s": sum(s for _, s in calls),
                "calls": [(n, round(s * 1000, 1)) for n, s in calls],
                "script_s": wall,
                "exceptions": errors,
            }
    finally:
        data._resolve = original  # type: ignore[assignment]
    return out


def _wait_health(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"streamlit did not answer {url}/_stcore/health")


RENDERED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  if (document.querySelector('[data-testid="stStatusWidget"] [data-testid="stStatusWidgetRunningIcon"]') ||
      document.querySelector('[data-testid="stSkeleton"]')) return false;
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  if (running && /running/i.test(running.innerText || '')) return false;
  const main = document.querySelector('[data-testid="stMain"], section.main, [data-testid="stAppViewContainer"]');
  if (!main) return false;
  const blocks = main.querySelectorAll('[data-testid="stElementContainer"], .element-container');
  if (blocks.length < 2) return false;
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  for (const c of charts) { if (!c.querySelector('.main-svg')) return false; }
  return true;
}"""


def bench_dashboard(data_dir: Path, results: Results, *, page_analytics: bool = True,
                    record_renders: bool = True) -> dict[str, Any]:
    """Every page: analytics total (AppTest, cold cache) and render time in headless Chromium."""
    area = "Dashboard"
    out: dict[str, Any] = {}
    if page_analytics:
        say("dashboard: analytics per page through AppTest (child process, cold cache)")
        child = subprocess.run(
            [PYTHON, "-m", "bench.bench_warehouse", "page-analytics", "--data-dir", str(data_dir)],
            capture_output=True, text=True, cwd=str(REPO), env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=1800,
        )
        from bench.common import last_json

        per_page = last_json(child.stdout)
        if per_page is None:
            results.note(f"dashboard: page analytics failed: {child.stderr.strip()[-400:]}")
        else:
            out["analytics"] = per_page
            for page, info in per_page.items():
                note = f"{len(info['calls'])} calls, script {info['script_s'] * 1000:,.0f} ms"
                if info["exceptions"]:
                    note += f"; EXCEPTION: {info['exceptions'][0]}"
                results.add(area, f"{page}: analytics calls total (cold cache)", info["analytics_s"] * 1000, "ms",
                            500.0, "<=", note=note)
    say("dashboard: streamlit server + headless Chromium")
    port = _free_port()
    env = dict(os.environ, SWITCHBOARD_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    log = open(data_dir / "streamlit-bench.log", "w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.enableStaticServing", "true"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
    )
    from bench.common import MemorySampler

    url = f"http://127.0.0.1:{port}"
    renders: dict[str, Any] = {}
    try:
        with MemorySampler(proc.pid, every=0.1) as mem:
            _wait_health(url)
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url, wait_until="domcontentloaded")
                page.wait_for_function(RENDERED_JS, timeout=120_000, polling=50)
                links = page.eval_on_selector_all(
                    '[data-testid="stSidebarNav"] a', "els => els.map(e => [e.innerText.trim(), e.href])")
                for raw_title, href in links:
                    title = raw_title.splitlines()[-1].strip() if raw_title else href
                    timing: dict[str, Any] = {}
                    for label in ("cold", "warm"):
                        t = time.perf_counter()
                        page.goto(href, wait_until="domcontentloaded")
                        try:
                            page.wait_for_function(RENDERED_JS, timeout=60_000, polling=25)
                            secs = time.perf_counter() - t
                        except Exception:  # noqa: BLE001 - a page that never settles is a miss, not a crash
                            secs = float("nan")
                        exc = page.locator('[data-testid="stException"]').count()
                        timing[label] = secs
                        timing[f"{label}_exceptions"] = exc
                    renders[title] = timing
                    note = f"warm {timing['warm']:.2f} s"
                    if timing["cold_exceptions"]:
                        note += f"; {timing['cold_exceptions']} stException"
                    if record_renders:
                        results.add(area, f"{title}: full page load in Chromium (first visit)", timing["cold"], "s",
                                    3.0, "<=", note=note)
                browser.close()
            server_mb = mem.peak
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    out["render"] = renders
    out["server_peak_mb"] = server_mb
    results.add(area, f"streamlit server peak memory ({len(renders)} pages, 2 full loads each)", server_mb, "MB",
                note="resident memory of the server process, sampled every 100 ms")
    return out


# --------------------------------------------------------------------------- sandbox (fallback)


def sandbox_pages_rate(messages: int = 200_000, page_size: int = 1000, max_records: int = 200_000) -> float:
    """Raw HTTP page serving, records/s (used only when bench.bench_sandbox cannot be parsed)."""
    import base64
    import http.client
    from urllib.parse import urlsplit

    from bench.common import DATASET_END
    from switchboard.sandbox.server import SandboxServer
    from switchboard.sandbox.world import Scenario, generate

    world = generate(Scenario(messages=messages, calls=1000, end=DATASET_END))
    with SandboxServer(world) as server:
        u = urlsplit(server.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port)
        auth = "Basic " + base64.b64encode(f"{server.account_sid}:{server.auth_token}".encode()).decode()
        uri: str | None = f"/2010-04-01/Accounts/{server.account_sid}/Messages.json?PageSize={page_size}"
        n, t = 0, time.perf_counter()
        while uri and n < max_records:
            conn.request("GET", uri, headers={"Authorization": auth})
            payload = json.loads(conn.getresponse().read())
            n += len(payload["messages"])
            uri = payload["next_page_uri"]
        return n / (time.perf_counter() - t)


def parse_bench_analytics(stdout: str) -> dict[str, dict[str, float]]:
    """Rows of ``python -m bench.bench_analytics``'s table: name median p95 bare xbare pandas xfaster ok."""
    out: dict[str, dict[str, float]] = {}
    num = r"([\d.]+|nan|inf)"
    pattern = re.compile(rf"^(\S+)\s+{num}\s+{num}\s+{num}\s+{num}\s+{num}\s+{num}\s+(yes|NO)\s*$")
    for line in stdout.splitlines():
        m = pattern.match(line.strip())
        if m:
            name = m.group(1)
            vals = [float(m.group(i)) for i in range(2, 8)]
            out[name] = dict(zip(("median_ms", "p95_ms", "bare_ms", "x_bare", "pandas_ms", "x_faster"), vals))
    return out


def owner_dashboard(argv: list[str]) -> int:
    """``dashboard-owner --db W``: bench.bench_dashboard's page analytics and render times as JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--skip-browser", action="store_true")
    a = p.parse_args(argv)
    from bench import bench_dashboard as bd

    pages = bd._existing_pages()
    analytics = bd.page_analytics(a.db.resolve(), pages)
    renders = {} if a.skip_browser else bd.render_times(a.db.resolve(), list(pages))
    print(json.dumps({"analytics": analytics, "renders": renders, "target_ms": bd.ANALYTICS_TARGET_MS},
                     default=str))
    return 0


def parse_bench_sandbox(stdout: str) -> dict[str, float]:
    """Records/s figures from ``python -m bench.bench_sandbox`` output lines."""
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        m = re.search(r"([\d,]+)\s+records/s", line)
        if not m:
            continue
        value = float(m.group(1).replace(",", ""))
        low = line.lower()
        if "raw http" in low:
            out["raw_http"] = value
        elif "sdk" in low:
            out["sdk"] = value
        elif "dumps" in low:
            out["baseline_dumps"] = value
        elif "loads" in low:
            out["baseline_loads"] = value
    return out


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "ingest-child":
        return run_ingest_child(rest)
    if cmd == "serve-sandbox":
        return serve_sandbox(rest)
    if cmd == "dashboard-owner":
        return owner_dashboard(rest)
    if cmd == "page-analytics":
        p = argparse.ArgumentParser()
        p.add_argument("--data-dir", type=Path, required=True)
        a = p.parse_args(rest)
        print(json.dumps(page_analytics_times(a.data_dir), default=str))
        return 0
    if cmd in ("analytics", "dashboard"):
        p = argparse.ArgumentParser()
        p.add_argument("--warehouse", type=Path)
        p.add_argument("--data-dir", type=Path)
        p.add_argument("--repeats", type=int, default=15)
        p.add_argument("--period-days", type=int, default=30)
        a = p.parse_args(rest)
        res = Results()
        if cmd == "analytics":
            bench_analytics(a.warehouse or (a.data_dir / "warehouse.duckdb"), res, repeats=a.repeats,
                            period_days=a.period_days)
        else:
            bench_dashboard(a.data_dir or a.warehouse.parent, res)
        print(res.to_markdown())
        return 0
    print(f"unknown part {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
