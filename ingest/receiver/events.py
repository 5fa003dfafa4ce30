"""What the receiver stores, and the normalised status events the next ingest reads back.

Spool records (one JSON object per line, see ``spool.py``) keep the request as Twilio sent it, minus any
message body (never stored), so normalisation can improve later without losing anything:

* status callback: ``{"k", "src": "callback", "rcv", "path", ["q": query string,] "tok", "p": {form parameters}}``
* Event Streams:   ``{"k", "src": "event-stream", "rcv", "e": {one CloudEvent}}``

``k`` is the idempotency key. An Event Streams event keeps its CloudEvent ``id`` across Twilio's retries,
so ``es:<id>``. A status callback has no event id (``I-Twilio-Idempotency-Token`` is kept in ``tok`` but is
not sent by every product), so ``cb:<sha256 of the path and sorted parameters>``: a retried or replayed
callback has the same parameters, while two different status changes of one message or call never do.

``iter_events(spool_dir, after=checkpoint)`` turns records into ``StatusEvent``s; see the README beside
this file for the consumer's checkpoint/compact loop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from switchboard.ingest.receiver.spool import Checkpoint, ReadStats, iter_records

SOURCE_CALLBACK = "callback"
SOURCE_EVENT_STREAM = "event-stream"

# Parameters/fields that hold a message's text: dropped before anything is written (house rule).
_BODY_KEYS = {"Body", "body"}

# How far along its life a status is, so a late "sent" never overwrites an earlier-received "delivered".
MESSAGE_STATUS_RANK = {
    "accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "receiving": 3, "received": 4,
    "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4, "partially_delivered": 4, "read": 5,
}
CALL_STATUS_RANK = {
    "queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3,
    "completed": 4, "busy": 4, "failed": 4, "no-answer": 4, "canceled": 4,
}

_MESSAGING_TYPE = re.compile(r"^com\.twilio\.messaging\.message\.([a-z_-]+)$")
_VOICE_TYPE = re.compile(r"^com\.twilio\.voice\.(?:webhook\.)?status-callback\.call\.([a-z_-]+)$")
_VOICE_TYPE_STATUS = {"answered": "in-progress", "initiated": "initiated", "ringing": "ringing",
                      "completed": "completed"}


@dataclass(frozen=True)
class StatusEvent:
    """One status change of one message or call, as received (normalised across both push paths)."""

    key: str                    # idempotency key (unique per delivered event)
    source: str                 # "callback" | "event-stream"
    resource: str               # "message" | "call"
    sid: str                    # SM…/MM… or CA…
    status: str                 # Twilio's status, lower case (delivered, undelivered, completed, …)
    error_code: int | None
    timestamp: datetime         # when Twilio says it happened (UTC); the receive time if Twilio does not say
    received_at: datetime       # when the receiver accepted it (UTC)
    account_sid: str | None
    event_type: str             # CloudEvent type, or "status-callback"
    event_id: str | None        # CloudEvent id, or the I-Twilio-Idempotency-Token of a callback
    extra: dict = field(default_factory=dict, compare=False)  # mcc, mnc, segments, duration, …
    position: Checkpoint | None = field(default=None, compare=False)  # checkpoint just past this event

    @property
    def rank(self) -> int:
        table = MESSAGE_STATUS_RANK if self.resource == "message" else CALL_STATUS_RANK
        return table.get(self.status, -1)


# --- writing side: request -> record ------------------------------------------------------------------
def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def callback_record(path: str, params: Iterable[tuple[str, str]], token: str | None, received: str,
                    query: str = "") -> dict:
    """The spool record of a validated status callback (bodies dropped).

    ``query`` is the callback URL's own query string (a sender may tag its StatusCallback URLs with one);
    it is kept in ``q`` and is part of the key.
    """
    pairs = sorted(pair for pair in params if pair[0] not in _BODY_KEYS)
    canonical = f"{path}?{query}\0" + "\0".join(map("=".join, pairs))  # C-level joins: this is per request
    digest = hashlib.sha256(canonical.encode())
    # dict(pairs): Twilio's status callbacks never repeat a parameter; if one did, the last value wins here
    record = {"k": "cb:" + digest.hexdigest()[:40], "src": SOURCE_CALLBACK, "rcv": received, "path": path,
              "tok": token, "p": dict(pairs)}
    if query:
        record["q"] = query
    return record


def event_record(event: dict, received: str) -> dict:
    """The spool record of one validated CloudEvent (its ``data.body`` dropped)."""
    data = event.get("data")
    if isinstance(data, dict) and _BODY_KEYS & data.keys():
        event = {**event, "data": {k: v for k, v in data.items() if k not in _BODY_KEYS}}
    return {"k": f"es:{event['id']}", "src": SOURCE_EVENT_STREAM, "rcv": received, "e": event}


def callback_has_sid(params: dict) -> bool:
    return bool(params.get("MessageSid") or params.get("SmsSid") or params.get("CallSid"))


# --- reading side: record -> StatusEvent --------------------------------------------------------------
def iter_events(spool_dir: Path, after: Checkpoint | None = None,
                stats: ReadStats | None = None) -> Iterator[StatusEvent]:
    """Every status event after ``after``, oldest first, each delivered event once.

    A key seen earlier in the same read is skipped (counted in ``stats.duplicates``); records that are not
    status events (an Event Streams test event, another product's event type) are counted by type in
    ``stats.ignored``. ``stats.position`` ends just past the last line read: store it as the checkpoint
    once the events are committed, even when the last lines were ignored ones.
    """
    stats = stats if stats is not None else ReadStats()
    seen: set[str] = set()
    for record, position in iter_records(spool_dir, after, stats):
        key = record.get("k")
        if key in seen:
            stats.duplicates += 1
            continue
        seen.add(key)
        event = normalise(record, position)
        if event is None:
            kind = (record.get("e") or {}).get("type") if record.get("src") == SOURCE_EVENT_STREAM else "callback"
            stats.ignored[str(kind)] = stats.ignored.get(str(kind), 0) + 1
            continue
        yield event


def normalise(record: dict, position: Checkpoint | None = None) -> StatusEvent | None:
    """The status event a spool record holds, or None when it holds none."""
    try:
        if record.get("src") == SOURCE_CALLBACK:
            return _from_callback(record, position)
        if record.get("src") == SOURCE_EVENT_STREAM:
            return _from_cloudevent(record, position)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None


def _from_callback(record: dict, position: Checkpoint | None) -> StatusEvent | None:
    p = record["p"]
    received = _parse_time(record["rcv"])
    if p.get("CallSid") and not p.get("MessageSid"):
        resource, sid, status = "call", p["CallSid"], p.get("CallStatus", "")
        when = _parse_time(p["Timestamp"]) if p.get("Timestamp") else received
        extra = _pick(p, {"CallDuration": "duration", "SequenceNumber": "sequence", "Direction": "direction",
                          "AnsweredBy": "answered_by"})
    else:
        resource, sid = "message", p.get("MessageSid") or p.get("SmsSid")
        status, when = p.get("MessageStatus") or p.get("SmsStatus", ""), received
        extra = _pick(p, {"RawDlrDoneDate": "raw_dlr_done_date", "MessagingServiceSid": "messaging_service_sid"})
    if not sid or not status:
        return None
    if record.get("q"):
        extra["query"] = record["q"]  # the StatusCallback URL's own query string
    return StatusEvent(record["k"], SOURCE_CALLBACK, resource, sid, status.lower(), _int(p.get("ErrorCode")),
                       when, received, p.get("AccountSid"), "status-callback", record.get("tok"), extra, position)


def _from_cloudevent(record: dict, position: Checkpoint | None) -> StatusEvent | None:
    event, received = record["e"], _parse_time(record["rcv"])
    kind, data = event.get("type", ""), event.get("data") or {}
    if m := _MESSAGING_TYPE.match(kind):
        sid, status = data["messageSid"], (data.get("messageStatus") or m.group(1)).lower()
        extra = _pick(data, {"mcc": "mcc", "mnc": "mnc", "numberOfSegments": "segments",
                             "messagingServiceSid": "messaging_service_sid", "eventName": "event_name"})
        resource, account = "message", data.get("accountSid")
        error = _int(data.get("errorCode"))
    elif m := _VOICE_TYPE.match(kind):
        params = (data.get("request") or {}).get("parameters") or {}
        sid = data.get("sid") or params.get("CallSid") or params.get("call_sid")
        status = (params.get("CallStatus") or params.get("call_status")
                  or _VOICE_TYPE_STATUS.get(m.group(1), m.group(1))).lower()
        resource, extra = "call", _pick(params, {"CallDuration": "duration", "call_duration": "duration"})
        account = data.get("accountSid") or params.get("AccountSid") or params.get("account_sid")
        error = _int(params.get("ErrorCode") or params.get("error_code"))
    else:
        return None
    if not sid:
        return None
    stamp = data.get("timestamp") or event.get("time")
    when = _parse_time(stamp) if stamp else received
    return StatusEvent(record["k"], SOURCE_EVENT_STREAM, resource, sid, status, error, when, received,
                       account, kind, event.get("id"), extra, position)


def latest_status(events: Iterable[StatusEvent]) -> dict[tuple[str, str], StatusEvent]:
    """The furthest-along status per (resource, sid): out-of-order arrivals never move a status back.

    Ties in rank (``undelivered`` after ``delivered`` is a carrier correction) go to the later timestamp.
    """
    best: dict[tuple[str, str], StatusEvent] = {}
    for event in events:
        key = (event.resource, event.sid)
        current = best.get(key)
        if current is None or (event.rank, event.timestamp) > (current.rank, current.timestamp):
            best[key] = event
    return best


def _pick(source: dict, names: dict[str, str]) -> dict:
    return {out: source[name] for name, out in names.items() if source.get(name) not in (None, "")}


def _int(value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _parse_time(text: str) -> datetime:
    """ISO 8601 (Event Streams, our own ``rcv``) or RFC 2822 (voice callbacks' ``Timestamp``), as UTC."""
    try:
        value = datetime.fromisoformat(text)  # 3.11+ reads a trailing "Z"
    except ValueError:
        value = parsedate_to_datetime(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
