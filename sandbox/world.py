"""A seeded, simulated messaging world: what a Twilio account and the platform's own
send logs would hold after ``days`` of traffic.

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

import gzip
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from switchboard.core.segments import segment_info as _segment_info
from switchboard.sandbox import catalog
from switchboard.sandbox.catalog import COUNTRIES, COUNTRY_BY_ISO, ERRORS, PURPOSES, TEMPLATES
from switchboard.sandbox.numbers import draw_numbers
from switchboard.sandbox.sids import sid_series


def segment_info(body: str) -> tuple[str, int]:
    """(encoding, segments) of a body: 'GSM-7' or 'UCS-2' and the billed segment count."""
    info = _segment_info(body)
    return info.encoding, info.segments


# ----------------------------------------------------------------------------- knobs


@dataclass(frozen=True)
class Incident:
    """A known problem injected into the world; ``kind`` is ``carrier_filtering`` or ``landline_heavy``."""

    kind: str
    country: str
    error_code: int
    carrier: str | None = None
    days_before_end: int = 30  # the incident starts this many days before the end (clipped to the history)
    ramp_days: int = 7  # the extra error rate grows linearly over these days
    extra_rate: float = 0.25  # extra share of the carrier's messages failing with error_code at full strength
    landline_share: float = 0.0  # landline_heavy: share of the country's members with a landline number


@dataclass(frozen=True)
class Experiment:
    """An A/B test on one purpose; effects apply to members of ``countries`` (all when empty)."""

    experiment_id: str
    purpose: str
    variants: tuple[str, str]  # control, treatment
    templates: tuple[str, str]  # template per variant
    countries: tuple[str, ...] = ()
    region_name: str = "all"
    conversion_lift: float = 0.0  # absolute lift of P(convert | delivered) for the treatment in the region
    delivery_lift: float = 0.0  # absolute change of the delivery rate for the treatment in the region
    treatment_sender: str | None = None  # "alpha": the treatment sends from an alphanumeric sender ID


@dataclass(frozen=True)
class AccountSpec:
    friendly_name: str
    share: float
    subaccount: bool = False


DEFAULT_INCIDENTS: tuple[Incident, ...] = (
    Incident("carrier_filtering", "ID", 30007, carrier="Indosat Ooredoo Hutchison", days_before_end=30,
             ramp_days=7, extra_rate=0.3),
    Incident("landline_heavy", "EG", 30006, landline_share=0.22),
)
LATAM = ("BR", "MX", "CO", "AR", "PE", "CL")
DEFAULT_EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("exp_pr_short_template", "password_reset", ("control", "short"), ("pr_standard", "pr_short"),
               countries=LATAM, region_name="LATAM", conversion_lift=0.1),
    Experiment("exp_alpha_sender", "verification", ("long_code", "alpha_sender"), ("ver_code", "ver_code"),
               countries=("IN", "PK", "BD"), region_name="South Asia", delivery_lift=-0.08,
               treatment_sender="alpha"),
)
DEFAULT_ACCOUNTS: tuple[AccountSpec, ...] = (
    AccountSpec("Acme Production", 0.85),
    AccountSpec("Acme Marketing (subaccount)", 0.15, subaccount=True),
)


@dataclass(frozen=True)
class Scenario:
    seed: int = 7
    days: int = 90
    messages: int = 200_000
    calls: int = 20_000
    end: datetime | None = None  # history ends here (exclusive); None: today 00:00 UTC
    countries: tuple[tuple[str, float], ...] | None = None  # (ISO-2, weight) mix; None: the catalog's mix
    incidents: tuple[Incident, ...] = DEFAULT_INCIDENTS
    experiments: tuple[Experiment, ...] = DEFAULT_EXPERIMENTS
    accounts: tuple[AccountSpec, ...] = DEFAULT_ACCOUNTS
    fallback_rate: float = 0.6  # share of failed OTP SMS that fall back to a voice call (calls permitting)
    other_channels_share: float = 0.12  # push/email attempts, relative to SMS, in the send log
    opt_out_share: float = 0.006  # members who replied STOP: every SMS to them fails with 21610

    def end_datetime(self) -> datetime:
        if self.end is None:
            now = datetime.now(UTC)
            return datetime(now.year, now.month, now.day, tzinfo=UTC)
        return self.end if self.end.tzinfo else self.end.replace(tzinfo=UTC)


@dataclass
class World:
    scenario: Scenario
    start: datetime
    end: datetime
    accounts: list[dict[str, Any]]  # sid, auth_token, friendly_name, owner_account_sid, date_created
    senders: pd.DataFrame  # sender numbers / IDs and messaging services
    users: pd.DataFrame
    messages: pd.DataFrame
    calls: pd.DataFrame
    send_log: pd.DataFrame
    conversions: pd.DataFrame
    ground_truth: dict[str, Any]
    salts: dict[str, int] = field(default_factory=dict)  # sid salts for messages / calls

    @property
    def account_sids(self) -> list[str]:
        return [a["sid"] for a in self.accounts]


# ----------------------------------------------------------------------------- helpers


def _hex(seed: int, label: str, n: int = 32) -> str:
    return hashlib.sha256(f"switchboard-sandbox:{seed}:{label}".encode()).hexdigest()[:n]


def account_credentials(seed: int, specs: tuple[AccountSpec, ...]) -> list[dict[str, Any]]:
    out = []
    for i, spec in enumerate(specs):
        out.append(
            {
                "sid": "AC" + _hex(seed, f"account:{i}"),
                "auth_token": _hex(seed, f"token:{i}"),
                "friendly_name": spec.friendly_name,
                "subaccount": spec.subaccount,
            }
        )
    parent = out[0]["sid"]
    for a in out:
        a["owner_account_sid"] = parent
    return out


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


def generate(scenario: Scenario = Scenario(), progress: Callable[[str], None] | None = None) -> World:
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
    say(f"calls: {scenario.calls:,}")
    calls = _make_calls(ctx, users, msgs, senders)
    say("send logs and conversions")
    send_log, conversions, converted = _make_send_log(ctx, users, msgs, calls)
    msgs["converted"] = converted  # ground truth: this SMS attempt led to a conversion
    world = World(
        scenario=scenario, start=start, end=end, accounts=accounts, senders=senders, users=users,
        messages=msgs, calls=calls, send_log=send_log, conversions=conversions, ground_truth={},
        salts={"SM": _salt(scenario.seed, "SM"), "CA": _salt(scenario.seed, "CA")},
    )
    world.ground_truth = _ground_truth(world)
    return world


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
    return int(_hex(seed, f"salt:{kind}", 16), 16)


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
            services.append({"account": ai, "service": name, "sid": "MG" + _hex(seed, f"mg:{ai}:{name}")})
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


def _sms_conversion_rates(ctx: _Context, msgs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """P(convert | delivered) and P(convert | not delivered) per SMS, with each experiment's
    conversion lift for its treatment inside its region."""
    purposes = list(msgs["purpose"].cat.categories)
    p_codes = msgs["purpose"].cat.codes.to_numpy()
    p_del = np.array([PURPOSES[p]["p_del"] for p in purposes])[p_codes]
    p_not = np.array([PURPOSES[p]["p_not"] for p in purposes])[p_codes]
    iso = list(msgs["country"].cat.categories)
    ccodes = msgs["country"].cat.codes.to_numpy()
    e_idx, v_idx = msgs["experiment_idx"].to_numpy(), msgs["variant_idx"].to_numpy()
    for ei, exp in enumerate(ctx.scenario.experiments):
        if exp.conversion_lift:
            region = np.isin(ccodes, [iso.index(c) for c in exp.countries if c in iso]) if exp.countries else True
            sel = (e_idx == ei) & (v_idx == 1) & region
            p_del = np.where(sel, p_del + exp.conversion_lift, p_del)
    return p_del, p_not


def _conversions(ctx: _Context, msgs: pd.DataFrame, calls: pd.DataFrame, other: _Other,
                 uid: pa.Array) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversions, one per converting attempt, minutes after its outcome (those before the end
    of the history), and whether each SMS converted."""
    rng, n_sms, n_calls, n_other = ctx.rng, len(msgs), len(calls), other.user.size
    delivered = msgs["status"].cat.codes.to_numpy() == 0
    p_del, p_not = _sms_conversion_rates(ctx, msgs)
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


# ----------------------------------------------------------------------------- ground truth


def _rate(mask_num: np.ndarray, mask_den: np.ndarray) -> float | None:
    d = int(mask_den.sum())
    return None if d == 0 else round(float((mask_num & mask_den).sum()) / d, 4)


def _ground_truth(world: World) -> dict[str, Any]:
    """What the world holds, for tests and the demo to check analyses against."""
    sc = world.scenario
    m = world.messages
    status = m["status"].astype(object).to_numpy()
    err = m["error_code"].to_numpy()
    country = m["country"].astype(object).to_numpy()
    per_country = (
        pd.DataFrame({"country": country, "delivered": status == "delivered"})
        .groupby("country", observed=True)["delivered"].agg(["mean", "size"])
    )
    calls = world.calls
    fb = calls["fallback_of_msg"].to_numpy() >= 0
    return {
        "seed": sc.seed,
        "start": world.start.isoformat().replace("+00:00", "Z"),
        "end": world.end.isoformat().replace("+00:00", "Z"),
        "days": sc.days,
        "messages": len(m),
        "calls": len(calls),
        "send_log_events": len(world.send_log),
        "conversions": len(world.conversions),
        "countries": sorted(set(country.tolist())),
        "accounts": [{"sid": a["sid"], "friendly_name": a["friendly_name"], "subaccount": a["subaccount"]}
                     for a in world.accounts],
        "status_counts": {k: int(v) for k, v in pd.Series(status).value_counts().items()},
        "error_code_counts": {int(k): int(v) for k, v in pd.Series(err[err > 0]).value_counts().items()},
        "delivery_rate_by_country": {k: round(float(r["mean"]), 4) for k, r in per_country.iterrows()},
        "true_delivery_rate_by_country": {c: COUNTRY_BY_ISO[c].delivery_rate for c in sorted(set(country.tolist()))},
        "incidents": [_incident_truth(world, inc) for inc in sc.incidents],
        "experiments": [_experiment_truth(world, ei, exp) for ei, exp in enumerate(sc.experiments)],
        "voice_fallbacks": {
            "calls": int(fb.sum()),
            "completed": int((fb & (calls["status"].to_numpy() == "completed")).sum()),
            "fallback_rate": sc.fallback_rate,
        },
        "segments": {
            "ucs2_share": round(float((m["encoding"].to_numpy() == "UCS-2").mean()), 4) if len(m) else None,
            "by_template": {
                str(k): int(v)
                for k, v in m.groupby("template_id", observed=True)["num_segments"].max().items()
            },
        },
        "opted_out_members": int(world.users["opted_out"].sum()),
        # Built into every world rather than injected: true, and findable, but not incidents.
        "known_issues": _known_issues(world),
    }


def _incident_truth(world: World, inc: Incident) -> dict[str, Any]:
    """The incident's settings, its start date and the error rates it caused (and did not cause)."""
    sc, m = world.scenario, world.messages
    day = (m["date_created"].to_numpy() - int(world.start.timestamp())) // 86400
    err = m["error_code"].to_numpy()
    country = m["country"].astype(object).to_numpy()
    carrier = m["carrier"].astype(object).to_numpy()
    entry = asdict(inc)
    in_c = country == inc.country
    if inc.kind == "carrier_filtering":
        start_day = max(sc.days - inc.days_before_end, sc.days // 2)
        entry["start_date"] = (world.start + timedelta(days=int(start_day))).date().isoformat()
        on = in_c & (carrier == inc.carrier)
        before = on & (day < start_day)
        after = on & (day >= start_day + inc.ramp_days)
        entry["observed_error_rate_before"] = _rate(err == inc.error_code, before)
        entry["observed_error_rate_after_ramp"] = _rate(err == inc.error_code, after)
        others = in_c & (carrier != inc.carrier) & (day >= start_day + inc.ramp_days)
        entry["observed_error_rate_other_carriers_after"] = _rate(err == inc.error_code, others)
    else:
        land = m["line_type"].to_numpy() == "landline"
        entry["observed_landline_share_of_messages"] = _rate(land, in_c)
        entry["observed_error_rate_landline"] = _rate(err == inc.error_code, in_c & land)
        entry["observed_error_rate_country"] = _rate(err == inc.error_code, in_c)
    return entry


def _experiment_truth(world: World, ei: int, exp: Experiment) -> dict[str, Any]:
    """The experiment's settings, its true conversion rates and the observed rates per arm,
    inside and outside its region."""
    m = world.messages
    country = m["country"].astype(object).to_numpy()
    delivered = m["status"].astype(object).to_numpy() == "delivered"
    converted = m["converted"].to_numpy()
    e_idx, v_idx = m["experiment_idx"].to_numpy(), m["variant_idx"].to_numpy()
    entry = asdict(exp)
    region = np.isin(country, list(exp.countries)) if exp.countries else np.ones(len(m), bool)
    arms: dict[str, dict[str, Any]] = {}
    for vi, vname in enumerate(exp.variants):
        for label, reg in (("in_region", region), ("outside_region", ~region)):
            sel = (e_idx == ei) & (v_idx == vi) & reg
            arms.setdefault(vname, {})[label] = {
                "attempts": int(sel.sum()),
                "delivery_rate": _rate(delivered, sel),
                "conversion_rate": _rate(converted, sel),
            }
    base = PURPOSES[exp.purpose]
    entry["true_conversion_rate_if_delivered"] = {
        exp.variants[0]: base["p_del"], exp.variants[1]: round(base["p_del"] + exp.conversion_lift, 4)
    }
    entry["observed"] = arms
    return entry


def _known_issues(world: World) -> list[dict[str, Any]]:
    m = world.messages
    err = m["error_code"].to_numpy()
    us = m["country"].astype(object).to_numpy() == "US"
    sender = _unregistered_sender(world)
    return [
        {"kind": "unregistered_sender", "country": "US", "error_code": 30034, "sender": sender,
         "observed_error_rate": _rate(err == 30034, us & (m["from"].astype(object).to_numpy() == sender))},
        {"kind": "opt_out", "error_code": 21610, "members": int(world.users["opted_out"].sum())},
    ]


def _unregistered_sender(world: World) -> str | None:
    s = world.senders
    rows = s[(s["kind"] == "long_code") & ~s["registered"] & (s["account"] == 0)]
    return str(rows["sender"].iloc[0]) if len(rows) else None


# ----------------------------------------------------------------------------- files


def _day_files(frame: pd.DataFrame, ms_col: str):
    days = frame[ms_col].to_numpy() // 86_400_000
    if len(days) == 0:
        return
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(days)]])
    for a, b in zip(starts, stops):
        d = date(1970, 1, 1) + timedelta(days=int(days[a]))
        yield d, frame.iloc[a:b]


SEND_COLUMNS = ["event_id", "sent_at", "channel", "purpose", "template_id", "experiment_id", "variant",
                "campaign_id", "user_id", "country", "locale", "provider_sid", "fallback_of"]
CONVERSION_COLUMNS = ["event_id", "user_id", "conversion_type", "occurred_at"]


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        frame.to_csv(tmp, index=False)
    elif fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    else:
        raise ValueError(f"unknown send-log format {fmt!r} (jsonl, csv or parquet)")
    tmp.replace(path)  # readers never see a half-written file


def write_send_logs(world: World, directory: Path, fmt: str = "jsonl") -> list[Path]:
    """One ``sends-YYYY-MM-DD.<ext>`` and ``conversions-YYYY-MM-DD.<ext>`` per UTC day, plus
    ``ground_truth.json``; stale day files of an earlier world in ``directory`` are removed.
    Returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for d, part in _day_files(world.send_log, "_ms"):
        path = directory / f"sends-{d.isoformat()}.{fmt}"
        _write(part[SEND_COLUMNS].reset_index(drop=True), path, fmt)
        written.append(path)
    for d, part in _day_files(world.conversions, "_ms"):
        path = directory / f"conversions-{d.isoformat()}.{fmt}"
        _write(part[CONVERSION_COLUMNS].reset_index(drop=True), path, fmt)
        written.append(path)
    # Day files of an earlier, different world would mix two histories (same event ids, other
    # facts): remove the ones this world did not write. Only the sandbox's own day-file names are
    # touched (the sender's sends-campaign-*.jsonl and anything else stay).
    keep = {p.name for p in written}
    for old in directory.iterdir():
        if _DAY_FILE.fullmatch(old.name) and old.name not in keep:
            old.unlink()
    gt = directory / "ground_truth.json"
    tmp = gt.with_name(gt.name + ".tmp")
    tmp.write_text(json.dumps(world.ground_truth, indent=2, default=str))
    tmp.replace(gt)
    written.append(gt)
    return written


_DAY_FILE = re.compile(r"(sends|conversions)-\d{4}-\d{2}-\d{2}\.(jsonl|csv|parquet)")


def write_bulk_export(world: World, directory: Path, account_sid: str | None = None) -> list[Path]:
    """Twilio BulkExport-style day files ``Messages/YYYY-MM-DD.json.gz``: gzipped JSON lines, one
    message per line, final statuses. As Twilio documents the format: records like the Message
    resource, but times in UTC ISO-8601 and no price_unit, api_version, error_message, uri or
    subresource_uris."""
    from switchboard.sandbox.render import iso_seconds

    directory = Path(directory) / "Messages"
    directory.mkdir(parents=True, exist_ok=True)
    m = world.messages
    acct = account_sid or world.accounts[0]["sid"]
    ai = world.account_sids.index(acct)
    m = m[m["account_idx"].to_numpy() == ai]
    frame = pd.DataFrame({"_ms": m["date_created"].to_numpy() * 1000})
    written = []
    bodies = world.messages.attrs["bodies"]
    for d, part in _day_files(frame, "_ms"):
        a, b = int(part.index[0]), int(part.index[-1]) + 1
        rows = m.iloc[a:b]
        cols = {c: rows[c].astype(object).to_numpy() if isinstance(rows[c].dtype, pd.CategoricalDtype)
                else rows[c].to_numpy() for c in rows.columns}
        path = directory / f"{d.isoformat()}.json.gz"
        tmp = path.with_name(path.name + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            for k in range(b - a):
                err = int(cols["error_code"][k])
                mg = cols["messaging_service_sid"][k]
                fh.write(json.dumps({
                    "sid": cols["sid"][k],
                    "account_sid": acct,
                    "messaging_service_sid": mg if isinstance(mg, str) else None,
                    "from": cols["from"][k],
                    "to": cols["to"][k],
                    "body": bodies[int(cols["body_key"][k])].replace("{code}", str(int(cols["code"][k]))),
                    "status": cols["status"][k],
                    "direction": "outbound-api",
                    "num_segments": str(int(cols["num_segments"][k])),
                    "num_media": "0",
                    "price": f"{-float(cols['price'][k]):.5f}",
                    "error_code": err or None,
                    "date_created": iso_seconds(int(cols["date_created"][k])),
                    "date_sent": iso_seconds(int(cols["date_sent"][k])),
                    "date_updated": iso_seconds(int(cols["final_at"][k])),
                }, ensure_ascii=False) + "\n")
        tmp.replace(path)
        written.append(path)
    return written
