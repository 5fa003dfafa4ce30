"""Benchmark of one alert evaluation (issue 17 target: adds <= 1 s to an ingest run at 10M messages).

    python -m bench.bench_alerts [--db data/bench_10000000.duckdb] [--repeats 3]

Opens a warehouse read-only (the synthetic one ``bench.bench_analytics`` builds, by default), evaluates the
built-in rules as the ingest hook would (a dry run: nothing written, nothing sent), after a warm-up, and
prints the median wall and CPU seconds of the whole evaluation and of each rule alone, against the 1 s
target (wall). The machine's load average is printed too: wall seconds scale with it on a shared box.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import duckdb

from switchboard.alerts import evaluate, rules, run

TARGET_S = 1.0


def _median(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (this process, all DuckDB threads) of ``fn``, after a warm-up."""
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_alerts", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("data/bench_10000000.duckdb"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.db.exists():
        parser.error(f"{args.db} does not exist: build it with python -m bench.bench_analytics --messages 10000000")
    con = duckdb.connect(str(args.db), read_only=True)
    messages = con.execute("SELECT count(*) FROM message_facts").fetchone()[0]
    config = rules.parse({})
    print(f"{messages:,} messages, load average {os.getloadavg()[0]:.1f}, {args.repeats} repeats (median)")
    print(f"  {'':<18} {'wall':>7}   {'cpu':>7}")
    wall, cpu = _median(lambda: run(con, config, dry_run=True), args.repeats)
    print(f"  {'all rules':<18} {wall:7.3f} s {cpu:7.3f} s   target <= {TARGET_S:.1f} s: "
          f"{'ok' if wall <= TARGET_S else 'MISS'}")
    for rule in config.rules:
        one = rules.Config(rules=(rule,))
        wall, cpu = _median(lambda one=one: evaluate.evaluate(con, one), args.repeats)
        print(f"  {rule.name:<18} {wall:7.3f} s {cpu:7.3f} s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
