"""Issue 20's benchmark: the lake build's per-row cost on Spark (local[2]) against DuckDB, same machine.

    .venv/bin/python -m bench.bench_spark --messages 100000 1000000 [10000000]

For each size: the synthetic history of ``bench.bench_analytics.build`` (raw tables only: SMS, calls,
send logs, conversions, experiments), exported to a lake's ``raw/`` (hive Parquet), then built by each
engine into ``facts/`` (every facts and rollup table of ingest/facts.sql). Spark's session start is timed
apart. From two sizes: each engine's fixed cost and per-message cost (least squares on time = fixed +
per_row × N), the size where Spark's fixed cost falls under 10 % of its build, and what a year of 1
billion messages needs. The last line is the JSON of every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import duckdb

from bench import bench_analytics
from switchboard.ingest import lake_build, warehouse

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "results" / "spark"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def source(n: int) -> Path:
    """A warehouse with the raw tables of an n-message history (cached; facts not built: the lake build
    makes them)."""
    path = WORK / f"raw_{n}.duckdb"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        say(f"generating {n:,} messages …")
        bench_analytics._create_schema = warehouse.ensure_schema  # raw tables + dimensions only
        bench_analytics._refresh_facts = lambda con, **kw: None
        bench_analytics.build(path, n)
    return path


def cpu_seconds(spark) -> float:
    """CPU seconds used so far by this process (DuckDB's threads) and Spark's local JVM: a load-independent
    cost beside the wall clock (on a shared machine the wall clock also counts other people's work)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    proc = getattr(getattr(getattr(spark, "sparkContext", None), "_gateway", None), "proc", None)
    if proc is not None:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(n: int, spark, engines: list[str]) -> dict:
    lake = WORK / f"lake_{n}"
    shutil.rmtree(lake, ignore_errors=True)
    con = duckdb.connect(str(source(n)), read_only=True)
    started = time.perf_counter()
    lake_build.export_raw(con, lake)
    con.close()
    out: dict = {"messages": n, "export_s": time.perf_counter() - started}
    say(f"{n:,}: raw lake exported in {out['export_s']:.1f} s")
    for engine in engines:
        shutil.rmtree(lake / "facts", ignore_errors=True)
        started, cpu = time.perf_counter(), cpu_seconds(spark)
        if engine == "spark":
            report = lake_build.build_spark(spark, lake)
        else:
            report = lake_build.build_duckdb(lake)
        out[f"{engine}_s"] = time.perf_counter() - started
        out[f"{engine}_cpu_s"] = cpu_seconds(spark) - cpu
        out[f"{engine}_tables"] = {k: round(v, 2) for k, v in report.seconds.items()}
        out["rows"] = report.rows
        say(f"{n:,}: {engine} build {out[f'{engine}_s']:.1f} s")
    shutil.rmtree(lake, ignore_errors=True)
    return out


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares time = fixed + per_row × n; (fixed seconds, seconds per message)."""
    k = len(points)
    if k < 2:
        n, t = points[0]
        return 0.0, t / n
    mx = sum(n for n, _ in points) / k
    my = sum(t for _, t in points) / k
    sxx = sum((n - mx) ** 2 for n, _ in points)
    slope = sum((n - mx) * (t - my) for n, t in points) / sxx
    return max(my - slope * mx, 0.0), slope


def summary(results: list[dict], engines: list[str], session_s: float | None) -> dict:
    out: dict = {"session_start_s": session_s, "sizes": results}
    for engine in engines:
        fixed, per_row = fit([(r["messages"], r[f"{engine}_s"]) for r in results])
        cpu_fixed, cpu_per_row = fit([(r["messages"], r[f"{engine}_cpu_s"]) for r in results])
        out[engine] = {"fixed_s": fixed, "us_per_message": per_row * 1e6,
                       "cpu_fixed_s": cpu_fixed, "cpu_us_per_message": cpu_per_row * 1e6,
                       # CPU seconds per message, summed over cores: what a cluster has to supply
                       "core_hours_per_billion": cpu_per_row * 1e9 / 3600}
    if "spark" in engines:
        fixed, per_row = out["spark"]["fixed_s"], out["spark"]["us_per_message"] / 1e6
        out["spark"]["fixed_under_10pct_from_messages"] = int(9 * fixed / per_row) if per_row > 0 else None
    return out


def print_table(s: dict, engines: list[str]) -> None:
    print(f"Spark session start: {s['session_start_s']:.1f} s" if s["session_start_s"] else "")
    head = "messages".rjust(12) + "".join(f"{e + ' s':>12}{e + ' cpu s':>14}" for e in engines)
    print(head)
    for r in s["sizes"]:
        print(f"{r['messages']:>12,}" + "".join(f"{r[f'{e}_s']:>12.1f}{r[f'{e}_cpu_s']:>14.1f}" for e in engines))
    for e in engines:
        x = s[e]
        print(f"{e}: wall: fixed {x['fixed_s']:.1f} s + {x['us_per_message']:.2f} µs per message; CPU: fixed "
              f"{x['cpu_fixed_s']:.1f} s + {x['cpu_us_per_message']:.2f} µs per message "
              f"({x['core_hours_per_billion']:.1f} core-hours per billion messages)")
    if "spark" in engines and s["spark"].get("fixed_under_10pct_from_messages"):
        print(f"spark: its fixed cost is under 10 % of a build from "
              f"{s['spark']['fixed_under_10pct_from_messages']:,} messages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bench_spark", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--engines", default="duckdb,spark", help="comma-separated: duckdb,spark")
    args = parser.parse_args(argv)
    engines = args.engines.split(",")
    spark, session_s = None, None
    if "spark" in engines:
        started = time.perf_counter()
        spark = lake_build.spark_session("local[2]")
        spark.sparkContext.setLogLevel("ERROR")
        session_s = time.perf_counter() - started
        say(f"Spark session started in {session_s:.1f} s")
    results = []
    try:
        for n in args.messages:
            results.append(measure(n, spark, engines))
    finally:
        if spark is not None:
            spark.stop()
    s = summary(results, engines, session_s)
    print_table(s, engines)
    print(json.dumps(s, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
