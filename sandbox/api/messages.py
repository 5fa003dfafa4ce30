"""The Messages resource: filter, render (as dicts, or straight to JSON for list pages) and create."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from switchboard.sandbox.api.accounts import MAGIC_VALID_FROM, Accounts
from switchboard.sandbox.api.callbacks import CallbackDispatcher, message_callbacks
from switchboard.sandbox.api.errors import ApiError
from switchboard.sandbox.api.magic import MAGIC_FROM_SMS, MAGIC_TO_SMS, country_of
from switchboard.sandbox.api.paging import API, time_bounds
from switchboard.sandbox.api.store import Store
from switchboard.sandbox.catalog import COUNTRY_BY_ISO, ERRORS
from switchboard.sandbox.render import rfc2822
from switchboard.sandbox.sids import sid_for, sid_list
from switchboard.sandbox.world import World, segment_info

_COLUMNS = {
    "account_idx": "num", "date_created": "num", "date_sent": "num", "final_at": "num", "status": "cat",
    "error_code": "num", "to": "cat", "from": "cat", "messaging_service_sid": "cat", "body_key": "num",
    "code": "num", "num_segments": "num", "price": "num",
}
_ERROR_JSON = {code: json.dumps(message) for code, (_status, message) in ERRORS.items()}
_NULL = "null"
# A message serialised by string formatting: list pages render about three times faster
# this way than through dicts and json.dumps. Same keys and order as ``message_json``.
_MSG_TEMPLATE = (
    '{"body": "%s", "num_segments": "%d", "direction": "%s", "from": "%s", "to": "%s", '
    '"date_updated": "%s", "price": %s, "error_message": %s, "uri": "%s.json", "account_sid": "%s", '
    '"num_media": "0", "status": "%s", "messaging_service_sid": %s, "sid": "%s", "date_sent": %s, '
    '"date_created": "%s", "error_code": %s, "price_unit": "USD", "api_version": "2010-04-01", '
    '"subresource_uris": {"media": "%s/Media.json", "feedback": "%s/Feedback.json"}}'
)
_TEMPLATE_COLUMNS = ("account_idx", "date_created", "status", "error_code", "to", "from", "messaging_service_sid",
                     "body_key", "code", "num_segments", "price", "direction")
OUTBOUND = "outbound-api"


def money(v: float) -> str:
    """A price as Twilio shows it: negative, five decimals."""
    return f"{-abs(v):.5f}"


class Messages:
    kind = "messages"
    name = "Messages"

    def __init__(self, world: World, now: Callable[[], float], rng: np.random.Generator, accounts: Accounts,
                 callbacks: CallbackDispatcher):
        self.world = world
        self.now = now
        self.rng = rng
        self.accounts = accounts
        self.callbacks = callbacks
        frame = world.messages
        if "direction" not in frame.columns:  # a world without replies: every message is outbound
            frame = frame.assign(direction=pd.Categorical([OUTBOUND] * len(frame)))
        self.store = Store("SM", world.salts["SM"], frame, {**_COLUMNS, "direction": "cat"})
        # (member number, our number) pairs opted out: a send from that number to that member is refused
        # with 21610, as Twilio refuses it, until the member opts back in (issue 18).
        numbers = world.users["number"].to_numpy()
        self.opted_out: set[tuple[str, str]] = {(str(numbers[u]), frm) for u, frm in world.opted_out}
        # members who opted out before the history (every SMS to them failed with 21610): from any number
        self.opted_out_everywhere: set[str] = set(numbers[world.users["opted_out"].to_numpy()].tolist())
        self.bodies: list[str] = world.messages.attrs.get("bodies", [])
        self._bodies_json: list[tuple[str, str, bool]] | None = None

    # --- filter
    def ids(self, ai: int, params: dict[str, str]) -> tuple[np.ndarray, list[int]]:
        """History row ids (ascending) and live row ids matching To, From and DateSent."""
        r = self.store
        lo, hi = time_bounds(params, "DateSent")
        to, frm = params.get("To"), params.get("From")

        def build() -> np.ndarray:
            ids = r.account_ids(ai)
            if lo is not None or hi is not None:
                # Integer bounds: a float key would make numpy convert the whole column.
                sent_ids = r.cols["date_sent"][ids]
                a = 0 if lo is None else np.searchsorted(sent_ids, math.ceil(lo), "left")
                b = len(ids) if hi is None else np.searchsorted(sent_ids, math.ceil(hi), "left")
                ids = ids[a:b]
            for col, val in (("to", to), ("from", frm)):
                if val is not None:
                    code = r.code_of(col, val)
                    ids = ids[r.cols[col][ids] == code] if code is not None else ids[:0]
            return ids

        hist = r.cached(("m", ai, to, frm, lo, hi), build)
        return hist, self._live_ids(ai, to, frm, lo, hi)

    def _live_ids(self, ai: int, to: str | None, frm: str | None, lo: float | None, hi: float | None) -> list[int]:
        r = self.store
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
        return live

    # --- render
    def render(self, ids: list[int], at: float | None = None) -> list[dict[str, Any]]:
        """The records ``ids`` as the API shows them now (or ``at``)."""
        r = self.store
        now = self.now() if at is None else at
        hist = np.array([i for i in ids if i < r.n], dtype=np.int64)
        out: dict[int, dict[str, Any]] = {}
        if hist.size:
            out.update(zip(hist.tolist(), self._render_history(hist, now)))
        acct_sids = self.world.account_sids
        for rid in ids:
            if rid >= r.n:
                rec = r.live[rid - r.n]
                out[rid] = message_json(
                    sid=rec["sid"], account_sid=acct_sids[rec["account_idx"]],
                    created=rec["date_created"], sent=rec["date_sent"], final=rec["final_at"],
                    final_status=rec["status"], error=rec["error_code"], to=rec["to"], frm=rec["from"],
                    mg=rec["messaging_service_sid"], body=rec["body"], segments=rec["num_segments"],
                    price=rec["price"], now=now, direction=rec.get("direction", OUTBOUND),
                )
        return [out[i] for i in ids]

    def _render_history(self, hist: np.ndarray, now: float) -> list[dict[str, Any]]:
        r = self.store
        cols = {k: r.cols[k][hist].tolist() for k in (*_COLUMNS, "direction")}
        cats, acct_sids, bodies = r.cats, self.world.account_sids, self.bodies
        sids = sid_list(r.prefix, hist, r.salt)
        return [
            message_json(
                sid=sids[k], account_sid=acct_sids[cols["account_idx"][k]],
                created=cols["date_created"][k], sent=cols["date_sent"][k], final=cols["final_at"][k],
                final_status=cats["status"][cols["status"][k]], error=cols["error_code"][k],
                to=cats["to"][cols["to"][k]], frm=cats["from"][cols["from"][k]],
                mg=cats["messaging_service_sid"][cols["messaging_service_sid"][k]],
                body=bodies[cols["body_key"][k]].replace("{code}", str(cols["code"][k])),
                segments=cols["num_segments"][k], price=cols["price"][k], now=now,
                direction=cats["direction"][cols["direction"][k]],
            )
            for k in range(hist.size)
        ]

    def render_raw(self, ids: list[int]) -> list[str]:
        """The same records as ``render``, already serialised (history through ``_MSG_TEMPLATE``)."""
        n = self.store.n
        hist_pos = [k for k, i in enumerate(ids) if i < n]
        out: list[str | None] = [None] * len(ids)
        if hist_pos:
            hist = np.array([ids[k] for k in hist_pos], dtype=np.int64)
            for k, text in zip(hist_pos, self._history_raw(hist)):
                out[k] = text
        live = [i for i in ids if i >= n]
        if live:
            rendered = iter(self.render(live))
            for k, i in enumerate(ids):
                if i >= n:
                    out[k] = json.dumps(next(rendered))
        return out  # type: ignore[return-value]

    def _history_raw(self, hist: np.ndarray) -> list[str]:
        # One hot loop over a page (up to 1,000 rows); per-row helpers would cost a call each.
        r = self.store
        c = r.cols
        now = self.now()
        sent, final = c["date_sent"][hist], c["final_at"][hist]
        stage = np.where(now < sent, 0, np.where(now < final, 1, 2)).tolist()  # queued, sent, final
        cols = {k: c[k][hist].tolist() for k in _TEMPLATE_COLUMNS}
        sent, final = sent.tolist(), final.tolist()
        status_names, to_names, from_names = r.cats["status"], r.cats["to"], r.cats["from"]
        directions = r.cats["direction"]
        mg_json, bodies, acct_sids = r.json_cats("messaging_service_sid"), self._json_bodies(), self.world.account_sids
        sids = sid_list(r.prefix, hist, r.salt)
        out = []
        for j in range(hist.size):
            acct, sid = acct_sids[cols["account_idx"][j]], sids[j]
            uri = f"{API}/Accounts/{acct}/Messages/{sid}"
            pre, post, has_code = bodies[cols["body_key"][j]]
            body = pre + str(cols["code"][j]) + post if has_code else pre
            st, created = stage[j], cols["date_created"][j]
            if st == 2:
                status, err = status_names[cols["status"][j]], cols["error_code"][j]
                updated, date_sent = final[j], '"' + rfc2822(sent[j]) + '"'
                price = '"' + money(cols["price"][j]) + '"'
                err_msg, err_code = (_ERROR_JSON[err], str(err)) if err else (_NULL, _NULL)
            else:
                status = "sent" if st == 1 else "queued"
                updated = sent[j] if st == 1 else created
                date_sent = '"' + rfc2822(sent[j]) + '"' if st == 1 else _NULL
                price, err_msg, err_code = _NULL, _NULL, _NULL
            out.append(_MSG_TEMPLATE % (
                body, cols["num_segments"][j], directions[cols["direction"][j]], from_names[cols["from"][j]], to_names[cols["to"][j]],
                rfc2822(updated), price, err_msg, uri, acct, status, mg_json[cols["messaging_service_sid"][j]],
                sid, date_sent, rfc2822(created), err_code, uri, uri,
            ))
        return out

    def _json_bodies(self) -> list[tuple[str, str, bool]]:
        """Each body JSON-escaped and split around its ``{code}`` placeholder."""
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

    # --- create
    def create(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        """POST Messages.json: validate as Twilio does, draw the outcome, schedule the callbacks."""
        to, frm, mg, body, country = self._validate(ai, form)
        enc, segments = segment_info(body)
        now = self.now()
        prof = COUNTRY_BY_ISO.get(country)
        r = self.store
        with r.lock:
            status, error, ttd = self._draw_outcome(to, prof)
            price = round((prof.sms_price if prof else 0.05) * segments, 5)
            rid = r.n + len(r.live)
            rec = {
                "sid": sid_for("SM", rid, r.salt), "account_idx": ai, "date_created": int(now),
                "date_sent": int(now) + 1, "final_at": int(now) + 1 + max(1, int(np.ceil(ttd))),
                "status": status, "error_code": error, "to": to, "from": frm, "messaging_service_sid": mg,
                "body": body, "num_segments": segments, "encoding": enc, "price": price, "country": country,
            }
            r.live.append(rec)
        if form.get("StatusCallback"):
            acct = self.world.account_sids[ai]
            for when, params in message_callbacks(rec, acct):
                self.callbacks.add(when, form["StatusCallback"], params)
        # Rendered at the creation instant: a second boundary crossed in between must not
        # turn the answer to a create into 'sent' or 'ringing'.
        return self.render([rid], at=now)[0]

    def _validate(self, ai: int, form: dict[str, str]) -> tuple[str, str, str | None, str, str]:
        """(To, From, MessagingServiceSid, Body, country of To), or ApiError 400 as Twilio answers."""
        to, frm, mg, body = form.get("To"), form.get("From"), form.get("MessagingServiceSid"), form.get("Body")
        if not to:
            raise ApiError(400, 21604, "A 'To' phone number is required.")
        if not frm and not mg:
            raise ApiError(400, 21603, "A 'From' phone number is required.")
        if body is None and not form.get("MediaUrl") and not form.get("ContentSid"):
            raise ApiError(400, 21602, "Message body is required.")
        body = body or ""
        if len(body) > 1600:
            raise ApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        allowed = self.accounts.senders(self.world.accounts[ai]["sid"])
        if frm in MAGIC_FROM_SMS:
            raise ApiError(400, *MAGIC_FROM_SMS[frm])
        if frm and frm not in allowed["from"]:
            raise ApiError(400, 21606, f"The From phone number {frm} is not a valid, SMS-capable inbound phone "
                                       "number or short code for your account.")
        if mg and mg not in allowed["messaging_service_sids"]:
            raise ApiError(400, 21701, f"The Messaging Service Sid {mg} is invalid.")
        if to in MAGIC_TO_SMS:
            raise ApiError(400, *MAGIC_TO_SMS[to])
        country = country_of(to)
        if country is None:
            raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        frm = frm or allowed["from"][1]
        if (to, frm) in self.opted_out or to in self.opted_out_everywhere:
            raise ApiError(400, 21610, "Attempt to send to unsubscribed recipient")
        return to, frm, mg, body, country

    def _draw_outcome(self, to: str, prof) -> tuple[str, int, float]:
        """(final status, error code, seconds to the delivery receipt) of a created message.
        The draws are seeded and their order is part of the sequence."""
        rng = self.rng
        deliver = prof.delivery_rate if prof else 0.95
        if to == MAGIC_VALID_FROM or rng.random() < deliver:
            status, error = "delivered", 0
        else:
            error = int(rng.choice([30003, 30005, 30008]))
            status = "undelivered"
        ttd = (prof.ttd_median_s if prof else 5) * float(rng.lognormal(0, 0.5))
        return status, error, ttd


def message_json(*, sid, account_sid, created, sent, final, final_status, error, to, frm, mg, body, segments,
                 price, now, direction: str = OUTBOUND) -> dict[str, Any]:
    """One message as the API shows it at ``now``: queued before ``sent``, sent before ``final``."""
    if now < sent:
        status, date_sent, updated, price_s, err = "queued", None, created, None, 0
    elif now < final:
        status, date_sent, updated, price_s, err = "sent", rfc2822(sent), sent, None, 0
    else:
        status, date_sent, updated, err = final_status, rfc2822(sent), final, error
        price_s = money(price)
    uri = f"{API}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "body": body,
        "num_segments": str(segments),
        "direction": direction,
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
