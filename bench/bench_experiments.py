"""Experiments page benchmark (issue 19): the analytics behind one view of the page, at 10M messages.

    python -m bench.bench_experiments --db data/bench_10000000.duckdb
    python -m bench.bench_experiments --db data/bench_10000000.duckdb --days 90 --repeat 3

What one page view computes, as ``dashboard/app_pages/experiments.py`` calls it (no Streamlit):
1. ``experiment_data``: the one grouping of the exposures behind the list, the analysis and the countries;
2. ``preperiod_data`` for the chosen experiment: CUPED sums (pre-period conversions per member) and
   opt-outs;
3. ``analyse_from`` + ``experiment_readout``: the statistics, the decision card, Bayesian, CUPED,
   Cochran's Q across countries, power (Python only, no SQL).
Each step is timed on a fresh read-only connection (cold: DuckDB's own caches empty) then again (warm),
per experiment; the target is the page's analytics under 500 ms (issue 6), the sum of the three steps.
"""

from __future__ import annotations

import argparse
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


def _ms(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, 1000 * (time.perf_counter() - t0)


def one_view(con: duckdb.DuckDBPyConnection, experiment_id: str | None, period: dict) -> dict[str, float]:
    """Times (ms) of the three steps of one page view; the first experiment when ``experiment_id`` is None."""
    page, t_data = _ms(ex.experiment_data, con, **period, window_minutes=30.0)
    experiments = ex.list_from(page)
    chosen = experiment_id or str(experiments["experiment_id"].iloc[0])
    pre, t_pre = _ms(ex.preperiod_data, con, chosen, **period, window_minutes=30.0)

    def analyse():
        analysis = ex.analyse_from(page, chosen)
        return ex.experiment_readout(analysis, page, pre)

    _, t_stats = _ms(analyse)
    return {"experiment_data": t_data, "preperiod_data": t_pre, "analysis+readout": t_stats,
            "total": t_data + t_pre + t_stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=REPO / "data" / "bench_10000000.duckdb",
                        help="A warehouse (python -m bench.bench_analytics builds data/bench_10000000.duckdb).")
    parser.add_argument("--days", type=int, default=30, help="The period: the last N days of data (default 30, "
                        "the dashboard's default view).")
    parser.add_argument("--repeat", type=int, default=3, help="Warm repeats per experiment (median reported).")
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
          f"{len(ids)} experiments; _response_facts: {'yes' if _has_responses(args.db) else 'no'}")
    worst = 0.0
    for experiment_id in ids:
        con = duckdb.connect(str(args.db), read_only=True)
        cold = one_view(con, experiment_id, period)
        warm = [one_view(con, experiment_id, period) for _ in range(args.repeat)]
        con.close()
        med = {k: statistics.median(w[k] for w in warm) for k in cold}
        worst = max(worst, med["total"])
        print(f"  {experiment_id}: cold " + ", ".join(f"{k} {v:.0f} ms" for k, v in cold.items()))
        print(f"  {' ' * len(experiment_id)}  warm " + ", ".join(f"{k} {v:.0f} ms" for k, v in med.items()))
    verdict = "meets" if worst < TARGET_MS else "misses"
    print(f"slowest warm view {worst:.0f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return 0


def _has_responses(db: Path) -> bool:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return ex.has_responses(con)
    finally:
        con.close()


if __name__ == "__main__":
    raise SystemExit(main())
