"""``switchboard sandbox``: generate a simulated world, write its send logs and serve it
as a local Twilio. The top-level CLI calls ``add_arguments`` and ``run``; ``switchboard
demo`` calls ``start_in_thread``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, World, generate, write_bulk_export, write_send_logs

DEFAULT_PORT = 8700


def _default_send_logs_dir() -> Path:
    from switchboard.core.settings import Settings

    return Settings.from_env().send_logs_dir  # a bad SWITCHBOARD_* value is a ConfigError (exit 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Scenario()
    g = parser.add_argument_group("world")
    g.add_argument("--seed", type=int, default=d.seed, help="random seed: same seed, same world (default %(default)s)")
    g.add_argument("--days", type=int, default=d.days, help="days of history (default %(default)s)")
    g.add_argument("--messages", type=int, default=d.messages, help="SMS in the history (default %(default)s)")
    g.add_argument("--calls", type=int, default=d.calls, help="voice calls in the history (default %(default)s)")
    g.add_argument("--end", type=_date, default=None,
                   help="history ends at this UTC date, YYYY-MM-DD (default: today 00:00 UTC)")
    g.add_argument("--send-logs-dir", type=Path, default=None,
                   help="where the platform's send logs and ground_truth.json go (default data/send_logs)")
    g.add_argument("--send-log-format", choices=("jsonl", "csv", "parquet"), default="jsonl",
                   help="send-log file format (default %(default)s)")
    g.add_argument("--bulk-export-dir", type=Path, default=None,
                   help="also write Twilio BulkExport-style Messages/YYYY-MM-DD.json.gz files here")
    s = parser.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)")
    s.add_argument("--clock", choices=("real", "end"), default="real",
                   help="'real': statuses follow the wall clock; 'end': the sandbox's time starts at the end of "
                        "the history and runs at real speed, so the latest messages are still in flight "
                        "(queued/sent) and change status while you watch (default %(default)s)")
    f = parser.add_argument_group("faults (probabilities per request, 0..1)")
    f.add_argument("--rate-429", type=float, default=0.0, help="answer 429 Too Many Requests with Retry-After")
    f.add_argument("--rate-500", type=float, default=0.0, help="answer 500 Internal Server Error")
    f.add_argument("--rate-503", type=float, default=0.0, help="answer 503 Service Unavailable")
    f.add_argument("--slow-rate", type=float, default=0.0, help="delay the response by --slow-seconds")
    f.add_argument("--slow-seconds", type=float, default=2.0, help="delay of a slow response (default %(default)s)")
    f.add_argument("--drop-rate", type=float, default=0.0, help="close the connection without answering")
    f.add_argument("--fault-seed", type=int, default=0, help="seed of the fault dice (default %(default)s)")


def _date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    return Scenario(seed=args.seed, days=args.days, messages=args.messages, calls=args.calls, end=args.end)


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    return FaultConfig(rate_429=args.rate_429, rate_500=args.rate_500, rate_503=args.rate_503,
                       slow_rate=args.slow_rate, slow_seconds=args.slow_seconds, drop_rate=args.drop_rate,
                       seed=args.fault_seed)


def build_world(scenario: Scenario, send_logs_dir: Path | None, fmt: str = "jsonl", quiet: bool = False) -> World:
    """Generate the world with a progress bar and write its send logs."""
    steps = ["members", "messages", "calls", "send logs and conversions"]
    bar = tqdm(total=len(steps) + (1 if send_logs_dir else 0), desc="sandbox world", unit="step",
               disable=quiet, file=sys.stderr)

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update(1)

    world = generate(scenario, progress=progress)
    if send_logs_dir:
        bar.set_postfix_str(f"writing send logs to {send_logs_dir}")
        write_send_logs(world, Path(send_logs_dir), fmt)
        bar.update(1)
    bar.close()
    return world


def make_clock(kind: str, world: World):
    """None for the wall clock; for 'end' a clock starting at the end of the history, running at real speed."""
    if kind == "end":
        return SimClock(world.end, speed=1.0)
    return None


def start_in_thread(scenario: Scenario, port: int = 0, send_logs_dir: Path | None = None,
                    faults: FaultConfig | None = None, quiet: bool = False, clock: str = "real") -> SandboxServer:
    """Generate, write send logs (when a folder is given) and serve in a background thread.
    Call ``.stop()`` on the result when done."""
    world = build_world(scenario, send_logs_dir, quiet=quiet)
    server = SandboxServer(world, port=port, faults=faults, clock=make_clock(clock, world))
    server.start()
    return server


def describe(server: SandboxServer) -> str:
    """What to print for a user: credentials and environment variables. Sandbox credentials
    only: they open nothing but this local server."""
    w = server.world
    lines = [
        f"Twilio sandbox listening on {server.base_url}",
        (f"  world: seed {w.scenario.seed}, {len(w.messages):,} messages and {len(w.calls):,} calls "
         f"from {w.start:%Y-%m-%d} to {w.end:%Y-%m-%d}, {len(w.ground_truth.get('countries', []))} countries"),
        "",
        "Accounts (sandbox-only credentials):",
    ]
    for a in w.accounts:
        kind = "subaccount" if a["subaccount"] else "main account"
        lines.append(f"  {a['sid']}  token {a['auth_token']}  ({kind}: {a['friendly_name']})")
    senders = server.senders()
    lines += [
        "",
        (f"Senders of the main account: From {', '.join(senders['from'][:4])}, ... "
         f"or MessagingServiceSid {senders['messaging_service_sids'][0]}"),
        "",
        "Point Switchboard and the twilio SDK at it:",
        f"  export TWILIO_ACCOUNT_SID={server.account_sid}",
        f"  export TWILIO_AUTH_TOKEN={server.auth_token}",
        f"  export SWITCHBOARD_TWILIO_BASE_URL={server.base_url}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    scenario = scenario_from_args(args)
    logs = args.send_logs_dir if args.send_logs_dir is not None else _default_send_logs_dir()
    try:
        world = build_world(scenario, logs, args.send_log_format)
    except ValueError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 2
    if args.bulk_export_dir:
        paths = write_bulk_export(world, args.bulk_export_dir)
        print(f"wrote {len(paths)} bulk-export day files under {args.bulk_export_dir}/Messages")
    server = SandboxServer(world, host=args.host, port=args.port, faults=faults_from_args(args),
                           clock=make_clock(getattr(args, "clock", "real"), world))
    try:
        server.start()
    except OSError as e:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {e} (try --port 0)", file=sys.stderr)
        return 2
    print(describe(server))
    print(f"\nSend logs and ground_truth.json in {logs}")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping sandbox")
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard sandbox",
                                     description="Serve a simulated Twilio account on a local port.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
