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

from switchboard.sandbox import catalog
from switchboard.sandbox.catalog import COUNTRIES, COUNTRY_BY_ISO, ERRORS, PURPOSES, TEMPLATES
from switchboard.sandbox.numbers import draw_numbers
from switchboard.sandbox.sids import sid_series

from switchboard.core.segments import segment_info as _segment_info


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


def _cat(values, categories) -> pd.Categorical:
    return pd.Categorical(values, categories=list(categories))


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


def generate(scenario: Scenario = Scenario(), progress: Callable[[str], None] | None = None) -> World:
    """Build the world of ``scenario``: deterministic for a given scenario."""
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(scenario.seed)
    end = scenario.end_datetime()
    start = end - timedelta(days=scenario.days)
    t0 = int(start.timestamp())
    t1 = int(end.timestamp())
    accounts = account_credentials(scenario.seed, scenario.accounts)
    for i, a in enumerate(accounts):
        a["date_created"] = t0 - 86400 * (400 - 30 * i)

    # --- countries and members
    mix = scenario.countries or tuple((c.iso2, c.weight) for c in COUNTRIES)
    if isinstance(mix, dict):  # {"BR": 3, "MX": 1} is accepted too
        mix = tuple(mix.items())
    iso = [c for c, _ in mix]
    for c in iso:
        if c not in COUNTRY_BY_ISO:
            raise ValueError(f"country {c!r} has no profile in sandbox.catalog")
    cweights = np.array([w for _, w in mix], dtype=float)
    cweights /= cweights.sum()
    profiles = [COUNTRY_BY_ISO[c] for c in iso]
    n_sms = int(scenario.messages)
    n_users = int(np.clip(n_sms // 3, min(len(iso) * 5, max(n_sms, 1)), MAX_MEMBERS))
    say(f"members: {n_users:,}")
    users = _make_users(scenario, rng, iso, cweights, profiles, n_users)

    # --- SMS
    say(f"messages: {n_sms:,}")
    msgs, sends_sms = _make_messages(scenario, rng, users, iso, profiles, t0, t1, accounts)
    say(f"calls: {scenario.calls:,}")
    calls, sends_voice = _make_calls(scenario, rng, users, msgs, sends_sms, iso, profiles, t0, t1, accounts)
    say("send logs and conversions")
    send_log, conversions = _make_send_log(scenario, rng, users, msgs, sends_sms, calls, sends_voice, t0, t1)
    senders = _SENDERS_CACHE.pop("frame")
    world = World(
        scenario=scenario, start=start, end=end, accounts=accounts, senders=senders, users=users,
        messages=msgs, calls=calls, send_log=send_log, conversions=conversions, ground_truth={},
        salts={"SM": _salt(scenario.seed, "SM"), "CA": _salt(scenario.seed, "CA")},
    )
    world.ground_truth = _ground_truth(world)
    return world


def _salt(seed: int, kind: str) -> int:
    return int(_hex(seed, f"salt:{kind}", 16), 16)


def _make_users(scenario, rng, iso, cweights, profiles, n_users) -> pd.DataFrame:
    country_idx = rng.choice(len(iso), size=n_users, p=cweights)
    country_idx.sort(kind="stable")  # group by country: numbers are drawn per country
    number = np.empty(n_users, dtype=object)
    carrier = np.empty(n_users, dtype=object)
    line = np.full(n_users, "mobile", dtype=object)
    landline_share = {i.country: i.landline_share for i in scenario.incidents if i.kind == "landline_heavy"}
    from switchboard.sandbox.numbers import landline_plan, mobile_plan

    for ci, c in enumerate(iso):
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
    locale = np.empty(n_users, dtype=object)
    for ci, prof in enumerate(profiles):
        idx = np.flatnonzero(country_idx == ci)
        if idx.size:
            names = [loc for loc, _ in prof.locales]
            p = np.array([s for _, s in prof.locales])
            locale[idx] = np.array(names, dtype=object)[rng.choice(len(names), size=idx.size, p=p / p.sum())]
    # Shuffle so user ids are not sorted by country.
    perm = rng.permutation(n_users)
    frame = pd.DataFrame(
        {
            "user_id": _ids_arrow("usr_", n_users, 7).to_pandas(),
            "country": _codes(country_idx[perm], iso),
            "locale": pd.Categorical(locale[perm]),
            "number": number[perm],
            "carrier": pd.Categorical(carrier[perm]),
            "line_type": pd.Categorical(line[perm], categories=["mobile", "landline"]),
            "opted_out": rng.random(n_users) < scenario.opt_out_share,
            "bucket": rng.random(n_users),  # A/B assignment unit
            "prefers_voice": rng.random(n_users) < 0.04,
        }
    )
    return frame


_SENDERS_CACHE: dict[str, pd.DataFrame] = {}


def _senders(seed: int, rng: np.random.Generator, accounts) -> pd.DataFrame:
    """Long codes (one of them unregistered for A2P 10DLC), a toll-free number, an alphanumeric ID
    and two messaging services per account."""
    rows = []
    for ai, acct in enumerate(accounts):
        longs, _ = draw_numbers("US", 6, np.random.default_rng(seed * 100 + ai))
        for k, num in enumerate(longs):
            rows.append({"account": ai, "kind": "long_code", "sender": num, "registered": k != 5})
        rows.append({"account": ai, "kind": "toll_free", "sender": f"+1833{555 + ai:03d}{1000 + seed % 9000:04d}",
                     "registered": True})
        rows.append({"account": ai, "kind": "alpha", "sender": "ACME", "registered": True})
    frame = pd.DataFrame(rows)
    services = []
    for ai, acct in enumerate(accounts):
        for name in ("otp", "notifications"):
            services.append({"account": ai, "service": name, "sid": "MG" + _hex(seed, f"mg:{ai}:{name}")})
    frame.attrs["services"] = services
    return frame


def _make_messages(scenario, rng, users, iso, profiles, t0, t1, accounts):
    n = int(scenario.messages)
    n_users = len(users)
    # --- who and when
    user = rng.integers(0, n_users, size=n)
    ucountry = users["country"].cat.codes.to_numpy()
    cidx = ucountry[user]
    offsets = np.array([p.utc_offset for p in profiles])
    days = scenario.days
    dw = 1 + 0.3 * np.arange(days) / max(days, 1)
    weekday = np.array([(datetime.fromtimestamp(t0 + 86400 * d, UTC).weekday()) for d in range(days)])
    dw = dw * np.where(weekday >= 5, 0.75, 1.0)
    day = rng.choice(days, size=n, p=dw / dw.sum())
    hour = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    ts = t0 + day * 86400 + hour * 3600 + rng.integers(0, 3600, size=n) - offsets[cidx] * 3600
    ts = t0 + (ts - t0) % (t1 - 2 - t0)  # wrap local-time shifts at the edges instead of piling them up
    order = np.argsort(ts, kind="stable")
    ts, user, cidx = ts[order], user[order], cidx[order]
    day = (ts - t0) // 86400

    # --- purpose, account, template, experiments
    purposes = list(PURPOSES)
    pshare = np.array([PURPOSES[p]["share"] for p in purposes])
    purpose = rng.choice(len(purposes), size=n, p=pshare / pshare.sum())
    n_acc = len(accounts)
    ashare = np.array([s.share for s in scenario.accounts])
    account = rng.choice(n_acc, size=n, p=ashare / ashare.sum()).astype(np.int8)
    # The subaccount sends marketing and alerts; OTP traffic stays on the main account.
    otp = np.isin(purpose, [purposes.index("verification"), purposes.index("password_reset")])
    account[otp] = 0
    template_ids = sorted(TEMPLATES)
    base_template = np.array([template_ids.index(catalog.PURPOSE_TEMPLATE[p]) for p in purposes])
    template = base_template[purpose]
    bucket = users["bucket"].to_numpy()[user]
    exp_idx = np.full(n, -1, dtype=np.int8)
    variant = np.full(n, -1, dtype=np.int8)
    for ei, exp in enumerate(scenario.experiments):
        sel = purpose == purposes.index(exp.purpose)
        exp_idx[sel] = ei
        treat = bucket >= 0.5
        variant[sel] = treat[sel].astype(np.int8)
        tmpl = np.array([template_ids.index(t) for t in exp.templates])
        template[sel] = tmpl[variant[sel]]

    # --- senders
    senders = _senders(scenario.seed, rng, accounts)
    _SENDERS_CACHE["frame"] = senders
    is_alpha_country = np.array([p.alpha_sender for p in profiles])[cidx]
    sender = np.empty(n, dtype=np.int32)
    for ai in range(n_acc):
        rows = senders.index[senders["account"] == ai].to_numpy()
        kinds = senders.loc[rows, "kind"].to_numpy()
        longs = rows[kinds == "long_code"]
        alpha = rows[kinds == "alpha"][0]
        tollfree = rows[kinds == "toll_free"][0]
        sel = account == ai
        pick = longs[rng.integers(0, len(longs), size=n)]
        use_tf = rng.random(n) < 0.15
        pick = np.where(use_tf, tollfree, pick)
        pick = np.where(is_alpha_country, alpha, pick)
        sender[sel] = pick[sel]
    for ei, exp in enumerate(scenario.experiments):
        if exp.treatment_sender == "alpha":
            # In the experiment's region the control sends from a long code, the treatment from "ACME".
            region = np.isin(cidx, [iso.index(c) for c in exp.countries if c in iso])
            alpha_rows = senders.index[(senders["kind"] == "alpha")].to_numpy()
            long_rows = senders.index[(senders["kind"] == "long_code") & senders["registered"] & (senders["account"] == 0)].to_numpy()
            sel = (exp_idx == ei) & region
            treat = sel & (variant == 1)
            control = sel & (variant == 0)
            sender[treat] = alpha_rows[account[treat]]
            sender[control] = long_rows[rng.integers(0, long_rows.size, size=int(control.sum()))]
    services = senders.attrs["services"]
    service = np.where(otp, 0, 1) + 2 * account  # index into services list
    no_service = rng.random(n) < 0.08
    service = np.where(no_service, -1, service)

    # --- locale, body, segments
    ulocale = users["locale"]
    loc_codes = ulocale.cat.codes.to_numpy()[user]
    loc_names = list(ulocale.cat.categories)
    combos = {}
    body_key = np.empty(n, dtype=np.int32)
    pair = template.astype(np.int64) * 1000 + loc_codes
    uniq, inv = np.unique(pair, return_inverse=True)
    texts, encs, segs = [], [], []
    for k, key in enumerate(uniq.tolist()):
        tid, li = divmod(key, 1000)
        lang = _lang(loc_names[li])
        table = TEMPLATES[template_ids[tid]]
        text = table.get(lang, table["en"])
        enc, nseg = segment_info(text.replace("{code}", "000000"))
        texts.append(text)
        encs.append(enc)
        segs.append(nseg)
        combos[key] = k
    body_key = inv.astype(np.int32)
    num_segments = np.array(segs, dtype=np.int16)[body_key]
    encoding_code = np.array([0 if e == "GSM-7" else 1 for e in encs], dtype=np.int8)[body_key]

    # --- outcome
    deliv = np.array([p.delivery_rate for p in profiles])[cidx]
    for ei, exp in enumerate(scenario.experiments):
        if exp.delivery_lift:
            region = np.isin(cidx, [iso.index(c) for c in exp.countries if c in iso]) if exp.countries else True
            sel = (exp_idx == ei) & (variant == 1) & region
            deliv = np.where(sel, deliv + exp.delivery_lift, deliv)
    error = np.zeros(n, dtype=np.int32)
    u = rng.random(n)
    not_delivered = u >= deliv
    codes = np.array(list(catalog.BASE_ERROR_MIX))
    cshares = np.array(list(catalog.BASE_ERROR_MIX.values()))
    # Each country has its own mix: a seeded perturbation of the base mix.
    cmix = np.random.default_rng(scenario.seed + 1).dirichlet(cshares * 40, size=len(iso))
    cum = np.cumsum(cmix, axis=1)
    pick = (rng.random(n)[:, None] > cum[cidx]).sum(axis=1)
    error[not_delivered] = codes[np.minimum(pick, len(codes) - 1)][not_delivered]
    # US sends from an unregistered long code fail with 30034.
    unregistered = ~senders["registered"].to_numpy()[sender] & (cidx == iso.index("US") if "US" in iso else False)
    error[unregistered & (rng.random(n) < 0.85)] = 30034
    # Incidents.
    line_code = users["line_type"].cat.codes.to_numpy()[user]
    carrier_cats = list(users["carrier"].cat.categories)
    carrier_code = users["carrier"].cat.codes.to_numpy()[user]
    for inc in scenario.incidents:
        if inc.country not in iso:
            continue
        in_country = cidx == iso.index(inc.country)
        if inc.kind == "carrier_filtering":
            start_day = max(days - inc.days_before_end, days // 2)
            ramp = np.clip((day - start_day + 1) / max(inc.ramp_days, 1), 0, 1)
            target = carrier_cats.index(inc.carrier) if inc.carrier in carrier_cats else -2
            sel = in_country & (carrier_code == target) & (day >= start_day)
            hit = sel & (rng.random(n) < inc.extra_rate * ramp)
            error[hit] = inc.error_code
        elif inc.kind == "landline_heavy":
            sel = in_country & (line_code == 1)
            error[sel & (rng.random(n) < 0.96)] = inc.error_code
    opted = users["opted_out"].to_numpy()[user]
    error[opted] = 21610
    status_code = np.zeros(n, dtype=np.int8)  # 0 delivered, 1 undelivered, 2 failed
    failed_codes = [c for c, (st, _) in ERRORS.items() if st == "failed"]
    status_code[error > 0] = 1
    status_code[np.isin(error, failed_codes)] = 2

    # --- lifecycle times (seconds)
    date_sent = ts + 1
    ttd = np.array([p.ttd_median_s for p in profiles])[cidx] * rng.lognormal(0, 0.6, size=n)
    slow = rng.random(n) < 0.02  # late delivery receipts: minutes to a day
    ttd = np.where(slow, rng.lognormal(np.log(1800), 1.3, size=n), ttd)
    ttd = np.minimum(ttd, 86400 * 2)
    final_at = date_sent + np.ceil(ttd).astype(np.int64)
    final_at = np.where(status_code == 2, ts + 1, final_at)

    # --- prices (USD, positive here; the API shows them negative)
    sms_price = np.array([p.sms_price for p in profiles])[cidx]
    price = np.round(sms_price * num_segments, 5)
    price = np.where(status_code == 2, 0.001, price)  # failed-message processing fee

    ids = np.arange(n, dtype=np.int64)
    salt = _salt(scenario.seed, "SM")
    msgs = pd.DataFrame(
        {
            "sid": sid_series("SM", ids, salt),
            "account_idx": account,
            "date_created": ts,
            "date_sent": date_sent,
            "final_at": final_at,
            "status": _codes(status_code, ["delivered", "undelivered", "failed"]),
            "error_code": error,
            "to": _take_categorical(users["number"].to_numpy(), user),
            "from": _take_categorical(senders["sender"].to_numpy(), sender),
            "messaging_service_sid": pd.Categorical.from_codes(service, categories=[s["sid"] for s in services]),
            "body_key": body_key,
            "code": (ids * 7919 + scenario.seed * 104729) % 900000 + 100000,
            "num_segments": num_segments,
            "encoding": pd.Categorical.from_codes(encoding_code, categories=["GSM-7", "UCS-2"]),
            "price": price,
            "country": _codes(cidx, iso),
            "carrier": pd.Categorical.from_codes(carrier_code, categories=carrier_cats),
            "line_type": pd.Categorical.from_codes(line_code, categories=["mobile", "landline"]),
            "purpose": _codes(purpose, purposes),
            "template_id": _codes(template, template_ids),
            "locale": _codes(loc_codes, loc_names),
            "user_idx": user.astype(np.int32),
            "experiment_idx": exp_idx,
            "variant_idx": variant,
        }
    )
    msgs.attrs["bodies"] = texts
    sends = {"day": day}
    return msgs, sends


def message_body(world: World, idx: int) -> str:
    m = world.messages
    text = m.attrs["bodies"][int(m["body_key"].iat[idx])]
    return text.replace("{code}", str(int(m["code"].iat[idx])))


CALL_STATUSES = ["completed", "busy", "no-answer", "failed", "canceled"]


def _make_calls(scenario, rng, users, msgs, sends_sms, iso, profiles, t0, t1, accounts):
    n_total = int(scenario.calls)
    # Fallbacks: OTP SMS that failed or were undelivered, followed by a voice call.
    otp = msgs["purpose"].isin(["verification", "password_reset"]).to_numpy()
    bad = msgs["status"].to_numpy() != "delivered"
    eligible = np.flatnonzero(otp & bad & (msgs["error_code"].to_numpy() != 21610))
    take = eligible[rng.random(eligible.size) < scenario.fallback_rate]
    if take.size > n_total:
        take = np.sort(rng.choice(take, size=n_total, replace=False))
    n_direct = n_total - take.size
    fb_user = msgs["user_idx"].to_numpy()[take]
    fb_ts = msgs["final_at"].to_numpy()[take] + rng.integers(20, 120, size=take.size)
    # Direct voice verifications, by members who prefer voice (and anyone, when too few).
    prefers = np.flatnonzero(users["prefers_voice"].to_numpy())
    pool = prefers if prefers.size else np.arange(len(users))
    d_user = pool[rng.integers(0, pool.size, size=n_direct)]
    d_ts = rng.integers(t0, t1 - 600, size=n_direct)
    user = np.concatenate([fb_user, d_user]).astype(np.int64)
    ts = np.concatenate([fb_ts, d_ts]).astype(np.int64)
    fallback_of = np.concatenate([take, np.full(n_direct, -1)]).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    user, ts, fallback_of = user[order], ts[order], fallback_of[order]
    n = ts.size
    ucountry = users["country"].cat.codes.to_numpy()
    cidx = ucountry[user]
    line_code = users["line_type"].cat.codes.to_numpy()[user]
    answer = np.array([p.call_answer_rate for p in profiles])[cidx]
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
    voice_price = np.array([p.voice_price for p in profiles])[cidx]
    price = np.where(status == 0, np.round(voice_price * np.ceil(duration / 60), 5), np.nan)
    account = np.zeros(n, dtype=np.int8)
    senders = _SENDERS_CACHE["frame"]
    longs = senders.index[(senders["account"] == 0) & (senders["kind"] == "long_code") & senders["registered"]]
    from_ = senders["sender"].to_numpy()[longs.to_numpy()[rng.integers(0, len(longs), size=n)]]
    ids = np.arange(n, dtype=np.int64)
    salt = _salt(scenario.seed, "CA")
    calls = pd.DataFrame(
        {
            "sid": sid_series("CA", ids, salt),
            "account_idx": account,
            "date_created": ts,
            "start_time": start_time,
            "answered_at": answered_at,
            "end_time": end_time,
            "status": _codes(status, CALL_STATUSES),
            "duration": duration,
            "answered_by": pd.Categorical(answered_by, categories=["human", "machine_end_beep"]),
            "price": price,
            "to": _take_categorical(users["number"].to_numpy(), user),
            "from": pd.Categorical(from_),
            "country": _codes(cidx, iso),
            "line_type": pd.Categorical.from_codes(line_code, categories=["mobile", "landline"]),
            "user_idx": user.astype(np.int32),
            "fallback_of_msg": fallback_of,
        }
    )
    return calls, {}


def _make_send_log(scenario, rng, users, msgs, sends_sms, calls, sends_voice, t0, t1):
    """The platform's send log (every attempt, all channels) and the members' conversions.

    Built with Arrow string kernels: 10 million rows of ids and timestamps in seconds."""
    n_sms = len(msgs)
    n_calls = len(calls)
    uid = pa.array(users["user_id"]).cast(pa.string())
    ucountry = pa.array(users["country"].astype(str))
    ulocale = pa.array(users["locale"].astype(str))
    purposes = list(msgs["purpose"].cat.categories)
    p_codes = msgs["purpose"].cat.codes.to_numpy()
    purpose = np.array(purposes, dtype=object)[p_codes]
    e_idx = msgs["experiment_idx"].to_numpy()
    v_idx = msgs["variant_idx"].to_numpy()
    exps = scenario.experiments

    # SMS attempts: the platform logs the attempt a few hundred ms before Twilio creates the message.
    sms_ms = msgs["date_created"].to_numpy() * 1000 - rng.integers(40, 900, size=n_sms)
    sms_event = _ids_arrow("evt_s", n_sms)
    exp_names = pa.array([e.experiment_id for e in exps] + [None], pa.string())
    variant_names = pa.array([v for e in exps for v in e.variants] + [None], pa.string())
    has_exp = e_idx >= 0
    week = (msgs["date_created"].to_numpy() - t0) // (7 * 86400)
    campaign_names = pa.array([f"cmp_week{w}" for w in range(scenario.days // 7 + 2)] + [None], pa.string())
    marketing = purpose == "marketing"
    template_ids = list(msgs["template_id"].cat.categories)
    sms = {
        "event_id": sms_event,
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
    # Voice attempts.
    fb = calls["fallback_of_msg"].to_numpy()
    is_fb = fb >= 0
    call_ms = calls["date_created"].to_numpy() * 1000 - rng.integers(40, 900, size=n_calls)
    voice_purpose = np.where(is_fb, purpose[np.maximum(fb, 0)] if n_sms else "verification", "verification")
    voice = {
        "event_id": _ids_arrow("evt_v", n_calls),
        "_ms": pa.array(call_ms),
        "channel": pa.array(np.full(n_calls, "voice", dtype=object), pa.string()),
        "purpose": pa.array(voice_purpose.astype(object), pa.string()),
        "template_id": pa.array(np.full(n_calls, "voice_otp", dtype=object), pa.string()),
        "experiment_id": pa.nulls(n_calls, pa.string()),
        "variant": pa.nulls(n_calls, pa.string()),
        "campaign_id": pa.nulls(n_calls, pa.string()),
        "_user": pa.array(calls["user_idx"].to_numpy().astype(np.int64)),
        "provider_sid": pa.array(calls["sid"]).cast(pa.string()),
        "fallback_of": pc.if_else(pa.array(is_fb), sms_event.take(pa.array(np.maximum(fb, 0))) if n_sms
                                  else pa.nulls(n_calls, pa.string()), pa.scalar(None, pa.string())),
    }
    # Push and email attempts, with no provider sid.
    n_other = int(n_sms * scenario.other_channels_share)
    ou = rng.integers(0, len(users), size=n_other)
    o_ms = np.sort(rng.integers(t0 * 1000, t1 * 1000 - 1000, size=n_other))
    o_channel = np.where(rng.random(n_other) < 0.6, "push", "email").astype(object)
    o_purpose = np.where(rng.random(n_other) < 0.7, "account_alert", "marketing").astype(object)
    other = {
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

    # Conversions: one per converting attempt, minutes after the outcome.
    delivered = msgs["status"].cat.codes.to_numpy() == 0
    p_del = np.array([PURPOSES[p]["p_del"] for p in purposes])[p_codes]
    p_not = np.array([PURPOSES[p]["p_not"] for p in purposes])[p_codes]
    iso = list(msgs["country"].cat.categories)
    ccodes = msgs["country"].cat.codes.to_numpy()
    for ei, exp in enumerate(exps):
        if exp.conversion_lift:
            region = np.isin(ccodes, [iso.index(c) for c in exp.countries if c in iso]) if exp.countries else True
            sel = (e_idx == ei) & (v_idx == 1) & region
            p_del = np.where(sel, p_del + exp.conversion_lift, p_del)
    conv_sms = rng.random(n_sms) < np.where(delivered, p_del, p_not)
    conv_kind = np.array([PURPOSES[p]["conversion"] for p in purposes], dtype=object)
    c_ms_sms = (np.maximum(msgs["final_at"].to_numpy(), msgs["date_created"].to_numpy()) * 1000
                + (rng.exponential(240, size=n_sms) * 1000).astype(np.int64))
    completed = calls["status"].cat.codes.to_numpy() == 0
    human = calls["answered_by"].cat.codes.to_numpy() == 0
    conv_call = rng.random(n_calls) < np.where(completed & human, 0.72, np.where(completed, 0.2, 0.02))
    c_ms_call = calls["end_time"].to_numpy() * 1000 + (rng.exponential(90, size=n_calls) * 1000).astype(np.int64)
    alert = o_purpose == "account_alert"
    conv_other = rng.random(n_other) < np.where(alert, 0.15, 0.02)
    c_ms_other = o_ms + (rng.exponential(600, size=n_other) * 1000).astype(np.int64)
    conv_ms = np.concatenate([c_ms_sms[conv_sms], c_ms_call[conv_call], c_ms_other[conv_other]])
    conv_user = np.concatenate([msgs["user_idx"].to_numpy()[conv_sms], calls["user_idx"].to_numpy()[conv_call],
                                ou[conv_other]]).astype(np.int64)
    conv_type = np.concatenate([
        conv_kind[p_codes[conv_sms]],
        np.array([PURPOSES[p]["conversion"] for p in voice_purpose[conv_call]], dtype=object),
        np.where(alert[conv_other], "alert_acknowledged", "campaign_click").astype(object),
    ])
    # Which attempt each conversion answers (for ground truth): channel code * 2**40 + row.
    conv_attempt = np.concatenate([np.flatnonzero(conv_sms), (1 << 40) + np.flatnonzero(conv_call),
                                   (2 << 40) + np.flatnonzero(conv_other)]).astype(np.int64)
    keep = conv_ms < t1 * 1000
    order = np.argsort(conv_ms[keep], kind="stable")
    conv_ms, conv_user, conv_type, conv_attempt = (x[keep][order] for x in (conv_ms, conv_user, conv_type, conv_attempt))
    converted_msg = np.zeros(n_sms, dtype=bool)
    sms_conv = conv_attempt[conv_attempt < (1 << 40)]
    converted_msg[sms_conv] = True
    msgs["converted"] = converted_msg  # ground truth: this SMS attempt led to a conversion
    conv = pd.DataFrame({
        "event_id": _ids_arrow("cnv_", len(conv_ms)).to_pandas(),
        "user_id": uid.take(pa.array(conv_user)).to_pandas(),
        "conversion_type": pd.Series(conv_type, dtype="str"),
        "occurred_at": iso_ms(conv_ms),
        "_ms": conv_ms,
        "_attempt": conv_attempt,
    })

    table = pa.concat_tables([pa.table(sms), pa.table(voice), pa.table(other)])
    table = table.take(pc.sort_indices(table, sort_keys=[("_ms", "ascending")]))
    users_idx = table.column("_user")
    table = table.append_column("user_id", uid.take(users_idx))
    table = table.append_column("country", ucountry.take(users_idx))
    table = table.append_column("locale", ulocale.take(users_idx))
    table = table.append_column("sent_at", iso_ms_arrow(table.column("_ms").to_numpy()))
    cols = ["event_id", "sent_at", "channel", "purpose", "template_id", "experiment_id", "variant", "campaign_id",
            "user_id", "country", "locale", "provider_sid", "fallback_of", "_ms"]
    log = table.select(cols).to_pandas()
    return log, conv


# ----------------------------------------------------------------------------- ground truth


def _rate(mask_num: np.ndarray, mask_den: np.ndarray) -> float | None:
    d = int(mask_den.sum())
    return None if d == 0 else round(float((mask_num & mask_den).sum()) / d, 4)


def _ground_truth(world: World) -> dict[str, Any]:
    sc = world.scenario
    m = world.messages
    t0 = int(world.start.timestamp())
    day = (m["date_created"].to_numpy() - t0) // 86400
    status = m["status"].astype(object).to_numpy()
    err = m["error_code"].to_numpy()
    country = m["country"].astype(object).to_numpy()
    carrier = m["carrier"].astype(object).to_numpy()
    delivered = status == "delivered"
    per_country = (
        pd.DataFrame({"country": country, "delivered": delivered})
        .groupby("country", observed=True)["delivered"].agg(["mean", "size"])
    )
    incidents = []
    for inc in sc.incidents:
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
        incidents.append(entry)
    experiments = []
    log = world.send_log
    conv_by_msg = m["converted"].to_numpy()
    e_idx = m["experiment_idx"].to_numpy()
    v_idx = m["variant_idx"].to_numpy()
    for ei, exp in enumerate(sc.experiments):
        entry = asdict(exp)
        region = np.isin(country, list(exp.countries)) if exp.countries else np.ones(len(m), bool)
        arms: dict[str, dict[str, Any]] = {}
        for vi, vname in enumerate(exp.variants):
            for label, reg in (("in_region", region), ("outside_region", ~region)):
                sel = (e_idx == ei) & (v_idx == vi) & reg
                arms.setdefault(vname, {})[label] = {
                    "attempts": int(sel.sum()),
                    "delivery_rate": _rate(delivered, sel),
                    "conversion_rate": _rate(conv_by_msg, sel),
                }
        base = PURPOSES[exp.purpose]
        entry["true_conversion_rate_if_delivered"] = {
            exp.variants[0]: base["p_del"], exp.variants[1]: round(base["p_del"] + exp.conversion_lift, 4)
        }
        entry["observed"] = arms
        experiments.append(entry)
    calls = world.calls
    fb = calls["fallback_of_msg"].to_numpy() >= 0
    return {
        "seed": sc.seed,
        "start": world.start.isoformat().replace("+00:00", "Z"),
        "end": world.end.isoformat().replace("+00:00", "Z"),
        "days": sc.days,
        "messages": len(m),
        "calls": len(calls),
        "send_log_events": len(log),
        "conversions": len(world.conversions),
        "countries": sorted(set(country.tolist())),
        "accounts": [{"sid": a["sid"], "friendly_name": a["friendly_name"], "subaccount": a["subaccount"]}
                     for a in world.accounts],
        "status_counts": {k: int(v) for k, v in pd.Series(status).value_counts().items()},
        "error_code_counts": {int(k): int(v) for k, v in pd.Series(err[err > 0]).value_counts().items()},
        "delivery_rate_by_country": {k: round(float(r["mean"]), 4) for k, r in per_country.iterrows()},
        "true_delivery_rate_by_country": {c: COUNTRY_BY_ISO[c].delivery_rate for c in sorted(set(country.tolist()))},
        "incidents": incidents,
        "experiments": experiments,
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
        "known_issues": [
            {"kind": "unregistered_sender", "country": "US", "error_code": 30034,
             "sender": _unregistered_sender(world),
             "observed_error_rate": _rate(err == 30034, (country == "US") & (m["from"].astype(object).to_numpy()
                                                                              == _unregistered_sender(world)))},
            {"kind": "opt_out", "error_code": 21610, "members": int(world.users["opted_out"].sum())},
        ],
    }


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
