"""``switchboard ingest``: Twilio messages/calls, send logs and BulkExport files into the warehouse."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings
from switchboard.ingest.pipeline import SOURCES, run_ingest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=[*SOURCES, "all"], default="all", help="what to ingest")
    parser.add_argument("--since", default=None, help="read Twilio records sent on/after this date (YYYY-MM-DD)")
    parser.add_argument("--until", default=None, help="read Twilio records sent before this date (YYYY-MM-DD)")
    parser.add_argument("--full-refresh", action="store_true",
                        help="ignore cursors and loaded-file records: read everything again (upserts, no duplicates)")
    parser.add_argument("--rebuild-facts", action="store_true",
                        help="rebuild every fact and rollup from the raw tables (the reference build; runs "
                             "otherwise update only what changed)")
    parser.add_argument("--lag-hours", type=float, default=None, metavar="H",
                        help="re-read this many hours before the cursor, a number >= 0 (default: setting lag_hours, "
                             "72)")
    parser.add_argument("--send-logs", action="append", default=None, metavar="GLOB",
                        help="send-log/conversion files to load (repeatable; default data/send_logs/sends-* and "
                             "conversions-*)")
    parser.add_argument("--bulk-export", type=Path, default=None, metavar="DIR",
                        help="folder of Twilio BulkExport day files (default data/bulk_export when present)")
    parser.add_argument("--spool", type=Path, default=None, metavar="DIR",
                        help="spool folder of switchboard listen, for --source receiver (default <data-dir>/spool; "
                             "all reads it when it exists)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars; print only failures (for cron)")
    parser.add_argument("--data-dir", type=Path, default=None, help="warehouse folder (default: data/)")
    c = parser.add_argument_group("continuous ingest")
    c.add_argument("--every", type=duration, default=None, metavar="DURATION",
                   help="keep running: an incremental run every DURATION (60, 60s, 5m, 1h) until Ctrl-C, one "
                        "status line per run; a failed run is logged and retried, backing off (default: run once)")
    c.add_argument("--reconcile-every", type=duration, default=3600.0, metavar="DURATION",
                   help="with --every: how often a run re-reads the full lag window (--lag-hours) from the list "
                        f"API; the runs in between re-read only the last {TICK_LAG_HOURS * 60:.0f} minutes "
                        "(pending messages are fetched by sid either way) (default 1h)")


TICK_LAG_HOURS = 0.25  # the re-read of a continuous run between reconciliations: statuses pushed to
# `switchboard listen` arrive through the receiver source, and pending rows are fetched by sid anyway
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(value: str) -> float:
    """``60``, ``60s``, ``5m``, ``1.5h`` as seconds (> 0); an argparse type, so a bad value exits 2."""
    text = value.strip().lower()
    unit = _UNITS.get(text[-1:], None)
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 60, 60s, 5m or 1h, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 1:
        raise argparse.ArgumentTypeError(f"expected a duration of at least 1 s (60, 5m, 1h), got {value!r}")
    return seconds


def check_continuous(args: argparse.Namespace) -> None:
    """Flags that make no sense with --every, refused as argparse would (exit 2)."""
    if args.every is None:
        return
    if args.full_refresh:
        raise ConfigError("--full-refresh reads everything again: run it once, without --every, then start "
                          "the continuous ingest")
    if getattr(args, "rebuild_facts", False):
        raise ConfigError("--rebuild-facts rebuilds the whole history: run it once, without --every, then start "
                          "the continuous ingest")
    if args.until:
        raise ConfigError("--until ends the window, but --every keeps reading new records: drop one of them")


def run(args: argparse.Namespace, *, after_facts: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> int:
    """One ingest run (``switchboard ingest`` without --every; the loop is ``switchboard.runner``)."""
    if getattr(args, "every", None) is not None:
        raise ConfigError("--every is the switchboard command's continuous mode: run `switchboard ingest --every "
                          "60s`")
    settings = Settings.from_env(data_dir=args.data_dir)
    report = run_ingest(  # an IngestError (a SwitchboardError) is printed by switchboard/cli.py, exit 2
        settings,
        sources=args.source,
        since=args.since,
        until=args.until,
        full_refresh=args.full_refresh,
        rebuild_facts=args.rebuild_facts,
        after_facts=after_facts,
        progress=not args.quiet,
        send_logs=args.send_logs,
        bulk_export_dir=args.bulk_export,
        lag_hours=args.lag_hours,
        spool_dir=args.spool,
    )
    if not args.quiet or not report.ok:
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    elif any(r.warnings for r in report.results):  # --quiet still says what the user should know
        for r in report.results:
            for warning in r.warnings:
                print(f"switchboard ingest: warning: {r.source}: {warning}", file=sys.stderr)
    if any(r.auth_failed for r in report.results):
        return 2
    return 0 if report.ok else 1
