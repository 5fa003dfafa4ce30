"""What an ingest run costs on a long history (issue 15): a run that finds nothing new, and a run that
brings one hour of new traffic plus the status changes of the lag window, at several history sizes.

    python -m bench.bench_incremental [--sizes 200000 2000000 10000000] [--dir data/bench_incremental]

For each size N:

1. the history: the synthetic N-message warehouse of bench/bench_analytics.py (90 days; SMS, calls,
   fallbacks, push, conversions, an experiment), copied in as the ingest database;
2. the full facts build (``switchboard ingest --rebuild-facts``: the reference) is timed, then two runs
   create the two snapshot files (each a whole copy, timed: that is what every run cost before);
3. runs that find nothing new (the send-log and BulkExport folders hold only files already loaded);
4. one-hour-delta runs: a new send-log file with the next hour's sends (N/2160 SMS, as many as an hour of
   the history) and its conversions, and a BulkExport day file with those messages plus every message
   the history left pending, now delivered and priced (the lag window's status changes);

each through ``run_ingest`` (real sources, incremental facts, publish by patching a snapshot), printed
with the split between reading, facts and publishing, and the files' size on disk. The Twilio API's
lag-window re-read is not part of these runs: it costs the same at every history size (the window's
records; 88k records took 4.4 s at 2M messages, see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import bench_analytics as ba
from switchboard.core.settings import Settings
from switchboard.ingest import incremental, pipeline

HOURS = ba.DAYS * 24
END = datetime.combine(ba.END + timedelta(days=1), datetime.min.time(), tzinfo=UTC)  # the history's end


def _iso(col: str) -> str:
    return f"strftime(timezone('UTC', {col}), '%Y-%m-%dT%H:%M:%SZ')"


def history(n: int, folder: Path) -> Path:
    """The synthetic history (built once per size, reused; bench_analytics' own data/bench_<N>.duckdb is the
    same data, seed 1, and is used when present: it is only read, the runs work on a copy)."""
    shared = Path("data") / f"bench_{n}.duckdb"
    if shared.exists():
        return shared
    path = folder / f"history_{n}.duckdb"
    if not path.exists():
        t = time.monotonic()
        ba.build(path, n)
        print(f"  built the {n:,}-message history in {time.monotonic() - t:.0f} s", flush=True)
    return path


def write_delta(con, work: Path, hour: int) -> int:
    """The next hour's send-log, conversion and BulkExport files (hour 1, 2, ... after the history).
    The new messages copy the history's last hour with new ids and times; the BulkExport file also
    carries every message still pending, now delivered. Returns the new messages."""
    shift = f"INTERVAL {hour} HOUR"
    last = f"date_sent >= TIMESTAMPTZ '{END.isoformat()}' - INTERVAL 1 HOUR"
    sends, bulk = work / "send_logs", work / "bulk_export" / "Messages"
    sends.mkdir(parents=True, exist_ok=True)
    bulk.mkdir(parents=True, exist_ok=True)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _new AS
        SELECT 'SMh{hour}_' || row_number() OVER () AS new_sid, m.*, s.event_id AS old_event, s.user_id, s.purpose,
               s.template_id, s.experiment_id, s.variant, s.country
        FROM twilio_messages m JOIN send_log s ON s.provider_sid = m.sid WHERE m.{last}""")
    new = con.execute("SELECT count(*) FROM _new").fetchall()[0][0]
    con.execute(f"""COPY (SELECT 'Eh{hour}_' || new_sid AS event_id, {_iso(f'date_sent + {shift} - INTERVAL 1 SECOND')}
                         AS sent_at, 'sms' AS channel, purpose, template_id, experiment_id, variant, user_id, country,
                         new_sid AS provider_sid FROM _new)
                   TO '{sends}/sends-h{hour}.jsonl' (FORMAT JSON)""")
    con.execute(f"""COPY (SELECT 'Vh{hour}_' || new_sid AS event_id, user_id, 'verified' AS conversion_type,
                         {_iso(f'date_sent + {shift} + INTERVAL 3 MINUTE')} AS occurred_at
                         FROM _new WHERE hash(new_sid) % 3 = 0)
                   TO '{sends}/conversions-h{hour}.jsonl' (FORMAT JSON)""")
    record = """account_sid, messaging_service_sid, direction, from_number AS "from", to_number AS "to",
                CAST(num_segments AS VARCHAR) AS num_segments, '0' AS num_media, 'USD' AS price_unit"""
    con.execute(f"""COPY (
            SELECT new_sid AS sid, {record}, 'sent' AS status, NULL AS error_code, NULL AS price,
                   {_iso(f'date_created + {shift}')} AS date_created, {_iso(f'date_sent + {shift}')} AS date_sent,
                   {_iso(f'date_sent + {shift} + INTERVAL 2 SECOND')} AS date_updated
            FROM _new
            UNION ALL  -- the lag window's status changes: what the history left pending is delivered now
            SELECT sid, {record}, 'delivered', NULL, CAST(-coalesce(price_usd, 0.01) AS VARCHAR),
                   {_iso('date_created')}, {_iso('date_sent')}, {_iso(f"TIMESTAMPTZ '{END.isoformat()}' + {shift}")}
            FROM twilio_messages WHERE status = 'sent' AND sid NOT LIKE 'SMh%')
        TO '{bulk}/h{hour}.jsonl' (FORMAT JSON)""")
    return int(new)


def _du(*paths: Path) -> float:
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total / 1e9


def _run(settings: Settings, work: Path) -> tuple[float, float, float, float, str, str, float]:
    cpu = time.process_time()  # this process's CPU seconds, DuckDB's threads included: less load-sensitive
    report = pipeline.run_ingest(settings, sources=["send-logs", "bulk-export"], progress=False,
                                 send_logs=[str(work / "send_logs" / "*.jsonl")],
                                 bulk_export_dir=work / "bulk_export")
    if not report.ok:
        raise SystemExit(report.summary())
    return (report.seconds, report.read_seconds, report.facts_seconds, report.publish_seconds, report.facts_mode,
            report.publish_mode, time.process_time() - cpu)


def bench_size(n: int, folder: Path, repeats: int) -> dict[str, object]:
    work = folder / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = history(n, folder)
    settings = Settings(data_dir=work)
    shutil.copyfile(src, settings.ingest_db_path)
    (work / "send_logs").mkdir()
    (work / "bulk_export").mkdir()
    con = pipeline.open_ingest_db(settings.ingest_db_path)
    try:
        t = time.monotonic()
        incremental.refresh(con, rebuild=True)
        rebuild = time.monotonic() - t
    finally:
        con.close()
    copies = [_run(settings, work)[3] for _ in range(2)]  # the two snapshot files, each a whole copy
    out: dict[str, object] = {"n": n, "rebuild": rebuild, "copy": statistics.median(copies)}
    out["nothing"] = [_run(settings, work) for _ in range(repeats)]
    deltas = []
    for hour in range(1, repeats + 1):
        con = pipeline.open_ingest_db(settings.ingest_db_path)
        try:
            out["new_per_hour"] = write_delta(con, work, hour)
        finally:
            con.close()
        deltas.append(_run(settings, work))
    out["delta"] = deltas
    out["load"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    snaps = work / ".warehouse.duckdb.snapshots"
    out["size_ingest"], out["size_snapshots"] = _du(settings.ingest_db_path), _du(snaps)
    return out


def _line(label: str, runs: list[tuple]) -> str:
    med = [statistics.median(r[i] for r in runs) for i in range(4)]
    cpu = statistics.median(r[6] for r in runs)
    modes = ",".join(sorted({f"{r[4]}/{r[5]}" for r in runs}))
    return (f"  {label:<28} {med[0]:7.2f} s   read {med[1]:6.2f}   facts {med[2]:6.2f}   publish {med[3]:6.2f}"
            f"   CPU {cpu:6.2f} s   ({modes}; median of {len(runs)})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000, 10_000_000])
    ap.add_argument("--dir", type=Path, default=Path("data/bench_incremental"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"bench_incremental: load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores, ingest memory limit "
          f"{pipeline.MEMORY_LIMIT} (SWITCHBOARD_INGEST_MEMORY)", flush=True)
    results = []
    for n in args.sizes:
        print(f"\n{n:,} messages", flush=True)
        r = bench_size(n, args.dir, args.repeats)
        results.append(r)
        print(f"  full facts build (--rebuild-facts) {r['rebuild']:7.2f} s;  publish by whole copy {r['copy']:6.2f} s")
        print(_line("run, nothing new", r["nothing"]))
        print(_line(f"run, 1 h delta ({r['new_per_hour']:,} SMS)", r["delta"]))
        print(f"  load average during the runs: {r['load']}", flush=True)
        print(f"  on disk: ingest {r['size_ingest']:.2f} GB + snapshots {r['size_snapshots']:.2f} GB "
              f"(warehouse.duckdb is a hard link to one of them)", flush=True)
    if len(results) > 1:
        base = statistics.median(x[0] for x in results[0]["nothing"])
        for r in results[1:]:
            ratio = statistics.median(x[0] for x in r["nothing"]) / base
            print(f"nothing-new run at {r['n']:,} / at {results[0]['n']:,}: {ratio:.2f}x")
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
