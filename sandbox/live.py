"""Live traffic: after the history, new messages and calls keep arriving in the same world, in real
time by the server clock (``switchboard sandbox --live-rate N``).

Block ``k`` (10 s) after the live start draws its messages (Poisson, ``rate`` a second) with its own
generator, seeded by (world seed, k): what a block holds does not depend on when the clock is read.
Each message goes through the world's own steps (purposes, experiments and their variants, senders,
bodies, errors, the world's incidents, lifecycle), then the runtime incidents (``--incident``). Failed
OTP messages fall back to voice calls as the world's do, direct voice calls come in the world's
proportion, conversions follow outcomes. Records enter the API's live store when the clock reaches
their creation time (in time order, so sids are deterministic), statuses then move on the clock,
status callbacks and Event Streams events are scheduled, and send-log and conversion rows are written
to the send-log folder as new files every ``log_interval`` server-clock seconds.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from switchboard.sandbox import pumping, replies
from switchboard.sandbox.api.pacer import Pacer
from switchboard.sandbox.catalog import COUNTRY_BY_ISO, ERRORS, PURPOSE_TEMPLATE, PURPOSES, TEMPLATES
from switchboard.sandbox.files import CONVERSION_COLUMNS, SEND_COLUMNS, write_frame
from switchboard.sandbox.scenario import World
from switchboard.sandbox.sids import sid_for
from switchboard.sandbox.world import (
    _apply_incidents,
    _Context,
    _draw_call_outcomes,
    _draw_errors,
    _draw_lifecycle,
    _draw_purposes,
    _draw_senders,
    _message_bodies,
    iso_ms,
    segment_info,
)


def _country(part: str, text: str) -> str:
    """The ISO-3166 alpha-2 code of a live flag's COUNTRY part; ValueError with a one-line reason otherwise."""
    country = part.strip().upper()
    if country not in COUNTRY_BY_ISO:
        raise ValueError(f"unknown country {part!r} in {text!r}: use an ISO-3166 alpha-2 code of the "
                         f"sandbox's countries ({', '.join(sorted(COUNTRY_BY_ISO)[:8])}, ...)")
    return country


@dataclass(frozen=True)
class LiveIncident:
    """From ``after_seconds`` after the live start, ``share`` of the SMS to ``country`` fail with ``error_code``."""

    country: str
    error_code: int
    share: float
    after_seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> LiveIncident:
        """``COUNTRY:ERROR_CODE:SHARE[:AFTER_SECONDS]``; ValueError with a one-line reason otherwise."""
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"expected COUNTRY:ERROR_CODE:SHARE[:AFTER_SECONDS] (e.g. ID:30007:0.4:60), got {text!r}")
        country = _country(parts[0], text)
        try:
            code, share = int(parts[1]), float(parts[2])
            after = float(parts[3]) if len(parts) == 4 else 0.0
        except ValueError:
            raise ValueError(f"ERROR_CODE must be an integer, SHARE and AFTER_SECONDS numbers, in {text!r}") from None
        if code not in ERRORS:
            raise ValueError(f"error code {code} in {text!r} is not one the sandbox renders: use one of "
                             f"{', '.join(map(str, sorted(ERRORS)))}")
        if not 0 < share <= 1 or not np.isfinite(share):
            raise ValueError(f"SHARE must be in (0, 1], got {parts[2]!r} in {text!r}")
        if after < 0 or not np.isfinite(after):
            raise ValueError(f"AFTER_SECONDS must be >= 0, got {parts[3]!r} in {text!r}")
        return cls(country, code, share, after)


@dataclass(frozen=True)
class LivePumping:
    """From ``after_seconds`` after the live start, ``messages_per_hour`` one-time codes (Poisson) are pumped to
    two number ranges of ``country`` (sandbox/pumping.py), on top of the members' traffic."""

    country: str
    messages_per_hour: float
    after_seconds: float = 0.0
    ranges: int = 2

    @classmethod
    def parse(cls, text: str) -> LivePumping:
        """``COUNTRY:MESSAGES_PER_HOUR[:AFTER_SECONDS]``; ValueError with a one-line reason otherwise."""
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"expected COUNTRY:MESSAGES_PER_HOUR[:AFTER_SECONDS] (e.g. NG:600:60), got {text!r}")
        country = _country(parts[0], text)
        try:
            rate = float(parts[1])
            after = float(parts[2]) if len(parts) == 3 else 0.0
        except ValueError:
            raise ValueError(f"MESSAGES_PER_HOUR and AFTER_SECONDS must be numbers, in {text!r}") from None
        if not 0 < rate <= 1_000_000 or not np.isfinite(rate):
            raise ValueError(f"MESSAGES_PER_HOUR must be in (0, 1000000], got {parts[1]!r} in {text!r}")
        if after < 0 or not np.isfinite(after):
            raise ValueError(f"AFTER_SECONDS must be >= 0, got {parts[2]!r} in {text!r}")
        return cls(country, rate, after)


@dataclass(frozen=True)
class LiveConfig:
    rate: float  # messages per second (Poisson)
    incidents: tuple[LiveIncident, ...] = ()
    pumping: tuple[LivePumping, ...] = ()  # SMS pumping on top of the members' traffic
    status_callback: str | None = None  # live records carry this StatusCallback URL
    event_sink: str | None = None  # Event Streams webhook sink URL
    send_logs_dir: Path | None = None
    send_log_format: str = "jsonl"
    log_interval: float = 10.0  # server-clock seconds between two send-log files


@dataclass
class _Pending:
    """A call or conversion drawn with its second, entering the world when the clock reaches ``when``."""

    when: float
    seq: int
    kind: str  # "call" or "conversion"
    row: dict[str, Any]


class _WorldView:
    """What live generation reads from the world, computed once."""

    def __init__(self, world: World):
        sc, users = world.scenario, world.users
        self.world, self.users = world, users
        # Without the frame's attrs (its services list): pandas deep-copies attrs on every column access.
        self.senders = world.senders.copy()
        self.senders.attrs = {}
        self.sender_names = world.senders["sender"].to_numpy()
        self.t0, self.t1 = int(world.start.timestamp()), int(world.end.timestamp())
        self.iso = list(users["country"].cat.categories)
        self.ctx = _Context(sc, np.random.default_rng(0), self.t0, self.t1, self.iso,
                            [COUNTRY_BY_ISO[c] for c in self.iso], world.accounts)
        self.user_ids = users["user_id"].to_numpy()
        self.numbers = users["number"].to_numpy()
        self.locale = users["locale"].astype(object).to_numpy()
        self.opted_out = users["opted_out"].to_numpy()
        # Numbers a member can answer (long codes, toll-free: not the alphanumeric ID), for live replies.
        self.answerable = world.senders["kind"].to_numpy() != "alpha"
        prefers = np.flatnonzero(users["prefers_voice"].to_numpy())
        self.voice_pool = prefers if prefers.size else np.arange(len(users))
        hist_fallbacks = int((world.calls["fallback_of_msg"].to_numpy() >= 0).sum()) if len(world.calls) else 0
        self.direct_call_ratio = max(0, sc.calls - hist_fallbacks) / max(sc.messages, 1)
        s = world.senders
        longs = s.index[(s["account"] == 0) & (s["kind"] == "long_code") & s["registered"]].to_numpy()
        self.call_from = s["sender"].to_numpy()[longs]
        self.services = [x["sid"] for x in s.attrs["services"]]
        self.exp_names = [e.experiment_id for e in sc.experiments]
        self.variant_names = [e.variants for e in sc.experiments]
        self.user_cidx = users["country"].cat.codes.to_numpy()
        self.line_code = users["line_type"].cat.codes.to_numpy()


class _Pump:
    """One ``--pumping`` flag: its number ranges (fixed by the seed), the script walking them, the member ids
    it made up, and what entered so far."""

    def __init__(self, world: World, cfg: LivePumping, i: int):
        self.cfg, self.i, self.seed = cfg, i, world.scenario.seed
        rng = np.random.default_rng([self.seed, 17, 0x11FE, i])
        per_range = int(cfg.messages_per_hour / max(cfg.ranges, 1)) + 1  # an hour's room in each range (then round)
        self.ranges = pumping.number_ranges(cfg.country, cfg.ranges, per_range, rng)
        self.walker = pumping.Walker(cfg.country, self.ranges, rng)
        self.members: dict[str, str] = {}  # number -> the new member id it signed up as
        self.entered = 0
        self.numbers: set[str] = set()  # numbers of the codes entered so far
        prof = COUNTRY_BY_ISO[cfg.country]
        self.locale, self.price, self.ttd = prof.locales[0][0], prof.sms_price, prof.ttd_median_s
        self.alpha = prof.alpha_sender

    def draw(self, b: int, start: int, t_start: int, view: _WorldView, event_id) -> list[tuple[dict, dict]]:
        """Block ``b``'s pumped codes (records and send-log rows), from a generator seeded by (seed, 17, i, b)."""
        if start + BLOCK <= t_start + self.cfg.after_seconds:
            return []
        rng = np.random.default_rng([self.seed, 17, self.i, b])
        n = int(rng.poisson(self.cfg.messages_per_hour / 3600 * BLOCK))
        ts = start + np.sort(rng.integers(0, BLOCK, size=n)).astype(np.int64)
        ts = ts[ts >= t_start + self.cfg.after_seconds]
        if not ts.size:
            return []
        numbers, _ = self.walker.take(ts.size, rng)
        purpose = np.array(pumping.PURPOSES)[rng.choice(len(pumping.PURPOSES), size=ts.size,
                                                        p=np.array(pumping.PURPOSE_SHARES))]
        ttd = np.ceil(self.ttd * rng.lognormal(0, 0.6, size=ts.size)).astype(np.int64)
        codes, log_ms = rng.integers(100_000, 1_000_000, size=ts.size), rng.integers(40, 900, size=ts.size)
        s = view.senders
        kind = "alpha" if self.alpha else "long_code"
        sender = str(s["sender"][(s["account"] == 0) & (s["kind"] == kind) & s["registered"]].iloc[0])
        out = []
        for j in range(ts.size):
            number, p = str(numbers[j]), str(purpose[j])
            user = self.members.setdefault(number, f"usr_p{self.i}{t_start:x}_{len(self.members):06d}")
            template = PURPOSE_TEMPLATE[p]
            body = TEMPLATES[template]["en"].replace("{code}", str(int(codes[j])))
            encoding, segments = segment_info(body)
            rec = {"sid": None, "account_idx": 0, "date_created": int(ts[j]), "date_sent": int(ts[j]) + 1,
                   "final_at": int(ts[j]) + 1 + int(ttd[j]), "status": "delivered", "error_code": 0, "to": number,
                   "from": sender, "messaging_service_sid": view.services[0], "body": body,
                   "num_segments": segments, "encoding": encoding, "price": round(self.price * segments, 5),
                   "country": self.cfg.country, "_pump": self.i}
            row = {"event_id": event_id("evt_l"), "_ms": int(ts[j]) * 1000 - int(log_ms[j]), "channel": "sms",
                   "purpose": p, "template_id": template, "experiment_id": None, "variant": None,
                   "campaign_id": None, "user_id": user, "country": self.cfg.country, "locale": self.locale,
                   "provider_sid": None, "fallback_of": None, "_user": -1}
            out.append((rec, row))
        return out

    def truth(self, t_start: int, iso) -> dict[str, Any]:
        return {**dataclasses.asdict(self.cfg), "kind": "sms_pumping", "start": iso(t_start + self.cfg.after_seconds),
                "prefixes": [prefix for prefix, _ in self.ranges], "observed_messages": self.entered,
                "numbers": len(self.numbers), "new_members": len(self.numbers), "converted": 0}


BLOCK = 10  # seconds of live traffic drawn at once
MAX_CATCH_UP = 120.0  # seconds of missed traffic drawn after a clock jump; beyond that, skipped


class LiveTraffic:
    """Draws and delivers live traffic; ``tick()`` brings it up to the server clock (a background
    thread calls it every 50 ms; tests call it after moving a ``SimClock``)."""

    def __init__(self, world: World, cfg: LiveConfig, now: Callable[[], float], messages, calls, callbacks,
                 sink=None):
        self.world, self.cfg, self.now = world, cfg, now
        self.messages, self.calls, self.callbacks, self.sink = messages, calls, callbacks, sink
        self.view = _WorldView(world)
        self.t_start: int | None = None
        self.counts = {"messages": 0, "calls": 0, "conversions": 0, "send_log_files": 0, "skipped_seconds": 0,
                       "replies": 0}
        self.observed = [{"messages_after_start": 0, "with_error_code": 0} for _ in cfg.incidents]
        self._pumps = [_Pump(world, p, i) for i, p in enumerate(cfg.pumping)]
        self._next_block = 0
        self._heap: list[tuple[float, int, str, dict[str, Any]]] = []
        self._seq = 0
        self._sends: list[dict[str, Any]] = []
        self._conversions: list[dict[str, Any]] = []
        self._last_flush = 0.0
        self._lock = threading.RLock()
        self._pacer = Pacer(self.tick, "sandbox-live")

    # --- lifecycle
    def start(self) -> None:
        with self._lock:
            if self.t_start is None:
                self.t_start = int(np.floor(self.now()))
                self._last_flush = float(self.t_start)
                self._write_truth()
        self._pacer.start()

    def stop(self) -> None:
        self._pacer.stop()
        self.flush()

    def tick(self) -> int:
        """Bring live traffic up to the server clock: draw the seconds reached, let the records and
        conversions whose time came into the world, write the send logs when an interval passed.
        Returns how many records entered."""
        now = self.now()
        entered = 0
        with self._lock:
            if self.t_start is None:
                return 0
            self._skip_gap(now)
            while self.t_start + self._next_block * BLOCK <= now:
                self._draw_block(self._next_block)
                self._next_block += 1
            while self._heap and self._heap[0][0] <= now:
                at, _seq, kind, row = heapq.heappop(self._heap)
                entered += self._enter(kind, row, at)
            if self.cfg.send_logs_dir is not None and now >= self._last_flush + self.cfg.log_interval:
                self._flush_locked(now)
        return entered

    def _skip_gap(self, now: float) -> None:
        """A clock that jumps (a ``SimClock`` set hours ahead, a laptop waking up) does not make the
        sandbox draw the hours it missed at once: traffic resumes ``MAX_CATCH_UP`` seconds before
        ``now``; the skipped seconds are counted."""
        behind = now - (self.t_start + self._next_block * BLOCK)
        if behind > MAX_CATCH_UP:
            skip = int((behind - MAX_CATCH_UP) // BLOCK)
            self._next_block += skip
            self.counts["skipped_seconds"] += skip * BLOCK

    def flush(self) -> list[Path]:
        """Write the send-log and conversion rows not written yet (and the ground truth) now."""
        with self._lock:
            return self._flush_locked(self.now()) if self.cfg.send_logs_dir is not None else []

    # --- drawing
    def _push(self, when: float, kind: str, row: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, row))

    def _event_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self.t_start:x}_{self._seq:09d}"

    def _draw_block(self, b: int) -> None:
        """Everything block ``b`` (``BLOCK`` seconds) of live traffic holds, from its own seeded
        generator. Blocks, not single seconds: the world's steps cost a few ms per call, whatever the
        batch size."""
        rng = np.random.default_rng([self.world.scenario.seed, 0x11FE, b])
        start = self.t_start + b * BLOCK
        n = int(rng.poisson(self.cfg.rate * BLOCK))
        n_direct = int(rng.poisson(self.cfg.rate * BLOCK * self.view.direct_call_ratio))
        ts = start + np.sort(rng.integers(0, BLOCK, size=n)).astype(np.int64)
        direct_ts = start + np.sort(rng.integers(0, BLOCK, size=n_direct)).astype(np.int64)
        if n:
            self._draw_messages(rng, ts)
        if n_direct:
            self._draw_direct_calls(rng, direct_ts)
        for pump in self._pumps:  # own generators: the members' traffic above is the same with or without
            for rec, row in pump.draw(b, start, self.t_start, self.view, self._event_id):
                self._push(float(rec["date_created"]), "message", {"rec": rec, "log": row})

    def _draw_messages(self, rng: np.random.Generator, ts: np.ndarray) -> None:
        """SMS created at ``ts`` (sorted) through the world's own steps, then the runtime incidents."""
        v, n = self.view, ts.size
        ctx = dataclasses.replace(v.ctx, rng=rng)
        user = rng.integers(0, len(v.users), size=n)
        cidx = v.user_cidx[user]
        sends = _draw_purposes(ctx, v.users, ts, (ts - v.t0) // 86400, user, cidx)
        sender, service = _draw_senders(ctx, v.senders, sends)
        bodies = _message_bodies(v.users, sends)
        error = _draw_errors(ctx, v.senders, sends, sender)
        _apply_incidents(ctx, v.users, sends, error)
        self._apply_live_incidents(rng, ts, cidx, error)
        error[v.opted_out[user]] = 21610  # an opted-out member is refused before any carrier sees it
        status_code = np.zeros(n, dtype=np.int8)  # 0 delivered, 1 undelivered, 2 failed
        status_code[error > 0] = 1
        status_code[np.isin(error, [c for c, (st, _) in ERRORS.items() if st == "failed"])] = 2
        date_sent, final_at = _draw_lifecycle(ctx, sends, status_code)
        draws = {"code": rng.integers(100_000, 1_000_000, size=n), "log_ms": rng.integers(40, 900, size=n),
                 "conv_u": rng.random(n), "conv_delay": rng.exponential(240, size=n), "fb_u": rng.random(n),
                 "fb_delay": rng.integers(20, 120, size=n)}
        recs = []
        for j in range(n):
            rec, row = self._message_record(j, ts, user, cidx, sends, sender, service, bodies, error, status_code,
                                            date_sent, final_at, draws)
            recs.append((rec, row))
            self._push(float(ts[j]), "message", {"rec": rec, "log": row})
            self._maybe_convert_sms(j, rec, row, sends, cidx, draws)
        self._draw_fallbacks(rng, recs, sends, draws)
        self._draw_replies(recs, sender, sends)

    def _apply_live_incidents(self, rng: np.random.Generator, ts: np.ndarray, cidx: np.ndarray,
                              error: np.ndarray) -> None:
        """Each runtime incident strikes its share of the country's SMS from its start. The dice are
        rolled for every message, so an incident's start does not shift later draws."""
        for inc in self.cfg.incidents:
            roll = rng.random(cidx.size)
            if inc.country not in self.view.iso:
                continue
            hit = (cidx == self.view.iso.index(inc.country)) & (roll < inc.share)
            error[hit & (ts >= self.t_start + inc.after_seconds)] = inc.error_code

    def _count_incidents(self, rec: dict[str, Any]) -> None:
        """What each started incident did so far, counted as messages enter (for the ground truth)."""
        pump = rec.get("_pump")
        if pump is not None:
            self._pumps[pump].entered += 1
            self._pumps[pump].numbers.add(rec["to"])
            return
        for i, inc in enumerate(self.cfg.incidents):
            if rec["country"] == inc.country and rec["date_created"] >= self.t_start + inc.after_seconds:
                self.observed[i]["messages_after_start"] += 1
                self.observed[i]["with_error_code"] += int(rec["error_code"] == inc.error_code)

    def _message_record(self, j, ts, user, cidx, sends, sender, service, bodies, error, status_code, date_sent,
                        final_at, draws) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the API's live record, the send-log row) of message ``j`` of a second; the sid comes when
        the record enters the world."""
        v = self.view
        country = v.iso[int(cidx[j])]
        prof = COUNTRY_BY_ISO[country]
        segments = int(bodies.num_segments[j])
        status = ("delivered", "undelivered", "failed")[int(status_code[j])]
        rec = {
            "sid": None, "account_idx": int(sends.account[j]), "date_created": int(ts[j]), "date_sent": int(date_sent[j]),
            "final_at": int(final_at[j]), "status": status, "error_code": int(error[j]),
            "to": v.numbers[user[j]], "from": v.sender_names[int(sender[j])],
            "messaging_service_sid": v.services[service[j]] if service[j] >= 0 else None,
            "body": bodies.texts[bodies.body_key[j]].replace("{code}", str(int(draws["code"][j]))),
            "num_segments": segments, "encoding": "GSM-7" if bodies.encoding_code[j] == 0 else "UCS-2",
            "price": 0.001 if status == "failed" else round(prof.sms_price * segments, 5), "country": country,
        }
        purpose = sends.purposes[int(sends.purpose[j])]
        ei, vi = int(sends.exp_idx[j]), int(sends.variant[j])
        row = {
            "event_id": self._event_id("evt_l"), "_ms": int(ts[j]) * 1000 - int(draws["log_ms"][j]), "channel": "sms",
            "purpose": purpose, "template_id": sends.template_ids[int(sends.template[j])],
            "experiment_id": v.exp_names[ei] if ei >= 0 else None,
            "variant": v.variant_names[ei][vi] if ei >= 0 else None,
            "campaign_id": f"cmp_week{(int(ts[j]) - v.t0) // (7 * 86400)}" if purpose == "marketing" else None,
            "user_id": v.user_ids[user[j]], "country": country, "locale": v.locale[user[j]],
            "provider_sid": None, "fallback_of": None, "_user": int(user[j]),
        }
        return rec, row

    def _draw_replies(self, recs: list, sender: np.ndarray, sends) -> None:
        """Members answer live SMS as they answer the history's (sandbox.replies), from a generator of
        their own seeded by the block's first instant: the other live draws are unchanged. A reply enters
        at its time (``_enter``), so its effect does not depend on how the clock is ticked."""
        if not recs:
            return
        v = self.view
        rng = np.random.default_rng([self.world.scenario.seed, 18, int(recs[0][0]["date_created"])])
        u, delay, pick = rng.random(len(recs)), rng.lognormal(np.log(240), 1.3, size=len(recs)), rng.random(len(recs))
        for j, (rec, row) in enumerate(recs):
            kind = replies.live_reply_kind(self.world.scenario.experiments, row["purpose"], int(sends.exp_idx[j]),
                                           int(sends.variant[j]), float(u[j]))
            if kind is None or rec["status"] != "delivered" or not v.answerable[int(sender[j])]:
                continue
            texts = replies.reply_texts(kind, str(v.locale[row["_user"]]).split("-")[0])
            when = max(rec["final_at"], rec["date_sent"]) + float(np.ceil(delay[j]))
            self._push(when, "reply", {"rec": rec, "kind": kind, "text": texts[int(pick[j] * len(texts))]})

    def _enter_reply(self, item: dict[str, Any], when: float) -> int:
        """An inbound message answering a live SMS; an opt-out closes that number to the member (21610 for
        every later SMS from it, live or created through the API), an opt-in opens it again."""
        rec = item["rec"]
        if rec["error_code"] == 21610:
            return 0  # that SMS was refused: nobody answers it
        pair = (rec["to"], rec["from"])
        if item["kind"] == "opt_out":
            self.messages.opted_out.add(pair)
        elif item["kind"] == "opt_in":
            self.messages.opted_out.discard(pair)
        encoding, segments = segment_info(item["text"])
        t = int(when)
        inbound = {
            "sid": None, "account_idx": rec["account_idx"], "date_created": t, "date_sent": t, "final_at": t,
            "status": "received", "error_code": 0, "to": rec["from"], "from": rec["to"],
            "messaging_service_sid": rec["messaging_service_sid"], "body": item["text"], "num_segments": segments,
            "encoding": encoding, "price": round(replies.INBOUND_PRICE * segments, 5), "country": rec["country"],
            "direction": "inbound",
        }
        store = self.messages.store
        with store.lock:
            inbound["sid"] = sid_for(store.prefix, store.n + len(store.live), store.salt)
            store.live.append(inbound)
        self.counts["replies"] += 1
        return 1

    def _refuse_if_opted_out(self, rec: dict[str, Any]) -> None:
        """A live SMS to a member who opted out of its number fails with 21610, as Twilio refuses it."""
        if (rec["to"], rec["from"]) in self.messages.opted_out and rec["error_code"] != 21610:
            rec.update(error_code=21610, status="failed", final_at=rec["date_created"] + 1, price=0.001)

    def _convert(self, when_ms: float, row: dict[str, Any], conversion_type: str) -> None:
        conv = {"event_id": self._event_id("cnv_l"), "user_id": row["user_id"], "conversion_type": conversion_type,
                "_ms": int(when_ms)}
        self._push(when_ms / 1000, "conversion", conv)

    def _maybe_convert_sms(self, j: int, rec: dict[str, Any], row: dict[str, Any], sends, cidx: np.ndarray,
                           draws: dict[str, np.ndarray]) -> None:
        """A conversion minutes after the outcome, at the purpose's rate (with an experiment's lift for
        its treatment inside its region), as in the history."""
        rates = PURPOSES[row["purpose"]]
        delivered = rec["status"] == "delivered"
        p = rates["p_del"] if delivered else rates["p_not"]
        ei, vi = int(sends.exp_idx[j]), int(sends.variant[j])
        if delivered and ei >= 0 and vi == 1:
            exp = self.world.scenario.experiments[ei]
            if not exp.countries or rec["country"] in exp.countries:
                p += exp.conversion_lift
            elif rec["country"] in exp.opposite_countries:  # issue 19: the region where it hurts
                p = max(0.0, p + exp.opposite_conversion_lift)
        if draws["conv_u"][j] < p:
            when = max(rec["final_at"], rec["date_created"]) * 1000 + draws["conv_delay"][j] * 1000
            self._convert(when, row, rates["conversion"])

    def _draw_fallbacks(self, rng: np.random.Generator, recs: list, sends, draws: dict[str, np.ndarray]) -> None:
        """Failed or undelivered OTP SMS fall back to a voice call at the world's fallback rate."""
        take = [j for j, (rec, _row) in enumerate(recs)
                if sends.otp[j] and rec["status"] != "delivered" and rec["error_code"] != 21610
                and draws["fb_u"][j] < self.world.scenario.fallback_rate]
        if not take:
            return
        users = np.array([recs[j][1]["_user"] for j in take], dtype=np.int64)
        ts = np.array([recs[j][0]["final_at"] + int(draws["fb_delay"][j]) for j in take], dtype=np.int64)
        self._draw_calls(rng, users, ts, [recs[j][1] for j in take])

    def _draw_direct_calls(self, rng: np.random.Generator, ts: np.ndarray) -> None:
        """Direct voice verifications by members who prefer voice, in the world's proportion."""
        pool = self.view.voice_pool
        users = pool[rng.integers(0, pool.size, size=ts.size)]
        self._draw_calls(rng, users, ts, [None] * ts.size)

    def _draw_calls(self, rng: np.random.Generator, users: np.ndarray, ts: np.ndarray, fallback_of: list) -> None:
        """Calls through the world's outcome step; each enters at its creation time, with its send-log
        row (naming the SMS attempt it falls back from) and maybe a conversion."""
        v = self.view
        ctx = dataclasses.replace(v.ctx, rng=rng)
        out = _draw_call_outcomes(ctx, v.user_cidx[users], v.line_code[users], ts)
        status = np.asarray(out["status"].astype(object))
        answered_by = np.asarray(out["answered_by"].astype(object))
        frm = v.call_from[rng.integers(0, v.call_from.size, size=ts.size)]
        log_ms, conv_u, conv_delay = rng.integers(40, 900, size=ts.size), rng.random(ts.size), rng.exponential(90, size=ts.size)
        for j in range(ts.size):
            u, sms_row = int(users[j]), fallback_of[j]
            ab = answered_by[j] if isinstance(answered_by[j], str) else None
            rec = {"sid": None, "account_idx": 0, "date_created": int(ts[j]), "start_time": int(out["start_time"][j]),
                   "answered_at": int(out["answered_at"][j]), "end_time": int(out["end_time"][j]),
                   "status": status[j], "duration": int(out["duration"][j]), "answered_by": ab,
                   "price": float(out["price"][j]), "to": v.numbers[u], "from": frm[j]}
            purpose = sms_row["purpose"] if sms_row else "verification"
            row = {"event_id": self._event_id("evt_l"), "_ms": int(ts[j]) * 1000 - int(log_ms[j]), "channel": "voice",
                   "purpose": purpose, "template_id": "voice_otp", "experiment_id": None, "variant": None,
                   "campaign_id": None, "user_id": v.user_ids[u], "country": v.iso[int(v.user_cidx[u])],
                   "locale": v.locale[u], "provider_sid": None,
                   "fallback_of": sms_row["event_id"] if sms_row else None, "_user": u}
            self._push(float(ts[j]), "call", {"rec": rec, "log": row})
            p = 0.72 if status[j] == "completed" and ab == "human" else (0.2 if status[j] == "completed" else 0.02)
            if conv_u[j] < p:
                self._convert(rec["end_time"] * 1000 + conv_delay[j] * 1000, row, PURPOSES[purpose]["conversion"])

    # --- entering the world
    def _enter(self, kind: str, item: dict[str, Any], at: float = 0.0) -> int:
        """A record enters the API's live store (its sid now fixed) with its callbacks and events; a
        conversion enters the conversion log."""
        if kind == "conversion":
            self._conversions.append(item)
            self.counts["conversions"] += 1
            return 0
        if kind == "reply":
            return self._enter_reply(item, at)
        if kind == "message":
            self._refuse_if_opted_out(item["rec"])
        res = self.messages if kind == "message" else self.calls
        rec, row = item["rec"], item["log"]
        store = res.store
        with store.lock:
            rid = store.n + len(store.live)
            rec["sid"] = sid_for(store.prefix, rid, store.salt)
            store.live.append(rec)
        row["provider_sid"] = rec["sid"]
        self._sends.append(row)
        acct = self.world.account_sids[rec["account_idx"]]
        if kind == "message":
            self.counts["messages"] += 1
            self._count_incidents(rec)
            self._schedule_message(rec, acct)
        else:
            self.counts["calls"] += 1
            if self.cfg.status_callback:
                from switchboard.sandbox.api.callbacks import call_callbacks

                events = ["initiated", "ringing", "answered", "completed"]
                for when, params in call_callbacks(rec, acct, events):
                    self.callbacks.add(when, self.cfg.status_callback, params)
        return 1

    def _schedule_message(self, rec: dict[str, Any], acct: str) -> None:
        from switchboard.sandbox.api.callbacks import message_callbacks
        from switchboard.sandbox.api.events import message_events

        if self.cfg.status_callback:
            for when, params in message_callbacks(rec, acct):
                self.callbacks.add(when, self.cfg.status_callback, params)
        if self.sink is not None:
            for when, event in message_events(rec, acct):
                self.sink.add(when, event)

    # --- files
    def _flush_locked(self, now: float) -> list[Path]:
        """New ``sends-live-…`` / ``conversions-live-…`` files with the rows gathered since the last
        flush (written whole, then renamed: an ingest never sees half a file), and ground_truth.json."""
        directory = Path(self.cfg.send_logs_dir)  # type: ignore[arg-type]
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S")
        fmt, written = self.cfg.send_log_format, []
        for name, rows, columns, time_col in (("sends", self._sends, SEND_COLUMNS, "sent_at"),
                                               ("conversions", self._conversions, CONVERSION_COLUMNS, "occurred_at")):
            if not rows:
                continue
            frame = pd.DataFrame(rows).sort_values("_ms", kind="stable")
            frame[time_col] = iso_ms(frame["_ms"].to_numpy()).to_numpy()
            self.counts["send_log_files"] += 1
            path = directory / f"{name}-live-{stamp}-{self.counts['send_log_files']:06d}.{fmt}"
            write_frame(frame[columns].reset_index(drop=True), path, fmt)
            written.append(path)
            rows.clear()
        self._last_flush = now
        written.append(self._write_truth())
        return [p for p in written if p is not None]

    def truth(self) -> dict[str, Any]:
        """The live section of the ground truth: rate, start, counts, and each runtime incident with
        its start and the share it caused so far."""
        iso = (lambda t: datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"))
        incidents = []
        for inc, seen in zip(self.cfg.incidents, self.observed):
            n, hits = seen["messages_after_start"], seen["with_error_code"]
            incidents.append({**dataclasses.asdict(inc), "channel": "sms", "start": iso(self.t_start + inc.after_seconds),
                              "observed_messages_after_start": n, "observed_with_error_code": hits,
                              "observed_share": round(hits / n, 4) if n else None})
        return {"rate": self.cfg.rate, "start": iso(self.t_start), **self.counts, "incidents": incidents,
                "pumping": [p.truth(self.t_start, iso) for p in self._pumps]}

    def _write_truth(self) -> Path | None:
        self.world.ground_truth["live"] = self.truth()
        if self.cfg.send_logs_dir is None:
            return None
        path = Path(self.cfg.send_logs_dir) / "ground_truth.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.world.ground_truth, indent=2, default=str))
        tmp.replace(path)
        return path
