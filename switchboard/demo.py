"""``switchboard demo``: sandbox -> ingest -> dashboard in one command, a demo that moves (``--still``: a still one).

The sandbox runs in a thread of this process (so the dashboard's sender page
can rehearse campaigns against it); ingest runs in-process with a progress bar;
the dashboard is the real ``streamlit run`` in a child process.

By default (issue 16) the history ends now and the sandbox keeps creating traffic
(``--live-rate``) whose statuses move on the wall clock; its signed status callbacks and Event
Streams batches go to a real ``switchboard listen`` child process; a continuous ingest
(``switchboard.runner.ContinuousIngest``, every ``--every``) loads them and publishes; the dashboard's
pages redraw themselves on each new snapshot (``dashboard.live``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from switchboard.ingest.cli import duration
    from switchboard.sandbox.cli import _incident, _pumping, _rate

    parser.add_argument("--port", type=int, default=8501, help="dashboard port")
    parser.add_argument("--sandbox-port", type=int, default=8599, help="Twilio sandbox port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated world (same seed, same data)")
    parser.add_argument("--days", type=int, default=90, help="days of simulated history, ending today")
    parser.add_argument("--messages", type=int, default=200_000, help="simulated messages")
    parser.add_argument("--calls", type=int, default=20_000, help="simulated calls")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the warehouse and send logs go (default: ./data of the working directory)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="serve no dashboard (live: the moving warehouse until Ctrl-C; --still: stop after "
                             "the ingest)")
    parser.add_argument("--alert-webhook", metavar="URL", default=None,
                        help="POST every alert the demo raises to this webhook (Slack-compatible payload; "
                             "the same as SWITCHBOARD_ALERT_WEBHOOK_URL)")
    parser.add_argument("--still", action="store_true",
                        help="a still picture instead: history up to last midnight, one ingest, no live traffic")
    g = parser.add_argument_group("the demo moves by default")
    g.add_argument("--live", action="store_true",
                   help="(the default) history ends now and live traffic follows: status callbacks and Event "
                        "Streams to a `switchboard listen` receiver, a continuous ingest, pages that update by "
                        "themselves")
    g.add_argument("--live-rate", type=_rate, default=5.0, metavar="N",
                   help="live: new messages a second (default 5)")
    g.add_argument("--every", type=duration, default=15.0, metavar="DURATION",
                   help="live: the continuous ingest's interval (default 15s)")
    g.add_argument("--incident", type=_incident, action="append", default=[], metavar="CC:CODE:SHARE[:AFTER]",
                   help="live: inject a delivery incident, e.g. ID:30007:0.4:60 (repeatable)")
    g.add_argument("--pumping", type=_pumping, action="append", default=[], metavar="CC:PER_HOUR[:AFTER]",
                   help="live: pump one-time codes to two number ranges of a country, e.g. NG:600:60 "
                        "(SMS pumping; repeatable)")
    g.add_argument("--listen-port", type=int, default=0,
                   help="live: the receiver's port (default 0: any free port)")


def run(args: argparse.Namespace) -> int:
    if args.still and args.live:
        raise ConfigError("--still and --live contradict each other: the demo is live unless --still")
    args.live = not args.still
    if not args.live and args.incident:
        raise ConfigError("--incident acts on live traffic: drop --still")
    if not args.live and args.pumping:
        raise ConfigError("--pumping acts on live traffic: drop --still")
    if args.alert_webhook:
        if not args.alert_webhook.startswith(("http://", "https://")):
            raise ConfigError(f"--alert-webhook needs an http(s) URL, got {args.alert_webhook!r}")
        os.environ["SWITCHBOARD_ALERT_WEBHOOK_URL"] = args.alert_webhook
    settings = Settings.from_env(data_dir=args.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _run_live(args, settings) if args.live else _run_still(args, settings)


def _point_at_sandbox(server: Any, settings: Settings) -> None:
    """The demo always talks to its own sandbox, whatever credentials the shell holds."""
    account_sid, token = next(iter(server.accounts.items()))
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


def _first_ingest(settings: Settings, t0: float, step: str) -> Any:
    from switchboard.ingest.pipeline import run_ingest
    from switchboard.runner import alerts_hook

    print(f"{step}  Ingesting through the twilio SDK into DuckDB…")
    # The alerts run before the publish, as after every `switchboard ingest`: the Alerts page opens with what
    # the history ends on (the default world's SMS-pumping episode).
    report = run_ingest(settings, after_facts=alerts_hook(settings))
    print(f"     {report}")
    print(f"     Warehouse: {settings.warehouse_path}  (open it read-only with duckdb for your own queries)")
    print(f"     Ready in {time.monotonic() - t0:.0f} s.")
    return report


def _serve_dashboard(args: argparse.Namespace, settings: Settings, step: str) -> int:
    from switchboard.dashboard.cli import launch

    print(f"{step}  Dashboard: http://localhost:{args.port}   (Ctrl-C to stop everything)", flush=True)
    proc = launch(args.port, "localhost", dict(os.environ))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        print("\nStopped. Run 'make demo' again to restart; your warehouse is kept in", settings.data_dir)
        return 0


def _run_still(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.sandbox.cli import start_in_thread
    from switchboard.sandbox.world import Scenario

    t0 = time.monotonic()
    print(f"1/3  Simulating {args.messages:,} messages and {args.calls:,} calls over {args.days} days (seed {args.seed})…")
    scenario = Scenario(seed=args.seed, days=args.days, messages=args.messages, calls=args.calls)
    server = start_in_thread(scenario, port=args.sandbox_port, send_logs_dir=settings.send_logs_dir)
    _point_at_sandbox(server, settings)
    try:
        report = _first_ingest(settings, t0, "2/3")
        if args.no_dashboard:
            return 0 if report.ok else 1
        return _serve_dashboard(args, settings, "3/3")
    finally:
        server.stop()


# --------------------------------------------------------------------------- --live


class Listener:
    """``switchboard listen`` as a child process on a free port, stderr to ``<data>/listen.log``."""

    def __init__(self, settings: Settings, token: str, extra_tokens: list[str], port: int) -> None:
        cmd = [sys.executable, "-m", "switchboard.cli", "listen", "--port", str(port), "--data-dir",
               str(settings.data_dir), "--log-level", "warning"]
        env = {**os.environ, "TWILIO_AUTH_TOKEN": token,
               "SWITCHBOARD_LISTEN_EXTRA_TOKENS": ",".join(extra_tokens)}
        self.log_path = settings.data_dir / "listen.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - open for the process's life, closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True)
        # The socket listens before this line is printed: requests sent after it queue, no polling needed.
        first = self.proc.stdout.readline() if self.proc.stdout else ""
        if not first.startswith("listening on http://"):
            self.stop()
            raise ConfigError(f"the receiver did not start ({first.strip() or 'no output'}); see {self.log_path}")
        self.base = first.split()[2]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


def _run_live(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.ingest.receiver.app import EVENTS_PATH, STATUS_PATH
    from switchboard.runner import ContinuousIngest, stop_on_sigterm
    from switchboard.sandbox.cli import build_world
    from switchboard.sandbox.server import LiveConfig, SandboxServer
    from switchboard.sandbox.world import Scenario

    stop_on_sigterm()  # a service manager's stop cleans up like Ctrl-C: loop, sandbox, receiver, dashboard
    t0 = time.monotonic()
    print(f"1/4  Simulating {args.messages:,} messages and {args.calls:,} calls over {args.days} days up to now "
          f"(seed {args.seed}), then {args.live_rate:g} live messages a second…")
    scenario = Scenario(seed=args.seed, days=args.days, messages=args.messages, calls=args.calls,
                        end=datetime.now(UTC).replace(microsecond=0))
    world = build_world(scenario, settings.send_logs_dir)
    main = next(a for a in world.accounts if not a["subaccount"])
    others = [a["auth_token"] for a in world.accounts if a["subaccount"]]
    listener = Listener(settings, main["auth_token"], others, args.listen_port)
    live = LiveConfig(rate=args.live_rate, incidents=tuple(args.incident), pumping=tuple(args.pumping),
                      status_callback=listener.base + STATUS_PATH, event_sink=listener.base + EVENTS_PATH,
                      send_logs_dir=settings.send_logs_dir)
    server = SandboxServer(world, port=args.sandbox_port, live=live)
    loop: ContinuousIngest | None = None
    try:
        server.start()
        print(f"     Receiver (switchboard listen) at {listener.base}: the sandbox's signed status callbacks "
              f"and Event Streams batches go there (log {listener.log_path})")
        _point_at_sandbox(server, settings)
        report = _first_ingest(settings, t0, "2/4")
        print(f"3/4  Continuous ingest every {args.every:g} s (one line per run):", flush=True)
        loop = ContinuousIngest(settings, every=args.every)
        loop.last_reconcile = time.monotonic()  # the first ingest just read the whole window
        loop.start()
        if args.no_dashboard:
            return _wait_no_dashboard(loop, report.ok)
        return _serve_dashboard(args, settings, "4/4")
    finally:
        if loop is not None:
            loop.stop(timeout=120)
        server.stop()
        listener.stop()


def _wait_no_dashboard(loop: Any, ok: bool) -> int:
    """--live --no-dashboard: the moving warehouse without a UI (a bench, a test), until Ctrl-C or SIGTERM."""
    try:
        while True:
            loop.wait_published(loop.published + 1, timeout=3600)
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
    return 0 if ok else 1
