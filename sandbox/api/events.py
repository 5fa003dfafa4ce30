"""Event Streams: outbound-message status CloudEvents, batched and POSTed to a webhook sink as Twilio
does, signed for a JSON body (``?bodySHA256=<hex>`` appended to the sink URL, that full URL signed with
no parameters), retried with backoff, with a bound on what is held in memory."""

from __future__ import annotations

import hashlib
import heapq
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from switchboard.sandbox.api.callbacks import signature
from switchboard.sandbox.api.pacer import Pacer

DATASCHEMA = "https://events-schemas.twilio.com/Messaging.MessageStatus/8"
MAX_BATCH = 100  # events per POST
MAX_BACKOFF = 600.0  # seconds between two tries of one batch, at most
GIVE_UP_AFTER = 4 * 3600.0  # Twilio retries a sink for up to 4 hours


# E.212 mobile country codes of the world's countries (the first one where a country has several). Twilio's
# status events carry the MCC/MNC of the network that took the message; the sandbox has no real MNCs, so a
# carrier's MNC is a stable stand-in drawn from its name (same carrier, same MNC, every run).
MCC = {"AE": "424", "AR": "722", "AU": "505", "BD": "470", "BE": "206", "BR": "724", "CA": "302", "CH": "228",
       "CL": "730", "DE": "262", "EG": "602", "ES": "214", "FR": "208", "GB": "234", "GH": "620", "ID": "510",
       "IN": "404", "IT": "222", "JP": "440", "KE": "639", "KR": "450", "MX": "334", "MY": "502", "NG": "621",
       "NL": "204", "NZ": "530", "PE": "716", "PH": "515", "PK": "410", "PL": "260", "PT": "268", "RO": "226",
       "SE": "240", "SG": "525", "TH": "520", "TR": "286", "UA": "255", "US": "310", "VN": "452", "ZA": "655"}


def network(rec: dict[str, Any]) -> tuple[str, str] | None:
    """(MCC, MNC) of the mobile network a message went to; None for a landline or an unknown carrier.

    The carrier is the one the world drew the number from (its prefix), read back with phonenumbers."""
    mcc = MCC.get(str(rec.get("country") or ""))
    if mcc is None:
        return None
    carrier = rec.get("carrier") or _carrier_of(str(rec.get("to") or ""))
    if not carrier:
        return None
    return mcc, f"{int(hashlib.sha256(carrier.encode()).hexdigest()[:6], 16) % 100:02d}"


def _carrier_of(number: str) -> str | None:
    import phonenumbers
    from phonenumbers import carrier as carriers

    try:
        return carriers.name_for_number(phonenumbers.parse(number), "en") or None
    except phonenumbers.NumberParseException:
        return None


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_event(rec: dict[str, Any], account_sid: str, status: str, when: float,
                  status_callback: str | None = None) -> dict[str, Any]:
    """One ``com.twilio.messaging.message.<status>`` CloudEvent (schema Messaging.MessageStatus), as
    Twilio's Event Streams documents it. Its id is stable, so a retried batch carries the same ids."""
    kind = f"com.twilio.messaging.message.{status}"
    data: dict[str, Any] = {
        "messageSid": rec["sid"], "timestamp": iso_ms(when), "accountSid": account_sid, "eventName": kind,
        "apiVersion": "2010-04-01", "from": rec["from"], "to": rec["to"], "messageStatus": status.upper(),
        "body": rec["body"], "numberOfSegments": int(rec["num_segments"]),
    }
    if rec.get("messaging_service_sid"):
        data["messagingServiceSid"] = rec["messaging_service_sid"]
    if status != "failed" and (net := network(rec)):  # a message that failed never reached a network
        data["mcc"], data["mnc"] = net
    if status != "sent" and rec["error_code"]:
        data["errorCode"] = int(rec["error_code"])
    if status_callback:
        data["statusCallBackUrl"] = status_callback
    return {
        "specversion": "1.0", "type": kind, "source": f"/2010-04-01/Accounts/{account_sid}/Messages/{rec['sid']}.json",
        "id": "NO" + hashlib.sha256(f"{rec['sid']}:{status}".encode()).hexdigest()[:32],
        "dataschema": DATASCHEMA, "datacontenttype": "application/json", "time": iso_ms(when), "data": data,
    }


def message_events(rec: dict[str, Any], account_sid: str) -> list[tuple[float, dict[str, Any]]]:
    """(when, event) per status change: ``sent`` (not for a message that failed: it never left), then
    its final status."""
    out = []
    if rec["status"] != "failed":
        out.append((float(rec["date_sent"]), message_event(rec, account_sid, "sent", rec["date_sent"])))
    out.append((float(rec["final_at"]), message_event(rec, account_sid, rec["status"], rec["final_at"])))
    return out


def signed_request(sink_url: str, body: bytes, auth_token: str) -> tuple[str, dict[str, str]]:
    """(URL with ``bodySHA256``, headers) of one batch: Twilio's signature for a JSON body."""
    sep = "&" if "?" in sink_url else "?"
    url = f"{sink_url}{sep}bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json", "User-Agent": "TwilioProxy/1.1 (sandbox event streams)",
               "X-Twilio-Signature": signature(auth_token, url, {})}
    return url, headers


class EventSink:
    """Posts status events to a webhook sink when the server clock reaches them: one background thread,
    batches of up to ``MAX_BATCH``, a failed batch retried after 1, 2, 4 … (at most 600) server-clock
    seconds and given up 4 hours after its first try. At most ``max_held`` events are held (scheduled or
    awaiting a retry); beyond that new events are dropped and counted in ``dropped``."""

    def __init__(self, url: str, auth_token: str, now: Callable[[], float], max_held: int = 50_000):
        self.url, self.auth_token, self.now, self.max_held = url, auth_token, now, max_held
        self.lock = threading.Lock()
        self.progress = threading.Condition(self.lock)  # notified after every post, good or bad
        self._due: list[tuple[float, int, dict[str, Any]]] = []  # heap: (when, seq, event)
        self._retry: list[tuple[float, int, float, int, list[dict[str, Any]]]] = []  # (next, seq, first, tries, batch)
        self._seq = 0
        self._held = 0
        self._pacer = Pacer(self.pump, "sandbox-event-sink")
        self.stats = {"batches": 0, "events": 0, "failed_posts": 0, "given_up": 0, "dropped": 0}

    def add(self, when: float, event: dict[str, Any]) -> None:
        with self.lock:
            if self._held >= self.max_held:
                self.stats["dropped"] += 1
                return
            self._seq += 1
            self._held += 1
            heapq.heappush(self._due, (when, self._seq, event))

    @property
    def held(self) -> int:
        with self.lock:
            return self._held

    def wait_for(self, predicate: Callable[[dict[str, int], int], bool], timeout: float) -> bool:
        """Wait until ``predicate(stats, held)`` holds after a post (tests tie their waits to posts)."""
        with self.progress:
            return self.progress.wait_for(lambda: predicate(self.stats, self._held), timeout)

    def start(self) -> None:
        self._pacer.start()

    def stop(self) -> None:
        self._pacer.stop()

    def pump(self) -> int:
        """Post what is due now (new batches, then retries whose time came); returns batches posted."""
        now, sent = self.now(), 0
        for seq, first, tries, batch in self._take(now):
            if self._post(batch):
                sent += 1
                with self.lock:
                    self._held -= len(batch)
                    self.stats["batches"] += 1
                    self.stats["events"] += len(batch)
                    self.progress.notify_all()
                continue
            with self.lock:
                self.progress.notify_all()
                self.stats["failed_posts"] += 1
                if now - first >= GIVE_UP_AFTER:
                    self._held -= len(batch)
                    self.stats["given_up"] += len(batch)
                else:
                    heapq.heappush(self._retry, (now + min(2.0 ** tries, MAX_BACKOFF), seq, first, tries + 1, batch))
        return sent

    def _take(self, now: float) -> list[tuple[int, float, int, list[dict[str, Any]]]]:
        """Batches to post now: due retries, then the due events in batches of ``MAX_BATCH``."""
        with self.lock:
            out = []
            while self._retry and self._retry[0][0] <= now:
                _next, seq, first, tries, batch = heapq.heappop(self._retry)
                out.append((seq, first, tries, batch))
            batch: list[dict[str, Any]] = []
            while self._due and self._due[0][0] <= now:
                batch.append(heapq.heappop(self._due)[2])
                if len(batch) == MAX_BATCH:
                    self._seq += 1
                    out.append((self._seq, now, 0, batch))
                    batch = []
            if batch:
                self._seq += 1
                out.append((self._seq, now, 0, batch))
            return out

    def _post(self, batch: list[dict[str, Any]]) -> bool:
        body = json.dumps(batch).encode()
        url, headers = signed_request(self.url, body, self.auth_token)
        req = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
                return 200 <= resp.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False
