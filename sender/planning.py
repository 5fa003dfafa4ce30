"""What a campaign will send, to whom, in which variant and language, and what it may cost.

Pure functions over a loaded ``Campaign``: no network, no files. ``planned_sends`` is
what the runner executes; ``plan`` is the same as a display-safe DataFrame (numbers
masked) for the dry run and the dashboard's preview; ``plan_totals`` sums it per country.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pandas as pd

from switchboard.core.phones import mask_number  # the UI's one masking style, re-exported
from switchboard.core.segments import segment_info
from switchboard.sender.assignment import assign_variant
from switchboard.sender.campaign import Campaign, Recipient, Variant, say_language
from switchboard.sender.prices import sms_price

__all__ = [
    "PLAN_COLUMNS",
    "TOTAL_COLUMNS",
    "PlannedSend",
    "event_id_for",
    "idempotency_key",
    "mask_number",
    "plan",
    "plan_totals",
    "planned_sends",
    "say_language_for",
]

# A fixed namespace so event ids are the same on every run: a resumed campaign re-derives them.
_EVENT_NAMESPACE = uuid.UUID("5b0f8c1e-3d7a-4c52-9a51-6f3e2d7c9b10")

PLAN_COLUMNS = [
    "user_id",
    "number_masked",
    "country",
    "locale",
    "language",
    "variant",
    "template_id",
    "encoding",
    "segments",
    "unit_price_usd",
    "estimated_cost_usd",
    "price_known",
    "allowed",
    "opted_out",
    "say_language",
    "body",
]
TOTAL_COLUMNS = ["country", "recipients", "segments", "estimated_cost_usd", "price_known"]


@dataclass(frozen=True)
class PlannedSend:
    recipient: Recipient
    variant: Variant
    language: str  # the body's language tag actually used
    body: str
    country: str | None
    key: str
    event_id: str


def idempotency_key(campaign_id: str, user_id: str, step: str) -> str:
    """One key per (campaign, recipient, step): step is ``sms`` or ``voice``."""
    return f"{campaign_id}:{user_id}:{step}"


def event_id_for(key: str) -> str:
    """The send-log event id of an idempotency key: deterministic, so ingest's upsert dedups too."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, key))


def say_language_for(p: PlannedSend) -> str:
    """The <Say> voice: the recipient's own locale when the body is in their language, else the body's."""
    if p.language.split("-")[0].lower() == p.recipient.locale.split("-")[0].lower():
        return say_language(p.recipient.locale)
    return say_language(p.language)


def planned_sends(campaign: Campaign) -> list[PlannedSend]:
    out = []
    for r in campaign.recipients:
        variant = assign_variant(campaign.salt, r.user_id, campaign.variants)
        language, body = variant.body_for(r.locale, campaign.default_language)
        key = idempotency_key(campaign.id, r.user_id, "sms")
        out.append(
            PlannedSend(
                r, variant, language or campaign.default_language, body, r.country, key, event_id_for(key)
            )
        )
    return out


def plan(campaign: Campaign, opted_out: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    """One row per recipient (columns ``PLAN_COLUMNS``); the cost is an estimate from ``sender.prices``.
    ``opted_out``: numbers that opted out of the campaign's sender (``sender.suppression``): not sent."""
    rows = []
    for p in planned_sends(campaign):
        info = segment_info(p.body)
        price, known = sms_price(p.country)
        rows.append(
            {
                "user_id": p.recipient.user_id,
                "number_masked": mask_number(p.recipient.number),
                "country": p.country,
                "locale": p.recipient.locale,
                "language": p.language,
                "variant": p.variant.name,
                "template_id": p.variant.template_id,
                "encoding": info.encoding,
                "segments": info.segments,
                "unit_price_usd": price,
                "estimated_cost_usd": round(price * info.segments, 4),
                "price_known": known,
                "allowed": p.recipient.number in campaign.allow_list,
                "opted_out": p.recipient.number in opted_out,
                "say_language": say_language_for(p) if campaign.fallback else None,
                "body": p.body,
            }
        )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def plan_totals(plan_frame: pd.DataFrame) -> pd.DataFrame:
    """Per country: recipients, segments, estimated cost (USD, SMS only) and whether every price was known."""
    if plan_frame.empty:
        return pd.DataFrame(columns=TOTAL_COLUMNS)
    frame = plan_frame.assign(country=plan_frame["country"].fillna("??"))
    totals = (
        frame.groupby("country", sort=True)
        .agg(
            recipients=("user_id", "size"),
            segments=("segments", "sum"),
            estimated_cost_usd=("estimated_cost_usd", "sum"),
            price_known=("price_known", "all"),
        )
        .reset_index()
    )
    totals["estimated_cost_usd"] = totals["estimated_cost_usd"].round(4)
    return totals[TOTAL_COLUMNS]
