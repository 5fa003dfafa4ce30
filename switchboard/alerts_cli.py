"""``switchboard alerts check [--dry-run]``: evaluate the alert rules now, outside an ingest run.

It lives at the top because a real check publishes the snapshot afterwards (``switchboard.ingest``),
which the alerts layer may not import. After every ingest run the same evaluation runs by itself
(``switchboard.alerts.after_ingest``); this command is for trying a new ``alerts.toml`` (``--dry-run``
reads the published snapshot and writes and sends nothing) or re-checking on demand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from switchboard import alerts
from switchboard.alerts import rules
from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION")
    check = sub.add_parser(
        "check", help="evaluate every rule now: open, update or resolve alerts and send their notifications",
        description="Evaluate every alert rule on the warehouse now. Without --dry-run: alert state is written "
                    "to the ingest DB, notifications are sent (webhook, e-mail) and the snapshot is published.")
    check.add_argument("--dry-run", action="store_true",
                       help="read the published snapshot, print what would be opened, updated or resolved and "
                            "who would be notified; write and send nothing")
    check.add_argument("--config", type=Path, default=None, metavar="FILE",
                       help="alert rules and channels (default: setting alerts_file, ./alerts.toml when present)")
    check.add_argument("--webhook", default=None, metavar="URL",
                       help="also POST notifications to this URL (overrides SWITCHBOARD_ALERT_WEBHOOK_URL)")
    check.add_argument("--data-dir", type=Path, default=None, help="warehouse folder (default: data/)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "alerts_command", None) != "check":
        raise ConfigError("say what to do: `switchboard alerts check [--dry-run]` (see --help)")
    settings = Settings.from_env(data_dir=args.data_dir, alert_webhook_url=args.webhook)
    if args.webhook is not None and not args.webhook.startswith(("http://", "https://")):
        raise ConfigError(f"--webhook {args.webhook!r}: give an http(s) URL")
    config = rules.load(args.config, settings)
    if args.dry_run:
        outcome = alerts.check(settings, config_path=args.config, dry_run=True)
    else:
        outcome = _check_and_publish(settings, args.config)
    for line in alerts.describe(outcome, config, dry_run=args.dry_run):
        print(line)
    return 0


def _check_and_publish(settings: Settings, config_path: Path | None) -> alerts.Outcome:
    """Evaluate on the writer connection, deliver within the usual budget, publish the snapshot."""
    from switchboard.ingest import publish
    from switchboard.ingest.pipeline import open_ingest_db

    if not settings.ingest_db_path.exists():
        raise ConfigError(f"No warehouse at {settings.ingest_db_path}: run `switchboard ingest` first")
    hook = alerts.after_ingest(settings, config_path)
    con = open_ingest_db(settings.ingest_db_path)
    try:
        hook(con)
        publish.publish(con, settings.ingest_db_path, settings.warehouse_path)
    finally:
        con.close()
    assert hook.last is not None
    return hook.last
