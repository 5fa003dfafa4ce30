"""``switchboard sandbox``: generate a simulated world, write its send logs and serve it
as a local Twilio. The top-level CLI calls ``add_arguments`` and ``run``; ``switchboard
demo`` calls ``start_in_thread``."""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from switchboard.sandbox.server import (
    FaultConfig,
    LiveConfig,
    LiveIncident,
    LivePumping,
    SandboxServer,
    SimClock,
)
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
                   help="history ends at this UTC date, YYYY-MM-DD, or 'now' (this second: with --live-rate and "
                        "the real clock, live traffic follows the history without a gap) (default: today 00:00 UTC)")
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
    _add_live_arguments(parser)
    f = parser.add_argument_group("faults (probabilities per request, 0..1)")
    f.add_argument("--rate-429", type=float, default=0.0, help="answer 429 Too Many Requests with Retry-After")
    f.add_argument("--rate-500", type=float, default=0.0, help="answer 500 Internal Server Error")
    f.add_argument("--rate-503", type=float, default=0.0, help="answer 503 Service Unavailable")
    f.add_argument("--slow-rate", type=float, default=0.0, help="delay the response by --slow-seconds")
    f.add_argument("--slow-seconds", type=float, default=2.0, help="delay of a slow response (default %(default)s)")
    f.add_argument("--drop-rate", type=float, default=0.0, help="close the connection without answering")
    f.add_argument("--fault-seed", type=int, default=0, help="seed of the fault dice (default %(default)s)")


def _add_live_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("live traffic (after the history, on the server clock)")
    g.add_argument("--live-rate", type=_rate, default=0.0, metavar="N",
                   help="keep creating N new messages a second (Poisson; calls in the world's proportion, voice "
                        "fallbacks, conversions) in the same world; statuses move on the clock and the rows are "
                        "appended to the send-log folder (default 0: no live traffic)")
    g.add_argument("--incident", type=_incident, action="append", default=[], metavar="CC:CODE:SHARE[:AFTER]",
                   help="from AFTER seconds after the start (default 0), SHARE (0..1] of the live SMS to country CC "
                        "fail with error CODE, e.g. ID:30007:0.4:60; repeatable; recorded in ground_truth.json")
    g.add_argument("--pumping", type=_pumping, action="append", default=[], metavar="CC:PER_HOUR[:AFTER]",
                   help="from AFTER seconds after the start (default 0), pump PER_HOUR one-time codes (Poisson) to "
                        "sequential numbers in two number ranges of country CC, for new member ids that never use "
                        "them (SMS pumping), e.g. NG:600:60; repeatable; recorded in ground_truth.json")
    g.add_argument("--status-callback", type=_url, default=None, metavar="URL",
                   help="live messages and calls carry this StatusCallback: signed status callbacks are POSTed "
                        "to it (e.g. http://127.0.0.1:8787/twilio/status of `switchboard listen`)")
    g.add_argument("--event-sink", type=_url, default=None, metavar="URL",
                   help="also POST Event Streams webhook batches (CloudEvents, com.twilio.messaging.message.*) "
                        "of the live messages here, signed with the main account's token "
                        "(e.g. http://127.0.0.1:8787/twilio/events)")
    g.add_argument("--live-log-interval", type=_rate, default=10.0, metavar="SECONDS",
                   help="write a new sends-live-*/conversions-live-* file every SECONDS (default %(default)s)")


def _rate(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return v


def _incident(value: str) -> LiveIncident:
    try:
        return LiveIncident.parse(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _pumping(value: str) -> LivePumping:
    try:
        return LivePumping.parse(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL, got {value!r}")
    return value


def live_from_args(args: argparse.Namespace, send_logs_dir: Path | None) -> LiveConfig | None:
    """The live-traffic settings, or None without --live-rate; ValueError (one line) for flags that
    need --live-rate."""
    rate = getattr(args, "live_rate", 0.0)
    if not rate:
        used = [flag for flag, name in (("--incident", "incident"), ("--pumping", "pumping"),
                                        ("--status-callback", "status_callback"), ("--event-sink", "event_sink"))
                if getattr(args, name, None)]
        if used:
            raise ValueError(f"{', '.join(used)} act on live traffic: add --live-rate N (for example --live-rate 5)")
        return None
    return LiveConfig(rate=rate, incidents=tuple(args.incident), pumping=tuple(getattr(args, "pumping", ())),
                      status_callback=args.status_callback,
                      event_sink=args.event_sink, send_logs_dir=send_logs_dir, send_log_format=args.send_log_format,
                      log_interval=args.live_log_interval or 10.0)


def _check_incidents(live: LiveConfig | None, world: World) -> None:
    """An incident in a country the world does not send to could never strike: say so. (Pumping can target
    any country the sandbox knows: a fraudster picks the destination, not our members.)"""
    countries = set(world.ground_truth.get("countries", []))
    for inc in live.incidents if live else ():
        if inc.country not in countries:
            raise ValueError(f"--incident {inc.country}:...: the world sends nothing to {inc.country}; "
                             f"pick one of {', '.join(sorted(countries))}")


def _date(value: str) -> datetime:
    if value.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD or 'now', got {value!r}") from None


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
                    faults: FaultConfig | None = None, quiet: bool = False, clock: str = "real",
                    live: LiveConfig | None = None) -> SandboxServer:
    """Generate, write send logs (when a folder is given) and serve in a background thread, with live
    traffic when ``live`` is given (its ``send_logs_dir`` defaults to this one). Call ``.stop()`` on
    the result when done."""
    world = build_world(scenario, send_logs_dir, quiet=quiet)
    if live is not None and live.send_logs_dir is None and send_logs_dir is not None:
        live = dataclasses.replace(live, send_logs_dir=Path(send_logs_dir))
    _check_incidents(live, world)
    server = SandboxServer(world, port=port, faults=faults, clock=make_clock(clock, world), live=live)
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


def describe_live(live: LiveConfig) -> str:
    head = f"Live traffic: {live.rate:g} messages/s, new sends-live-*/conversions-live-* files every {live.log_interval:g} s"
    lines = [head]
    lines += [f"  incident: {i.share:.0%} of SMS to {i.country} fail with {i.error_code} from {i.after_seconds:g} s"
              for i in live.incidents]
    lines += [f"  pumping: {p.messages_per_hour:g} one-time codes an hour to two number ranges of {p.country} "
              f"from {p.after_seconds:g} s" for p in live.pumping]
    if live.status_callback:
        lines.append(f"  status callbacks to {live.status_callback}")
    if live.event_sink:
        lines.append(f"  Event Streams batches to {live.event_sink}")
    return "\n".join(lines)


def _stop_on_sigterm() -> None:
    """SIGTERM (kill, a supervisor, a test's terminate()) stops like Ctrl-C, so the last live send-log
    rows and ground_truth.json are written before the process ends."""
    if threading.current_thread() is not threading.main_thread():
        return

    def _raise(_sig, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def run(args: argparse.Namespace) -> int:
    scenario = scenario_from_args(args)
    logs = args.send_logs_dir if args.send_logs_dir is not None else _default_send_logs_dir()
    try:
        live = live_from_args(args, logs)
        world = build_world(scenario, logs, args.send_log_format)
        _check_incidents(live, world)
    except ValueError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 2
    if args.bulk_export_dir:
        paths = write_bulk_export(world, args.bulk_export_dir)
        print(f"wrote {len(paths)} bulk-export day files under {args.bulk_export_dir}/Messages")
    server = SandboxServer(world, host=args.host, port=args.port, faults=faults_from_args(args),
                           clock=make_clock(getattr(args, "clock", "real"), world), live=live)
    try:
        server.start()
    except OSError as e:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {e} (try --port 0)", file=sys.stderr)
        return 2
    print(describe(server))
    print(f"\nSend logs and ground_truth.json in {logs}")
    if live is not None:
        print(describe_live(live))
    print("Press Ctrl-C to stop.", flush=True)
    _stop_on_sigterm()
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
