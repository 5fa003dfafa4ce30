"""Status callbacks: what Twilio POSTs for each status change of a created message or call,
signed as Twilio signs them, and the background thread that POSTs them when the server clock
reaches their time."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import numpy as np

from switchboard.sandbox.render import rfc2822

Callback = tuple[float, dict[str, str]]  # (when, form parameters)


def message_callbacks(rec: dict[str, Any], account_sid: str) -> list[Callback]:
    """'sent' when the message is sent, then its final status (with ErrorCode when it failed)."""

    def params(status: str, error: int) -> dict[str, str]:
        p = {
            "MessageSid": rec["sid"], "SmsSid": rec["sid"], "AccountSid": account_sid, "From": rec["from"],
            "To": rec["to"], "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01",
        }
        if rec["messaging_service_sid"]:
            p["MessagingServiceSid"] = rec["messaging_service_sid"]
        if error:
            p["ErrorCode"] = str(error)
        return p

    return [(rec["date_sent"], params("sent", 0)), (rec["final_at"], params(rec["status"], rec["error_code"]))]


def call_callbacks(rec: dict[str, Any], account_sid: str, events: list[str]) -> list[Callback]:
    """One callback per subscribed call-progress event (initiated, ringing, answered, completed)."""
    steps = [("initiated", "queued", rec["date_created"]), ("ringing", "ringing", rec["start_time"])]
    if rec["status"] == "completed":
        steps.append(("answered", "in-progress", rec["answered_at"]))
    steps.append(("completed", rec["status"], rec["end_time"]))
    out: list[Callback] = []
    for event, status, when in steps:
        if event not in events:
            continue
        p = {"CallSid": rec["sid"], "AccountSid": account_sid, "From": rec["from"], "To": rec["to"],
             "CallStatus": status, "ApiVersion": "2010-04-01", "Direction": "outbound-api",
             "CallbackSource": "call-progress-events", "SequenceNumber": str(len(out)),
             "Timestamp": rfc2822(when)}
        if event == "completed":
            p["CallDuration"] = str(rec["duration"])
            p["Duration"] = str(int(np.ceil(rec["duration"] / 60)))
            if rec["answered_by"]:
                p["AnsweredBy"] = rec["answered_by"]
        out.append((when, p))
    return out


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature`` as Twilio computes it: base64 of the HMAC-SHA1, keyed with the auth
    token, of the full URL followed by each POST parameter's name and value, sorted by name.
    (Stdlib on purpose: the sandbox does not lean on the SDK it stands in for; the tests check
    it against the SDK's ``RequestValidator``.)"""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def idempotency_token(url: str, params: Mapping[str, str]) -> str:
    """``I-Twilio-Idempotency-Token``: the same for every retry of one callback, so a receiver can
    drop the duplicates."""
    data = url + "".join(f"&{name}={params[name]}" for name in sorted(params))
    return hashlib.sha256(data.encode()).hexdigest()[:32]


class CallbackDispatcher:
    """POSTs status callbacks when the server clock reaches their time: one background
    thread, best effort, three tries each. Each is signed with the auth token of the account
    in its ``AccountSid`` (``tokens``: account sid -> auth token). Memory holds only what is
    pending (a heap by due time); what was sent is counted, not kept."""

    def __init__(self, now: Callable[[], float], tokens: Mapping[str, str] | None = None):
        self.now = now
        self.tokens = dict(tokens or {})
        self.pending: list[tuple[float, int, str, dict[str, str], int]] = []  # heap: (when, seq, url, params, tries)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.posted = 0  # callbacks the receiver answered with a 2xx
        self.given_up = 0  # callbacks that failed three times

    def add(self, when: float, url: str, params: dict[str, str]) -> None:
        with self.lock:
            self._seq += 1
            heapq.heappush(self.pending, (when, self._seq, url, params, 0))

    @property
    def scheduled(self) -> int:
        """Callbacks added so far (retries not counted)."""
        return self._seq

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
            for _when, seq, url, params, tries in self._due(now):
                if self._post(url, params):
                    self.posted += 1
                elif tries < 2:
                    with self.lock:
                        heapq.heappush(self.pending, (now + 0.5 * (tries + 1), seq, url, params, tries + 1))
                else:
                    self.given_up += 1

    def _due(self, now: float) -> list[tuple[float, int, str, dict[str, str], int]]:
        """Take the callbacks due at ``now``, in (time, creation) order."""
        with self.lock:
            due = []
            while self.pending and self.pending[0][0] <= now:
                due.append(heapq.heappop(self.pending))
            return due

    def _post(self, url: str, params: dict[str, str]) -> bool:
        data = urlencode(params).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1 (sandbox)",
            "I-Twilio-Idempotency-Token": idempotency_token(url, params),
        }
        token = self.tokens.get(params.get("AccountSid", ""))
        if token is not None:
            headers["X-Twilio-Signature"] = signature(token, url, params)
        req = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
                ok = 200 <= resp.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return ok
