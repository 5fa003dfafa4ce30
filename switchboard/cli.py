"""The ``switchboard`` command: one entry point, a subcommand per part.

Each part owns its options (``<package>.cli.add_arguments`` / ``run``); this
module only dispatches, imports lazily so ``--help`` is instant, and turns any
error a user can fix into one clear line instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# subcommand -> (module with add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("switchboard.demo", "Set up and run everything: sandbox -> ingest -> dashboard."),
    "sandbox": ("switchboard.sandbox.cli", "Serve a local Twilio-compatible API over a simulated messaging world."),
    "ingest": ("switchboard.runner", "Load Twilio messages/calls, send logs and pushed events into the DuckDB warehouse (once, or --every 60s)."),
    "dashboard": ("switchboard.dashboard.cli", "Serve the Streamlit dashboard on the published warehouse."),
    "send": ("switchboard.sender.cli", "Plan (dry run) or send a test campaign: SMS with optional voice fallback."),
    "listen": ("switchboard.ingest.receiver.cli", "Receive Twilio status callbacks and Event Streams webhooks into a durable spool."),
    "export": ("switchboard.ingest.export", "Export every table and view as day-partitioned Parquet (hive layout)."),
    "build": ("switchboard.ingest.lake_build", "Build the facts and rollups over a Parquet lake on DuckDB or Spark."),
    "alerts": ("switchboard.alerts_cli", "Check the alert rules now (after every ingest they run by themselves)."),
}

EPILOG = """\
Quick start:  switchboard demo            (sandbox + ingest + dashboard on http://localhost:8501)
Real Twilio:  export TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=...; switchboard ingest
Settings:     switchboard --settings      (every SWITCHBOARD_* variable with its default)
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless its help already names it, or it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard",
        description="Delivery analytics and insights for Twilio SMS and voice.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--settings", action="store_true", help="print every setting, its default and env variable")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=_HelpFormatter)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a part not installed/built yet: say so instead of crashing --help
            p.set_defaults(_unavailable=f"'switchboard {name}' is unavailable: {exc}")
            continue
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.settings:
        from switchboard.core.settings import settings_help

        print(settings_help())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(args._unavailable, file=sys.stderr)
        return 2
    return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """Runs the subcommand; every error a user can fix is one line here, and only here."""
    from switchboard.core.errors import SwitchboardError

    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return 130
    except SwitchboardError as exc:
        if os.environ.get("SWITCHBOARD_DEBUG"):
            raise
        print(f"switchboard {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # never a stack trace to a user; the debug switch shows it
        if os.environ.get("SWITCHBOARD_DEBUG"):
            raise
        print(
            f"switchboard {args.command}: unexpected error: {type(exc).__name__}: {exc}\n"
            "Run again with SWITCHBOARD_DEBUG=1 for the full traceback, and report it with that output.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
