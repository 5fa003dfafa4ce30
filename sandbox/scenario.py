"""What a sandbox world is made of: the knobs of a ``Scenario`` (incidents, experiments,
accounts) and the ``World`` that ``switchboard.sandbox.world.generate`` builds from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd


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
    opt_out_multiplier: float = 1.0  # the treatment's members reply with opt-out keywords this many times as often
    # Issue 19: a second region where the treatment's conversion lift differs (an opposite sign: the
    # variant helps in ``countries`` and hurts in these).
    opposite_countries: tuple[str, ...] = ()
    opposite_region_name: str = ""
    opposite_conversion_lift: float = 0.0


@dataclass(frozen=True)
class Pumping:
    """An SMS-pumping episode (sandbox/pumping.py): someone makes our sign-up and password-reset forms send
    one-time codes to a few number ranges they are paid for. The codes go to sequential numbers of new
    member ids, are delivered, and are never used."""

    country: str
    days_before_end: float = 1.5  # starts this long before the end of the history (clipped to it)
    hours: float = 30.0  # lasts this long
    share: float = 0.008  # pumped SMS as a share of the history's messages (1,600 of the default 200,000)
    ranges: int = 2  # number ranges pumped (each inside one carrier prefix of the country)


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
# Nigeria: a costly destination (about 29 cents a segment), so pumping pays there. From 36 hours before the end
# for 30 hours: the last day's alert window still holds most of it, so the demo's Alerts page shows it open.
DEFAULT_PUMPING: tuple[Pumping, ...] = (Pumping("NG"),)
LATAM = ("BR", "MX", "CO", "AR", "PE", "CL")
DEFAULT_EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("exp_pr_short_template", "password_reset", ("control", "short"), ("pr_standard", "pr_short"),
               countries=LATAM, region_name="LATAM", conversion_lift=0.1),
    Experiment("exp_alpha_sender", "verification", ("long_code", "alpha_sender"), ("ver_code", "ver_code"),
               countries=("IN", "PK", "BD"), region_name="South Asia", delivery_lift=-0.08,
               treatment_sender="alpha"),
    # Issue 18: an urgent marketing wording converts a little better and makes three times as many
    # members reply STOP: the opt-out guardrail must stop it shipping.
    Experiment("exp_mkt_urgency", "marketing", ("control", "urgent"), ("mkt_promo", "mkt_promo_urgent"),
               conversion_lift=0.01, opt_out_multiplier=3.0),
    # Issue 19: a direct sign-in alert helps in North America, Europe and Australia and hurts in South and
    # Southeast Asia. Better overall, but its effect differs by country: the Experiments page must flag it,
    # and the decision is Discuss (ship only where it helps), not Ship.
    Experiment("exp_alert_wording", "account_alert", ("control", "direct"), ("alert_login", "alert_login"),
               countries=("US", "CA", "GB", "DE", "FR", "ES", "IT", "AU"),
               region_name="North America, Europe and Australia", conversion_lift=0.08,
               opposite_countries=("IN", "ID", "PH", "PK", "BD", "VN"), opposite_region_name="South and Southeast Asia",
               opposite_conversion_lift=-0.08),
)
# Issue 19: each member's engagement, fixed for the whole history, moves their chance to convert on
# every SMS by engagement * min(p, 1 - p) (uniform in +/-MEMBER_ENGAGEMENT_SPREAD; the mean rate is
# unchanged). So a member's conversions before an experiment predict theirs in it: CUPED's pre-period.
MEMBER_ENGAGEMENT_SPREAD = 0.9
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
    opt_out_share: float = 0.006  # members who replied STOP before the history: every SMS to them fails with 21610
    replies: bool = True  # members reply (STOP, START, HELP, free text): inbound messages; see sandbox/replies.py
    pumping: tuple[Pumping, ...] = DEFAULT_PUMPING  # SMS-pumping episodes; see sandbox/pumping.py

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
    opted_out: set[tuple[int, str]] = field(default_factory=set)  # (member row, our number) opted out at the end
    # SMS-pumping episodes drawn (sandbox/pumping.py): index, episode, ranges (E.164 prefixes), start, end
    pumping: list[dict[str, Any]] = field(default_factory=list)

    @property
    def account_sids(self) -> list[str]:
        return [a["sid"] for a in self.accounts]


def seeded_hex(seed: int, label: str, n: int = 32) -> str:
    return hashlib.sha256(f"switchboard-sandbox:{seed}:{label}".encode()).hexdigest()[:n]


def account_credentials(seed: int, specs: tuple[AccountSpec, ...]) -> list[dict[str, Any]]:
    out = []
    for i, spec in enumerate(specs):
        out.append(
            {
                "sid": "AC" + seeded_hex(seed, f"account:{i}"),
                "auth_token": seeded_hex(seed, f"token:{i}"),
                "friendly_name": spec.friendly_name,
                "subaccount": spec.subaccount,
            }
        )
    parent = out[0]["sid"]
    for a in out:
        a["owner_account_sid"] = parent
    return out
