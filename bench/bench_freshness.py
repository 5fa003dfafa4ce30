"""Benchmark of freshness (issue 16): seconds from a status change in the sandbox to it being visible in the
published warehouse, with live traffic, status callbacks into `switchboard listen` and `ingest --every`.

    python -m bench.bench_freshness [--messages 200000] [--live-rate 20] [--every 30] [--minutes 10]

Runs the real `switchboard demo --live --no-dashboard` (sandbox with live traffic, its signed status
callbacks and Event Streams batches to a `switchboard listen` process, the continuous ingest) in a child
process, and watches the published `warehouse.duckdb` from outside, as the dashboard does, every
`--sample` seconds (a fresh read-only ATTACH each time, so a newly renamed snapshot is seen):

  * per status change: from the change's own time (the sandbox's timestamp, carried by its callback /
    event: twilio_events.event_time) to the first sample that saw the message's final status in the
    published warehouse; only changes after the first `--every` of live traffic (warm-up) count;
    the sampling adds up to `--sample` seconds (an upper bound);
  * the dashboard's view: at every sample, how old the newest delivered status visible is.

The issue's target: with a 2M-message history, 20 messages/s, callbacks and `--every 30`, the newest
delivered message is <= 60 s old at the 95th percentile over 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

FINAL = ("delivered", "undelivered", "failed")


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _start_demo(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen, queue.Queue]:
    cmd = [sys.executable, "-m", "switchboard.cli", "demo", "--live", "--no-dashboard", "--sandbox-port", "0",
           "--messages", str(args.messages), "--calls", str(args.messages // 10), "--days", str(args.days),
           "--live-rate", str(args.live_rate), "--every", str(args.every), "--data-dir", str(data_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}
    log = open(data_dir.parent / "demo-stderr.log", "w")  # noqa: SIM115 - the child's life
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)  # stopped by SIGTERM:
    # a bench started in the background (`... &`) hands its children SIGINT ignored
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue, prefix: str) -> None:
    while True:
        line = lines.get()
        if line is None:
            raise SystemExit(f"the demo exited before {prefix!r}")
        print(f"  demo: {line}", file=sys.stderr, flush=True)
        if line.startswith(prefix):
            return


def _sample(warehouse: Path, since: datetime) -> tuple[dict[str, str], datetime | None]:
    """(live sid -> final status, newest delivered status time) in the published snapshot now."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
        finals = dict(con.execute(
            "SELECT sid, status FROM w.twilio_messages WHERE date_created >= ? AND status IN ?",
            [since, list(FINAL)]).fetchall())
        newest = con.execute(
            "SELECT greatest((SELECT max(event_time) FROM w.twilio_events WHERE status = 'delivered'), "
            "(SELECT max(date_updated) FROM w.twilio_messages WHERE status = 'delivered'))").fetchall()[0][0]
        return finals, newest
    except duckdb.Error:  # between two publishes the file is being renamed: the next sample sees it
        return {}, None
    finally:
        con.close()


def _watch(args: argparse.Namespace, warehouse: Path, since: datetime, warm_until: datetime
           ) -> tuple[dict[str, float], list[float]]:
    """Samples the snapshot for --minutes: first time each live sid was seen final, and the newest
    delivered age at each sample after the warm-up."""
    first_seen: dict[str, float] = {}
    ages: list[float] = []
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end:
        finals, newest = _sample(warehouse, since)
        now = time.time()
        for sid in finals:
            first_seen.setdefault(sid, now)
        if newest is not None and datetime.now(UTC) >= warm_until:
            ages.append(now - newest.timestamp())
        time.sleep(args.sample)
    return first_seen, ages


def _change_lags(warehouse: Path, first_seen: dict[str, float], warm_until: datetime) -> list[float]:
    """Seen-final time minus the change's own time (its final status event), changes after the warm-up."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        changes = con.execute(
            "SELECT m.sid, min(e.event_time) FROM twilio_messages m JOIN twilio_events e "
            "ON e.sid = m.sid AND e.status = m.status WHERE m.status IN ? GROUP BY m.sid",
            [list(FINAL)]).fetchall()
    finally:
        con.close()
    return [first_seen[sid] - at.timestamp() for sid, at in changes if sid in first_seen and at >= warm_until]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=200_000, help="history size (the issue's target: 2,000,000)")
    p.add_argument("--days", type=int, default=30, help="days of history, ending now")
    p.add_argument("--live-rate", type=float, default=20.0, help="live messages a second")
    p.add_argument("--every", type=float, default=30.0, help="the continuous ingest's interval, seconds")
    p.add_argument("--minutes", type=float, default=10.0, help="how long to watch")
    p.add_argument("--sample", type=float, default=1.0, help="seconds between two looks at the snapshot")
    p.add_argument("--data-dir", type=Path, default=None, help="where the demo writes (default: a temp folder)")
    args = p.parse_args(argv)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench_freshness_")) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc, lines = _start_demo(args, data_dir)
    try:
        _wait_for(lines, "3/4")  # the history is ingested; the continuous ingest starts now
        since = datetime.now(UTC)
        warm_until = datetime.fromtimestamp(since.timestamp() + args.every, UTC)
        setup_s = time.monotonic() - t0
        first_seen, ages = _watch(args, data_dir / "warehouse.duckdb", since, warm_until)
    finally:
        proc.send_signal(signal.SIGTERM)  # the demo stops as on Ctrl-C: loop, sandbox, receiver
        proc.wait(600)
    lags = _change_lags(data_dir / "warehouse.duckdb", first_seen, warm_until)
    result = {
        "history_messages": args.messages, "live_rate": args.live_rate, "every_s": args.every,
        "minutes": args.minutes, "sample_s": args.sample, "setup_s": round(setup_s, 1), "cpus": os.cpu_count(),
        "changes": len(lags), "change_lag_p50_s": _quantile(lags, 0.5), "change_lag_p95_s": _quantile(lags, 0.95),
        "change_lag_max_s": max(lags) if lags else None,
        "samples": len(ages), "newest_delivered_age_p50_s": _quantile(ages, 0.5),
        "newest_delivered_age_p95_s": _quantile(ages, 0.95), "newest_delivered_age_max_s": max(ages) if ages else None,
        "mean_newest_age_s": statistics.fmean(ages) if ages else None,
    }
    target = result["newest_delivered_age_p95_s"]
    result["target_p95_le_60_s"] = None if target is None else target <= 60
    for k, v in result.items():
        print(f"{k:<30} {round(v, 1) if isinstance(v, float) else v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
