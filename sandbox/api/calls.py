"""The Calls resource: filter (including by the status a call shows now), render and create."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from switchboard.sandbox.api.accounts import Accounts
from switchboard.sandbox.api.callbacks import CallbackDispatcher, call_callbacks
from switchboard.sandbox.api.errors import ApiError
from switchboard.sandbox.api.magic import MAGIC_FROM_CALL, MAGIC_TO_CALL, country_of
from switchboard.sandbox.api.messages import money
from switchboard.sandbox.api.paging import API, time_bounds
from switchboard.sandbox.api.store import Store
from switchboard.sandbox.catalog import COUNTRY_BY_ISO
from switchboard.sandbox.render import rfc2822
from switchboard.sandbox.sids import sid_for, sid_list
from switchboard.sandbox.world import CALL_STATUSES, World

_COLUMNS = {
    "account_idx": "num", "date_created": "num", "start_time": "num", "answered_at": "num",
    "end_time": "num", "status": "cat", "duration": "num", "answered_by": "cat", "price": "num",
    "to": "cat", "from": "cat",
}
_STATUSES = CALL_STATUSES + ["queued", "ringing", "in-progress"]
_SUBRESOURCES = (("feedback", "Feedback"), ("user_defined_messages", "UserDefinedMessages"),
                 ("notifications", "Notifications"), ("recordings", "Recordings"), ("streams", "Streams"),
                 ("payments", "Payments"), ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
                 ("siprec", "Siprec"), ("events", "Events"), ("feedback_summaries", "FeedbackSummary"))

Bounds = tuple[float | None, float | None, float | None, float | None]  # StartTime [lo, hi), EndTime [lo, hi)


class Calls:
    kind = "calls"
    name = "Calls"

    def __init__(self, world: World, now: Callable[[], float], rng: np.random.Generator, accounts: Accounts,
                 callbacks: CallbackDispatcher):
        self.world = world
        self.now = now
        self.rng = rng
        self.accounts = accounts
        self.callbacks = callbacks
        self.store = Store("CA", world.salts["CA"], world.calls, _COLUMNS)

    # --- filter
    def ids(self, ai: int, params: dict[str, str]) -> tuple[np.ndarray, list[int]]:
        """History row ids (ascending) and live row ids matching To, From, Status, StartTime, EndTime."""
        slo, shi = time_bounds(params, "StartTime")
        elo, ehi = time_bounds(params, "EndTime")
        bounds: Bounds = (slo, shi, elo, ehi)
        to, frm, status = params.get("To"), params.get("From"), params.get("Status")
        if status is not None and status not in _STATUSES:
            raise ApiError(400, 20001, f"Invalid Status '{status}'")
        if "ParentCallSid" in params:  # outbound API calls have no parent
            return np.array([], dtype=np.int64), []
        now = self.now()
        hist = self.store.cached(("c", ai, to, frm, *bounds), lambda: self._history_ids(ai, to, frm, bounds))
        hist = self._reached(hist, bounds, now)
        if status is not None:
            hist = hist[self._status_now(hist, now) == status]
        return hist, self._live_ids(ai, to, frm, status, bounds, now)

    def _history_ids(self, ai: int, to: str | None, frm: str | None, bounds: Bounds) -> np.ndarray:
        r = self.store
        slo, shi, elo, ehi = bounds
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

    def _reached(self, hist: np.ndarray, bounds: Bounds, now: float) -> np.ndarray:
        """Times not reached yet are not shown (start/end are null until then), so no filter matches them."""
        slo, shi, elo, ehi = bounds
        c = self.store.cols
        if slo is not None or shi is not None:
            hist = hist[c["start_time"][hist] <= now]
        if elo is not None or ehi is not None:
            hist = hist[c["end_time"][hist] <= now]
        return hist

    def _live_ids(self, ai: int, to: str | None, frm: str | None, status: str | None, bounds: Bounds,
                  now: float) -> list[int]:
        r = self.store
        slo, shi, elo, ehi = bounds
        live = []
        with r.lock:
            for k, rec in enumerate(r.live):
                if rec["account_idx"] != ai or (to and rec["to"] != to) or (frm and rec["from"] != frm):
                    continue
                st = call_state(rec["start_time"], rec["answered_at"], rec["end_time"], rec["status"], now)
                if status is not None and st != status:
                    continue
                if not _in_window(rec["start_time"], slo, shi, now) or not _in_window(rec["end_time"], elo, ehi, now):
                    continue
                live.append(r.n + k)
        return live

    def _status_now(self, ids: np.ndarray, now: float) -> np.ndarray:
        c = self.store.cols
        final = np.array(self.store.cats["status"], dtype=object)[c["status"][ids]]
        st = final.copy()
        completed = final == "completed"
        end = c["end_time"][ids]
        st[now < end] = np.where(completed[now < end], "in-progress", "ringing")
        st[completed & (now < c["answered_at"][ids])] = "ringing"
        st[now < c["start_time"][ids]] = "queued"
        return st

    # --- render
    def render(self, ids: list[int], at: float | None = None) -> list[dict[str, Any]]:
        """The records ``ids`` as the API shows them now (or ``at``)."""
        r = self.store
        now = self.now() if at is None else at
        out: dict[int, dict[str, Any]] = {}
        hist = np.array([i for i in ids if i < r.n], dtype=np.int64)
        if hist.size:
            out.update(zip(hist.tolist(), self._render_history(hist, now)))
        for rid in ids:
            if rid >= r.n:
                rec = r.live[rid - r.n]
                out[rid] = call_json(
                    sid=rec["sid"], account_sid=self.world.account_sids[rec["account_idx"]],
                    created=rec["date_created"], start=rec["start_time"], answered=rec["answered_at"],
                    end=rec["end_time"], final_status=rec["status"], duration=rec["duration"],
                    answered_by=rec["answered_by"], price=rec["price"], to=rec["to"], frm=rec["from"], now=now,
                )
        return [out[i] for i in ids]

    def _render_history(self, hist: np.ndarray, now: float) -> list[dict[str, Any]]:
        r = self.store
        cols = {k: r.cols[k][hist].tolist() for k in _COLUMNS}
        cats = r.cats
        sids = sid_list(r.prefix, hist, r.salt)
        return [
            call_json(
                sid=sids[k], account_sid=self.world.account_sids[cols["account_idx"][k]],
                created=cols["date_created"][k], start=cols["start_time"][k], answered=cols["answered_at"][k],
                end=cols["end_time"][k], final_status=cats["status"][cols["status"][k]],
                duration=cols["duration"][k], answered_by=cats["answered_by"][cols["answered_by"][k]],
                price=cols["price"][k], to=cats["to"][cols["to"][k]], frm=cats["from"][cols["from"][k]], now=now,
            )
            for k in range(hist.size)
        ]

    def render_raw(self, ids: list[int]) -> None:
        """Calls have no pre-serialised path: list pages go through ``render``."""
        return

    # --- create
    def create(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        """POST Calls.json: validate as Twilio does, draw the outcome, schedule the callbacks."""
        to, frm, country = self._validate(ai, form)
        prof = COUNTRY_BY_ISO.get(country)
        now = int(self.now())
        r = self.store
        with r.lock:
            rid = r.n + len(r.live)
            rec = {"sid": sid_for("CA", rid, r.salt), "account_idx": ai, "date_created": now,
                   **self._draw_outcome(prof, now), "to": to, "from": frm}
            r.live.append(rec)
        if form.get("StatusCallback"):
            events = form.get("StatusCallbackEvent", "completed").split() or ["completed"]
            acct = self.world.account_sids[ai]
            for when, params in call_callbacks(rec, acct, events):
                self.callbacks.add(when, form["StatusCallback"], params)
        # Rendered at the creation instant: a second boundary crossed in between must not
        # turn the answer to a create into 'sent' or 'ringing'.
        return self.render([rid], at=now)[0]

    def _validate(self, ai: int, form: dict[str, str]) -> tuple[str, str, str]:
        """(To, From, country of To), or ApiError 400 as Twilio answers."""
        to, frm = form.get("To"), form.get("From")
        if not to:
            raise ApiError(400, 21201, "No 'To' number is specified")
        if not frm:
            raise ApiError(400, 21213, "No 'From' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            raise ApiError(400, 21205, "Url parameter is required.")
        if frm in MAGIC_FROM_CALL:
            raise ApiError(400, *MAGIC_FROM_CALL[frm])
        allowed = self.accounts.senders(self.world.accounts[ai]["sid"])["from"]
        if frm not in allowed or not frm.startswith("+"):
            raise ApiError(400, 21210, f"The source phone number provided, {frm}, is not yet verified for your "
                                       "account.")
        if to in MAGIC_TO_CALL:
            raise ApiError(400, *MAGIC_TO_CALL[to])
        country = country_of(to)
        if country is None:
            raise ApiError(400, 21217, "Phone number does not appear to be valid")
        return to, frm, country

    def _draw_outcome(self, prof, now: int) -> dict[str, Any]:
        """Status, times, duration, answered_by and price of a created call. The draws are seeded
        and their order is part of the sequence."""
        rng = self.rng
        u = rng.random()
        answer = prof.call_answer_rate if prof else 0.8
        status = "completed" if u < answer else ("busy" if u < answer + (1 - answer) * 0.3 else "no-answer")
        start = now + 1
        ring = int(rng.integers(4, 20)) if status != "no-answer" else 60
        answered = start + ring
        duration = int(np.clip(rng.lognormal(np.log(38), 0.5), 8, 900)) if status == "completed" else 0
        end = answered + duration if status == "completed" else start + ring
        price = round((prof.voice_price if prof else 0.02) * np.ceil(duration / 60), 5) if duration else float("nan")
        answered_by = ("human" if rng.random() < 0.85 else "machine_end_beep") if status == "completed" else None
        return {"start_time": start, "answered_at": answered, "end_time": end, "status": status,
                "duration": duration, "answered_by": answered_by, "price": price}


def _in_window(t: float, lo: float | None, hi: float | None, now: float) -> bool:
    """A live call's time matches [lo, hi) only once reached."""
    if lo is not None and (now < t or t < lo):
        return False
    return not (hi is not None and (now < t or t >= hi))


def call_state(start, answered, end, final_status, now) -> str:
    """The status a call shows at ``now``."""
    if now < start:
        return "queued"
    if now < end:
        if final_status == "completed" and now >= answered:
            return "in-progress"
        return "ringing"
    return final_status


def formatted(number: str | None) -> str | None:
    """'(415) 555-0100' for a NANP number, the number itself otherwise."""
    if not number:
        return number
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def call_json(*, sid, account_sid, created, start, answered, end, final_status, duration, answered_by, price,
              to, frm, now) -> dict[str, Any]:
    """One call as the API shows it at ``now``."""
    status = call_state(start, answered, end, final_status, now)
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
        "to_formatted": formatted(to),
        "from": frm,
        "from_formatted": formatted(frm),
        "phone_number_sid": None,
        "status": status,
        "start_time": rfc2822(start) if status != "queued" else None,
        "end_time": rfc2822(end) if final else None,
        "duration": str(int(duration)) if final else None,
        "price": money(price) if final and final_status == "completed" and not math.isnan(price) else None,
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
        "subresource_uris": {name: f"{uri}/{path}.json" for name, path in _SUBRESOURCES},
    }
