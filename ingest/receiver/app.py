"""The receiver's ASGI app (Starlette): status callbacks and Event Streams webhooks into the spool.

Endpoints (paths relative to the public URL):

* ``POST /twilio/status``: a Twilio status callback (form-encoded; messages and calls).
* ``POST /twilio/events``: an Event Streams webhook sink (a JSON array of CloudEvents).
* ``GET /healthz``: counters as JSON (accepted, duplicates, rejected, busy, pending bytes).

Every POST is checked with the ``twilio`` SDK's ``RequestValidator`` before anything is stored:

* callbacks: ``X-Twilio-Signature`` = HMAC-SHA1(auth token, URL + sorted form parameters);
* Event Streams: Twilio appends ``bodySHA256=<hex sha256 of the body>`` to the sink URL and signs the URL
  alone; ``RequestValidator.validate(url, raw_body, signature)`` checks the signature and the body hash.

The URL Twilio signed is the one it was given, which behind a TLS terminator, reverse proxy or tunnel is
not what this server sees (scheme, host, port, path prefix differ). So the signed URL is
``public_url + request path + ?query`` when a public URL is set, else the URL of the request as received.

Answers: 403 (bad/missing signature; nothing stored), 400 (validated but not a status callback / not a
CloudEvents batch), 413 (too large), 503 + Retry-After (spool over its memory budget or the disk failed:
Twilio retries), 204/200 once every event of the request is fsynced (or was already).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_plus

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from switchboard.core.twilio import redact_url
from switchboard.ingest.receiver.events import (
    callback_has_sid,
    callback_record,
    event_record,
    utc_now_iso,
)
from switchboard.ingest.receiver.spool import Spool, SpoolBusy

log = logging.getLogger("switchboard.receiver")

STATUS_PATH = "/twilio/status"
EVENTS_PATH = "/twilio/events"
MAX_CALLBACK_BYTES = 64 << 10     # a status callback is well under 2 KB
MAX_BATCH_BYTES = 4 << 20         # an Event Streams batch of CloudEvents
MAX_CONCURRENT_BATCHES = 32       # batches being read/validated at once: with MAX_BATCH_BYTES, a memory bound
RETRY_AFTER_SECONDS = "1"


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    """The client hung up before its body arrived: nothing to store, nobody to answer."""


@dataclass
class RequestCounters:
    rejected_signature: int = 0
    rejected_request: int = 0
    batches_in_progress: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


@dataclass
class ReceiverConfig:
    auth_token: str
    public_url: str | None = None  # e.g. "https://hooks.example.com/switchboard" (no trailing slash needed)
    # Other tokens whose signatures are accepted too: subaccounts (Twilio signs a subaccount's callbacks
    # with the subaccount's token) and a secondary token during rotation.
    extra_tokens: tuple[str, ...] = ()


def signed_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio computed its signature over (see the module docstring)."""
    scope = request.scope  # read directly: building Starlette's request.url costs more than the HMAC
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    if public_url:
        url = public_url.rstrip("/") + path
    else:
        host = request.headers.get("host")
        if not host and scope.get("server"):
            host = "%s:%s" % tuple(scope["server"])  # noqa: UP031 - (host, port) tuple
        url = f"{scope['scheme']}://{host}{path}"
    return f"{url}?{query}" if query else url


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Gone from None
    return b"".join(chunks)


class _Receiver:
    """The receiver's request handlers over one spool, its configuration and its counters."""

    def __init__(self, spool: Spool, config: ReceiverConfig) -> None:
        self.spool = spool
        self.config = config
        self.validators = [RequestValidator(t) for t in dict.fromkeys((config.auth_token, *config.extra_tokens)) if t]
        self.counters = RequestCounters()

    def reject(self, status: int, reason: str, path: str, detail: str = "") -> Response:
        """One log line (rate-limited; ``detail`` only in the log) and a short plain-text answer."""
        if status == 403:
            self.counters.rejected_signature += 1
            n = self.counters.rejected_signature
        else:
            self.counters.rejected_request += 1
            n = self.counters.rejected_request
        if n <= 10 or n % 1000 == 0:  # a flood of bad requests must not flood the log
            log.warning("%s %s: %s%s (%d so far)", status, path, reason, detail, n)
        return Response(reason + "\n", status_code=status, media_type="text/plain")

    async def store(self, records: list[dict], path: str, ok_status: int) -> Response:
        try:
            await self.spool.append(records)
        except SpoolBusy:
            return Response("busy, retry\n", 503, {"Retry-After": RETRY_AFTER_SECONDS}, "text/plain")
        except OSError as exc:
            log.error("%s: self.spool write failed: %s", path, exc)
            return Response("storage error, retry\n", 503, {"Retry-After": RETRY_AFTER_SECONDS}, "text/plain")
        self.counters.by_path[path] = self.counters.by_path.get(path, 0) + 1
        return Response(status_code=ok_status)

    async def status_callback(self, request: Request) -> Response:
        try:
            body = await _read_body(request, MAX_CALLBACK_BYTES)
            pairs = parse_form(body.decode("utf-8"))
        except _TooLarge:
            return self.reject(413, "request body too large for a status callback", STATUS_PATH)
        except _Gone:
            return Response(status_code=499)  # never sent: the connection is closed
        except UnicodeDecodeError:
            return self.reject(400, "form body is not UTF-8", STATUS_PATH)
        signature = request.headers.get("x-twilio-signature")
        url = signed_url(request, self.config.public_url)
        if not signature or not _valid_form_signature(self.validators, url, _Params.of(pairs), signature):
            return self.reject(403, f"X-Twilio-Signature {'missing' if not signature else 'invalid'}", STATUS_PATH,
                          f" (checked against {redact_url(url)}; see --public-url)")
        params = dict(pairs)
        if not callback_has_sid(params):
            return self.reject(400, "not a status callback: no MessageSid or CallSid", STATUS_PATH)
        token = request.headers.get("i-twilio-idempotency-token")
        query = request.scope.get("query_string", b"").decode("latin-1")  # e.g. ?campaign=… on the callback URL
        record = callback_record(request.scope["path"], pairs, token, utc_now_iso(), query)
        return await self.store([record], STATUS_PATH, 204)

    async def event_stream(self, request: Request) -> Response:
        # Bodies of up to 4 MB from up to --max-connections clients would not bound memory; this does.
        if self.counters.batches_in_progress >= MAX_CONCURRENT_BATCHES:
            return Response("busy, retry\n", 503, {"Retry-After": RETRY_AFTER_SECONDS}, "text/plain")
        self.counters.batches_in_progress += 1
        try:
            return await self._event_stream(request)
        finally:
            self.counters.batches_in_progress -= 1

    async def _event_stream(self, request: Request) -> Response:
        try:
            body = await _read_body(request, MAX_BATCH_BYTES)
            text = body.decode("utf-8")
        except _TooLarge:
            return self.reject(413, "Event Streams batch too large", EVENTS_PATH)
        except _Gone:
            return Response(status_code=499)  # never sent: the connection is closed
        except UnicodeDecodeError:
            return self.reject(400, "body is not UTF-8", EVENTS_PATH)
        signature = request.headers.get("x-twilio-signature")
        url = signed_url(request, self.config.public_url)
        has_hash = "bodySHA256" in parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
        # Without bodySHA256 the SDK would not check the body at all: such a request is not Twilio's.
        if not signature or not has_hash or not any(v.validate(url, text, signature) for v in self.validators):
            why = "missing" if not signature else ("without bodySHA256" if not has_hash else "invalid")
            return self.reject(403, f"X-Twilio-Signature {why}", EVENTS_PATH,
                          f" (checked against {redact_url(url)}; see --public-url)")
        events, problem = _parse_batch(text)
        if problem:
            return self.reject(400, problem, EVENTS_PATH)
        received = utc_now_iso()
        for event in events:
            if event.get("type") == "com.twilio.eventstreams.test-event":
                test_id = (event.get("data") or {}).get("test_id")
                log.warning("Event Streams test event received: test_id=%s (confirm it with the Sink "
                            "Validate API to activate the sink)", test_id)
        return await self.store([event_record(e, received) for e in events], EVENTS_PATH, 200)

    async def healthz(self, request: Request) -> Response:
        c = self.spool.counters
        return JSONResponse({
            "status": "ok", "accepted": c.accepted, "duplicates": c.duplicates, "fsync_batches": c.batches,
            "busy": c.busy, "failed": c.failed, "pending_bytes": self.spool.pending_bytes,
            "rejected_signature": self.counters.rejected_signature, "rejected_request": self.counters.rejected_request,
            "batches_in_progress": self.counters.batches_in_progress,
            "requests_ok": self.counters.by_path,
        })

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.spool.open()
        try:
            yield
        finally:
            self.spool.close()


def create_app(spool: Spool, config: ReceiverConfig) -> Starlette:
    """The ASGI app; its lifespan opens the spool (recovery, writer thread) and closes it on shutdown."""
    receiver = _Receiver(spool, config)
    routes = [
        Route(STATUS_PATH, receiver.status_callback, methods=["POST"]),
        Route(EVENTS_PATH, receiver.event_stream, methods=["POST"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=receiver.lifespan)


def _valid_form_signature(validators: list[RequestValidator], url: str, params: _Params, signature: str) -> bool:
    """``any(v.validate(url, params, signature) for v in validators)``, with its common case first.

    ``validate`` signs the URL twice (with and without the port, since Twilio is inconsistent about it)
    and re-parses it: 40% of a callback's CPU. The URL as received is always one of those two forms, so
    one ``compute_signature`` of it, compared in constant time, accepts exactly the requests that match
    it; anything else still goes through the full ``validate``.
    """
    expected = signature.encode()
    if any(hmac.compare_digest(v.compute_signature(url, params).encode(), expected) for v in validators):
        return True
    return any(v.validate(url, params, signature) for v in validators)


def parse_form(text: str) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs, blanks kept: ``parse_qsl(text, keep_blank_values=True)``.

    Three times faster than ``parse_qsl`` because most names and values need no unquoting; the form
    parser is the largest cost of a status callback after the signature.
    """
    pairs = []
    for item in text.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        pairs.append((name, value))
    return pairs


class _Params(dict):
    """Form parameters as name -> [values] with the ``getall`` the SDK's validator looks for first.

    (With a plain dict or Starlette's MultiDict the validator tries two missing methods per parameter and
    catches the AttributeErrors: a third of the request's CPU at 2,000 requests/s.)
    """

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> _Params:
        params = cls()
        for name, value in pairs:
            params.setdefault(name, []).append(value)
        return params

    def getall(self, name: str) -> list[str]:
        return self[name]


def _parse_batch(text: str) -> tuple[list[dict], str | None]:
    """The CloudEvents of a webhook body (an array; a single object is taken as a batch of one)."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        return [], f"body is not JSON: {exc}"
    events = payload if isinstance(payload, list) else [payload]
    for i, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
            return [], f"event {i} is not a CloudEvent with a string id"
        if not isinstance(event.get("type"), str):
            return [], f"event {i} ({event['id']}) has no type"
    return events, None
