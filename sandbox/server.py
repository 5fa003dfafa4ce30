"""A local HTTP server speaking Twilio's 2010-04-01 REST API over a simulated world.

Stdlib only: ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive. Records are rendered
from the world's columns a page at a time; what a record shows (status, price,
times) depends on the server clock, so statuses move on as the clock advances.

``SandboxServer`` wires the parts in ``switchboard.sandbox.api`` together: routing,
auth, faults, the resources (accounts, messages, calls) and status callbacks.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any, Self

import numpy as np

from switchboard.sandbox.api.accounts import Accounts
from switchboard.sandbox.api.auth import Auth
from switchboard.sandbox.api.callbacks import CallbackDispatcher
from switchboard.sandbox.api.calls import Calls
from switchboard.sandbox.api.clock import SimClock, clock_fn
from switchboard.sandbox.api.errors import ApiError, RawJSON
from switchboard.sandbox.api.events import EventSink
from switchboard.sandbox.api.faults import FaultConfig, FaultInjector
from switchboard.sandbox.api.listing import Resource, fetch, list_page
from switchboard.sandbox.api.messages import Messages
from switchboard.sandbox.api.routing import Handler
from switchboard.sandbox.api.store import Store
from switchboard.sandbox.live import LiveConfig, LiveIncident, LivePumping, LiveTraffic
from switchboard.sandbox.world import World


class SandboxServer:
    """Serve ``world`` on ``host:port`` (port 0: a free one). Use as a context manager or
    call ``start()``/``stop()``. ``clock``: None (real time), a ``SimClock``, an object with
    ``now()`` or a callable returning a datetime or epoch seconds."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, faults: FaultConfig | None = None,
                 clock=None, live: LiveConfig | None = None):
        self.world = world
        self.host = host
        self.port = port
        self.faults = faults or FaultConfig()
        self.now = clock_fn(clock)
        self.request_count = 0  # requests received (tests tie kill points and waits to it)
        self.in_flight = 0  # requests being answered now
        self._count_lock = threading.Lock()
        self._faults = FaultInjector(self.faults)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._callbacks = CallbackDispatcher(self.now, self.accounts)  # signed with each account's token
        self._auth = Auth(world.accounts)
        self._accounts = Accounts(world.accounts, world.senders)
        # One seeded generator for everything created live (messages and calls).
        live_rng = np.random.default_rng(world.scenario.seed + 99)
        self._messages = Messages(world, self.now, live_rng, self._accounts, self._callbacks)
        self._calls = Calls(world, self.now, live_rng, self._accounts, self._callbacks)
        self._resources: dict[str, Resource] = {"messages": self._messages, "calls": self._calls}
        # Live traffic after the history (``live``): its Event Streams sink belongs to the main account.
        self.event_sink = (EventSink(live.event_sink, self.auth_token, self.now)
                           if live is not None and live.event_sink else None)
        self.live = (LiveTraffic(world, live, self.now, self._messages, self._calls, self._callbacks, self.event_sink)
                     if live is not None else None)

    # --- what tests and the CLI read
    @property
    def messages(self) -> Store:
        """The messages' columns; ``.live`` holds the messages created through the API."""
        return self._messages.store

    @property
    def calls(self) -> Store:
        """The calls' columns; ``.live`` holds the calls created through the API."""
        return self._calls.store

    @property
    def bodies(self) -> list[str]:
        return self._messages.bodies

    @property
    def accounts(self) -> dict[str, str]:
        """account sid -> auth token."""
        return {a["sid"]: a["auth_token"] for a in self.world.accounts}

    @property
    def account_sid(self) -> str:
        return self.world.accounts[0]["sid"]

    @property
    def auth_token(self) -> str:
        return self.world.accounts[0]["auth_token"]

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    @property
    def callback_stats(self) -> dict[str, int]:
        """Status callbacks answered with a 2xx, given up after three tries, and still pending
        (``_callbacks.scheduled`` counts those added)."""
        cb = self._callbacks
        with cb.lock:
            return {"posted": cb.posted, "given_up": cb.given_up, "pending": len(cb.pending)}

    def senders(self, account_sid: str | None = None) -> dict[str, list[str]]:
        """The From numbers / sender IDs and messaging service sids an account may send with."""
        return self._accounts.senders(account_sid or self.account_sid)

    # --- lifecycle
    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        self._faults.hold()
        handler = type("Handler", (Handler,), {"sandbox": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="sandbox-http", daemon=True)
        self._thread.start()
        self._callbacks.start()
        if self.event_sink is not None:
            self.event_sink.start()
        if self.live is not None:
            self.live.start()
        return self.base_url

    def stop(self) -> None:
        self._faults.release()  # requests held by a slow fault answer now
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self.live is not None:
            self.live.stop()  # writes the last send-log rows
        if self.event_sink is not None:
            self.event_sink.stop()
        self._callbacks.stop()

    def serve_forever(self) -> None:
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what routing calls
    def request_started(self) -> int:
        """Count a request in; returns its number (for its Twilio-Request-Id)."""
        with self._count_lock:
            self.request_count += 1
            self.in_flight += 1
            return self.request_count

    def request_finished(self) -> None:
        with self._count_lock:
            self.in_flight -= 1

    def authorize(self, header: str | None, account_sid: str | None) -> int:
        """Index of the account the request may act on; ApiError 401 otherwise."""
        return self._auth.authorize(header, account_sid)

    def maybe_fault(self) -> str | None:
        """'drop', or raise the injected error, or None (see ``FaultConfig``)."""
        return self._faults.roll()

    def account_json(self, ai: int) -> dict[str, Any]:
        return self._accounts.json(ai)

    def list_accounts(self, user_ai: int, params: dict[str, str]) -> dict[str, Any]:
        return self._accounts.list(user_ai, params)

    def list_page(self, kind: str, ai: int, params: dict[str, str], path: str,
                  raw: bool = False) -> dict[str, Any] | RawJSON:
        """One list page as a dict, or (``raw=True``) as serialised JSON, which is faster for messages."""
        return list_page(self._resources[kind], self.now, ai, params, path, raw)

    def fetch(self, kind: str, ai: int, sid: str) -> dict[str, Any]:
        return fetch(self._resources[kind], self.now, self.world.account_sids[ai], ai, sid)

    def create_message(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        return self._messages.create(ai, form)

    def create_call(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        return self._calls.create(ai, form)

    def render_messages(self, ids: list[int]) -> list[dict[str, Any]]:
        return self._messages.render(ids)

    def render_messages_json(self, ids: list[int]) -> list[str]:
        return self._messages.render_raw(ids)

    def render_calls(self, ids: list[int]) -> list[dict[str, Any]]:
        return self._calls.render(ids)


def clock_at(when: datetime, speed: float = 0.0) -> SimClock:
    return SimClock(when, speed)


__all__ = ["ApiError", "FaultConfig", "LiveConfig", "LiveIncident", "LivePumping", "SandboxServer", "SimClock", "clock_at", "timedelta"]
