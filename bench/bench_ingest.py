"""Ingest benchmark: ``python -m bench.bench_ingest --rows N [--api-messages M]``.

1. Send-log files (Parquet, then JSONL) of ``N`` synthetic rows, written by DuckDB into a
   temp folder: ``run_ingest(sources='send-logs')`` (validation, rejects, upsert, file
   records; facts and publishing timed apart) against the baseline DuckDB's bare
   ``CREATE TABLE t AS SELECT * FROM read_…`` (+ CHECKPOINT) of the same files, same process.
2. Twilio API: a sandbox world of ``M`` messages (and M/10 calls) served by a separate
   process; ``run_ingest(sources='twilio')`` through the real SDK, records/s end to end.
3. Peak resident memory of this process (``resource.getrusage``).

Targets (issue 4): Parquet >= 1,000,000 rows/s, JSONL >= 250,000 rows/s, each <= 2x the
bare read; API >= 20,000 records/s; peak memory < 2 GB at 10M rows.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

END = datetime(2026, 11, 1, tzinfo=UTC)


def write_send_logs(folder: Path, rows: int, files: int, fmt: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    per = -(-rows // files)
    out = []
    for f in range(files):
        lo, hi = f * per, min(rows, (f + 1) * per)
        path = folder / f"sends-{f:03d}.{fmt}"
        sent = "strftime(TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_seconds(i), '%Y-%m-%dT%H:%M:%SZ')"
        select = f"""SELECT 'ev' || i AS event_id, {sent} AS sent_at,
                 (['sms', 'sms', 'sms', 'voice', 'push', 'email'])[1 + i % 6] AS channel,
                 (['password_reset', 'verification', 'account_alert'])[1 + i % 3] AS purpose,
                 'tpl' || (i % 20) AS template_id,
                 CASE WHEN i % 3 = 0 THEN 'exp_pr_short_template' END AS experiment_id,
                 CASE WHEN i % 3 = 0 THEN (['control', 'short'])[1 + i % 2] END AS variant,
                 NULL::VARCHAR AS campaign_id, 'u' || (i % 300000) AS user_id,
                 (['BR', 'IN', 'ID', 'US', 'GB', 'EG'])[1 + i % 6] AS country, 'pt-BR' AS locale,
                 'SM' || md5(i::VARCHAR) AS provider_sid, NULL::VARCHAR AS fallback_of
                 FROM range({lo}, {hi}) t(i)"""
        if fmt == "parquet":
            con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
        else:
            con.execute(f"COPY ({select}) TO '{path}' (FORMAT json)")
        out.append(path)
    return out


def bare_read(files_glob: str, fmt: str, db: Path) -> float:
    reader = f"read_parquet('{files_glob}')" if fmt == "parquet" else \
        f"read_json('{files_glob}', format='newline_delimited')"
    if db.exists():
        db.unlink()
    con = duckdb.connect(str(db))
    t = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}")
    con.execute("CHECKPOINT")
    elapsed = time.perf_counter() - t
    con.close()
    db.unlink()
    return elapsed


def machine_ceiling(files_glob: str, fmt: str, scratch: Path) -> list[tuple[str, float]]:
    """What this machine can do at all with these files (``--ceiling``), each into a fresh file with
    the ingest's memory limit: read every column (no write); the bare CTAS; a CTAS typed as the
    warehouse types them (no validation); INSERT into ``send_log`` as the schema defines it; the
    same with validation (the reject reasons filtering the rows); and with a PRIMARY KEY on event_id."""
    from switchboard.ingest import send_logs
    from switchboard.ingest.pipeline import MEMORY_LIMIT
    from switchboard.ingest.warehouse import SCHEMA_SQL, _statements

    reader = f"read_parquet('{files_glob}')" if fmt == "parquet" else \
        f"read_json('{files_glob}', format='newline_delimited')"
    kind = send_logs.SENDS
    present = {r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
    text = ", ".join(f'CAST("{c}" AS VARCHAR) AS {c}' if c in present else f"NULL::VARCHAR AS {c}"
                     for c in kind.columns)
    rel = f"SELECT {text} FROM {reader}"
    ddl = next(st for st in _statements(SCHEMA_SQL) if st.startswith("CREATE TABLE IF NOT EXISTS send_log"))
    insert = f"INSERT INTO send_log ({', '.join(kind.columns)}, source_file, ingest_run_id) "
    cases = [
        ("read every column, no write", [], f"SELECT count(*), sum(length(event_id) + length(user_id)) FROM ({rel})"),
        ("bare CTAS *", [], f"CREATE TABLE t AS SELECT * FROM {reader}"),
        ("CTAS typed as the warehouse", [], f"CREATE TABLE t AS SELECT {kind.select_sql} FROM ({rel})"),
        ("INSERT into send_log, no validation", [ddl], f"{insert} SELECT {kind.select_sql}, 'f', 1 FROM ({rel})"),
        ("INSERT into send_log, validated", [ddl],
         f"{insert} SELECT {kind.select_sql}, 'f', 1 FROM ({rel}) WHERE ({kind.reason_sql}) IS NULL"),
        ("INSERT into send_log with PRIMARY KEY", [ddl.replace("event_id       VARCHAR NOT NULL",
                                                              "event_id VARCHAR PRIMARY KEY")],
         f"{insert} SELECT {kind.select_sql}, 'f', 1 FROM ({rel})"),
    ]
    out = []
    for label, setup, sql in cases:
        db = scratch / "ceiling.duckdb"
        db.unlink(missing_ok=True)
        con = duckdb.connect(str(db))
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        for st in setup:
            con.execute(st)
        t = time.perf_counter()
        con.execute(sql).fetchall()
        con.execute("CHECKPOINT")
        out.append((label, time.perf_counter() - t))
        con.close()
        db.unlink(missing_ok=True)
    return out


def our_ingest(files_glob: str, data_dir: Path) -> tuple[float, float, int]:
    from switchboard.core.settings import Settings
    from switchboard.ingest.pipeline import run_ingest

    shutil.rmtree(data_dir, ignore_errors=True)
    t = time.perf_counter()
    report = run_ingest(Settings(data_dir=data_dir), sources="send-logs", send_logs=[files_glob], progress=False)
    total = time.perf_counter() - t
    r = report.result("send-logs")
    assert report.ok and r.rejected == 0, report.summary()
    return r.seconds, total, r.loaded


def _serve(messages: int, conn) -> None:  # runs in the child process
    from switchboard.sandbox.server import SandboxServer, SimClock
    from switchboard.sandbox.world import Scenario, generate

    world = generate(Scenario(seed=21, days=30, messages=messages, calls=messages // 10, end=END))
    with SandboxServer(world, clock=SimClock(END)) as server:
        conn.send((server.base_url, server.account_sid, server.auth_token, len(world.messages) + len(world.calls)))
        conn.recv()  # until told to stop


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def api_ingest(messages: int, data_dir: Path) -> tuple[float, int, str, float, float]:
    """(seconds, records, detail, ingest CPU seconds, fetch-only records/s: the sandbox's ceiling)."""
    from twilio.rest import Client

    from switchboard.core.settings import Settings
    from switchboard.core.twilio import RetryingHttpClient
    from switchboard.ingest.pipeline import run_ingest

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(messages, child), daemon=True)
    proc.start()
    try:
        base_url, sid, token, expected = parent.recv()

        def factory():
            client = Client(sid, token, http_client=RetryingHttpClient())
            client.api.base_url = base_url
            return client

        from switchboard.ingest.twilio_api import MESSAGES, iter_pages, list_accounts

        shutil.rmtree(data_dir, ignore_errors=True)
        cpu = _cpu()
        report = run_ingest(Settings(data_dir=data_dir), sources="twilio", client_factory=factory, progress=False)
        cpu = _cpu() - cpu
        client = factory()
        t = time.perf_counter()
        fetched = sum(len(p.records) for acct in list_accounts(client)
                      for p in iter_pages(client, acct, MESSAGES, None, None, None))
        ceiling = fetched / (time.perf_counter() - t)
        r = report.result("twilio")
        assert report.ok and r.loaded == expected, report.summary()
        return r.seconds, r.loaded, r.detail, cpu, ceiling
    finally:
        parent.send("stop")
        proc.join(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="send-log rows per format")
    ap.add_argument("--files", type=int, default=4, help="files the rows are split into")
    ap.add_argument("--api-messages", type=int, default=100_000, help="messages in the API world (0: skip)")
    ap.add_argument("--formats", default="parquet,jsonl")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also measure what the machine can do with the files at all (see machine_ceiling())")
    args = ap.parse_args(argv)

    scratch = Path(args.tmp or tempfile.mkdtemp(prefix="bench_ingest_"))
    scratch.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    try:
        for fmt in [f for f in args.formats.split(",") if f] if args.rows else []:
            folder = scratch / f"logs_{fmt}"
            write_send_logs(folder, args.rows, args.files, fmt)
            glob = str(folder / f"sends-*.{fmt}")
            bare = bare_read(glob, fmt, scratch / "bare.duckdb")
            source_s, total_s, loaded = our_ingest(glob, scratch / f"wh_{fmt}")
            target = 1_000_000 if fmt == "parquet" else 250_000
            rate = loaded / source_s
            rows.append((f"send logs {fmt}: ingest", f"{rate:,.0f} rows/s", f">= {target:,}",
                         "ok" if rate >= target else "MISS"))
            rows.append((f"send logs {fmt}: bare CTAS", f"{args.rows / bare:,.0f} rows/s", "", ""))
            ratio = source_s / bare
            rows.append((f"send logs {fmt}: time vs bare", f"{ratio:.2f}x", "<= 2x", "ok" if ratio <= 2 else "MISS"))
            rows.append((f"send logs {fmt}: run incl. facts+publish", f"{total_s:.1f} s", "", ""))
            if args.ceiling:
                for label, secs in machine_ceiling(glob, fmt, scratch):
                    rows.append((f"  ceiling {fmt}: {label}", f"{args.rows / secs:,.0f} rows/s", "", f"{secs:.1f} s"))
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(scratch / f"wh_{fmt}", ignore_errors=True)
        if args.api_messages:
            secs, loaded, detail, cpu, ceiling = api_ingest(args.api_messages, scratch / "wh_api")
            rate = loaded / secs
            rows.append(("twilio API via SDK (sandbox process)", f"{rate:,.0f} rec/s", ">= 20,000",
                         "ok" if rate >= 20_000 else "MISS"))
            rows.append(("  records, time", f"{loaded:,} in {secs:.1f} s", "", detail))
            rows.append(("  sandbox ceiling: SDK paging alone, messages", f"{ceiling:,.0f} rec/s", "", ""))
            rows.append(("  ingest CPU per record (all threads)", f"{cpu / loaded * 1e6:,.1f} us", "", ""))
    finally:
        if args.tmp is None:
            shutil.rmtree(scratch, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak memory (this process)", f"{peak_mb:,.0f} MB", "< 2,048 MB", "ok" if peak_mb < 2048 else "MISS"))

    w = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{w}}  {'value':>22}  {'target':>12}  verdict")
    for name, value, target, verdict in rows:
        print(f"{name:<{w}}  {value:>22}  {target:>12}  {verdict}")
    print(f"\n(rows={args.rows:,} in {args.files} file(s), api messages={args.api_messages:,}, "
          f"DuckDB {duckdb.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
