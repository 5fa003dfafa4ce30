"""``switchboard listen``: receive Twilio status callbacks and Event Streams webhooks into a durable spool."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings
from switchboard.ingest.receiver.app import EVENTS_PATH, STATUS_PATH, ReceiverConfig, create_app
from switchboard.ingest.receiver.spool import Spool

DESCRIPTION = f"""\
Receive Twilio status callbacks ({STATUS_PATH}) and Event Streams webhook batches ({EVENTS_PATH}).
Every request's X-Twilio-Signature is checked with the twilio SDK against TWILIO_AUTH_TOKEN: a bad or
missing signature gets 403 and nothing is stored. An event is fsynced to the spool before the 2xx answer;
the incremental ingest reads it back (switchboard.ingest.receiver.iter_events; see ingest/receiver/README.md).

Subaccounts: Twilio signs a subaccount's callbacks with the subaccount's own token. Put those tokens (and
a secondary token during a rotation) in SWITCHBOARD_LISTEN_EXTRA_TOKENS, comma-separated.

Public URL: Twilio signs the URL it was given (https://hooks.example.com/twilio/status), not the one this
server sees behind a TLS terminator, reverse proxy or tunnel (http://127.0.0.1:8787/twilio/status).
Set --public-url (or SWITCHBOARD_PUBLIC_URL) to the external base URL, including any path prefix the proxy
strips, or every request will be refused with 403.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--port", type=int, default=8787, help="TCP port (0 picks a free one) (default 8787)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind; 0.0.0.0 to accept from other hosts (default 127.0.0.1)")
    parser.add_argument("--public-url", default=None, metavar="URL",
                        help="external base URL Twilio calls, e.g. https://hooks.example.com (default "
                             "$SWITCHBOARD_PUBLIC_URL, else the URL each request arrived on)")
    parser.add_argument("--spool", type=Path, default=None, metavar="DIR",
                        help="spool folder (default <data-dir>/spool)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder (default: data/)")
    parser.add_argument("--max-pending-mb", type=float, default=32.0,
                        help="unsynced bytes allowed before answering 503 + Retry-After (default 32)")
    parser.add_argument("--dedupe-window", type=int, default=100_000,
                        help="recent event keys remembered to drop redeliveries at write time (default 100000)")
    parser.add_argument("--max-connections", type=int, default=1024,
                        help="concurrent connections+requests before uvicorn answers 503 (default 1024)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--unsafe-no-fsync", action="store_true", help=argparse.SUPPRESS)  # benchmarks only


def run(args: argparse.Namespace) -> int:
    import uvicorn  # here, not at import time: `switchboard --help` stays instant

    token = os.environ.get("TWILIO_AUTH_TOKEN", "").strip()
    if not token:
        raise ConfigError("TWILIO_AUTH_TOKEN is not set: export the auth token Twilio signs callbacks with")
    public_url = args.public_url or os.environ.get("SWITCHBOARD_PUBLIC_URL") or None
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"--public-url must start with http:// or https://, got {public_url!r}")
    settings = Settings.from_env(data_dir=args.data_dir)
    spool_dir = args.spool or settings.data_dir / "spool"
    _check_writable(spool_dir)
    spool = Spool(spool_dir, max_pending_bytes=int(args.max_pending_mb * (1 << 20)),
                  dedupe_window=args.dedupe_window, fsync=not args.unsafe_no_fsync)
    extra = tuple(t.strip() for t in os.environ.get("SWITCHBOARD_LISTEN_EXTRA_TOKENS", "").split(",") if t.strip())
    app = create_app(spool, ReceiverConfig(auth_token=token, public_url=public_url, extra_tokens=extra))
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    base = public_url.rstrip("/") if public_url else f"http://{args.host}:{port}"
    print(f"listening on http://{args.host}:{port} (spool {spool_dir})\n"
          f"  status callbacks: StatusCallback={base}{STATUS_PATH}\n"
          f"  Event Streams:    webhook sink destination {base}{EVENTS_PATH}"
          + ("" if public_url else "\n  no --public-url: signatures are checked against the URL each request "
                                   "arrived on (fine on loopback; set it behind a proxy or tunnel)"),
          flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on",
                            limit_concurrency=args.max_connections, timeout_keep_alive=30,
                            server_header=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _check_writable(spool_dir: Path) -> None:
    """Fails now, in one line, rather than as a traceback from the server's startup."""
    probe = spool_dir / ".write-probe"
    try:
        spool_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the spool folder {spool_dir}: {exc.strerror}; pick another --spool "
                          "or --data-dir") from None


def _bind(host: str, port: int) -> socket.socket:
    """Binds here so --port 0 works and the real port can be printed before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    """``python -m switchboard.ingest.receiver.cli`` (the tests and bench start it this way too)."""
    from switchboard.core.errors import SwitchboardError

    parser = argparse.ArgumentParser(prog="switchboard listen")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SwitchboardError as exc:
        print(f"switchboard listen: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
