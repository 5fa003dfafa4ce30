"""Benchmark of the opt-out spikes in "what changed" (issue 18): ``insights.what_changed`` with and without
``opt_outs``, and ``responses.opt_out_cells`` (the one count behind every opt-out spike) with the rollup on
and off, on a warehouse file.

    python -m bench.bench_opt_outs data/bench_10000000.duckdb [--synthesize COPY] [--share 0.005] [--repeats 3]

``--synthesize COPY`` first copies the warehouse to COPY and gives it opt-out replies: ``--share`` of the
delivered SMS answered with an opt-out 4 minutes later (``_response_facts``, the ``responses`` view and
``_opt_out_messages`` as ``ingest/responses.sql`` shapes them), since the bench warehouses have none.
Prints the best of ``--repeats`` runs, wall and process CPU seconds, with the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import duckdb

from switchboard.analytics import _sql, insights, responses


def synthesize(src: Path, dest: Path, share: float) -> None:
    shutil.copyfile(src, dest)
    con = duckdb.connect(str(dest))
    try:
        every = max(1, round(1 / share))
        con.execute(f"""CREATE OR REPLACE TABLE _response_facts AS
            SELECT 'SMr' || sid AS sid, sent_at + INTERVAL 4 MINUTE AS received_at, 'opt_out' AS classification,
                   sid AS linked_sid
            FROM _message_facts WHERE is_delivered AND hash(sid) % {every} = 0""")
        con.execute("CREATE OR REPLACE VIEW responses AS SELECT * FROM _response_facts")
        con.execute("""CREATE OR REPLACE TABLE _opt_out_messages AS SELECT * FROM _message_facts
            WHERE sid IN (SELECT linked_sid FROM _response_facts WHERE classification = 'opt_out')""")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def best(label: str, fn, repeats: int) -> None:
    runs = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0, len(out)))
    wall, cpu, rows = min(runs, key=lambda r: r[1])
    print(f"{label:62s} wall {wall * 1000:6.0f} ms  cpu {cpu * 1000:6.0f} ms  ({rows} rows)  "
          f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("warehouse", type=Path)
    p.add_argument("--synthesize", type=Path, default=None, metavar="COPY")
    p.add_argument("--share", type=float, default=0.005)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    path = args.warehouse
    if args.synthesize:
        synthesize(path, args.synthesize, args.share)
        path = args.synthesize
    con = duckdb.connect(str(path), read_only=True)
    end = con.execute("SELECT max(sent_day) FROM message_facts").fetchone()[0]
    opt_outs = con.execute("SELECT count(*) FROM responses WHERE classification = 'opt_out'").fetchone()[0] \
        if responses.available(con) else 0
    print(f"{path}: {con.execute('SELECT count(*) FROM message_facts').fetchone()[0]:,} SMS, {opt_outs:,} opt-outs; "
          f"what changed for the 7 days to {end}")
    best("insights.what_changed(opt_outs=False)", lambda: insights.what_changed(con, end=end, opt_outs=False),
         args.repeats)
    best("insights.what_changed (opt-out rises on)", lambda: insights.what_changed(con, end=end), args.repeats)
    start, split = end - timedelta(days=34), end - timedelta(days=6)
    by = ["country_iso2", "template_id", "variant"]

    def cells(rollups: bool):
        def run():
            _sql.USE_ROLLUPS = rollups
            try:
                return responses.opt_out_cells(con, start=start, split=split, end=end, by=by, daily=True)
            finally:
                _sql.USE_ROLLUPS = True
        return run

    best("responses.opt_out_cells(country x template x variant, daily)", cells(True), args.repeats)
    best("  the same, rollups off (every SMS from the facts)", cells(False), args.repeats)


if __name__ == "__main__":
    main()
