"""A seeded, simulated messaging world: what a Twilio account and the platform's own
send logs would hold after ``days`` of traffic.

This module generates it, one function per step; ``scenario`` holds the knobs and the
``World``, ``truth`` its ground truth, ``files`` writes it out. Import any of those names
from here.

Everything is generated with numpy, column by column, so 10 million messages take
minutes and a 1,000-message fixture takes a fraction of a second. Records are kept
as compact columns (categoricals, integer seconds); the server renders Twilio JSON
a page at a time.

Time columns are integer seconds since the Unix epoch (UTC). A message has a final
status decided at generation, and the moment it becomes final (``final_at``); what
the API shows depends on the server's clock, so a message near the end of the
history is still ``sent`` when ingested early and ``delivered`` later.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from switchboard.core.segments import segment_info as _segment_info
from switchboard.sandbox import catalog, pumping, replies
from switchboard.sandbox.catalog import COUNTRIES, COUNTRY_BY_ISO, ERRORS, PURPOSES, TEMPLATES
from switchboard.sandbox.files import CONVERSION_COLUMNS, SEND_COLUMNS, write_bulk_export, write_send_logs
from switchboard.sandbox.numbers import draw_numbers
from switchboard.sandbox.scenario import (
    DEFAULT_ACCOUNTS,
    DEFAULT_EXPERIMENTS,
    DEFAULT_INCIDENTS,
    LATAM,
    MEMBER_ENGAGEMENT_SPREAD,
    AccountSpec,
    Experiment,
    Incident,
    Scenario,
    World,
    account_credentials,
    seeded_hex,
)
from switchboard.sandbox.sids import sid_series
from switchboard.sandbox.truth import ground_truth

# The world's public names, wherever they live: callers import them all from here.
__all__ = [
    "CALL_STATUSES", "CONVERSION_COLUMNS", "DEFAULT_ACCOUNTS", "DEFAULT_EXPERIMENTS", "DEFAULT_INCIDENTS", "LATAM",
    "SEND_COLUMNS", "AccountSpec", "Experiment", "Incident", "Scenario", "World", "account_credentials", "generate",
    "iso_ms", "iso_ms_arrow", "message_body", "segment_info", "write_bulk_export", "write_send_logs",
]


@functools.lru_cache(maxsize=4096)  # few distinct bodies (template x language); live traffic asks every second
def segment_info(body: str) -> tuple[str, int]:
    """(encoding, segments) of a body: 'GSM-7' or 'UCS-2' and the billed segment count."""
    info = _segment_info(body)
    return info.encoding, info.segments


# ----------------------------------------------------------------------------- helpers


def _codes(n_or_idx, categories) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(n_or_idx), categories=list(categories))


def _take_categorical(values: np.ndarray, index: np.ndarray) -> pd.Categorical:
    """``values[index]`` as a categorical, hashing only the (few) distinct values."""
    cats, inv = np.unique(values.astype(object), return_inverse=True)
    return pd.Categorical.from_codes(inv[index], categories=cats)


def _lang(locale: str) -> str:
    return locale.split("-")[0]


MAX_MEMBERS = 600_000  # every distinct number is validated once: this bounds the cost

DIURNAL = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.2, 5, 4.8, 4.8, 4.9, 5, 5, 5.2, 5.3, 5, 4.4,
                    3.6, 2.6, 1.6], dtype=float)


def iso_ms_arrow(ms: np.ndarray) -> pa.Array:
    """ISO-8601 UTC with milliseconds and Z ('2026-05-24T23:59:59.112Z'), vectorised with Arrow."""
    ms = np.asarray(ms, dtype=np.int64)
    if ms.size == 0:
        return pa.array([], pa.string())
    day, rem = np.divmod(ms, 86_400_000)
    days, inv = np.unique(day, return_inverse=True)
    prefixes = pa.array([(date(1970, 1, 1) + timedelta(days=int(d))).isoformat() + "T" for d in days])
    parts = [prefixes.take(pa.array(inv))]
    for value, width, sep in ((rem // 3_600_000, 2, ":"), (rem // 60_000 % 60, 2, ":"), (rem // 1000 % 60, 2, "."),
                              (rem % 1000, 3, "Z")):
        parts += [pc.utf8_lpad(pa.array(value).cast(pa.string()), width, "0"), sep]
    return pc.binary_join_element_wise(*parts, "")


def iso_ms(ms: np.ndarray) -> pd.Series:
    return iso_ms_arrow(ms).to_pandas()


def _ids_arrow(prefix: str, n: int, width: int = 9) -> pa.Array:
    """'evt_s000000042'-style ids for 0..n-1."""
    digits = pc.utf8_lpad(pa.array(np.arange(n, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


# ----------------------------------------------------------------------------- generation
#
# One function per step. Every step draws from the one seeded generator in ``_Context.rng``,
# in a fixed order: the order of the draws is part of what makes a seed give the same world,
# so a new draw goes after the existing ones of its step, never between them.


@dataclass(frozen=True)
class _Context:
    """What every generation step reads: the scenario, its seeded generator, the history's
    bounds (epoch seconds, [t0, t1)), the countries and the accounts."""

    scenario: Scenario
    rng: np.random.Generator
    t0: int
    t1: int
    iso: list[str]
    profiles: list[catalog.CountryProfile]
    accounts: list[dict[str, Any]]


def generate(
    scenario: Scenario = Scenario(),  # noqa: B008 - a frozen dataclass: immutable, safe to share
    progress: Callable[[str], None] | None = None,
) -> World:
    """Build the world of ``scenario``: deterministic for a given scenario."""
    say = progress or (lambda _msg: None)
    end = scenario.end_datetime()
    start = end - timedelta(days=scenario.days)
    t0, t1 = int(start.timestamp()), int(end.timestamp())
    accounts = account_credentials(scenario.seed, scenario.accounts)
    for i, a in enumerate(accounts):
        a["date_created"] = t0 - 86400 * (400 - 30 * i)
    iso, cweights = _country_mix(scenario)
    ctx = _Context(scenario, np.random.default_rng(scenario.seed), t0, t1, iso, [COUNTRY_BY_ISO[c] for c in iso],
                   accounts)
    n_sms = int(scenario.messages)
    n_users = int(np.clip(n_sms // 3, min(len(iso) * 5, max(n_sms, 1)), MAX_MEMBERS))
    say(f"members: {n_users:,}")
    users = _make_users(ctx, cweights, n_users)
    senders = _senders(scenario.seed, accounts)  # its own generators: ``ctx.rng`` is not drawn from
    say(f"messages: {n_sms:,}")
    msgs = _make_messages(ctx, users, senders)
    # Replies first: an opt-out turns that member's later SMS from that number into 21610 failures,
    # which the calls (fallbacks) and conversions that follow must see. Own generators: see replies.py.
    reply_draw = (replies.draw_replies(scenario.seed, users, msgs, senders, scenario.experiments, t1)
                  if scenario.replies else None)
    say(f"calls: {scenario.calls:,}")
    calls = _make_calls(ctx, users, msgs, senders)
    say("send logs and conversions")
    send_log, conversions, converted = _make_send_log(ctx, users, msgs, calls)
    msgs["converted"] = converted  # ground truth: this SMS attempt led to a conversion
    if reply_draw is not None:
        msgs = _merge_replies(reply_draw, users, msgs, calls, send_log, conversions, _salt(scenario.seed, "SM"))
    # SMS pumping last, from generators of its own: every other draw above is what it was without it.
    msgs, send_log, pumped = _add_pumping(ctx, users, senders, msgs, calls, send_log, conversions)
    world = World(
        scenario=scenario, start=start, end=end, accounts=accounts, senders=senders, users=users,
        messages=msgs, calls=calls, send_log=send_log, conversions=conversions, ground_truth={},
        salts={"SM": _salt(scenario.seed, "SM"), "CA": _salt(scenario.seed, "CA")},
        opted_out=reply_draw.opted_out if reply_draw is not None else set(), pumping=pumped,
    )
    world.ground_truth = ground_truth(world)
    return world


def _merge_replies(reply_draw: replies.Replies, users: pd.DataFrame, msgs: pd.DataFrame, calls: pd.DataFrame,
                   send_log: pd.DataFrame, conversions: pd.DataFrame, salt: int) -> pd.DataFrame:
    """Outbound and inbound messages in one time-ordered frame (a message's sid is its row), with every
    reference to an outbound row or sid (fallback calls, send log, conversions) moved to its new row."""
    inbound = replies.inbound_frame(reply_draw, users, msgs, segment_info)
    merged, new_row = replies.merge(msgs, inbound, salt)
    fb = calls["fallback_of_msg"].to_numpy()
    calls["fallback_of_msg"] = np.where(fb >= 0, new_row[np.maximum(fb, 0)], -1)
    sms = (send_log["channel"] == "sms").to_numpy()
    if sms.any():
        old = send_log.loc[sms, "event_id"].str.slice(5).astype(np.int64).to_numpy()
        sids = merged["sid"].to_numpy()
        send_log.loc[sms, "provider_sid"] = sids[new_row[old]]
    att = conversions["_attempt"].to_numpy()
    is_sms = att < (1 << 40)
    conversions["_attempt"] = np.where(is_sms, new_row[np.where(is_sms, att, 0)] if len(new_row) else att, att)
    return merged


def _add_pumping(ctx: _Context, users: pd.DataFrame, senders: pd.DataFrame, msgs: pd.DataFrame,
                 calls: pd.DataFrame, send_log: pd.DataFrame, conversions: pd.DataFrame
                 ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """The scenario's SMS-pumping episodes (sandbox/pumping.py) merged into the messages in time order, their
    send-log rows into the send log; every reference to a message row or sid moves with it. ``pumping_idx``
    marks the pumped messages (-1 for the rest). Also returns each episode's number ranges and window."""
    sc = ctx.scenario
    msgs["pumping_idx"] = np.full(len(msgs), -1, dtype=np.int8)
    frames, logs, texts, episodes = [], [], [], []
    next_user = len(users)
    for ei, ep in enumerate(sc.pumping):
        n = round(ep.share * sc.messages)
        if ep.country not in ctx.iso or n < pumping.MIN_MESSAGES:
            continue
        pctx = dataclasses.replace(ctx, rng=np.random.default_rng([sc.seed, 17, ei]))
        frame, log, info = _pumped_messages(pctx, senders, ep, ei, n, next_user)
        episodes.append(info)
        next_user = int(frame["user_idx"].max()) + 1
        frame["body_key"] = frame["body_key"].to_numpy() + len(texts)
        texts += frame.attrs["bodies"]
        frames.append(frame)
        logs.append(log)
    if not frames:
        return msgs, send_log, episodes
    extra = pd.concat([f.astype({c: object for c in f.columns if isinstance(f[c].dtype, pd.CategoricalDtype)})
                       for f in frames], ignore_index=True)
    if "direction" in msgs.columns:
        extra["direction"] = "outbound-api"
    old_sids = msgs["sid"].to_numpy()
    merged, new_old, new_extra = pumping.merge(msgs, extra, texts, _salt(sc.seed, "SM"))
    sids = merged["sid"].to_numpy()
    fb = calls["fallback_of_msg"].to_numpy()
    calls["fallback_of_msg"] = np.where(fb >= 0, new_old[np.maximum(fb, 0)], -1)
    att = conversions["_attempt"].to_numpy()
    is_sms = att < (1 << 40)
    conversions["_attempt"] = np.where(is_sms, new_old[np.where(is_sms, att, 0)], att)
    sms = (send_log["channel"] == "sms").to_numpy()
    if sms.any():
        where = pd.Index(old_sids).get_indexer(send_log.loc[sms, "provider_sid"].to_numpy())
        send_log.loc[sms, "provider_sid"] = sids[new_old[where]]
    log = pd.concat(logs, ignore_index=True)
    log["event_id"] = _ids_arrow("evt_p", len(log)).to_pandas()
    log["provider_sid"] = sids[new_extra]
    log["sent_at"] = iso_ms(log["_ms"].to_numpy()).to_numpy()
    out = pd.concat([send_log, log[send_log.columns]], ignore_index=True)
    out = out.iloc[np.argsort(out["_ms"].to_numpy(), kind="stable")].reset_index(drop=True)
    return merged, out, episodes


def _pumped_messages(ctx: _Context, senders: pd.DataFrame, ep: Any, ei: int, n: int,
                     first_user: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """One episode's messages (rows like the world's, all delivered, never converted) and send-log rows:
    sequential numbers in a few ranges, a new member id per number, through the world's own steps."""
    from switchboard.sandbox.numbers import mobile_plan

    rng, iso = ctx.rng, ctx.iso
    ci = iso.index(ep.country)
    ranges = pumping.number_ranges(ep.country, ep.ranges, -(-n // max(ep.ranges, 1)), rng)
    numbers, _which = pumping.sequential_numbers(ep.country, ranges, n, rng)
    uniq, first = np.unique(numbers, return_index=True)
    order = np.argsort(first, kind="stable")  # member ids in the order the numbers sign up
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    user = rank[np.searchsorted(uniq, numbers)]
    plan = mobile_plan(ep.country)
    carrier_of = {p.national: p.carrier for p in plan}
    cc = len(str(phonenumbers.country_code_for_region(ep.country)))
    prof = ctx.profiles[ci]
    locale = prof.locales[0][0]
    nat = [u[1 + cc:] for u in uniq[order]]
    carriers = [next((c for k, c in carrier_of.items() if x.startswith(k)), None) for x in nat]
    members = pd.DataFrame({
        "number": uniq[order], "carrier": pd.Categorical(carriers),
        "line_type": pd.Categorical(["mobile"] * len(order), categories=["mobile", "landline"]),
        "locale": pd.Categorical([locale] * len(order)),
    })
    start, end = pumping.episode_window(ctx.t0, ctx.t1, ep.days_before_end, ep.hours)
    ts = np.sort(rng.integers(start, end, size=n)).astype(np.int64)
    purposes = list(PURPOSES)
    purpose = np.array([purposes.index(p) for p in pumping.PURPOSES])[
        rng.choice(len(pumping.PURPOSES), size=n, p=np.array(pumping.PURPOSE_SHARES))]
    template_ids = sorted(TEMPLATES)
    template = np.array([template_ids.index(catalog.PURPOSE_TEMPLATE[p]) for p in purposes])[purpose]
    sends = _Sends(ts=ts, day=(ts - ctx.t0) // 86400, user=user, cidx=np.full(n, ci), purposes=purposes,
                   purpose=purpose, account=np.zeros(n, dtype=np.int8), otp=np.ones(n, dtype=bool),
                   template_ids=template_ids, template=template, exp_idx=np.full(n, -1, dtype=np.int8),
                   variant=np.full(n, -1, dtype=np.int8))
    sender, service = _draw_senders(ctx, senders, sends)
    bodies = _message_bodies(members, sends)
    status_code = np.zeros(n, dtype=np.int8)  # delivered: the numbers exist, that is how pumping pays
    date_sent, final_at = _draw_lifecycle(ctx, sends, status_code)
    frame = _message_frame(ctx, members, senders, sends, sender, service, bodies, np.zeros(n, dtype=np.int32),
                           status_code, date_sent, final_at)
    frame["user_idx"] = (first_user + user).astype(np.int32)
    frame["converted"] = False
    frame["pumping_idx"] = np.full(n, ei, dtype=np.int8)
    frame = frame.drop(columns=["sid"])
    user_ids = np.array([f"usr_{first_user + u:07d}" for u in range(len(order))], dtype=object)
    log = pd.DataFrame({
        "_ms": ts * 1000 - rng.integers(40, 900, size=n), "channel": "sms",
        "purpose": np.array(purposes, dtype=object)[purpose],
        "template_id": np.array(template_ids, dtype=object)[template], "experiment_id": None, "variant": None,
        "campaign_id": None, "user_id": user_ids[user], "country": ep.country, "locale": locale,
        "fallback_of": None,
    })
    info = {"index": ei, "episode": ep, "ranges": [prefix for prefix, _free in ranges], "start": start, "end": end}
    return frame, log, info


def _country_mix(scenario: Scenario) -> tuple[list[str], np.ndarray]:
    """The countries of the world and their share of members (summing to 1)."""
    mix = scenario.countries or tuple((c.iso2, c.weight) for c in COUNTRIES)
    if isinstance(mix, dict):  # {"BR": 3, "MX": 1} is accepted too
        mix = tuple(mix.items())
    iso = [c for c, _ in mix]
    for c in iso:
        if c not in COUNTRY_BY_ISO:
            raise ValueError(f"country {c!r} has no profile in sandbox.catalog")
    cweights = np.array([w for _, w in mix], dtype=float)
    cweights /= cweights.sum()
    return iso, cweights


def _salt(seed: int, kind: str) -> int:
    return int(seeded_hex(seed, f"salt:{kind}", 16), 16)


# ----------------------------------------------------------------------------- members


def _make_users(ctx: _Context, cweights: np.ndarray, n_users: int) -> pd.DataFrame:
    """The members: a country each (by ``cweights``), a valid number, carrier, line type, locale."""
    rng, iso = ctx.rng, ctx.iso
    country_idx = rng.choice(len(iso), size=n_users, p=cweights)
    country_idx.sort(kind="stable")  # group by country: numbers are drawn per country
    number, carrier, line = _draw_member_numbers(ctx, country_idx)
    locale = np.empty(n_users, dtype=object)
    for ci, prof in enumerate(ctx.profiles):
        idx = np.flatnonzero(country_idx == ci)
        if idx.size:
            names = [loc for loc, _ in prof.locales]
            p = np.array([s for _, s in prof.locales])
            locale[idx] = np.array(names, dtype=object)[rng.choice(len(names), size=idx.size, p=p / p.sum())]
    # Shuffle so user ids are not sorted by country.
    perm = rng.permutation(n_users)
    return pd.DataFrame(
        {
            "user_id": _ids_arrow("usr_", n_users, 7).to_pandas(),
            "country": _codes(country_idx[perm], iso),
            "locale": pd.Categorical(locale[perm]),
            "number": number[perm],
            "carrier": pd.Categorical(carrier[perm]),
            "line_type": pd.Categorical(line[perm], categories=["mobile", "landline"]),
            "opted_out": rng.random(n_users) < ctx.scenario.opt_out_share,
            "bucket": rng.random(n_users),  # A/B assignment unit
            "prefers_voice": rng.random(n_users) < 0.04,
        }
    )


def _draw_member_numbers(ctx: _Context, country_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(number, carrier, line type) per member: mobiles from the country's carriers' prefixes,
    landlines (no carrier) for the share a ``landline_heavy`` incident gives."""
    from switchboard.sandbox.numbers import landline_plan, mobile_plan

    rng, n_users = ctx.rng, country_idx.size
    number = np.empty(n_users, dtype=object)
    carrier = np.empty(n_users, dtype=object)
    line = np.full(n_users, "mobile", dtype=object)
    landline_share = {i.country: i.landline_share for i in ctx.scenario.incidents if i.kind == "landline_heavy"}
    for ci, c in enumerate(ctx.iso):
        idx = np.flatnonzero(country_idx == ci)
        if idx.size == 0:
            continue
        is_land = rng.random(idx.size) < landline_share.get(c, 0.0)
        mob = idx[~is_land]
        if mob.size:
            nums, which = draw_numbers(c, mob.size, rng)
            plan = mobile_plan(c)
            number[mob] = nums
            carrier[mob] = np.array([p.carrier for p in plan], dtype=object)[which]
        land = idx[is_land]
        if land.size:
            nums, _ = draw_numbers(c, land.size, rng, landline=True)
            landline_plan(c)
            number[land] = nums
            carrier[land] = None
            line[land] = "landline"
    return number, carrier, line


def _senders(seed: int, accounts: list[dict[str, Any]]) -> pd.DataFrame:
    """Long codes (one of them unregistered for A2P 10DLC), a toll-free number, an alphanumeric ID
    and two messaging services per account."""
    rows = []
    for ai, _acct in enumerate(accounts):
        longs, _ = draw_numbers("US", 6, np.random.default_rng(seed * 100 + ai))
        for k, num in enumerate(longs):
            rows.append({"account": ai, "kind": "long_code", "sender": num, "registered": k != 5})
        rows.append({"account": ai, "kind": "toll_free", "sender": f"+1833{555 + ai:03d}{1000 + seed % 9000:04d}",
                     "registered": True})
        rows.append({"account": ai, "kind": "alpha", "sender": "ACME", "registered": True})
    frame = pd.DataFrame(rows)
    services = []
    for ai, _acct in enumerate(accounts):
        for name in ("otp", "notifications"):
            services.append({"account": ai, "service": name, "sid": "MG" + seeded_hex(seed, f"mg:{ai}:{name}")})
    frame.attrs["services"] = services
    return frame


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class _Sends:
    """Who is sent what, when and from where: one entry per message, in time order."""

    ts: np.ndarray  # date_created, epoch seconds
    day: np.ndarray  # day of the history
    user: np.ndarray  # member row
    cidx: np.ndarray  # country index into ctx.iso
    purposes: list[str]
    purpose: np.ndarray  # index into purposes
    account: np.ndarray
    otp: np.ndarray  # verification or password reset
    template_ids: list[str]
    template: np.ndarray  # index into template_ids
    exp_idx: np.ndarray  # experiment index, -1 for none
    variant: np.ndarray  # 0 control, 1 treatment, -1 for none


@dataclass(frozen=True)
class _Bodies:
    texts: list[str]  # one per (template, language) in use; ``body_key`` indexes them
    body_key: np.ndarray
    num_segments: np.ndarray
    encoding_code: np.ndarray  # 0 GSM-7, 1 UCS-2
    loc_codes: np.ndarray
    loc_names: list[str]


def _make_messages(ctx: _Context, users: pd.DataFrame, senders: pd.DataFrame) -> pd.DataFrame:
    """Every SMS of the history, one row each, with its final status and the moment it is final."""
    n = int(ctx.scenario.messages)
    ts, user, cidx, day = _draw_send_times(ctx, users, n)
    sends = _draw_purposes(ctx, users, ts, day, user, cidx)
    sender, service = _draw_senders(ctx, senders, sends)
    bodies = _message_bodies(users, sends)
    error = _draw_errors(ctx, senders, sends, sender)
    _apply_incidents(ctx, users, sends, error)
    error[users["opted_out"].to_numpy()[user]] = 21610
    status_code = np.zeros(n, dtype=np.int8)  # 0 delivered, 1 undelivered, 2 failed
    failed_codes = [c for c, (st, _) in ERRORS.items() if st == "failed"]
    status_code[error > 0] = 1
    status_code[np.isin(error, failed_codes)] = 2
    date_sent, final_at = _draw_lifecycle(ctx, sends, status_code)
    return _message_frame(ctx, users, senders, sends, sender, service, bodies, error, status_code, date_sent,
                          final_at)


def _draw_send_times(ctx: _Context, users: pd.DataFrame, n: int) -> tuple[np.ndarray, ...]:
    """(ts, user, country, day) per message, sorted by time: more traffic as the history goes
    on, less at weekends, a diurnal curve in each member's local time."""
    rng, t0, t1, days = ctx.rng, ctx.t0, ctx.t1, ctx.scenario.days
    user = rng.integers(0, len(users), size=n)
    cidx = users["country"].cat.codes.to_numpy()[user]
    offsets = np.array([p.utc_offset for p in ctx.profiles])
    dw = 1 + 0.3 * np.arange(days) / max(days, 1)
    weekday = np.array([(datetime.fromtimestamp(t0 + 86400 * d, UTC).weekday()) for d in range(days)])
    dw = dw * np.where(weekday >= 5, 0.75, 1.0)
    day = rng.choice(days, size=n, p=dw / dw.sum())
    hour = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    ts = t0 + day * 86400 + hour * 3600 + rng.integers(0, 3600, size=n) - offsets[cidx] * 3600
    ts = t0 + (ts - t0) % (t1 - 2 - t0)  # wrap local-time shifts at the edges instead of piling them up
    order = np.argsort(ts, kind="stable")
    ts, user, cidx = ts[order], user[order], cidx[order]
    return ts, user, cidx, (ts - t0) // 86400


def _draw_purposes(ctx: _Context, users: pd.DataFrame, ts: np.ndarray, day: np.ndarray, user: np.ndarray,
                   cidx: np.ndarray) -> _Sends:
    """Purpose, account, template and experiment arm of each message."""
    rng, sc, n = ctx.rng, ctx.scenario, ts.size
    purposes = list(PURPOSES)
    pshare = np.array([PURPOSES[p]["share"] for p in purposes])
    purpose = rng.choice(len(purposes), size=n, p=pshare / pshare.sum())
    ashare = np.array([s.share for s in sc.accounts])
    account = rng.choice(len(ctx.accounts), size=n, p=ashare / ashare.sum()).astype(np.int8)
    # The subaccount sends marketing and alerts; OTP traffic stays on the main account.
    otp = np.isin(purpose, [purposes.index("verification"), purposes.index("password_reset")])
    account[otp] = 0
    template_ids = sorted(TEMPLATES)
    base_template = np.array([template_ids.index(catalog.PURPOSE_TEMPLATE[p]) for p in purposes])
    template = base_template[purpose]
    bucket = users["bucket"].to_numpy()[user]
    exp_idx = np.full(n, -1, dtype=np.int8)
    variant = np.full(n, -1, dtype=np.int8)
    for ei, exp in enumerate(sc.experiments):
        sel = purpose == purposes.index(exp.purpose)
        exp_idx[sel] = ei
        treat = bucket >= 0.5
        variant[sel] = treat[sel].astype(np.int8)
        tmpl = np.array([template_ids.index(t) for t in exp.templates])
        template[sel] = tmpl[variant[sel]]
    return _Sends(ts=ts, day=day, user=user, cidx=cidx, purposes=purposes, purpose=purpose, account=account, otp=otp,
                  template_ids=template_ids, template=template, exp_idx=exp_idx, variant=variant)


def _draw_senders(ctx: _Context, senders: pd.DataFrame, s: _Sends) -> tuple[np.ndarray, np.ndarray]:
    """(sender row, messaging service index or -1) per message: long codes, some toll-free,
    the alphanumeric ID where the country allows it, and each experiment's sender arm."""
    rng, iso, n = ctx.rng, ctx.iso, s.ts.size
    is_alpha_country = np.array([p.alpha_sender for p in ctx.profiles])[s.cidx]
    sender = np.empty(n, dtype=np.int32)
    for ai in range(len(ctx.accounts)):
        rows = senders.index[senders["account"] == ai].to_numpy()
        kinds = senders.loc[rows, "kind"].to_numpy()
        longs = rows[kinds == "long_code"]
        alpha = rows[kinds == "alpha"][0]
        tollfree = rows[kinds == "toll_free"][0]
        sel = s.account == ai
        pick = longs[rng.integers(0, len(longs), size=n)]
        use_tf = rng.random(n) < 0.15
        pick = np.where(use_tf, tollfree, pick)
        pick = np.where(is_alpha_country, alpha, pick)
        sender[sel] = pick[sel]
    for ei, exp in enumerate(ctx.scenario.experiments):
        if exp.treatment_sender == "alpha":
            # In the experiment's region the control sends from a long code, the treatment from "ACME".
            region = np.isin(s.cidx, [iso.index(c) for c in exp.countries if c in iso])
            alpha_rows = senders.index[(senders["kind"] == "alpha")].to_numpy()
            long_rows = senders.index[(senders["kind"] == "long_code") & senders["registered"]
                                      & (senders["account"] == 0)].to_numpy()
            sel = (s.exp_idx == ei) & region
            treat = sel & (s.variant == 1)
            control = sel & (s.variant == 0)
            sender[treat] = alpha_rows[s.account[treat]]
            sender[control] = long_rows[rng.integers(0, long_rows.size, size=int(control.sum()))]
    service = np.where(s.otp, 0, 1) + 2 * s.account  # index into the services list
    no_service = rng.random(n) < 0.08
    return sender, np.where(no_service, -1, service)


def _message_bodies(users: pd.DataFrame, s: _Sends) -> _Bodies:
    """The template text in each member's language (English when the template lacks it), its
    encoding and segment count: computed once per distinct (template, locale)."""
    ulocale = users["locale"]
    loc_codes = ulocale.cat.codes.to_numpy()[s.user]
    loc_names = list(ulocale.cat.categories)
    pair = s.template.astype(np.int64) * 1000 + loc_codes
    uniq, inv = np.unique(pair, return_inverse=True)
    texts, encs, segs = [], [], []
    for key in uniq.tolist():
        tid, li = divmod(key, 1000)
        table = TEMPLATES[s.template_ids[tid]]
        text = table.get(_lang(loc_names[li]), table["en"])
        enc, nseg = segment_info(text.replace("{code}", "000000"))
        texts.append(text)
        encs.append(enc)
        segs.append(nseg)
    body_key = inv.astype(np.int32)
    return _Bodies(
        texts=texts, body_key=body_key, num_segments=np.array(segs, dtype=np.int16)[body_key],
        encoding_code=np.array([0 if e == "GSM-7" else 1 for e in encs], dtype=np.int8)[body_key],
        loc_codes=loc_codes, loc_names=loc_names,
    )


def _draw_errors(ctx: _Context, senders: pd.DataFrame, s: _Sends, sender: np.ndarray) -> np.ndarray:
    """Error code per message (0 = delivered): each country's delivery rate (moved by an
    experiment's delivery lift) and its own seeded mix of error codes; 30034 for US sends
    from the unregistered long code."""
    rng, iso, n = ctx.rng, ctx.iso, s.ts.size
    deliv = np.array([p.delivery_rate for p in ctx.profiles])[s.cidx]
    for ei, exp in enumerate(ctx.scenario.experiments):
        if exp.delivery_lift:
            region = np.isin(s.cidx, [iso.index(c) for c in exp.countries if c in iso]) if exp.countries else True
            sel = (s.exp_idx == ei) & (s.variant == 1) & region
            deliv = np.where(sel, deliv + exp.delivery_lift, deliv)
    error = np.zeros(n, dtype=np.int32)
    u = rng.random(n)
    not_delivered = u >= deliv
    codes = np.array(list(catalog.BASE_ERROR_MIX))
    cshares = np.array(list(catalog.BASE_ERROR_MIX.values()))
    # Each country has its own mix: a seeded perturbation of the base mix.
    cmix = np.random.default_rng(ctx.scenario.seed + 1).dirichlet(cshares * 40, size=len(iso))
    cum = np.cumsum(cmix, axis=1)
    pick = (rng.random(n)[:, None] > cum[s.cidx]).sum(axis=1)
    error[not_delivered] = codes[np.minimum(pick, len(codes) - 1)][not_delivered]
    # US sends from an unregistered long code fail with 30034.
    unregistered = ~senders["registered"].to_numpy()[sender] & (s.cidx == iso.index("US") if "US" in iso else False)
    error[unregistered & (rng.random(n) < 0.85)] = 30034
    return error


def _apply_incidents(ctx: _Context, users: pd.DataFrame, s: _Sends, error: np.ndarray) -> None:
    """Overwrite ``error`` where an incident strikes: a carrier filtering from its start day
    (ramping up), landlines failing in a landline-heavy country."""
    rng, iso, n, days = ctx.rng, ctx.iso, s.ts.size, ctx.scenario.days
    line_code = users["line_type"].cat.codes.to_numpy()[s.user]
    carrier_cats = list(users["carrier"].cat.categories)
    carrier_code = users["carrier"].cat.codes.to_numpy()[s.user]
    for inc in ctx.scenario.incidents:
        if inc.country not in iso:
            continue
        in_country = s.cidx == iso.index(inc.country)
        if inc.kind == "carrier_filtering":
            start_day = max(days - inc.days_before_end, days // 2)
            ramp = np.clip((s.day - start_day + 1) / max(inc.ramp_days, 1), 0, 1)
            target = carrier_cats.index(inc.carrier) if inc.carrier in carrier_cats else -2
            sel = in_country & (carrier_code == target) & (s.day >= start_day)
            hit = sel & (rng.random(n) < inc.extra_rate * ramp)
            error[hit] = inc.error_code
        elif inc.kind == "landline_heavy":
            sel = in_country & (line_code == 1)
            error[sel & (rng.random(n) < 0.96)] = inc.error_code


def _draw_lifecycle(ctx: _Context, s: _Sends, status_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(date_sent, final_at) in seconds: sent a second after creation; the receipt after the
    country's typical delay, minutes to a day for 2 % of them; failed messages are final at once."""
    rng, n = ctx.rng, s.ts.size
    date_sent = s.ts + 1
    ttd = np.array([p.ttd_median_s for p in ctx.profiles])[s.cidx] * rng.lognormal(0, 0.6, size=n)
    slow = rng.random(n) < 0.02  # late delivery receipts: minutes to a day
    ttd = np.where(slow, rng.lognormal(np.log(1800), 1.3, size=n), ttd)
    ttd = np.minimum(ttd, 86400 * 2)
    final_at = date_sent + np.ceil(ttd).astype(np.int64)
    return date_sent, np.where(status_code == 2, s.ts + 1, final_at)


def _message_frame(ctx: _Context, users: pd.DataFrame, senders: pd.DataFrame, s: _Sends, sender: np.ndarray,
                   service: np.ndarray, b: _Bodies, error: np.ndarray, status_code: np.ndarray,
                   date_sent: np.ndarray, final_at: np.ndarray) -> pd.DataFrame:
    """The messages table: one row per SMS, prices in USD (positive here; the API shows them negative)."""
    n, seed = s.ts.size, ctx.scenario.seed
    sms_price = np.array([p.sms_price for p in ctx.profiles])[s.cidx]
    price = np.round(sms_price * b.num_segments, 5)
    price = np.where(status_code == 2, 0.001, price)  # failed-message processing fee
    ids = np.arange(n, dtype=np.int64)
    msgs = pd.DataFrame(
        {
            "sid": sid_series("SM", ids, _salt(seed, "SM")),
            "account_idx": s.account,
            "date_created": s.ts,
            "date_sent": date_sent,
            "final_at": final_at,
            "status": _codes(status_code, ["delivered", "undelivered", "failed"]),
            "error_code": error,
            "to": _take_categorical(users["number"].to_numpy(), s.user),
            "from": _take_categorical(senders["sender"].to_numpy(), sender),
            "messaging_service_sid": pd.Categorical.from_codes(
                service, categories=[x["sid"] for x in senders.attrs["services"]]),
            "body_key": b.body_key,
            "code": (ids * 7919 + seed * 104729) % 900000 + 100000,
            "num_segments": b.num_segments,
            "encoding": pd.Categorical.from_codes(b.encoding_code, categories=["GSM-7", "UCS-2"]),
            "price": price,
            "country": _codes(s.cidx, ctx.iso),
            "carrier": pd.Categorical.from_codes(users["carrier"].cat.codes.to_numpy()[s.user],
                                                 categories=list(users["carrier"].cat.categories)),
            "line_type": pd.Categorical.from_codes(users["line_type"].cat.codes.to_numpy()[s.user],
                                                   categories=["mobile", "landline"]),
            "purpose": _codes(s.purpose, s.purposes),
            "template_id": _codes(s.template, s.template_ids),
            "locale": _codes(b.loc_codes, b.loc_names),
            "user_idx": s.user.astype(np.int32),
            "experiment_idx": s.exp_idx,
            "variant_idx": s.variant,
        }
    )
    msgs.attrs["bodies"] = b.texts
    return msgs


def message_body(world: World, idx: int) -> str:
    m = world.messages
    text = m.attrs["bodies"][int(m["body_key"].iat[idx])]
    return text.replace("{code}", str(int(m["code"].iat[idx])))


# ----------------------------------------------------------------------------- calls


CALL_STATUSES = ["completed", "busy", "no-answer", "failed", "canceled"]


def _make_calls(ctx: _Context, users: pd.DataFrame, msgs: pd.DataFrame, senders: pd.DataFrame) -> pd.DataFrame:
    """Every voice call: fallbacks for failed OTP SMS, then direct voice verifications."""
    user, ts, fallback_of = _draw_call_attempts(ctx, users, msgs)
    n = ts.size
    cidx = users["country"].cat.codes.to_numpy()[user]
    line_code = users["line_type"].cat.codes.to_numpy()[user]
    outcome = _draw_call_outcomes(ctx, cidx, line_code, ts)
    longs = senders.index[(senders["account"] == 0) & (senders["kind"] == "long_code") & senders["registered"]]
    from_ = senders["sender"].to_numpy()[longs.to_numpy()[ctx.rng.integers(0, len(longs), size=n)]]
    ids = np.arange(n, dtype=np.int64)
    return pd.DataFrame(
        {
            "sid": sid_series("CA", ids, _salt(ctx.scenario.seed, "CA")),
            "account_idx": np.zeros(n, dtype=np.int8),
            "date_created": ts,
            **outcome,
            "to": _take_categorical(users["number"].to_numpy(), user),
            "from": pd.Categorical(from_),
            "country": _codes(cidx, ctx.iso),
            "line_type": pd.Categorical.from_codes(line_code, categories=["mobile", "landline"]),
            "user_idx": user.astype(np.int32),
            "fallback_of_msg": fallback_of,
        }
    )


def _draw_call_attempts(ctx: _Context, users: pd.DataFrame, msgs: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(user, ts, message row it falls back from or -1) per call, in time order. OTP SMS that
    failed or were undelivered fall back to a call (``fallback_rate``, up to ``calls``); the
    rest are direct voice verifications by members who prefer voice (anyone, when too few)."""
    rng, n_total = ctx.rng, int(ctx.scenario.calls)
    otp = msgs["purpose"].isin(["verification", "password_reset"]).to_numpy()
    bad = msgs["status"].to_numpy() != "delivered"
    eligible = np.flatnonzero(otp & bad & (msgs["error_code"].to_numpy() != 21610))
    take = eligible[rng.random(eligible.size) < ctx.scenario.fallback_rate]
    if take.size > n_total:
        take = np.sort(rng.choice(take, size=n_total, replace=False))
    n_direct = n_total - take.size
    fb_user = msgs["user_idx"].to_numpy()[take]
    fb_ts = msgs["final_at"].to_numpy()[take] + rng.integers(20, 120, size=take.size)
    prefers = np.flatnonzero(users["prefers_voice"].to_numpy())
    pool = prefers if prefers.size else np.arange(len(users))
    d_user = pool[rng.integers(0, pool.size, size=n_direct)]
    d_ts = rng.integers(ctx.t0, ctx.t1 - 600, size=n_direct)
    user = np.concatenate([fb_user, d_user]).astype(np.int64)
    ts = np.concatenate([fb_ts, d_ts]).astype(np.int64)
    fallback_of = np.concatenate([take, np.full(n_direct, -1)]).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    return user[order], ts[order], fallback_of[order]


def _draw_call_outcomes(ctx: _Context, cidx: np.ndarray, line_code: np.ndarray, ts: np.ndarray) -> dict[str, Any]:
    """The calls' columns from start_time to price: the country's answer rate (higher for
    landlines), busy/no-answer/failed/canceled otherwise, ring and talk times, price per minute."""
    rng, n = ctx.rng, ts.size
    answer = np.array([p.call_answer_rate for p in ctx.profiles])[cidx]
    answer = np.where(line_code == 1, np.minimum(answer + 0.1, 0.97), answer)
    u = rng.random(n)
    status = np.full(n, 0, dtype=np.int8)
    rest = u >= answer
    v = rng.random(n)
    status[rest & (v < 0.3)] = 1  # busy
    status[rest & (v >= 0.3) & (v < 0.85)] = 2  # no-answer
    status[rest & (v >= 0.85) & (v < 0.98)] = 3  # failed
    status[rest & (v >= 0.98)] = 4  # canceled
    start_time = ts + rng.integers(1, 4, size=n)
    ring = rng.integers(4, 25, size=n)
    ring = np.where(status == 2, 60, ring)
    ring = np.where(status == 3, 1, ring)
    answered_at = start_time + ring
    duration = np.where(status == 0, np.clip(rng.lognormal(np.log(38), 0.5, size=n), 8, 900), 0).astype(np.int64)
    end_time = np.where(status == 0, answered_at + duration, start_time + ring)
    answered_by = np.where(status == 0, np.where(rng.random(n) < 0.84, "human", "machine_end_beep"), None)
    voice_price = np.array([p.voice_price for p in ctx.profiles])[cidx]
    price = np.where(status == 0, np.round(voice_price * np.ceil(duration / 60), 5), np.nan)
    return {
        "start_time": start_time,
        "answered_at": answered_at,
        "end_time": end_time,
        "status": _codes(status, CALL_STATUSES),
        "duration": duration,
        "answered_by": pd.Categorical(answered_by, categories=["human", "machine_end_beep"]),
        "price": price,
    }


# ----------------------------------------------------------------------------- send log and conversions
#
# Built with Arrow string kernels: 10 million rows of ids and timestamps in seconds.


@dataclass(frozen=True)
class _Other:
    """Push and email attempts (no provider sid): the send-log columns and what conversions read."""

    columns: dict[str, pa.Array]
    user: np.ndarray
    ms: np.ndarray
    alert: np.ndarray  # purpose is account_alert


def _make_send_log(ctx: _Context, users: pd.DataFrame, msgs: pd.DataFrame,
                   calls: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The platform's send log (every attempt, all channels), the members' conversions, and
    whether each SMS led to a conversion."""
    uid = pa.array(users["user_id"]).cast(pa.string())
    sms = _sms_attempts(ctx, msgs)
    voice = _voice_attempts(ctx, msgs, calls, sms["event_id"])
    other = _other_attempts(ctx, users, int(len(msgs) * ctx.scenario.other_channels_share))
    conversions, converted = _conversions(ctx, msgs, calls, other, uid)
    table = pa.concat_tables([pa.table(sms), pa.table(voice), pa.table(other.columns)])
    table = table.take(pc.sort_indices(table, sort_keys=[("_ms", "ascending")]))
    users_idx = table.column("_user")
    table = table.append_column("user_id", uid.take(users_idx))
    table = table.append_column("country", pa.array(users["country"].astype(str)).take(users_idx))
    table = table.append_column("locale", pa.array(users["locale"].astype(str)).take(users_idx))
    table = table.append_column("sent_at", iso_ms_arrow(table.column("_ms").to_numpy()))
    cols = ["event_id", "sent_at", "channel", "purpose", "template_id", "experiment_id", "variant", "campaign_id",
            "user_id", "country", "locale", "provider_sid", "fallback_of", "_ms"]
    return table.select(cols).to_pandas(), conversions, converted


def _message_purposes(msgs: pd.DataFrame) -> np.ndarray:
    return np.array(list(msgs["purpose"].cat.categories), dtype=object)[msgs["purpose"].cat.codes.to_numpy()]


def _sms_attempts(ctx: _Context, msgs: pd.DataFrame) -> dict[str, pa.Array]:
    """SMS attempts: the platform logs the attempt a few hundred ms before Twilio creates the message."""
    n_sms, exps = len(msgs), ctx.scenario.experiments
    purpose = _message_purposes(msgs)
    e_idx = msgs["experiment_idx"].to_numpy()
    v_idx = msgs["variant_idx"].to_numpy()
    sms_ms = msgs["date_created"].to_numpy() * 1000 - ctx.rng.integers(40, 900, size=n_sms)
    exp_names = pa.array([e.experiment_id for e in exps] + [None], pa.string())
    variant_names = pa.array([v for e in exps for v in e.variants] + [None], pa.string())
    has_exp = e_idx >= 0
    week = (msgs["date_created"].to_numpy() - ctx.t0) // (7 * 86400)
    campaign_names = pa.array([f"cmp_week{w}" for w in range(ctx.scenario.days // 7 + 2)] + [None], pa.string())
    marketing = purpose == "marketing"
    template_ids = list(msgs["template_id"].cat.categories)
    return {
        "event_id": _ids_arrow("evt_s", n_sms),
        "_ms": pa.array(sms_ms),
        "channel": pa.array(np.full(n_sms, "sms", dtype=object), pa.string()),
        "purpose": pa.array(purpose, pa.string()),
        "template_id": pa.array(np.array(template_ids, dtype=object)[msgs["template_id"].cat.codes.to_numpy()],
                                pa.string()),
        "experiment_id": exp_names.take(pa.array(np.where(has_exp, e_idx, len(exps)))),
        "variant": variant_names.take(pa.array(np.where(has_exp, 2 * e_idx + np.maximum(v_idx, 0), 2 * len(exps)))),
        "campaign_id": campaign_names.take(pa.array(np.where(marketing, week, len(campaign_names) - 1))),
        "_user": pa.array(msgs["user_idx"].to_numpy().astype(np.int64)),
        "provider_sid": pa.array(msgs["sid"]).cast(pa.string()),
        "fallback_of": pa.nulls(n_sms, pa.string()),
    }


def _voice_purposes(msgs: pd.DataFrame, calls: pd.DataFrame) -> np.ndarray:
    """A fallback call serves its SMS's purpose; a direct call is a verification."""
    fb = calls["fallback_of_msg"].to_numpy()
    fallback_purpose = _message_purposes(msgs)[np.maximum(fb, 0)] if len(msgs) else "verification"
    return np.where(fb >= 0, fallback_purpose, "verification")


def _voice_attempts(ctx: _Context, msgs: pd.DataFrame, calls: pd.DataFrame,
                    sms_event: pa.Array) -> dict[str, pa.Array]:
    """Voice attempts; a fallback names the SMS attempt it follows."""
    n_calls = len(calls)
    fb = calls["fallback_of_msg"].to_numpy()
    call_ms = calls["date_created"].to_numpy() * 1000 - ctx.rng.integers(40, 900, size=n_calls)
    return {
        "event_id": _ids_arrow("evt_v", n_calls),
        "_ms": pa.array(call_ms),
        "channel": pa.array(np.full(n_calls, "voice", dtype=object), pa.string()),
        "purpose": pa.array(_voice_purposes(msgs, calls).astype(object), pa.string()),
        "template_id": pa.array(np.full(n_calls, "voice_otp", dtype=object), pa.string()),
        "experiment_id": pa.nulls(n_calls, pa.string()),
        "variant": pa.nulls(n_calls, pa.string()),
        "campaign_id": pa.nulls(n_calls, pa.string()),
        "_user": pa.array(calls["user_idx"].to_numpy().astype(np.int64)),
        "provider_sid": pa.array(calls["sid"]).cast(pa.string()),
        "fallback_of": pc.if_else(pa.array(fb >= 0), sms_event.take(pa.array(np.maximum(fb, 0))) if len(msgs)
                                  else pa.nulls(n_calls, pa.string()), pa.scalar(None, pa.string())),
    }


def _other_attempts(ctx: _Context, users: pd.DataFrame, n_other: int) -> _Other:
    """Push and email attempts, spread over the history, with no provider sid."""
    rng = ctx.rng
    ou = rng.integers(0, len(users), size=n_other)
    o_ms = np.sort(rng.integers(ctx.t0 * 1000, ctx.t1 * 1000 - 1000, size=n_other))
    o_channel = np.where(rng.random(n_other) < 0.6, "push", "email").astype(object)
    o_purpose = np.where(rng.random(n_other) < 0.7, "account_alert", "marketing").astype(object)
    columns = {
        "event_id": _ids_arrow("evt_o", n_other),
        "_ms": pa.array(o_ms),
        "channel": pa.array(o_channel, pa.string()),
        "purpose": pa.array(o_purpose, pa.string()),
        "template_id": pa.array((o_channel + "_" + o_purpose).astype(object), pa.string()),
        "experiment_id": pa.nulls(n_other, pa.string()),
        "variant": pa.nulls(n_other, pa.string()),
        "campaign_id": pa.nulls(n_other, pa.string()),
        "_user": pa.array(ou.astype(np.int64)),
        "provider_sid": pa.nulls(n_other, pa.string()),
        "fallback_of": pa.nulls(n_other, pa.string()),
    }
    return _Other(columns=columns, user=ou, ms=o_ms, alert=o_purpose == "account_alert")


def member_engagement(seed: int, n_users: int) -> np.ndarray:
    """Each member's engagement in [-MEMBER_ENGAGEMENT_SPREAD, +MEMBER_ENGAGEMENT_SPREAD] (scenario.py says
    how it moves conversions). Its own seeded stream, so the rest of the world draws what it drew before."""
    return np.random.default_rng([seed, 19]).uniform(-MEMBER_ENGAGEMENT_SPREAD, MEMBER_ENGAGEMENT_SPREAD, n_users)


def _sms_conversion_rates(ctx: _Context, msgs: pd.DataFrame,
                          engagement: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """P(convert | delivered) and P(convert | not delivered) per SMS: the purpose's rates moved by the
    member's engagement, plus each experiment's conversion lift for its treatment inside its region (and
    its opposite lift inside its opposite region)."""
    purposes = list(msgs["purpose"].cat.categories)
    p_codes = msgs["purpose"].cat.codes.to_numpy()
    p_del = np.array([PURPOSES[p]["p_del"] for p in purposes])[p_codes]
    p_not = np.array([PURPOSES[p]["p_not"] for p in purposes])[p_codes]
    if engagement is not None:
        e = engagement[msgs["user_idx"].to_numpy()]
        p_del = p_del + e * np.minimum(p_del, 1 - p_del)
        p_not = p_not + e * np.minimum(p_not, 1 - p_not)
    iso = list(msgs["country"].cat.categories)
    ccodes = msgs["country"].cat.codes.to_numpy()
    e_idx, v_idx = msgs["experiment_idx"].to_numpy(), msgs["variant_idx"].to_numpy()
    for ei, exp in enumerate(ctx.scenario.experiments):
        regions = [(exp.countries, exp.conversion_lift)]
        if exp.opposite_countries:  # never "everywhere": an opposite region names its countries
            regions.append((exp.opposite_countries, exp.opposite_conversion_lift))
        for countries, lift in regions:
            if not lift:
                continue
            region = np.isin(ccodes, [iso.index(c) for c in countries if c in iso]) if countries else True
            sel = (e_idx == ei) & (v_idx == 1) & region
            p_del = np.where(sel, np.clip(p_del + lift, 0.0, 1.0), p_del)
    return p_del, p_not


def _conversions(ctx: _Context, msgs: pd.DataFrame, calls: pd.DataFrame, other: _Other,
                 uid: pa.Array) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversions, one per converting attempt, minutes after its outcome (those before the end
    of the history), and whether each SMS converted."""
    rng, n_sms, n_calls, n_other = ctx.rng, len(msgs), len(calls), other.user.size
    delivered = msgs["status"].cat.codes.to_numpy() == 0
    p_del, p_not = _sms_conversion_rates(ctx, msgs, member_engagement(ctx.scenario.seed, len(uid)))
    conv_sms = rng.random(n_sms) < np.where(delivered, p_del, p_not)
    c_ms_sms = (np.maximum(msgs["final_at"].to_numpy(), msgs["date_created"].to_numpy()) * 1000
                + (rng.exponential(240, size=n_sms) * 1000).astype(np.int64))
    completed = calls["status"].cat.codes.to_numpy() == 0
    human = calls["answered_by"].cat.codes.to_numpy() == 0
    conv_call = rng.random(n_calls) < np.where(completed & human, 0.72, np.where(completed, 0.2, 0.02))
    c_ms_call = calls["end_time"].to_numpy() * 1000 + (rng.exponential(90, size=n_calls) * 1000).astype(np.int64)
    conv_other = rng.random(n_other) < np.where(other.alert, 0.15, 0.02)
    c_ms_other = other.ms + (rng.exponential(600, size=n_other) * 1000).astype(np.int64)
    conv_ms = np.concatenate([c_ms_sms[conv_sms], c_ms_call[conv_call], c_ms_other[conv_other]])
    conv_user = np.concatenate([msgs["user_idx"].to_numpy()[conv_sms], calls["user_idx"].to_numpy()[conv_call],
                                other.user[conv_other]]).astype(np.int64)
    conv_kind = np.array([PURPOSES[p]["conversion"] for p in msgs["purpose"].cat.categories], dtype=object)
    conv_type = np.concatenate([
        conv_kind[msgs["purpose"].cat.codes.to_numpy()[conv_sms]],
        np.array([PURPOSES[p]["conversion"] for p in _voice_purposes(msgs, calls)[conv_call]], dtype=object),
        np.where(other.alert[conv_other], "alert_acknowledged", "campaign_click").astype(object),
    ])
    # Which attempt each conversion answers (for ground truth): channel code * 2**40 + row.
    conv_attempt = np.concatenate([np.flatnonzero(conv_sms), (1 << 40) + np.flatnonzero(conv_call),
                                   (2 << 40) + np.flatnonzero(conv_other)]).astype(np.int64)
    return _conversion_frame(ctx, n_sms, uid, conv_ms, conv_user, conv_type, conv_attempt)


def _conversion_frame(ctx: _Context, n_sms: int, uid: pa.Array, conv_ms: np.ndarray, conv_user: np.ndarray,
                      conv_type: np.ndarray, conv_attempt: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    keep = conv_ms < ctx.t1 * 1000
    order = np.argsort(conv_ms[keep], kind="stable")
    conv_ms, conv_user, conv_type, conv_attempt = (x[keep][order] for x in (conv_ms, conv_user, conv_type, conv_attempt))
    converted = np.zeros(n_sms, dtype=bool)
    converted[conv_attempt[conv_attempt < (1 << 40)]] = True
    conv = pd.DataFrame({
        "event_id": _ids_arrow("cnv_", len(conv_ms)).to_pandas(),
        "user_id": uid.take(pa.array(conv_user)).to_pandas(),
        "conversion_type": pd.Series(conv_type, dtype="str"),
        "occurred_at": iso_ms(conv_ms),
        "_ms": conv_ms,
        "_attempt": conv_attempt,
    })
    return conv, converted


