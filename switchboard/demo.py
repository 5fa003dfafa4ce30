"""``switchboard demo``: sandbox -> ingest -> dashboard, in one command.

The sandbox runs in a thread of this process (so the dashboard's sender page
can rehearse campaigns against it); ingest runs in-process with a progress bar;
the dashboard is the real ``streamlit run`` in a child process.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from switchboard.core.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8501, help="dashboard port")
    parser.add_argument("--sandbox-port", type=int, default=8599, help="Twilio sandbox port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated world (same seed, same data)")
    parser.add_argument("--days", type=int, default=90, help="days of simulated history, ending today")
    parser.add_argument("--messages", type=int, default=200_000, help="simulated messages")
    parser.add_argument("--calls", type=int, default=20_000, help="simulated calls")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the warehouse and send logs go (default: ./data of the working directory)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="stop after the ingest (sets up the warehouse, serves nothing)")


def run(args: argparse.Namespace) -> int:
    from switchboard.ingest.pipeline import run_ingest
    from switchboard.sandbox.cli import start_in_thread
    from switchboard.sandbox.world import Scenario

    settings = Settings.from_env(data_dir=args.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    print(f"1/3  Simulating {args.messages:,} messages and {args.calls:,} calls over {args.days} days (seed {args.seed})…")
    scenario = Scenario(seed=args.seed, days=args.days, messages=args.messages, calls=args.calls)
    server = start_in_thread(scenario, port=args.sandbox_port, send_logs_dir=settings.send_logs_dir)
    account_sid, token = next(iter(server.accounts.items()))
    # The demo always talks to its own sandbox, whatever credentials the shell holds.
    os.environ.update(
        TWILIO_ACCOUNT_SID=account_sid,
        TWILIO_AUTH_TOKEN=token,
        SWITCHBOARD_TWILIO_BASE_URL=server.base_url,
        SWITCHBOARD_DATA_DIR=str(settings.data_dir),
        SWITCHBOARD_WEB_SEND="1",  # the demo's Send page may send: only to its own sandbox and allow-list
    )
    os.environ.pop("TWILIO_API_KEY", None)
    os.environ.pop("TWILIO_API_SECRET", None)
    print(f"     Twilio sandbox at {server.base_url}")
    try:
        print("2/3  Ingesting through the twilio SDK into DuckDB…")
        report = run_ingest(settings)
        print(f"     {report}")
        print(f"     Warehouse: {settings.warehouse_path}  (open it read-only with duckdb for your own queries)")
        print(f"     Ready in {time.monotonic() - t0:.0f} s.")
        if args.no_dashboard:
            return 0 if report.ok else 1
        from switchboard.dashboard.cli import launch

        print(f"3/3  Dashboard: http://localhost:{args.port}   (Ctrl-C to stop the dashboard and the sandbox)")
        proc = launch(args.port, "localhost", dict(os.environ))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=10)
            print("\nStopped. Run 'make demo' again to restart; your warehouse is kept in", settings.data_dir)
            return 0
    finally:
        server.stop()
