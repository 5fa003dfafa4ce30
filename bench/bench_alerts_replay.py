"""Replay benchmark of the alert rules (issue 17 quality targets) over the sandbox's default 90-day world.

    python -m bench.bench_alerts_replay [--messages 200000] [--calls 20000] [--seeds 7 1 2]
                                        [--end 2026-12-05] [--recent-hours 24] [--quiet]

For each seed: generate the world (the default scenario: its carrier incident, landline-heavy Egypt, the
unregistered US long code, opted-out members and the SMS-pumping episode), load it into an in-memory warehouse
(``tests.test_analytics_insights.load_world``: the API's rows and the send log, as an ingest would), then
evaluate every built-in rule at 23:59:59 of each day from a full 28-day baseline after the start to the last
day (the recent window ``--recent-hours`` long, the built-in 24 by default). Prints per day the alerts raised
and what in ground truth explains each (``tests.test_alerts_truth.explanation``), then the recall of the
injected incidents (alerted or not, first day, naming the right country / carrier / code / prefixes) and the
number of alerts ground truth does not explain (the target: none). CPU and wall seconds and the load average
are printed: the numbers are counts, not timings, but the run's cost is worth knowing on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, date, datetime
from typing import Any

from switchboard.alerts import rules
from tests.test_alerts_truth import _when, default_world, explanation, pumping_matches, replay


def _cell(f: Any) -> str:
    parts = [f.country_iso2 or "*", f.carrier or "", f.template_id or "",
             str(f.error_code) if f.error_code is not None else ""]
    if f.kind == "pumping":
        parts.append(" ".join(f.evidence.get("prefixes", [])))
    return "/".join(p for p in parts if p)


def _recall(truth: dict[str, Any], days: list[tuple[date, list]]) -> list[str]:
    lines = []
    for inc in truth["incidents"]:
        if inc["kind"] == "carrier_filtering":
            hits = [(d, f) for d, fs in days for f in fs if (f.kind, f.country_iso2, f.error_code, f.carrier)
                    == ("error_rise", inc["country"], inc["error_code"], inc["carrier"])]
            start = date.fromisoformat(inc["start_date"])
            if hits:
                d, f = hits[0]
                lines.append(f"  carrier_filtering {inc['country']}/{inc['carrier']}/{inc['error_code']} from {start}: "
                             f"alerted {d} (day {(d - start).days} of a {inc['ramp_days']}-day ramp), templates "
                             f"{', '.join(f.evidence.get('templates') or []) or '-'}")
            else:
                lines.append(f"  carrier_filtering {inc['country']}/{inc['carrier']}/{inc['error_code']}: NOT alerted")
        else:
            hits = [d for d, fs in days for f in fs if (f.country_iso2, f.error_code) == (inc["country"],
                                                                                         inc["error_code"])]
            lines.append(f"  {inc['kind']} {inc['country']}/{inc['error_code']}: "
                         + (f"alerted {hits[0]}" if hits else "not alerted (standing from the first day: there is "
                            "no before to compare with; the Overview's persistent-error finding names it)"))
    for ep in truth.get("pumping", []):
        hits = [(d, f) for d, fs in days for f in fs if f.kind == "pumping" and pumping_matches(f, ep)]
        start = _when(ep["start"]).date()
        if hits:
            d, f = hits[0]
            lines.append(f"  sms_pumping {ep['country']} {ep['start']} ({ep['messages']:,} codes, ranges "
                         f"{', '.join(ep['prefixes'])}): alerted {d} (day {(d - start).days}), prefixes "
                         f"{', '.join(f.evidence['prefixes'])}")
        else:
            lines.append(f"  sms_pumping {ep['country']} {ep['start']}: NOT alerted")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_alerts_replay", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 12, 5),
                        help="the history's end (exclusive), YYYY-MM-DD (default %(default)s)")
    parser.add_argument("--recent-hours", type=float, default=24.0)
    parser.add_argument("--quiet", action="store_true", help="no per-day lines, only the summary")
    args = parser.parse_args(argv)
    config = rules.parse({"defaults": {"recent_hours": args.recent_hours}})
    end = datetime(args.end.year, args.end.month, args.end.day, tzinfo=UTC)
    total_unexplained = 0
    for seed in args.seeds:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        w, con = default_world(args.messages, args.calls, seed, end)
        truth = w.ground_truth
        cpu1, wall1 = time.process_time(), time.perf_counter()
        days = replay(con, truth, config)
        cpu2, wall2 = time.process_time(), time.perf_counter()
        print(f"seed {seed}: {truth['messages']:,} SMS, {truth['start'][:10]} to {truth['end'][:10]}, "
              f"{args.recent_hours:g}-hour window, {len(days)} days replayed")
        unexplained = 0
        for d, findings in days:
            if not findings:
                if not args.quiet:
                    print(f"  {d}  -")
                continue
            for f in findings:
                why = explanation(f, truth)
                unexplained += why is None
                if not args.quiet or why is None:
                    print(f"  {d}  {f.rule:<16} {_cell(f):<48} {'explained: ' + why if why else 'UNEXPLAINED'}")
        print("  recall of the injected incidents:")
        for line in _recall(truth, days):
            print(line)
        alerts = sum(len(fs) for _, fs in days)
        print(f"  {alerts} alert-days, {unexplained} unexplained (target 0); world + load {cpu1 - cpu0:.1f} s CPU "
              f"({wall1 - wall0:.1f} s wall), replay {cpu2 - cpu1:.1f} s CPU ({wall2 - wall1:.1f} s wall, "
              f"{(wall2 - wall1) / max(len(days), 1):.2f} s a day), load average {os.getloadavg()[0]:.1f}")
        total_unexplained += unexplained
        con.close()
    return 0 if total_unexplained == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
