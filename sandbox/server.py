"""A local HTTP server speaking Twilio's 2010-04-01 REST API over a simulated world.

Stdlib only: ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive. Records are rendered
from the world's columns a page at a time; what a record shows (status, price,
times) depends on the server clock, so statuses move on as the clock advances.
"""

from __future__ import annotations

import base64
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import numpy as np
import phonenumbers

from switchboard.sandbox.catalog import COUNTRY_BY_ISO, ERRORS
from switchboard.sandbox.render import rfc2822
from switchboard.sandbox.sids import id_for, sid_for, sid_list
from switchboard.sandbox.world import CALL_STATUSES, World, segment_info

API = "/2010-04-01"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


# ----------------------------------------------------------------------------- faults and clock


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities (0..1) per request of an injected fault; seeded, so a run is repeatable."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    drop_rate: float = 0.0  # close the connection without a response
    retry_after: int = 1  # seconds, sent with 429 and 503
    seed: int = 0


class SimClock:
    """A clock for tests and demos: starts at ``start`` and moves only when told
    (``speed=0``) or at ``speed`` simulated seconds per real second."""

    def __init__(self, start: datetime, speed: float = 0.0):
        self._base = start.timestamp()
        self._real = time.monotonic()
        self.speed = speed
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._base + (time.monotonic() - self._real) * self.speed

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._base += seconds

    def set(self, when: datetime) -> None:
        with self._lock:
            self._base = when.timestamp()
            self._real = time.monotonic()

    def __call__(self) -> float:
        return self.now()


def _clock_fn(clock) -> Callable[[], float]:
    if clock is None:
        return time.time
    if hasattr(clock, "now") and not isinstance(clock, type):
        now = clock.now

        def f() -> float:
            v = now()
            return v.timestamp() if isinstance(v, datetime) else float(v)

        return f

    def g() -> float:
        v = clock()
        return v.timestamp() if isinstance(v, datetime) else float(v)

    return g


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


# ----------------------------------------------------------------------------- dates in filters


def parse_when(value: str) -> tuple[float, bool]:
    """Epoch seconds of a filter value and whether it was a bare date (YYYY-MM-DD)."""
    v = value.strip()
    if len(v) == 10 and v[4] == "-" and v[7] == "-":
        d = datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=UTC)
        return d.timestamp(), True
    try:
        d = datetime.fromisoformat(v)  # 3.11 reads a trailing Z
    except ValueError:
        try:
            d = parsedate_to_datetime(v)
        except (TypeError, ValueError):
            try:
                d = datetime.strptime(v, "%m/%d/%Y %H:%M:%S %Z")
            except ValueError:
                raise ApiError(400, 20001, f"Invalid date value '{value}'") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp(), False


def time_bounds(params: dict[str, str], name: str) -> tuple[float | None, float | None]:
    """[lo, hi) for Name, Name<, Name> as Twilio reads them: ``>`` on or after, ``<`` on or before,
    bare dates meaning the whole UTC day."""
    lo = hi = None
    if name in params:
        t, is_date = parse_when(params[name])
        lo, hi = (t, t + 86400) if is_date else (t, t + 1)
    if name + ">" in params:
        t, _ = parse_when(params[name + ">"])
        lo = t if lo is None else max(lo, t)
    if name + "<" in params:
        t, is_date = parse_when(params[name + "<"])
        t = t + 86400 if is_date else t + 1
        hi = t if hi is None else min(hi, t)
    return lo, hi


# ----------------------------------------------------------------------------- the store


class _Resource:
    """Columns of one kind of record (messages or calls) plus the records created live."""

    def __init__(self, prefix: str, salt: int, frame, columns: dict[str, str]):
        self.prefix = prefix
        self.salt = salt
        self.n = len(frame)
        self.cols: dict[str, np.ndarray] = {}
        self.cats: dict[str, list] = {}
        self.cat_index: dict[str, dict] = {}
        for name, kind in columns.items():
            s = frame[name]
            if kind == "cat":
                self.cols[name] = s.cat.codes.to_numpy()
                cats = list(s.cat.categories)
                self.cats[name] = cats + [None]  # code -1 indexes None
            else:
                self.cols[name] = s.to_numpy()
        self.live: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._by_account: dict[int, np.ndarray] = {}
        self._filter_cache: dict[tuple, np.ndarray] = {}

    def code_of(self, col: str, value: str) -> int | None:
        idx = self.cat_index.get(col)
        if idx is None:
            idx = {v: i for i, v in enumerate(self.cats[col][:-1])}
            self.cat_index[col] = idx
        return idx.get(value)

    def account_ids(self, ai: int) -> np.ndarray:
        ids = self._by_account.get(ai)
        if ids is None:
            ids = np.flatnonzero(self.cols["account_idx"] == ai)
            self._by_account[ai] = ids
        return ids

    def cached(self, key: tuple, build: Callable[[], np.ndarray]) -> np.ndarray:
        hit = self._filter_cache.get(key)
        if hit is None:
            hit = build()
            if len(self._filter_cache) > 256:
                self._filter_cache.clear()
            self._filter_cache[key] = hit
        return hit

    def sid(self, rid: int) -> str:
        if rid < self.n:
            return sid_for(self.prefix, rid, self.salt)
        return self.live[rid - self.n]["sid"]

    def rid(self, sid: str) -> int | None:
        rid = id_for(sid, self.prefix, self.salt)
        if rid is None or rid >= self.n + len(self.live):
            return None
        return rid


_ERROR_JSON = {code: json.dumps(message) for code, (_status, message) in ERRORS.items()}


class RawJSON(str):
    """A payload already serialised."""


def _money(v: float) -> str:
    return f"{-abs(v):.5f}"


_MAGIC_TO_SMS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, ("The 'To' phone number: +15005550002, is not currently reachable "
                             "via SMS.")),
    "+15005550003": (21408, ("Permission to send an SMS has not been enabled for the region indicated by the "
                             "'To' number: +15005550003.")),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number +15005550009 is not a valid mobile number"),
}
_MAGIC_FROM_SMS = {
    "+15005550001": (21212, ("The 'From' number +15005550001 is not a valid phone number, shortcode, or "
                             "alphanumeric sender ID.")),
    "+15005550007": (21606, ("The From phone number +15005550007 is not a valid, SMS-capable inbound phone "
                             "number or short code for your account.")),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages"),
}
_MAGIC_TO_CALL = {
    "+15005550001": (21217, "Phone number does not appear to be valid"),
    "+15005550002": (21214, "'To' phone number cannot be reached"),
    "+15005550003": (21215, ("Account not authorized to call +15005550003. Perhaps you need to enable some "
                             "international permissions.")),
}
_MAGIC_FROM_CALL = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number."),
    "+15005550007": (21210, ("The source phone number provided, +15005550007, is not yet verified for your "
                             "account.")),
}
MAGIC_VALID_FROM = "+15005550006"


class SandboxServer:
    """Serve ``world`` on ``host:port`` (port 0: a free one). Use as a context manager or
    call ``start()``/``stop()``. ``clock``: None (real time), a ``SimClock``, an object with
    ``now()`` or a callable returning a datetime or epoch seconds."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, faults: FaultConfig | None = None,
                 clock=None):
        self.world = world
        self.host = host
        self.port = port
        self.faults = faults or FaultConfig()
        self.now = _clock_fn(clock)
        self._fault_rng = random.Random(self.faults.seed)
        self._fault_lock = threading.Lock()
        self._live_rng = np.random.default_rng(world.scenario.seed + 99)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._callbacks = _CallbackDispatcher(self.now)
        self._acct_index = {a["sid"]: i for i, a in enumerate(world.accounts)}
        self.request_count = 0
        m = world.messages
        self.messages = _Resource("SM", world.salts["SM"], m, {
            "account_idx": "num", "date_created": "num", "date_sent": "num", "final_at": "num", "status": "cat",
            "error_code": "num", "to": "cat", "from": "cat", "messaging_service_sid": "cat", "body_key": "num",
            "code": "num", "num_segments": "num", "price": "num",
        })
        self.bodies: list[str] = m.attrs.get("bodies", [])
        self._bodies_json: list[tuple[str, str, bool]] | None = None
        self.calls = _Resource("CA", world.salts["CA"], world.calls, {
            "account_idx": "num", "date_created": "num", "start_time": "num", "answered_at": "num",
            "end_time": "num", "status": "cat", "duration": "num", "answered_by": "cat", "price": "num",
            "to": "cat", "from": "cat",
        })
        self._senders = world.senders
        self._services = world.senders.attrs.get("services", [])

    # --- lifecycle
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

    def senders(self, account_sid: str | None = None) -> dict[str, list[str]]:
        """The From numbers / sender IDs and messaging service sids an account may send with."""
        ai = self._acct_index[account_sid or self.account_sid]
        s = self._senders[self._senders["account"] == ai]
        return {
            "from": [MAGIC_VALID_FROM] + s["sender"].tolist(),
            "messaging_service_sids": [x["sid"] for x in self._services if x["account"] == ai],
        }

    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="sandbox-http", daemon=True)
        self._thread.start()
        self._callbacks.start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
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

    # --- auth
    def authorize(self, header: str | None, account_sid: str | None) -> int:
        """Index of the account the request may act on; ApiError 401 otherwise."""
        denied = ApiError(401, 20003, "Authenticate")
        if not header or not header.startswith("Basic "):
            raise denied
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise denied from None
        tokens = self.accounts
        if tokens.get(user) != password:
            raise denied
        if account_sid is None:
            return self._acct_index[user]
        if account_sid not in self._acct_index:
            # A well-formed but unknown account: Twilio answers 404 to its owner, 401 otherwise.
            raise denied
        target = self.world.accounts[self._acct_index[account_sid]]
        if user == account_sid or user == target["owner_account_sid"]:
            return self._acct_index[account_sid]
        raise ApiError(403, 20403, "Forbidden")

    def maybe_fault(self) -> str | None:
        """Roll the seeded dice for this request: 'drop', or raise the injected error, or None.
        The dice are rolled under a lock (repeatable order); a slow response sleeps outside it."""
        f = self.faults
        if not (f.drop_rate or f.slow_rate or f.rate_429 or f.rate_500 or f.rate_503):
            return None
        with self._fault_lock:
            r = self._fault_rng.random
            drop = bool(f.drop_rate) and r() < f.drop_rate
            slow = bool(f.slow_rate) and r() < f.slow_rate
            error = None
            if f.rate_429 and r() < f.rate_429:
                error = ApiError(429, 20429, "Too Many Requests", {"Retry-After": str(f.retry_after)})
            elif f.rate_500 and r() < f.rate_500:
                error = ApiError(500, 20500, "Internal Server Error")
            elif f.rate_503 and r() < f.rate_503:
                error = ApiError(503, 20503, "Service Unavailable", {"Retry-After": str(f.retry_after)})
        if drop:
            return "drop"
        if slow:
            time.sleep(f.slow_seconds)
        if error is not None:
            raise error
        return None

    # --- accounts
    def account_json(self, ai: int) -> dict[str, Any]:
        a = self.world.accounts[ai]
        sid = a["sid"]
        base = f"{API}/Accounts/{sid}"
        return {
            "auth_token": a["auth_token"],
            "date_created": rfc2822(a["date_created"]),
            "date_updated": rfc2822(a["date_created"]),
            "friendly_name": a["friendly_name"],
            "owner_account_sid": a["owner_account_sid"],
            "sid": sid,
            "status": "active",
            "subresource_uris": {
                name: f"{base}/{name}.json"
                for name in ("Addresses", "Calls", "Messages", "IncomingPhoneNumbers", "Notifications",
                             "Recordings", "Balance", "Usage")
            },
            "type": "Full",
            "uri": f"{base}.json",
        }

    def list_accounts(self, user_ai: int, params: dict[str, str]) -> dict[str, Any]:
        user_sid = self.world.accounts[user_ai]["sid"]
        visible = [i for i, a in enumerate(self.world.accounts) if a["sid"] == user_sid
                   or a["owner_account_sid"] == user_sid]
        if "FriendlyName" in params:
            visible = [i for i in visible if self.world.accounts[i]["friendly_name"] == params["FriendlyName"]]
        if "Status" in params:
            visible = [i for i in visible if params["Status"] == "active"]
        page_size, page = _page_args(params)
        rows = visible[page * page_size : (page + 1) * page_size]
        path = f"{API}/Accounts.json"
        more = (page + 1) * page_size < len(visible)
        return _envelope("accounts", [self.account_json(i) for i in rows], path, params, page, page_size,
                         next_token=f"PA{self.world.accounts[rows[-1]]['sid']}" if more and rows else None,
                         prev_token=f"PB{self.world.accounts[rows[0]]['sid']}" if page > 0 and rows else None)

    # --- messages
    def _message_ids(self, ai: int, params: dict[str, str]) -> tuple[np.ndarray, list[int]]:
        r = self.messages
        lo, hi = time_bounds(params, "DateSent")
        to, frm = params.get("To"), params.get("From")
        key = ("m", ai, to, frm, lo, hi)

        def build() -> np.ndarray:
            ids = r.account_ids(ai)
            if lo is not None or hi is not None:
                sent = r.cols["date_sent"]
                # Integer bounds: a float key would make numpy convert the whole column.
                sent_ids = sent[ids]
                a = 0 if lo is None else np.searchsorted(sent_ids, math.ceil(lo), "left")
                b = len(ids) if hi is None else np.searchsorted(sent_ids, math.ceil(hi), "left")
                ids = ids[a:b]
            for col, val in (("to", to), ("from", frm)):
                if val is not None:
                    code = r.code_of(col, val)
                    ids = ids[r.cols[col][ids] == code] if code is not None else ids[:0]
            return ids

        hist = r.cached(key, build)
        live = []
        with r.lock:
            for k, rec in enumerate(r.live):
                if rec["account_idx"] != ai or (to is not None and rec["to"] != to):
                    continue
                if frm is not None and rec["from"] != frm:
                    continue
                if lo is not None or hi is not None:
                    sent = rec["date_sent"]
                    if self.now() < sent or (lo is not None and sent < lo) or (hi is not None and sent >= hi):
                        continue
                live.append(r.n + k)
        return hist, live

    def render_messages(self, ids: list[int]) -> list[dict[str, Any]]:
        r = self.messages
        now = self.now()
        hist = np.array([i for i in ids if i < r.n], dtype=np.int64)
        out: dict[int, dict[str, Any]] = {}
        if hist.size:
            c = r.cols
            cols = {k: c[k][hist].tolist() for k in ("account_idx", "date_created", "date_sent", "final_at",
                                                     "status", "error_code", "to", "from",
                                                     "messaging_service_sid", "body_key", "code",
                                                     "num_segments", "price")}
            cats = r.cats
            acct_sids = self.world.account_sids
            bodies = self.bodies
            sids = sid_list(r.prefix, hist, r.salt)
            for k, rid in enumerate(hist.tolist()):
                out[rid] = self._message_json(
                    sid=sids[k], account_sid=acct_sids[cols["account_idx"][k]],
                    created=cols["date_created"][k], sent=cols["date_sent"][k], final=cols["final_at"][k],
                    final_status=cats["status"][cols["status"][k]], error=cols["error_code"][k],
                    to=cats["to"][cols["to"][k]], frm=cats["from"][cols["from"][k]],
                    mg=cats["messaging_service_sid"][cols["messaging_service_sid"][k]],
                    body=bodies[cols["body_key"][k]].replace("{code}", str(cols["code"][k])),
                    segments=cols["num_segments"][k], price=cols["price"][k], now=now,
                )
        for rid in ids:
            if rid >= r.n:
                rec = r.live[rid - r.n]
                out[rid] = self._message_json(
                    sid=rec["sid"], account_sid=self.world.account_sids[rec["account_idx"]],
                    created=rec["date_created"], sent=rec["date_sent"], final=rec["final_at"],
                    final_status=rec["status"], error=rec["error_code"], to=rec["to"], frm=rec["from"],
                    mg=rec["messaging_service_sid"], body=rec["body"], segments=rec["num_segments"],
                    price=rec["price"], now=now,
                )
        return [out[i] for i in ids]

    _MSG_TEMPLATE = (
        '{"body": "%s", "num_segments": "%d", "direction": "outbound-api", "from": "%s", "to": "%s", '
        '"date_updated": "%s", "price": %s, "error_message": %s, "uri": "%s.json", "account_sid": "%s", '
        '"num_media": "0", "status": "%s", "messaging_service_sid": %s, "sid": "%s", "date_sent": %s, '
        '"date_created": "%s", "error_code": %s, "price_unit": "USD", "api_version": "2010-04-01", '
        '"subresource_uris": {"media": "%s/Media.json", "feedback": "%s/Feedback.json"}}'
    )

    def render_messages_json(self, ids: list[int]) -> list[str]:
        """The same records as ``render_messages``, already serialised: list pages of history are
        rendered from string templates (about three times faster than dicts + json.dumps)."""
        r = self.messages
        n = r.n
        hist_pos = [k for k, i in enumerate(ids) if i < n]
        out: list[str | None] = [None] * len(ids)
        if hist_pos:
            hist = np.array([ids[k] for k in hist_pos], dtype=np.int64)
            c = r.cols
            now = self.now()
            sent = c["date_sent"][hist]
            final = c["final_at"][hist]
            stage = np.where(now < sent, 0, np.where(now < final, 1, 2)).tolist()
            cols = {k: c[k][hist].tolist() for k in ("account_idx", "date_created", "status", "error_code", "to",
                                                     "from", "messaging_service_sid", "body_key", "code",
                                                     "num_segments", "price")}
            sent, final = sent.tolist(), final.tolist()
            cats = r.cats
            status_names, to_names, from_names = cats["status"], cats["to"], cats["from"]
            mg_json = self._json_cats(r, "messaging_service_sid")
            bodies = self._json_bodies()
            err_json = self._json_errors()
            acct_sids = self.world.account_sids
            sids = sid_list(r.prefix, hist, r.salt)
            tmpl = self._MSG_TEMPLATE
            null = "null"
            for j, k in enumerate(hist_pos):
                acct = acct_sids[cols["account_idx"][j]]
                sid = sids[j]
                uri = f"{API}/Accounts/{acct}/Messages/{sid}"
                pre, post, has_code = bodies[cols["body_key"][j]]
                body = pre + str(cols["code"][j]) + post if has_code else pre
                st = stage[j]
                created = cols["date_created"][j]
                if st == 2:
                    status = status_names[cols["status"][j]]
                    err = cols["error_code"][j]
                    updated, date_sent = final[j], '"' + rfc2822(sent[j]) + '"'
                    price = '"' + _money(cols["price"][j]) + '"'
                    err_msg, err_code = (err_json[err], str(err)) if err else (null, null)
                else:
                    status = "sent" if st == 1 else "queued"
                    updated = sent[j] if st == 1 else created
                    date_sent = '"' + rfc2822(sent[j]) + '"' if st == 1 else null
                    price, err_msg, err_code = null, null, null
                out[k] = tmpl % (
                    body, cols["num_segments"][j], from_names[cols["from"][j]], to_names[cols["to"][j]],
                    rfc2822(updated), price, err_msg, uri, acct, status, mg_json[cols["messaging_service_sid"][j]],
                    sid, date_sent, rfc2822(created), err_code, uri, uri,
                )
        live = [i for i in ids if i >= n]
        if live:
            rendered = iter(self.render_messages(live))
            for k, i in enumerate(ids):
                if i >= n:
                    out[k] = json.dumps(next(rendered))
        return out  # type: ignore[return-value]

    def _json_bodies(self) -> list[tuple[str, str, bool]]:
        if self._bodies_json is None:
            parts = []
            for text in self.bodies:
                esc = json.dumps(text)[1:-1]
                if "{code}" in esc:
                    pre, post = esc.split("{code}", 1)
                    parts.append((pre, post, True))
                else:
                    parts.append((esc, "", False))
            self._bodies_json = parts
        return self._bodies_json

    @staticmethod
    def _json_errors() -> dict[int, str]:
        return _ERROR_JSON

    @staticmethod
    def _json_cats(r: _Resource, col: str) -> list[str]:
        key = "_json_" + col
        cached = r.cats.get(key)
        if cached is None:
            cached = [json.dumps(v) for v in r.cats[col]]  # None (code -1) becomes null
            r.cats[key] = cached
        return cached

    @staticmethod
    def _message_json(*, sid, account_sid, created, sent, final, final_status, error, to, frm, mg, body, segments,
                      price, now) -> dict[str, Any]:
        if now < sent:
            status, date_sent, updated, price_s, err = "queued", None, created, None, 0
        elif now < final:
            status, date_sent, updated, price_s, err = "sent", rfc2822(sent), sent, None, 0
        else:
            status, date_sent, updated, err = final_status, rfc2822(sent), final, error
            price_s = _money(price)
        uri = f"{API}/Accounts/{account_sid}/Messages/{sid}"
        return {
            "body": body,
            "num_segments": str(segments),
            "direction": "outbound-api",
            "from": frm,
            "to": to,
            "date_updated": rfc2822(updated),
            "price": price_s,
            "error_message": ERRORS[err][1] if err else None,
            "uri": uri + ".json",
            "account_sid": account_sid,
            "num_media": "0",
            "status": status,
            "messaging_service_sid": mg,
            "sid": sid,
            "date_sent": date_sent,
            "date_created": rfc2822(created),
            "error_code": err or None,
            "price_unit": "USD",
            "api_version": "2010-04-01",
            "subresource_uris": {"media": uri + "/Media.json", "feedback": uri + "/Feedback.json"},
        }

    def create_message(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        to = form.get("To")
        frm = form.get("From")
        mg = form.get("MessagingServiceSid")
        body = form.get("Body")
        if not to:
            raise ApiError(400, 21604, "A 'To' phone number is required.")
        if not frm and not mg:
            raise ApiError(400, 21603, "A 'From' phone number is required.")
        if body is None and not form.get("MediaUrl") and not form.get("ContentSid"):
            raise ApiError(400, 21602, "Message body is required.")
        body = body or ""
        if len(body) > 1600:
            raise ApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        allowed = self.senders(self.world.accounts[ai]["sid"])
        if frm in _MAGIC_FROM_SMS:
            raise ApiError(400, *_MAGIC_FROM_SMS[frm])
        if frm and frm not in allowed["from"]:
            raise ApiError(400, 21606, f"The From phone number {frm} is not a valid, SMS-capable inbound phone "
                                       "number or short code for your account.")
        if mg and mg not in allowed["messaging_service_sids"]:
            raise ApiError(400, 21701, f"The Messaging Service Sid {mg} is invalid.")
        if to in _MAGIC_TO_SMS:
            raise ApiError(400, *_MAGIC_TO_SMS[to])
        country = _country_of(to)
        if country is None:
            raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not frm:
            frm = allowed["from"][1]
        enc, segments = segment_info(body)
        now = self.now()
        prof = COUNTRY_BY_ISO.get(country)
        rng = self._live_rng
        with self.messages.lock:
            deliver = prof.delivery_rate if prof else 0.95
            if to == MAGIC_VALID_FROM or rng.random() < deliver:
                status, error = "delivered", 0
            else:
                error = int(rng.choice([30003, 30005, 30008]))
                status = "undelivered"
            ttd = (prof.ttd_median_s if prof else 5) * float(rng.lognormal(0, 0.5))
            price = round((prof.sms_price if prof else 0.05) * segments, 5)
            r = self.messages
            rid = r.n + len(r.live)
            rec = {
                "sid": sid_for("SM", rid, r.salt), "account_idx": ai, "date_created": int(now),
                "date_sent": int(now) + 1, "final_at": int(now) + 1 + max(1, int(np.ceil(ttd))),
                "status": status, "error_code": error, "to": to, "from": frm, "messaging_service_sid": mg,
                "body": body, "num_segments": segments, "encoding": enc, "price": price, "country": country,
            }
            r.live.append(rec)
        if form.get("StatusCallback"):
            self._schedule_message_callbacks(rec, form["StatusCallback"])
        return self.render_messages([rid])[0]

    def _schedule_message_callbacks(self, rec: dict[str, Any], url: str) -> None:
        acct = self.world.account_sids[rec["account_idx"]]

        def params(status: str, error: int) -> dict[str, str]:
            p = {
                "MessageSid": rec["sid"], "SmsSid": rec["sid"], "AccountSid": acct, "From": rec["from"],
                "To": rec["to"], "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01",
            }
            if rec["messaging_service_sid"]:
                p["MessagingServiceSid"] = rec["messaging_service_sid"]
            if error:
                p["ErrorCode"] = str(error)
            return p

        self._callbacks.add(rec["date_sent"], url, params("sent", 0))
        self._callbacks.add(rec["final_at"], url, params(rec["status"], rec["error_code"]))

    # --- calls
    def _call_ids(self, ai: int, params: dict[str, str]) -> tuple[np.ndarray, list[int]]:
        r = self.calls
        slo, shi = time_bounds(params, "StartTime")
        elo, ehi = time_bounds(params, "EndTime")
        to, frm, status = params.get("To"), params.get("From"), params.get("Status")
        if status is not None and status not in CALL_STATUSES + ["queued", "ringing", "in-progress"]:
            raise ApiError(400, 20001, f"Invalid Status '{status}'")
        if "ParentCallSid" in params:  # outbound API calls have no parent
            return np.array([], dtype=np.int64), []
        key = ("c", ai, to, frm, slo, shi, elo, ehi)
        now = self.now()

        def build() -> np.ndarray:
            ids = r.account_ids(ai)
            c = r.cols
            mask = np.ones(ids.size, dtype=bool)
            if slo is not None:
                mask &= c["start_time"][ids] >= slo
            if shi is not None:
                mask &= c["start_time"][ids] < shi
            if elo is not None:
                mask &= c["end_time"][ids] >= elo
            if ehi is not None:
                mask &= c["end_time"][ids] < ehi
            for col, val in (("to", to), ("from", frm)):
                if val is not None:
                    code = r.code_of(col, val)
                    mask &= (c[col][ids] == code) if code is not None else False
            return ids[mask]

        hist = r.cached(key, build)
        if slo is not None or shi is not None or elo is not None or ehi is not None:
            # Times not reached yet are not shown (start/end are null until then).
            c = r.cols
            if slo is not None or shi is not None:
                hist = hist[c["start_time"][hist] <= now]
            if elo is not None or ehi is not None:
                hist = hist[c["end_time"][hist] <= now]
        if status is not None:
            hist = hist[self._call_status_now(hist, now) == status]
        live = []
        with r.lock:
            for k, rec in enumerate(r.live):
                if rec["account_idx"] != ai or (to and rec["to"] != to) or (frm and rec["from"] != frm):
                    continue
                st = _call_state(rec["start_time"], rec["answered_at"], rec["end_time"], rec["status"], now)
                if status is not None and st != status:
                    continue
                if (slo is not None and (now < rec["start_time"] or rec["start_time"] < slo)) or (
                        shi is not None and (now < rec["start_time"] or rec["start_time"] >= shi)):
                    continue
                if (elo is not None and (now < rec["end_time"] or rec["end_time"] < elo)) or (
                        ehi is not None and (now < rec["end_time"] or rec["end_time"] >= ehi)):
                    continue
                live.append(r.n + k)
        return hist, live

    def _call_status_now(self, ids: np.ndarray, now: float) -> np.ndarray:
        c = self.calls.cols
        final = np.array(self.calls.cats["status"], dtype=object)[c["status"][ids]]
        st = final.copy()
        completed = final == "completed"
        end = c["end_time"][ids]
        st[now < end] = np.where(completed[now < end], "in-progress", "ringing")
        st[completed & (now < c["answered_at"][ids])] = "ringing"
        st[now < c["start_time"][ids]] = "queued"
        return st

    def render_calls(self, ids: list[int]) -> list[dict[str, Any]]:
        r = self.calls
        now = self.now()
        out = {}
        hist = np.array([i for i in ids if i < r.n], dtype=np.int64)
        if hist.size:
            c = r.cols
            cols = {k: c[k][hist].tolist() for k in ("account_idx", "date_created", "start_time", "answered_at",
                                                     "end_time", "status", "duration", "answered_by", "price",
                                                     "to", "from")}
            cats = r.cats
            sids = sid_list(r.prefix, hist, r.salt)
            for k, rid in enumerate(hist.tolist()):
                out[rid] = self._call_json(
                    sid=sids[k], account_sid=self.world.account_sids[cols["account_idx"][k]],
                    created=cols["date_created"][k], start=cols["start_time"][k], answered=cols["answered_at"][k],
                    end=cols["end_time"][k], final_status=cats["status"][cols["status"][k]],
                    duration=cols["duration"][k], answered_by=cats["answered_by"][cols["answered_by"][k]],
                    price=cols["price"][k], to=cats["to"][cols["to"][k]], frm=cats["from"][cols["from"][k]],
                    now=now,
                )
        for rid in ids:
            if rid >= r.n:
                rec = r.live[rid - r.n]
                out[rid] = self._call_json(
                    sid=rec["sid"], account_sid=self.world.account_sids[rec["account_idx"]],
                    created=rec["date_created"], start=rec["start_time"], answered=rec["answered_at"],
                    end=rec["end_time"], final_status=rec["status"], duration=rec["duration"],
                    answered_by=rec["answered_by"], price=rec["price"], to=rec["to"], frm=rec["from"], now=now,
                )
        return [out[i] for i in ids]

    @staticmethod
    def _call_json(*, sid, account_sid, created, start, answered, end, final_status, duration, answered_by, price,
                   to, frm, now) -> dict[str, Any]:
        status = _call_state(start, answered, end, final_status, now)
        final = status == final_status and now >= end
        uri = f"{API}/Accounts/{account_sid}/Calls/{sid}"
        updated = end if final else (answered if status == "in-progress" else (start if status == "ringing" else created))
        return {
            "sid": sid,
            "date_created": rfc2822(created),
            "date_updated": rfc2822(updated),
            "parent_call_sid": None,
            "account_sid": account_sid,
            "to": to,
            "to_formatted": _formatted(to),
            "from": frm,
            "from_formatted": _formatted(frm),
            "phone_number_sid": None,
            "status": status,
            "start_time": rfc2822(start) if status != "queued" else None,
            "end_time": rfc2822(end) if final else None,
            "duration": str(int(duration)) if final else None,
            "price": _money(price) if final and final_status == "completed" and not math.isnan(price) else None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": answered_by if final or status == "in-progress" else None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri + ".json",
            "subresource_uris": {
                name: f"{uri}/{path}.json"
                for name, path in (("feedback", "Feedback"), ("user_defined_messages", "UserDefinedMessages"),
                                   ("notifications", "Notifications"), ("recordings", "Recordings"),
                                   ("streams", "Streams"), ("payments", "Payments"),
                                   ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
                                   ("siprec", "Siprec"), ("events", "Events"),
                                   ("feedback_summaries", "FeedbackSummary"))
            },
        }

    def create_call(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        to, frm = form.get("To"), form.get("From")
        if not to:
            raise ApiError(400, 21201, "No 'To' number is specified")
        if not frm:
            raise ApiError(400, 21213, "No 'From' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            raise ApiError(400, 21205, "Url parameter is required.")
        if frm in _MAGIC_FROM_CALL:
            raise ApiError(400, *_MAGIC_FROM_CALL[frm])
        allowed = self.senders(self.world.accounts[ai]["sid"])["from"]
        if frm not in allowed or not frm.startswith("+"):
            raise ApiError(400, 21210, f"The source phone number provided, {frm}, is not yet verified for your "
                                       "account.")
        if to in _MAGIC_TO_CALL:
            raise ApiError(400, *_MAGIC_TO_CALL[to])
        country = _country_of(to)
        if country is None:
            raise ApiError(400, 21217, "Phone number does not appear to be valid")
        prof = COUNTRY_BY_ISO.get(country)
        now = int(self.now())
        rng = self._live_rng
        with self.calls.lock:
            u = rng.random()
            answer = prof.call_answer_rate if prof else 0.8
            status = "completed" if u < answer else ("busy" if u < answer + (1 - answer) * 0.3 else "no-answer")
            start = now + 1
            ring = int(rng.integers(4, 20)) if status != "no-answer" else 60
            answered = start + ring
            duration = int(np.clip(rng.lognormal(np.log(38), 0.5), 8, 900)) if status == "completed" else 0
            end = answered + duration if status == "completed" else start + ring
            price = round((prof.voice_price if prof else 0.02) * np.ceil(duration / 60), 5) if duration else float("nan")
            r = self.calls
            rid = r.n + len(r.live)
            rec = {
                "sid": sid_for("CA", rid, r.salt), "account_idx": ai, "date_created": now, "start_time": start,
                "answered_at": answered, "end_time": end, "status": status, "duration": duration,
                "answered_by": ("human" if rng.random() < 0.85 else "machine_end_beep") if status == "completed"
                else None, "price": price, "to": to, "from": frm,
            }
            r.live.append(rec)
        if form.get("StatusCallback"):
            events = form.get("StatusCallbackEvent", "completed").split() or ["completed"]
            self._schedule_call_callbacks(rec, form["StatusCallback"], events)
        return self.render_calls([rid])[0]

    def _schedule_call_callbacks(self, rec: dict[str, Any], url: str, events: list[str]) -> None:
        acct = self.world.account_sids[rec["account_idx"]]
        steps = [("initiated", "queued", rec["date_created"]), ("ringing", "ringing", rec["start_time"])]
        if rec["status"] == "completed":
            steps.append(("answered", "in-progress", rec["answered_at"]))
        steps.append(("completed", rec["status"], rec["end_time"]))
        seq = 0
        for event, status, when in steps:
            if event not in events:
                continue
            p = {"CallSid": rec["sid"], "AccountSid": acct, "From": rec["from"], "To": rec["to"],
                 "CallStatus": status, "ApiVersion": "2010-04-01", "Direction": "outbound-api",
                 "CallbackSource": "call-progress-events", "SequenceNumber": str(seq),
                 "Timestamp": rfc2822(when)}
            if event == "completed":
                p["CallDuration"] = str(rec["duration"])
                p["Duration"] = str(int(np.ceil(rec["duration"] / 60)))
                if rec["answered_by"]:
                    p["AnsweredBy"] = rec["answered_by"]
            self._callbacks.add(when, url, p)
            seq += 1

    # --- generic list
    def list_page(self, kind: str, ai: int, params: dict[str, str], path: str, raw: bool = False):
        """One list page as a dict, or (``raw=True``) as serialised JSON, which is faster for messages."""
        hist, live = (self._message_ids if kind == "messages" else self._call_ids)(ai, params)
        r = self.messages if kind == "messages" else self.calls
        # Records created after "now" (an injected clock in the past) are not visible yet.
        # int(now): a float key would make numpy convert the whole column on every page.
        cut = np.searchsorted(r.cols["date_created"], math.floor(self.now()), "right")
        if hist.size and hist[-1] >= cut:
            hist = hist[: np.searchsorted(hist, cut, "left")]
        page_size, page = _page_args(params)
        token = params.get("PageToken")
        if token:
            if len(token) < 4 or token[:2] not in ("PA", "PB"):
                raise ApiError(400, 20001, f"Invalid PageToken '{token}'")
            anchor = r.rid(token[2:])
            if anchor is None:
                raise ApiError(400, 20001, f"Invalid PageToken '{token}'")
            if token[:2] == "PA":  # the page after the anchor: older records
                h = hist[: np.searchsorted(hist, anchor, "left")]
                lv = [i for i in live if i < anchor]
                ids = (lv[::-1] + h[::-1][:page_size].tolist())[:page_size] if lv else h[::-1][:page_size].tolist()
            else:  # the page before the anchor: newer records
                h = hist[np.searchsorted(hist, anchor, "right"):]
                lv = [i for i in live if i > anchor]
                newer = h.tolist() + lv
                ids = newer[:page_size][::-1]
        else:
            total_live = len(live)
            offset = page * page_size
            ids = live[::-1][offset: offset + page_size]
            if len(ids) < page_size:
                skip = max(0, offset - total_live)
                take = page_size - len(ids)
                end = hist.size - skip
                ids = ids + hist[max(0, end - take): max(0, end)][::-1].tolist()
        if kind == "messages" and raw:
            records = []
            rendered = self.render_messages_json(ids)
        else:
            records = self.render_messages(ids) if kind == "messages" else self.render_calls(ids)
        older_exists = bool(ids) and (
            (hist.size and hist[0] < ids[-1]) or any(i < ids[-1] for i in live)
        )
        next_token = f"PA{r.sid(ids[-1])}" if ids and older_exists and len(ids) == page_size else None
        prev_token = f"PB{r.sid(ids[0])}" if ids and page > 0 else None
        envelope = _envelope(kind, records, path, params, page, page_size, next_token, prev_token)
        if kind == "messages" and raw:
            envelope["end"] = page * page_size + max(len(ids) - 1, 0)
            text = json.dumps(envelope)
            head = f'{{"{kind}": ['
            assert text.startswith(head + "]")
            return RawJSON(head + ", ".join(rendered) + text[len(head):])
        return envelope

    def fetch(self, kind: str, ai: int, sid: str) -> dict[str, Any]:
        r = self.messages if kind == "messages" else self.calls
        rid = r.rid(sid)
        acct = self.world.account_sids[ai]
        if rid is not None:
            rec_ai = int(r.cols["account_idx"][rid]) if rid < r.n else r.live[rid - r.n]["account_idx"]
            visible = rid >= r.n or r.cols["date_created"][rid] <= self.now()
            if rec_ai == ai and visible:
                return (self.render_messages if kind == "messages" else self.render_calls)([rid])[0]
        name = "Messages" if kind == "messages" else "Calls"
        raise ApiError(404, 20404, f"The requested resource {API}/Accounts/{acct}/{name}/{sid}.json was not found")


def _call_state(start, answered, end, final_status, now) -> str:
    if now < start:
        return "queued"
    if now < end:
        if final_status == "completed" and now >= answered:
            return "in-progress"
        return "ringing"
    return final_status


def _formatted(number: str | None) -> str | None:
    if not number:
        return number
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def _country_of(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.region_code_for_number(parsed)


def _page_args(params: dict[str, str]) -> tuple[int, int]:
    try:
        page_size = int(params.get("PageSize", DEFAULT_PAGE_SIZE))
        page = int(params.get("Page", 0))
    except ValueError:
        raise ApiError(400, 20001, "Invalid PageSize or Page") from None
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiError(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    if page < 0:
        raise ApiError(400, 20001, "Page must be 0 or more")
    return page_size, page


_PAGING = ("PageSize", "Page", "PageToken")


def _envelope(key: str, records: list, path: str, params: dict[str, str], page: int, page_size: int,
              next_token: str | None, prev_token: str | None) -> dict[str, Any]:
    filters = [(k, v) for k, v in params.items() if k not in _PAGING]

    def uri(extra: list[tuple[str, Any]]) -> str:
        return path + "?" + urlencode(filters + extra, quote_via=quote, safe="")

    start = page * page_size
    return {
        key: records,
        "end": start + max(len(records) - 1, 0),
        "first_page_uri": uri([("PageSize", page_size), ("Page", 0)]),
        "next_page_uri": uri([("PageSize", page_size), ("Page", page + 1), ("PageToken", next_token)])
        if next_token else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": uri([("PageSize", page_size), ("Page", page - 1), ("PageToken", prev_token)])
        if prev_token else None,
        "start": start,
        "uri": uri([(k, params[k]) for k in _PAGING if k in params]) if params else path,
    }


# ----------------------------------------------------------------------------- status callbacks


class _CallbackDispatcher:
    """POSTs status callbacks when the server clock reaches their time: one background
    thread, best effort, three tries each."""

    def __init__(self, now: Callable[[], float]):
        self.now = now
        self.pending: list[tuple[float, int, str, dict[str, str], int]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.delivered: list[tuple[str, dict[str, str]]] = []

    def add(self, when: float, url: str, params: dict[str, str]) -> None:
        with self.lock:
            self._seq += 1
            self.pending.append((when, self._seq, url, params, 0))
            self.pending.sort(key=lambda x: (x[0], x[1]))

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-callbacks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = self.now()
            with self.lock:
                due = [p for p in self.pending if p[0] <= now]
                self.pending = [p for p in self.pending if p[0] > now]
            for when, seq, url, params, tries in due:
                if not self._post(url, params) and tries < 2:
                    with self.lock:
                        self.pending.append((now + 0.5 * (tries + 1), seq, url, params, tries + 1))
                        self.pending.sort(key=lambda x: (x[0], x[1]))

    def _post(self, url: str, params: dict[str, str]) -> bool:
        data = urlencode(params).encode()
        req = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1 (sandbox)",
        })
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
                ok = 200 <= resp.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False
        if ok:
            self.delivered.append((url, params))
        return ok


# ----------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SwitchboardSandbox/1.0"
    # Headers and body are written separately; with Nagle on, keep-alive clients
    # wait for a delayed ACK (~40 ms) on every response.
    disable_nagle_algorithm = True
    sandbox: SandboxServer  # set on the subclass made per server

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sb = self.sandbox
        sb.request_count += 1
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if sb.maybe_fault() == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
                return
            status, payload = self._route(method, raw)
            self._send(status, payload)
        except ApiError as e:
            self._send(e.status, e.body(), e.headers)
        except Exception as e:  # noqa: BLE001 - a bug must not kill the connection silently
            self._send(500, ApiError(500, 20500, f"Internal Server Error: {type(e).__name__}: {e}").body())

    def _route(self, method: str, raw: bytes) -> tuple[int, Any]:
        sb = self.sandbox
        parts = urlsplit(self.path)
        path = parts.path
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        seg = path.strip("/").split("/")
        auth = self.headers.get("Authorization")
        if len(seg) < 2 or seg[0] != "2010-04-01" or not seg[-1].endswith(".json"):
            raise ApiError(404, 20404, f"The requested resource {path} was not found")
        if seg[1] == "Accounts.json" and len(seg) == 2:
            ai = sb.authorize(auth, None)
            if method == "GET":
                return 200, sb.list_accounts(ai, params)
            raise ApiError(405, 20004, "Method not allowed")
        if seg[1] != "Accounts" or len(seg) < 3:
            raise ApiError(404, 20404, f"The requested resource {path} was not found")
        account_sid = seg[2].removesuffix(".json")
        ai = sb.authorize(auth, account_sid)
        if len(seg) == 3:
            return 200, sb.account_json(ai)
        resource = seg[3].removesuffix(".json")
        kind = {"Messages": "messages", "Calls": "calls"}.get(resource)
        if kind is None:
            raise ApiError(404, 20404, f"The requested resource {path} was not found")
        if len(seg) == 4:
            if method == "GET":
                return 200, sb.list_page(kind, ai, params, path, raw=True)
            if method == "POST":
                form = {}
                for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items():
                    form[k] = " ".join(v) if k == "StatusCallbackEvent" else v[-1]
                return 201, (sb.create_message if kind == "messages" else sb.create_call)(ai, form)
            raise ApiError(405, 20004, "Method not allowed")
        if len(seg) == 5:
            if method == "GET":
                return 200, sb.fetch(kind, ai, seg[4].removesuffix(".json"))
            raise ApiError(405, 20004, "Method not allowed")
        raise ApiError(404, 20404, f"The requested resource {path} was not found")

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = (payload if isinstance(payload, RawJSON) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Twilio-Request-Id", f"RQ{self.sandbox.request_count:032x}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def clock_at(when: datetime, speed: float = 0.0) -> SimClock:
    return SimClock(when, speed)


__all__ = ["ApiError", "FaultConfig", "SandboxServer", "SimClock", "clock_at", "timedelta"]
