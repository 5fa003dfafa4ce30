"""Experiments page benchmark (issue 19): the analytics behind one view of the page, at 10M messages.

    python -m bench.bench_experiments --db data/bench_10000000.duckdb
    python -m bench.bench_experiments --db data/bench_10000000.duckdb --days 90 --repeat 3

What one page view computes, as ``dashboard/app_pages/experiments.py`` calls it (no Streamlit):
1. ``experiment_data``: the one grouping of the exposures behind the list, the analysis and the countries,
   with the CUPED sums (each member's pre-period conversions, read off their first exposure in
   ``_experiment_exposures``) when the warehouse carries them;
2. the chosen experiment's pre-period data: ``opt_out_data`` (the members who opted out) and
   ``preperiod_from`` (no SQL) when step 1 brought the CUPED sums, else ``preperiod_data`` (counts the
   pre-period conversions at query time: a ``--pre-days`` the warehouse does not carry, or an analytics
   build from before the covariate was built into the exposures: the script runs against that build too);
3. ``analyse_from`` + ``experiment_readout``: the statistics, the decision card, Bayesian, CUPED,
   Cochran's Q across countries, power (Python only, no SQL).
Each step is timed on a fresh read-only connection (cold: DuckDB's own caches empty) then again (warm),
per experiment, wall and CPU (this process, all threads); the target is the page's analytics under 500 ms
(issue 6), the sum of the three steps.
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from switchboard.analytics import experiments as ex

TARGET_MS = 500.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ms(times: dict[str, tuple[float, float]], step: str, fn, *args, **kwargs):
    """Call ``fn``; add its (wall, CPU) milliseconds to ``times[step]``."""
    t0, c0 = time.perf_counter(), _cpu()
    out = fn(*args, **kwargs)
    wall, cpu = times.get(step, (0.0, 0.0))
    times[step] = (wall + 1000 * (time.perf_counter() - t0), cpu + 1000 * (_cpu() - c0))
    return out


def one_view(con: duckdb.DuckDBPyConnection, experiment_id: str | None, period: dict, *,
             pre_days: int = 28) -> dict[str, tuple[float, float]]:
    """(wall, CPU) ms of the three steps of one page view, as the page makes them (setting
    experiment_pre_days = ``pre_days``); the first experiment when ``experiment_id`` is None."""
    times: dict[str, tuple[float, float]] = {}
    # an analytics build from before the CUPED sums came with experiment_data has no pre_days there
    with_sums = "pre_days" in inspect.signature(ex.experiment_data).parameters
    page = _ms(times, "experiment_data", ex.experiment_data, con, **period, window_minutes=30.0,
               **({"pre_days": pre_days} if with_sums else {}))
    experiments = ex.list_from(page)
    chosen = experiment_id or str(experiments["experiment_id"].iloc[0])
    pre = None
    if getattr(page, "cuped", None) is not None:
        opt_outs = _ms(times, "pre-period", ex.opt_out_data, con, chosen, **period)
        pre = _ms(times, "pre-period", ex.preperiod_from, page, chosen, opt_outs)
    if pre is None:
        pre = _ms(times, "pre-period", ex.preperiod_data, con, chosen, **period, window_minutes=30.0,
                  pre_days=pre_days)

    def analyse():
        analysis = ex.analyse_from(page, chosen)
        return ex.experiment_readout(analysis, page, pre)

    _ms(times, "analysis+readout", analyse)
    times["total"] = (sum(w for w, _ in times.values()), sum(c for _, c in times.values()))
    return times


def _fmt(times: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {w:.0f}/{c:.0f}" for k, (w, c) in times.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=REPO / "data" / "bench_10000000.duckdb",
                        help="A warehouse (python -m bench.bench_analytics builds data/bench_10000000.duckdb).")
    parser.add_argument("--days", type=int, default=30, help="The period: the last N days of data (default 30, "
                        "the dashboard's default view).")
    parser.add_argument("--repeat", type=int, default=3, help="Warm repeats per experiment (median reported).")
    parser.add_argument("--pre-days", type=int, default=28, help="The setting experiment_pre_days (default 28, "
                        "the pre-period _experiment_exposures carries; another one is counted at query time).")
    args = parser.parse_args(argv)
    if not args.db.exists():
        parser.error(f"{args.db} does not exist: build it with `python -m bench.bench_analytics` or pass --db")
    con = duckdb.connect(str(args.db), read_only=True)
    last = con.execute("SELECT max(sent_day) FROM attempt_facts").fetchone()[0]
    messages = con.execute("SELECT count(*) FROM attempt_facts").fetchone()[0]
    period = {"start": last - timedelta(days=args.days - 1), "end": last}
    ids = ex.list_from(ex.experiment_data(con, **period))["experiment_id"].tolist()
    con.close()
    print(f"{args.db.name}: {messages:,} attempts, period {period['start']} to {period['end']}, "
          f"{len(ids)} experiments; _response_facts: {'yes' if _has_responses(args.db) else 'no'}; "
          f"pre_days {args.pre_days}; load average before "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("wall/CPU ms per step (CPU: this process, all DuckDB threads)")
    worst = 0.0
    for experiment_id in ids:
        con = duckdb.connect(str(args.db), read_only=True)
        cold = one_view(con, experiment_id, period, pre_days=args.pre_days)
        warm = [one_view(con, experiment_id, period, pre_days=args.pre_days) for _ in range(args.repeat)]
        con.close()
        med = {k: (statistics.median(w[k][0] for w in warm), statistics.median(w[k][1] for w in warm))
               for k in cold}
        worst = max(worst, cold["total"][0])
        print(f"  {experiment_id}: cold {_fmt(cold)}")
        print(f"  {' ' * len(experiment_id)}  warm {_fmt(med)} (median of {args.repeat})")
    verdict = "meets" if worst < TARGET_MS else "misses"
    print(f"slowest cold view {worst:.0f} ms wall: {verdict} the {TARGET_MS:.0f} ms target; load average after "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


def _has_responses(db: Path) -> bool:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return ex.has_responses(con)
    finally:
        con.close()


if __name__ == "__main__":
    raise SystemExit(main())
