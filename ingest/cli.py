"""``switchboard ingest``: Twilio messages/calls, send logs and BulkExport files into the warehouse."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from switchboard.core.settings import Settings
from switchboard.ingest.pipeline import SOURCES, run_ingest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=[*SOURCES, "all"], default="all", help="what to ingest")
    parser.add_argument("--since", default=None, help="read Twilio records sent on/after this date (YYYY-MM-DD)")
    parser.add_argument("--until", default=None, help="read Twilio records sent before this date (YYYY-MM-DD)")
    parser.add_argument("--full-refresh", action="store_true",
                        help="ignore cursors and loaded-file records: read everything again (upserts, no duplicates)")
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


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    report = run_ingest(  # an IngestError (a SwitchboardError) is printed by switchboard/cli.py, exit 2
        settings,
        sources=args.source,
        since=args.since,
        until=args.until,
        full_refresh=args.full_refresh,
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
