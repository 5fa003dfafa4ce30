"""``python -m bench --messages 10000000``: every Switchboard benchmark, one command.

Steps (each prints progress on stderr; results go to ``bench/results/results.{md,json}``):

1. **Data.** An N-message world from the sandbox's vectorised generator (seeded, history
   ending 2026-11-01), its send logs as Parquet and JSONL and BulkExport day files, cached
   under ``bench/results/cache/`` by (N, seed).
2. **Sandbox.** List pages of 1,000 over loopback (``bench.bench_sandbox``).
3. **Bare loads.** DuckDB's ``CREATE TABLE … AS SELECT * FROM read_…`` of the same files.
4. **Full ingest** (child process, memory sampled): the sandbox serving the whole world in
   its own process, ``run_ingest`` of the Twilio API (messages + calls through the SDK) and
   the Parquet send logs. This warehouse is the one the analytics and dashboard use.
5. **JSONL and BulkExport ingests**, each alone into a fresh warehouse.
6. **Analytics.** Each function's median/p95 against a bare aggregate and pandas.
7. **Dashboard.** Analytics per page, render time in headless Chromium, server memory.

``--skip`` leaves steps out (``--skip dashboard,jsonl``); ``--api-messages`` builds the full
warehouse's Twilio part from a smaller world when the API ingest of N would take too long.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import bench_warehouse as bw
from bench.common import (
    PYTHON,
    REPO,
    RESULTS_DIR,
    ChildRun,
    Dataset,
    Results,
    ensure_dataset,
    files,
    last_json,
    machine_info,
    run_measured,
    say,
)

STEPS = ("sandbox", "bare", "full", "jsonl", "bulk", "ingest-owner", "analytics", "dashboard")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000, help="messages in the world (default %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="world seed (default %(default)s)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per analytics function (default %(default)s)")
    p.add_argument("--period-days", type=int, default=30,
                   help="analytics period: the last N days with data, the dashboard's default (default %(default)s)")
    p.add_argument("--api-messages", type=int, default=None,
                   help="world size for the Twilio API part of the full ingest (default: --messages)")
    p.add_argument("--sandbox-messages", type=int, default=200_000,
                   help="world size for the sandbox page-serving bench (default %(default)s)")
    p.add_argument("--analytics-warehouse", choices=("ingested", "synthetic"), default="ingested",
                   help="analytics and dashboard on the warehouse the full ingest built (default), or on "
                        "bench.bench_analytics's vectorised synthetic N-message warehouse (for 10M when the API "
                        "ingest of N would take too long; use with --api-messages)")
    p.add_argument("--skip", default="", help=f"comma list of steps to skip: {', '.join(STEPS)}")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where results.md/json go (default bench/results)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- steps


def step_sandbox(args: argparse.Namespace, res: Results) -> None:
    area = "Sandbox"
    n = min(args.sandbox_messages, args.messages)
    say(f"sandbox: python -m bench.bench_sandbox --messages {n} (pages of 1,000 over loopback)")
    run = run_measured([PYTHON, "-m", "bench.bench_sandbox", "--messages", str(n), "--max-records", str(n),
                        "--page-size", "1000"], timeout=1800)
    figures = bw.parse_bench_sandbox(run.stdout) if run.returncode == 0 else {}
    source = "bench.bench_sandbox"
    if "raw_http" not in figures:
        say(f"sandbox: bench_sandbox gave no figure (exit {run.returncode}); measuring here")
        figures = {"raw_http": bw.sandbox_pages_rate(n, 1000, n)}
        source = "bench.bench_warehouse fallback"
    res.add(area, "list pages of 1,000 served, raw HTTP + json.loads", figures["raw_http"], "records/s", 20_000, ">=",
            note=f"{n:,}-message world, keep-alive loopback ({source})")
    if "sdk" in figures:
        res.add(area, "same through twilio SDK `messages.stream` (MessageInstance objects)", figures["sdk"],
                "records/s", note="informational: the SDK's object building is the limit")
    for key, label in (("baseline_dumps", "in-process render + json.dumps (no HTTP)"),
                       ("baseline_loads", "in-process json.loads (no HTTP)")):
        if key in figures:
            res.add(area, label, figures[key], "records/s", note="baseline, same run")


def step_bare(ds: Dataset, work: Path, res: Results) -> dict[str, tuple[int, float]]:
    area = "Ingest: bare DuckDB baseline"
    out: dict[str, tuple[int, float]] = {}
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bare.duckdb"
    for fmt, directory, ext in (("parquet", ds.parquet_dir, "parquet"), ("jsonl", ds.jsonl_dir, "jsonl")):
        if not directory.exists():
            continue
        rows = secs = 0.0
        for prefix in ("sends", "conversions"):
            paths = files(directory, prefix, ext)
            if not paths:
                continue
            say(f"bare: CREATE TABLE AS SELECT * FROM read_{fmt}({len(paths)} {prefix} files)")
            r, s = bw.bare_load(paths, fmt, db, table=prefix)
            rows += r
            secs += s
        out[fmt] = (int(rows), secs)
        res.add(area, f"send logs + conversions, {fmt}", rows / secs, "rows/s", note=f"{int(rows):,} rows in {secs:.2f} s")
    bulk = sorted(ds.bulk_dir.glob("*/Messages/*.json.gz")) if ds.bulk_dir.exists() else []
    if bulk:
        say(f"bare: read_json of {len(bulk)} BulkExport .json.gz files")
        r, s = bw.bare_load(bulk, "json.gz", db)
        out["bulk"] = (r, s)
        res.add(area, "BulkExport .json.gz", r / s, "rows/s", note=f"{r:,} rows in {s:.2f} s")
    return out


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _ingest(data_dir: Path, sources: str, *, send_logs: list[str] | None = None, bulk_dir: Path | None = None,
            env: dict[str, str] | None = None) -> tuple[ChildRun, dict[str, Any] | None]:
    cmd = [PYTHON, "-m", "bench.bench_warehouse", "ingest-child", "--data-dir", str(data_dir), "--sources", sources]
    for g in send_logs or []:
        cmd += ["--send-logs", g]
    if bulk_dir:
        cmd += ["--bulk-dir", str(bulk_dir)]
    say(f"ingest: run_ingest sources={sources} in a child process (memory sampled every 50 ms)")
    run = run_measured(cmd, env=env, timeout=6 * 3600)
    report = last_json(run.stdout)
    if report is None:
        say(f"ingest: child failed (exit {run.returncode}): {run.stderr.strip()[-600:]}")
    return run, report


def _source(report: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    for s in (report or {}).get("sources", []):
        if s["source"] == name:
            return s
    return None


def _rate_figures(res: Results, area: str, label: str, src: dict[str, Any] | None, target: float,
                  bare: tuple[int, float] | None, unit: str = "rows/s") -> None:
    if src is None or not src.get("seconds"):
        res.add(area, label, None, unit, target, ">=", note="not measured (source missing or failed)")
        return
    rate = src["read"] / src["seconds"]
    note = f"{src['read']:,} read, {src['loaded']:,} loaded, {src['rejected']:,} rejected in {src['seconds']:.1f} s"
    if src.get("status") != "ok":
        note += f"; status {src.get('status')}: {str(src.get('error'))[:120]}"
    res.add(area, label, rate, unit, target, ">=", note=note)
    if bare is not None:
        rows, secs = bare
        ratio = src["seconds"] / secs if secs else float("nan")
        res.add(area, f"{label}: time vs bare DuckDB load", ratio, "×", 2.0, "<=",
                note=f"bare {secs:.2f} s for {rows:,} rows")


class SandboxProcess:
    """The benchmark world served by ``bench.bench_warehouse serve-sandbox`` in its own process."""

    def __init__(self, messages: int, seed: int) -> None:
        say(f"sandbox: generating and serving the {messages:,}-message world in a child process")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.bench_warehouse", "serve-sandbox", "--messages", str(messages), "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO),
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox child exited before serving")
        self.info = json.loads(line)
        say(f"sandbox: serving {self.info['messages']:,} messages and {self.info['calls']:,} calls "
            f"at {self.info['base_url']}")

    def env(self) -> dict[str, str]:
        return {"TWILIO_ACCOUNT_SID": self.info["account_sid"], "TWILIO_AUTH_TOKEN": self.info["auth_token"],
                "SWITCHBOARD_TWILIO_BASE_URL": self.info["base_url"], "TWILIO_API_KEY": "", "TWILIO_API_SECRET": ""}

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()


def step_full(args: argparse.Namespace, ds: Dataset, work: Path, res: Results,
              bare: dict[str, tuple[int, float]]) -> Path | None:
    """Twilio API (whole world) + Parquet send logs into one warehouse: the one analytics and dashboard use."""
    data_dir = _fresh(work / "full")
    api_n = args.api_messages or args.messages
    sandbox = SandboxProcess(api_n, args.seed)
    try:
        globs = [str(ds.parquet_dir / "sends-*.parquet"), str(ds.parquet_dir / "conversions-*.parquet")]
        run, report = _ingest(data_dir, "twilio,send-logs", send_logs=globs, env=sandbox.env())
    finally:
        sandbox.stop()
    area = "Ingest"
    _rate_figures(res, area, "send logs from Parquet (with validation)", _source(report, "send-logs"), 1_000_000,
                  bare.get("parquet"))
    api = _source(report, "twilio")
    if api_n != args.messages:
        res.note(f"the Twilio API part used a {api_n:,}-message world (--api-messages), not {args.messages:,}")
    _rate_figures(res, area, "Twilio API through the SDK against the sandbox (messages + calls)", api, 20_000, None,
                  unit="records/s")
    if report:
        facts = report["seconds"] - sum(s["seconds"] for s in report["sources"])
        res.add(area, "facts rebuild + snapshot publish (after the sources)", facts, "s")
        res.add(area, "whole run, wall clock", report["seconds"], "s")
    res.add(area, f"peak memory of the ingest process ({'Twilio API + Parquet send logs'})", run.peak_mb, "MB",
            2048, "<=", note=f"{args.messages:,}-message world; process-tree RSS sampled every 50 ms")
    if run.returncode != 0 or not (data_dir / "warehouse.duckdb").exists():
        res.note(f"full ingest exit {run.returncode}: {run.stderr.strip()[-300:]}")
        return None if not (data_dir / "warehouse.duckdb").exists() else data_dir
    _warehouse_counts(data_dir / "warehouse.duckdb", res)
    return data_dir


def _warehouse_counts(path: Path, res: Results, label: str = "ingested benchmark warehouse") -> None:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                  for t in ("twilio_messages", "twilio_calls", "send_log", "conversions", "rejects")}
    finally:
        con.close()
    res.meta.setdefault("warehouse_rows", {})[label] = counts
    res.note(f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def step_jsonl(ds: Dataset, work: Path, res: Results, bare: dict[str, tuple[int, float]]) -> None:
    data_dir = _fresh(work / "jsonl")
    globs = [str(ds.jsonl_dir / "sends-*.jsonl"), str(ds.jsonl_dir / "conversions-*.jsonl")]
    run, report = _ingest(data_dir, "send-logs", send_logs=globs)
    _rate_figures(res, "Ingest", "send logs from JSONL (with validation)", _source(report, "send-logs"), 250_000,
                  bare.get("jsonl"))
    res.add("Ingest", "peak memory, JSONL send-log ingest", run.peak_mb, "MB", 2048, "<=")
    shutil.rmtree(data_dir, ignore_errors=True)


def step_bulk(ds: Dataset, work: Path, res: Results, bare: dict[str, tuple[int, float]]) -> None:
    if not ds.bulk_dirs():
        res.note("BulkExport: no files in the dataset")
        return
    data_dir = _fresh(work / "bulk")
    run, report = _ingest(data_dir, "bulk-export", bulk_dir=ds.bulk_dir)
    accounts = ds.meta.get("bulk_accounts", [])
    _rate_figures(res, "Ingest", f"BulkExport .json.gz ({len(accounts)} account(s), with enrichment)",
                  _source(report, "bulk-export"), 250_000, bare.get("bulk"))
    res.note("BulkExport target: the issue names none; the JSONL target (250,000 rows/s) is shown")
    shutil.rmtree(data_dir, ignore_errors=True)


def synthetic_warehouse(args: argparse.Namespace, res: Results) -> Path:
    """bench.bench_analytics.build(N): numpy-drawn columns, the real refresh_facts; cached by N."""
    from bench import bench_analytics
    from bench.common import CACHE_DIR

    folder = CACHE_DIR / f"synthetic-n{args.messages}"
    db = folder / "warehouse.duckdb"
    owners = REPO / "data" / f"bench_{args.messages}.duckdb"  # bench.bench_analytics's own cache, same build
    if not db.exists() and owners.exists():
        import duckdb

        try:  # only a finished, unlocked file: the owner may be building it right now
            duckdb.connect(str(owners), read_only=True).close()
            folder.mkdir(parents=True, exist_ok=True)
            say(f"synthetic: copying {owners.relative_to(REPO)} (bench.bench_analytics's build of the same N)")
            shutil.copyfile(owners, db.with_suffix(".tmp"))
            os.replace(db.with_suffix(".tmp"), db)
        except duckdb.Error:
            pass
    if not db.exists():
        folder.mkdir(parents=True, exist_ok=True)
        say(f"synthetic: bench.bench_analytics.build({args.messages:,}) into {db}")
        t = time.perf_counter()
        bench_analytics.build(db, args.messages)
        say(f"synthetic: built in {time.perf_counter() - t:.0f} s")
    _warehouse_counts(db, res, "synthetic warehouse (analytics, dashboard)")
    res.note(f"analytics and dashboard ran on bench.bench_analytics's synthetic {args.messages:,}-message warehouse "
             "(--analytics-warehouse synthetic), not on the ingested one")
    return folder


def step_ingest_owner(args: argparse.Namespace, res: Results) -> None:
    """bench.bench_ingest (the ingest owner's: synthetic rows written by DuckDB) as a cross-check."""
    area = "Ingest (cross-check: bench.bench_ingest, synthetic rows)"
    cmd = [PYTHON, "-m", "bench.bench_ingest", "--rows", str(args.messages), "--api-messages", "0"]
    say("ingest-owner: " + " ".join(cmd[1:]))
    run = run_measured(cmd, timeout=4 * 3600)
    found = 0
    for line in run.stdout.splitlines():
        m = re.match(r"^(send logs \w+: [a-z ]+?|peak memory \(this process\))\s{2,}([\d,.]+)\s*(rows/s|x|s|MB)", line)
        if not m:
            continue
        name, value, unit = m.group(1).strip(), float(m.group(2).replace(",", "")), m.group(3)
        target, op = None, None
        if name.endswith("parquet: ingest"):
            target, op = 1_000_000, ">="
        elif name.endswith("jsonl: ingest"):
            target, op = 250_000, ">="
        elif name.endswith("time vs bare"):
            target, op, unit = 2.0, "<=", "×"
        elif name.startswith("peak memory"):
            target, op = 2048, "<="
        res.add(area, name, value, unit, target, op, note=f"{args.messages:,} rows per format")
        found += 1
    if not found:
        res.note(f"bench.bench_ingest gave no figures (exit {run.returncode}): {run.stderr.strip()[-300:]}")


def step_analytics(args: argparse.Namespace, full_dir: Path, res: Results) -> None:
    """bench.bench_analytics (the analytics owner's cases: each function, its bare aggregate, its
    pandas equivalent) on the ingested benchmark warehouse; bench_warehouse's own if that fails."""
    area = "Analytics"
    db = full_dir / "warehouse.duckdb"
    cmd = [PYTHON, "-m", "bench.bench_analytics", "--db", str(db), "--repeats", str(args.repeats)]
    say("analytics: " + " ".join(cmd[1:]))
    run = run_measured(cmd, timeout=4 * 3600)
    rows = bw.parse_bench_analytics(run.stdout)
    if not rows:
        res.note(f"bench.bench_analytics gave no figures (exit {run.returncode}); measured by bench_warehouse")
        bw.bench_analytics(db, res, repeats=args.repeats, period_days=args.period_days)
        return
    which = "synthetic" if args.analytics_warehouse == "synthetic" else "ingested"
    res.note(f"analytics: bench.bench_analytics cases on the {which} warehouse (90 days ending 2026-11-24, the "
             f"whole history), {args.repeats} timed runs after a warm-up; bare = single-table aggregate on the "
             f"materialised facts; pandas = the same computation on in-memory frames")
    for name, r in rows.items():
        res.add(area, f"`{name}` median", r["median_ms"], "ms", 150, "<=", note=f"p95 {r['p95_ms']:,.1f} ms")
        res.add(area, f"`{name}` vs bare aggregate", r["x_bare"], "×", 3.0, "<=", note=f"bare {r['bare_ms']:,.1f} ms")
        res.add(area, f"`{name}` speed-up vs pandas", r["x_faster"], "×", 5.0, ">=",
                note=f"pandas {r['pandas_ms']:,.1f} ms")


def step_dashboard(args: argparse.Namespace, full_dir: Path, res: Results) -> None:
    area = "Dashboard"
    db = full_dir / "warehouse.duckdb"
    say("dashboard: bench.bench_dashboard page analytics (AppTest) and render times (Chromium), child process")
    run = run_measured([PYTHON, "-m", "bench.bench_warehouse", "dashboard-owner", "--db", str(db)], timeout=4 * 3600)
    got = last_json(run.stdout)
    if not got:
        res.note(f"bench.bench_dashboard failed (exit {run.returncode}): {run.stderr.strip()[-300:]}; "
                 "measured by bench_warehouse")
        bw.bench_dashboard(full_dir, res)
        return
    sidebar = 0.0
    for title, a in got["analytics"].items():
        cold, warm = a["cold"], a["warm"]
        sidebar = max(sidebar, cold.get("sidebar_s", 0.0))
        note = f"{cold['calls']} calls, slowest {cold['slowest'][0]} {cold['slowest'][1] * 1000:,.0f} ms; " \
               f"warm {warm['analytics_s'] * 1000:,.0f} ms"
        if cold.get("exceptions"):
            note += f"; EXCEPTION {str(cold['exceptions'][0])[:120]}"
        res.add(area, f"{title}: analytics calls, cold cache", cold["analytics_s"] * 1000, "ms", 500, "<=", note=note)
    res.add(area, "sidebar queries (date bounds, filter choices; once per snapshot)", sidebar * 1000, "ms",
            note="not in the page totals (bench.bench_dashboard)")
    for title, r in got["renders"].items():
        if "cold" in r:
            note = f"second visit {r.get('warm', float('nan')):.2f} s"
            if r.get("exception"):
                note += "; stException shown"
            res.add(area, f"{title}: rendered in Chromium after navigation (first visit)", r["cold"], "s", 3.0, "<=",
                    note=note)
        if "full_load_warm" in r:
            res.add(area, f"{title}: full page load in a new browser session", r["full_load_warm"], "s",
                    note="Streamlit front-end start-up included")
    say("dashboard: streamlit server memory while every page is visited twice")
    bw.bench_dashboard(full_dir, res, page_analytics=False, record_renders=False)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(STEPS)
    if unknown:
        print(f"unknown steps to skip: {', '.join(sorted(unknown))} (choose from {', '.join(STEPS)})", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    res = Results()
    res.meta.update(machine_info())
    res.meta.update({"messages": args.messages, "seed": args.seed,
                     "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)})
    say(f"Switchboard benchmarks: {args.messages:,} messages, seed {args.seed}, {res.meta['cores']} cores")
    ds = ensure_dataset(args.messages, args.seed)
    res.meta.update({k: ds.meta.get(k) for k in ("calls", "send_log_rows", "conversion_rows")})
    res.add("Data", "world generation (sandbox.world.generate, vectorised)", ds.meta.get("generate_seconds"), "s",
            note="cached: 0 on reruns" if ds.meta.get("generate_seconds") else "")
    work = RESULTS_DIR / "work" / f"n{args.messages}-s{args.seed}"
    full_dir: Path | None = work / "full" if (work / "full" / "warehouse.duckdb").exists() else None
    bare: dict[str, tuple[int, float]] = {}

    def step(name: str, fn: Any) -> Any:
        if name in skip:
            say(f"--- {name}: skipped")
            return None
        say(f"--- {name}")
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one broken step must not lose the others' numbers
            import traceback

            traceback.print_exc()
            res.note(f"step {name} failed: {type(exc).__name__}: {str(exc)[:300]}")
            return None
        finally:
            res.write(args.out)  # partial results survive an interrupted run

    step("sandbox", lambda: step_sandbox(args, res))
    bare = step("bare", lambda: step_bare(ds, work, res)) or {}
    got = step("full", lambda: step_full(args, ds, work, res, bare))
    if got is not None:
        full_dir = got
    elif "full" not in skip:
        full_dir = None
    step("jsonl", lambda: step_jsonl(ds, work, res, bare))
    step("bulk", lambda: step_bulk(ds, work, res, bare))
    step("ingest-owner", lambda: step_ingest_owner(args, res))
    if args.analytics_warehouse == "synthetic":
        full_dir = step("synthetic", lambda: synthetic_warehouse(args, res))
    if full_dir is None:
        res.note("analytics and dashboard: no benchmark warehouse (the full ingest did not run or failed)")
    else:
        step("analytics", lambda: step_analytics(args, full_dir, res))
        step("dashboard", lambda: step_dashboard(args, full_dir, res))
    res.meta["seconds"] = time.monotonic() - t0
    res.meta["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    js, md = res.write(args.out)
    say(f"done in {res.meta['seconds']:.0f} s: {md} and {js}")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
