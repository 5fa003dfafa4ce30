"""Running a campaign: SMS to every recipient, exactly once, then voice fallbacks.

The order of effects for every send is fixed (see ``sender.ledger``): ledger intent →
API call → ledger sent/failed → send-log record → ledger logged. On start, the runner
first *recovers* from whatever a previous run left behind:

* an ``intent`` without an outcome: the process died around the API call. Twilio is
  asked whether a message to that number, from our sender, with our body, was created
  since the intent (``messages.list(to=..., date_sent_after=...)``, plus the newest page
  for messages still queued, whose ``date_sent`` is not set yet). Found: recorded as sent
  (``recovered``), not sent again. Not found: sent now. Either way nobody receives twice
  and nobody is skipped.
* an outcome without its send-log record: the record is written.

Twilio errors on create (21211 invalid number, 21610 unsubscribed, 21614 not a mobile…)
are recorded per recipient with the catalogue's official name, never raised; 429s are
waited out by the transport (``Retry-After``). A request whose fate is unknown (timeout,
connection reset, 5xx) is treated like a crash: look at the provider, then retry.

Voice fallback: once every SMS is out, statuses are polled (``messages(sid).fetch()``)
until each is delivered, fails, or ``after_seconds`` pass since it was sent; then a call
reads the body with ``<Say language=...>`` and its send-log record carries
``fallback_of`` = the SMS's event id. SMS rejected with an error in
``fallback.on_error_categories`` (default: landline) are called right away.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from switchboard.core.errors import ConfigError, SwitchboardError
from switchboard.sender.campaign import Campaign, Fallback
from switchboard.sender.ledger import Ledger, LedgerRow, ledger_path, sids_in_other_ledgers
from switchboard.sender.planning import (
    PlannedSend,
    event_id_for,
    idempotency_key,
    mask_number,
    planned_sends,
    say_language_for,
)
from switchboard.sender.ratelimit import TokenBucket
from switchboard.sender.sendlog import SendLog, SendLogRecord, iso_z, send_log_path
from switchboard.sender.transport import ensure_retrying

__all__ = [
    "CampaignResult",
    "RunOptions",
    "SendAborted",
    "SendOutcome",
    "UnsafeCampaign",
    "check_safety",
    "run_campaign",
]

log = logging.getLogger(__name__)

DELIVERED = frozenset({"delivered", "read"})
FAILED_FINAL = frozenset({"undelivered", "failed", "canceled"})
CRASH_ENV = "SWITCHBOARD_SENDER_CRASH_AT"  # test hook: "point:n" SIGKILLs this process at the n-th point


class SendAborted(SwitchboardError, RuntimeError):
    """The run stopped on a problem that is not about one recipient (account, network); it can be resumed."""


class UnsafeCampaign(ConfigError, RuntimeError):
    """The campaign would send to numbers outside the allow-list without permission."""


@dataclass(frozen=True)
class RunOptions:
    allow_any_number: bool = False  # the caller has confirmed sending outside the allow-list
    poll_interval: float | None = None  # seconds between status polls; default from the fallback delay
    reconcile_margin: timedelta = timedelta(minutes=10)  # clock skew tolerated when matching a lost send
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    max_ambiguous_retries: int = 3
    # How long after a request leaves Twilio may still act on it. A send whose outcome is unknown
    # (timeout, dropped connection, 5xx) is looked for only after this, or a slow create would be sent twice.
    inflight_window: timedelta = timedelta(seconds=120)
    on_status: Callable[[str], None] | None = None  # one-line notes while waiting (progress bars, pages)
    # Recipients' numbers not to text: opted out of the campaign's sender per the warehouse (issue 18;
    # sender.suppression). sender.api fills it unless the user confirmed sending to them anyway.
    suppressed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one planned send (``step`` sms or voice)."""

    user_id: str
    step: str
    number_masked: str
    country: str | None
    variant: str | None
    event_id: str
    state: str  # sent | failed | skipped (opted out, per the warehouse: never sent)
    provider_sid: str | None
    status: str | None  # the provider's last known status
    error_code: int | None
    error_name: str | None
    fallback_of: str | None
    recovered: bool  # found at the provider after a crash instead of being sent again
    resumed: bool  # already done by an earlier run of this campaign


OUTCOME_COLUMNS = list(SendOutcome.__dataclass_fields__)


@dataclass
class CampaignResult:
    campaign_id: str
    outcomes: list[SendOutcome]
    send_log_path: Path
    ledger_path: Path
    retried_429: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(o) for o in self.outcomes], columns=OUTCOME_COLUMNS)

    def _sms(self) -> list[SendOutcome]:
        return [o for o in self.outcomes if o.step == "sms"]

    @property
    def sent(self) -> int:
        return sum(o.state == "sent" for o in self._sms())

    @property
    def failed(self) -> int:
        return sum(o.state == "failed" for o in self._sms())

    @property
    def delivered(self) -> int:
        return sum(o.status in DELIVERED for o in self._sms())

    @property
    def skipped_opted_out(self) -> int:
        return sum(o.state == "skipped" for o in self._sms())

    @property
    def fallbacks(self) -> int:
        return sum(o.step == "voice" and o.state == "sent" for o in self.outcomes)

    @property
    def failed_by_error(self) -> dict[str, int]:
        """Failed sends (SMS and calls) per official error name, most frequent first."""
        counts = Counter(o.error_name or "unknown error" for o in self.outcomes if o.state == "failed")
        return dict(counts.most_common())

    def summary(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "recipients": len(self._sms()),
            "sent": self.sent,
            "failed": self.failed,
            "delivered": self.delivered,
            "fallback_calls": self.fallbacks,
            "skipped_opted_out": self.skipped_opted_out,
            "failed_by_error": self.failed_by_error,
            "recovered_after_crash": sum(o.recovered for o in self.outcomes),
            "already_done_before": sum(o.resumed for o in self.outcomes),
            "retried_429": self.retried_429,
            "send_log": str(self.send_log_path),
        }


def check_safety(campaign: Campaign, *, allow_any_number: bool) -> None:
    """Refuse numbers outside the allow-list unless the caller has explicit, confirmed permission."""
    outside = campaign.outside_allow_list()
    if outside and not allow_any_number:
        shown = ", ".join(f"line {r.line} ({mask_number(r.number)})" for r in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        raise UnsafeCampaign(
            f"{len(outside)} recipient(s) are not in the allow-list: {shown}{more}. Add them to the allow-list "
            "file if they are test phones, or pass --allow-any-number and confirm"
        )
    if len(campaign.recipients) > campaign.max_size:
        raise UnsafeCampaign(f"{len(campaign.recipients)} recipients exceed max_size = {campaign.max_size}")


def run_campaign(
    campaign: Campaign,
    client: Client,
    *,
    data_dir: str | Path,
    progress_callback: Callable[[SendOutcome, int, int], None] | None = None,
    options: RunOptions | None = None,
) -> CampaignResult:
    """Send (or resume) the campaign; returns every outcome. Safe to call again after any crash."""
    options = options or RunOptions()
    check_safety(campaign, allow_any_number=options.allow_any_number)
    retrying = ensure_retrying(client, sleep=options.sleep)
    retries_before = retrying.retries
    with Ledger.open(ledger_path(data_dir, campaign.id)) as ledger:
        run = _Run(
            campaign,
            client,
            ledger,
            SendLog(send_log_path(data_dir, campaign.id)),
            options,
            progress_callback,
        )
        run.check_fingerprint()
        run.recover()
        run.send_all_sms()
        if campaign.fallback is not None:
            run.fallbacks()
        outcomes = run.outcomes()
        return CampaignResult(
            campaign.id,
            outcomes,
            run.log.path,
            ledger.path,
            retried_429=retrying.retries - retries_before,
            warnings=run.warnings,
        )


# --- internals ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One API call to make: an SMS or a fallback call."""

    key: str
    step: str
    event_id: str
    plan: PlannedSend
    sender: str
    body_hashes: str
    fallback_of: str | None


def body_hashes(body: str) -> str:
    """sha256 of the body and of its GSM-7 rewrite (what Smart Encoding may store instead)."""
    from switchboard.core.segments import to_gsm7

    forms = dict.fromkeys([body, to_gsm7(body)])
    return ",".join(hashlib.sha256(f.encode()).hexdigest() for f in forms)


def _sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


_crash_counts: Counter[str] = Counter()


def _crash_point(name: str) -> None:
    """Test hook: ``SWITCHBOARD_SENDER_CRASH_AT=after_create:3`` SIGKILLs the process the 3rd time here."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _crash_counts[name] += 1
    if _crash_counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _is_account_level(exc: TwilioRestException) -> bool:
    """Authentication, permission, unknown account or resource: no recipient is to blame."""
    if exc.status in (401, 403, 404):
        return True
    if exc.status == 429 or exc.status >= 500:  # transient: retried, not blamed on the account
        return False
    code = exc.code if isinstance(exc.code, int) else None
    return code is not None and 20000 <= code < 21000


def _error_info(code: int | None) -> tuple[str, str]:
    """(official name, category) of a Twilio error code, from the error catalogue."""
    if code is None:
        return "Unknown error (no code)", "unknown"
    try:
        from switchboard.core.error_catalog import describe

        info = describe(code)
        return info.name, info.category
    except Exception:  # noqa: BLE001 - the catalogue is advisory here: never let it stop a send
        return f"Twilio error {code}", "unknown"


class _Run:
    def __init__(
        self,
        campaign: Campaign,
        client: Client,
        ledger: Ledger,
        send_log: SendLog,
        options: RunOptions,
        progress: Callable[[SendOutcome, int, int], None] | None,
    ):
        self.campaign = campaign
        self.client = client
        self.ledger = ledger
        self.log = send_log
        self.options = options
        self.progress = progress
        self.plans = planned_sends(campaign)
        self.by_user = {p.recipient.user_id: p for p in self.plans}
        self.bucket = TokenBucket(campaign.rate_limit, clock=options.monotonic, sleep=options.sleep)
        self.warnings: list[str] = []
        self.resumed: set[str] = set()
        self.in_doubt: list[tuple[_Step, int]] = []  # sends whose outcome is unknown, with their attempt
        self.done = 0
        self.total = len(self.plans)
        self.skipped: list[SendOutcome] = []

    # -- start-up
    def check_fingerprint(self) -> None:
        fingerprint = self.campaign.fingerprint()
        previous = self.ledger.get_meta("fingerprint")
        if previous is None:
            self.ledger.set_meta("fingerprint", fingerprint)
            self.ledger.set_meta("campaign_id", self.campaign.id)
        elif previous != fingerprint:
            self.warnings.append(
                "the campaign file changed since this campaign first ran; recipients already sent to are not "
                "sent again (use a new id to send the new version to everyone)"
            )
        for row in self.ledger.rows():
            if row.state != "intent":
                self.resumed.add(row.key)

    def recover(self) -> None:
        intents = self.ledger.rows(state="intent")
        # A request the last run made just before it died may still be inside the provider.
        self._wait_out_in_flight(intents)
        for row in intents:
            found = self._find_at_provider(row)
            if found is not None:
                log.info("recovered %s: created before the crash as %s", row.key, found["sid"])
                self._record_found(row.key, found)
        for row in self.ledger.rows():
            if row.state in ("sent", "failed") and not row.logged:
                self._write_log(row)

    # -- SMS
    def send_all_sms(self) -> None:
        for plan in self.plans:
            if plan.recipient.number in self.options.suppressed and self.ledger.get(plan.key) is None:
                self._skip(plan)
                continue
            step = _Step(
                plan.key, "sms", plan.event_id, plan, self.campaign.sender, body_hashes(plan.body), None
            )
            self._execute(step)
        self._settle_in_doubt()

    def _skip(self, plan: PlannedSend) -> None:
        """A recipient who opted out of this sender: nothing is sent, nothing is logged as sent."""
        outcome = SendOutcome(
            user_id=plan.recipient.user_id, step="sms", number_masked=mask_number(plan.recipient.number),
            country=plan.country, variant=plan.variant.name, event_id=plan.event_id, state="skipped",
            provider_sid=None, status=None, error_code=21610,
            error_name="opted out (per the warehouse): not sent", fallback_of=None, recovered=False, resumed=False,
        )
        self.skipped.append(outcome)
        self.done += 1
        if self.progress is not None:
            self.progress(outcome, self.done, self.total)

    def _execute(self, step: _Step) -> None:
        row = self.ledger.get(step.key)
        if row is None or row.state == "intent":
            row = self._send(step)
        if row is not None:  # None: in doubt, reported once settled
            self._report(row)

    def _report(self, row: LedgerRow) -> None:
        self.done += row.step == "sms"
        if self.progress is not None:
            self.progress(self._outcome(row), self.done, self.total)

    def _send(self, step: _Step, attempt: int = 0) -> LedgerRow | None:
        """Make the API call for ``step``; the ledger row once its outcome is known, or None when it is in
        doubt (timeout, dropped connection, 5xx: Twilio may have created it, or may still be creating it).
        An in-doubt send is settled by ``_settle_in_doubt`` after its in-flight window."""
        for retry_429 in range(self.options.max_ambiguous_retries + 1):
            # Token first, intent right before the call: the intent time is when the request left.
            self.bucket.acquire()
            self._record_intent(step)
            _crash_point("after_intent")
            outcome = self._attempt(step)
            if outcome == "done":
                return self._finish(step)
            if outcome == "in_doubt":
                self.in_doubt.append((step, attempt))
                return None
            if retry_429 < self.options.max_ambiguous_retries:  # 429 after the transport's own retries
                self.options.sleep(0.5 * 2**retry_429)
        self.ledger.withdraw_intent(step.key)  # every answer was 429: nothing was created
        raise SendAborted(
            f"Twilio kept answering HTTP 429; stopped after {self.options.max_ambiguous_retries + 1} attempts. "
            "Run the campaign again later: it resumes where it stopped, without sending anyone a second message"
        )

    def _record_intent(self, step: _Step) -> None:
        self.ledger.record_intent(
            key=step.key,
            campaign_id=self.campaign.id,
            user_id=step.plan.recipient.user_id,
            step=step.step,
            event_id=step.event_id,
            to_number=step.plan.recipient.number,
            sender=step.sender,
            body_hashes=step.body_hashes,
            variant=step.plan.variant.name,
            fallback_of=step.fallback_of,
            at=self.options.clock(),
        )

    def _attempt(self, step: _Step) -> str:
        """One create: ``done`` (sent or refused, in the ledger), ``in_doubt`` or ``429``."""
        try:
            resource = self._create(step)
        except TwilioRestException as exc:
            if _is_account_level(exc):
                name = _error_info(exc.code)[0] if isinstance(exc.code, int) else f"HTTP {exc.status}"
                self.ledger.withdraw_intent(step.key)  # refused outright: nothing can be in flight
                raise SendAborted(
                    f"Twilio refused the request for the whole account: {name} (HTTP {exc.status}). Check the "
                    "credentials, the account and the sender; nothing was sent for this recipient, and running "
                    "the campaign again resumes where it stopped"
                ) from None
            if exc.status == 429:  # nothing was created: safe to repeat
                return "429"
            if exc.status >= 500:  # the message may exist, or be about to
                log.warning("send %s: HTTP %s; checking the provider later", step.key, exc.status)
                return "in_doubt"
            code = exc.code if isinstance(exc.code, int) else None
            name = _error_info(code)[0] if code is not None else f"HTTP {exc.status}: {exc.msg}"
            self.ledger.record_failed(step.key, error_code=code, error_name=name, at=self.options.clock())
            return "done"
        except (requests.ConnectionError, requests.Timeout, TwilioException) as exc:
            log.warning("send %s: outcome unknown (%s); checking the provider later", step.key, type(exc).__name__)
            return "in_doubt"
        _crash_point("after_create")
        self.ledger.record_sent(
            step.key,
            sid=resource.sid,
            status=resource.status,
            created_at=resource.date_created,
            at=self.options.clock(),
        )
        return "done"

    def _finish(self, step: _Step) -> LedgerRow:
        _crash_point("after_done")
        row = self.ledger.get(step.key)
        assert row is not None
        self._write_log(row)
        _crash_point("after_log")
        return self.ledger.get(step.key) or row

    # -- sends in doubt: look at the provider only once the request can no longer be inside it
    def _wait_out_in_flight(self, rows: list[LedgerRow]) -> None:
        """Sleep until the in-flight window of every row's request is over.

        A create that outlived the client's timeout may still be working inside Twilio; a look before it
        finishes finds nothing and sends a second message. The intent is written right before the request
        leaves, so ``intent + window`` bounds the time the request can still create something."""
        if not rows:
            return
        window = self.options.inflight_window
        remaining = (max(r.intent_time for r in rows) + window - self.options.clock()).total_seconds()
        if remaining > 0:
            if self.options.on_status is not None:
                self.options.on_status(
                    f"waiting {remaining:.0f} s for {len(rows)} unanswered request(s) to finish at Twilio "
                    "before checking whether they were sent"
                )
            self.options.sleep(remaining)

    def _settle_in_doubt(self) -> None:
        """Look for every in-doubt send after its in-flight window: found, it is recorded (``recovered``);
        not found, it is sent again (at most ``max_ambiguous_retries`` times)."""
        while self.in_doubt:
            batch, self.in_doubt = self.in_doubt, []
            rows = [self.ledger.get(step.key) for step, _ in batch]
            self._wait_out_in_flight([r for r in rows if r is not None])
            for (step, attempt), row in zip(batch, rows, strict=True):
                assert row is not None
                found = self._find_at_provider(row)
                if found is not None:
                    self._record_found(step.key, found)
                    self._report(self._finish(step))
                    continue
                if attempt >= self.options.max_ambiguous_retries:
                    raise SendAborted(
                        f"Twilio did not answer the {step.step} to {mask_number(row.to_number)} after "
                        f"{attempt + 1} attempts (none was created). Run the campaign again when Twilio is "
                        "reachable: it resumes where it stopped"
                    )
                self.options.sleep(0.5 * 2**attempt)
                done = self._send(step, attempt + 1)
                if done is not None:
                    self._report(done)

    def _record_found(self, key: str, found: dict[str, Any]) -> None:
        self.ledger.record_sent(
            key,
            sid=found["sid"],
            status=found["status"],
            created_at=found["created"],
            recovered=True,
            at=self.options.clock(),
        )

    def _create(self, step: _Step) -> Any:
        to = step.plan.recipient.number
        if step.step == "sms":
            kwargs: dict[str, Any] = {"to": to, "body": step.plan.body}
            if self.campaign.messaging_service_sid:
                kwargs["messaging_service_sid"] = self.campaign.messaging_service_sid
            else:
                kwargs["from_"] = self.campaign.from_number
            if self.campaign.status_callback:
                kwargs["status_callback"] = self.campaign.status_callback
            return self.client.messages.create(**kwargs)
        return self.client.calls.create(to=to, from_=step.sender, twiml=voice_twiml(step.plan))

    # -- asking the provider what happened to a send whose outcome we did not record
    def _find_at_provider(self, row: LedgerRow) -> dict[str, Any] | None:
        """The message (or call) this intent created before an interruption, if Twilio has one."""
        since = row.intent_time - self.options.reconcile_margin
        # SIDs this or another campaign's ledger already owns cannot be this send (shared test phones).
        known = self.ledger.known_sids() | sids_in_other_ledgers(self.ledger.path)
        error: Exception | None = None
        for attempt in range(self.options.max_ambiguous_retries + 1):
            try:
                if row.step == "sms":
                    return self._find_message(row, since, known)
                return self._find_call(row, since, known)
            except (TwilioException, requests.RequestException) as exc:
                error = exc
                if attempt < self.options.max_ambiguous_retries:
                    self.options.sleep(0.5 * 2**attempt)
        # Cannot tell: do not risk a duplicate. The row stays at intent and is checked again next run.
        raise SendAborted(
            f"cannot check with Twilio whether the {row.step} to {mask_number(row.to_number)} was sent before an "
            f"interruption ({type(error).__name__}); run the campaign again when Twilio is reachable"
        )

    def _find_message(self, row: LedgerRow, since: datetime, known: set[str]) -> dict[str, Any] | None:
        hashes = set(row.body_hashes.split(","))

        def matches(m: Any) -> bool:
            ours = m.from_ == row.sender or m.messaging_service_sid == row.sender
            return (
                m.sid not in known
                and ours
                and _sha(m.body) in hashes
                and (m.direction or "outbound-api").startswith("outbound")
            )

        candidates = list(self.client.messages.list(to=row.to_number, date_sent_after=since, limit=100))
        # Queued messages have no date_sent yet and escape that filter: also read the newest page,
        # by creation time (a message may also leave "queued" between the two requests).
        recent = self.client.messages.list(to=row.to_number, limit=50, page_size=50)
        candidates += [m for m in recent if m.date_created is None or m.date_created >= since]
        found = list({m.sid: m for m in candidates if matches(m)}.values())
        if not found:
            return None
        first = min(found, key=lambda m: m.date_created or datetime.max.replace(tzinfo=UTC))
        return {"sid": first.sid, "status": first.status, "created": first.date_created}

    def _find_call(self, row: LedgerRow, since: datetime, known: set[str]) -> dict[str, Any] | None:
        calls = self.client.calls.list(to=row.to_number, from_=row.sender, limit=50, page_size=50)
        found = [
            c for c in calls if c.sid not in known and (c.date_created is None or c.date_created >= since)
        ]
        if not found:
            return None
        first = min(found, key=lambda c: c.date_created or datetime.max.replace(tzinfo=UTC))
        return {"sid": first.sid, "status": first.status, "created": first.date_created}

    # -- send log
    def _write_log(self, row: LedgerRow) -> None:
        plan = self.by_user.get(row.user_id)
        if plan is None:  # a recipient removed from the file after sending: log what the ledger knows
            self.warnings.append(f"user {row.user_id} is in the ledger but no longer in the recipients file")
        sent_at = row.provider_created_at or row.done_at or row.intent_at
        record = SendLogRecord(
            event_id=row.event_id,
            sent_at=iso_z(datetime.fromisoformat(sent_at)),
            channel="sms" if row.step == "sms" else "voice",
            purpose=self.campaign.purpose,
            template_id=plan.variant.template_id if plan else None,
            experiment_id=self.campaign.experiment_id,
            variant=row.variant,
            campaign_id=self.campaign.id,
            user_id=row.user_id,
            country=plan.country if plan else None,
            locale=plan.recipient.locale if plan else None,
            provider_sid=row.provider_sid,
            fallback_of=row.fallback_of,
            # refused at create time (21211, 21610, …): no Twilio record will ever say why, so the log does
            error_code=row.error_code if row.provider_sid is None else None,
        )
        self.log.append(record)
        self.ledger.mark_logged(row.key)

    # -- voice fallback
    def fallbacks(self) -> None:
        fallback = self.campaign.fallback
        assert fallback is not None
        caller = fallback.from_number or self.campaign.from_number or ""
        interval = self.options.poll_interval
        if interval is None:
            interval = min(15.0, max(0.2, fallback.after_seconds / 10))
        pending = self._call_now_or_pending(fallback, caller)
        while pending:
            if self.options.on_status is not None:
                self.options.on_status(
                    f"waiting for delivery of {len(pending)} SMS (a call after {fallback.after_seconds:g} s)"
                )
            self._poll_once(pending, timedelta(seconds=fallback.after_seconds), caller)
            if pending:
                self.options.sleep(interval)
        self._settle_in_doubt()

    def _call_now_or_pending(self, fallback: Fallback, caller: str) -> dict[str, LedgerRow]:
        """Call at once where due (a call interrupted last run, an SMS refused for a fallback category);
        return the SMS still waiting for delivery, by key."""
        pending: dict[str, LedgerRow] = {}
        for row in self.ledger.rows(step="sms"):
            voice = self.ledger.get(idempotency_key(self.campaign.id, row.user_id, "voice"))
            if (voice is not None and voice.state != "intent") or row.user_id not in self.by_user:
                continue
            rejected = (
                row.state == "failed" and _error_info(row.error_code)[1] in fallback.on_error_categories
            )
            if voice is not None or rejected:
                self._call(row, caller)
            elif row.state == "sent" and row.status not in DELIVERED:
                pending[row.key] = row
        return pending

    def _poll_once(self, pending: dict[str, LedgerRow], after: timedelta, caller: str) -> None:
        """One status poll of every pending SMS: delivered ones leave; failed or overdue ones get their call."""
        now = self.options.clock()
        for key, row in list(pending.items()):
            status, _code = self._fetch_status(row)
            if status in DELIVERED:
                del pending[key]
                continue
            # A message recovered after a crash went out at its intent, not when it was found again.
            sent_at = datetime.fromisoformat(row.intent_at if row.recovered else row.done_at or row.intent_at)
            if status in FAILED_FINAL or now >= sent_at + after:
                del pending[key]
                self._call(self.ledger.get(key) or row, caller)

    def _fetch_status(self, row: LedgerRow) -> tuple[str | None, int | None]:
        try:
            message = self.client.messages(row.provider_sid).fetch()
        except (TwilioException, requests.RequestException) as exc:
            log.warning("status of %s unavailable (%s); polling again", row.provider_sid, type(exc).__name__)
            return row.status, None
        code = message.error_code
        name = _error_info(code)[0] if code else None
        if message.status != row.status or code:
            self.ledger.record_status(row.key, message.status, error_code=code, error_name=name)
        return message.status, code

    def _call(self, sms_row: LedgerRow, caller: str) -> None:
        plan = self.by_user[sms_row.user_id]
        key = idempotency_key(self.campaign.id, sms_row.user_id, "voice")
        step = _Step(key, "voice", event_id_for(key), plan, caller, body_hashes(plan.body), sms_row.event_id)
        self._execute(step)

    # -- results
    def _outcome(self, row: LedgerRow) -> SendOutcome:
        plan = self.by_user.get(row.user_id)
        return SendOutcome(
            user_id=row.user_id,
            step=row.step,
            number_masked=mask_number(row.to_number),
            country=plan.country if plan else None,
            variant=row.variant,
            event_id=row.event_id,
            state=row.state,
            provider_sid=row.provider_sid,
            status=row.status,
            error_code=row.error_code,
            error_name=row.error_name,
            fallback_of=row.fallback_of,
            recovered=bool(row.recovered),
            resumed=row.key in self.resumed,
        )

    def outcomes(self) -> list[SendOutcome]:
        return [self._outcome(r) for r in self.ledger.rows() if r.state != "intent"] + self.skipped


def voice_twiml(plan: PlannedSend) -> str:
    """``<Response><Say language="es-MX">…</Say></Response>`` reading the SMS body in the recipient's language."""
    response = VoiceResponse()
    response.say(plan.body, language=say_language_for(plan))
    return str(response)
