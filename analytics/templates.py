"""Templates: what each template and A/B variant costs, how it is encoded, how well it works.

``segment_info(body)`` (encoding, segments, what forces UCS-2 and what replacing it
would save) lives in ``switchboard.core.segments`` and is re-exported here.

``template_stats`` reads SMS attempts in ``attempt_facts`` (the send log joined to
Twilio's outcome), the only view that has both the template and the conversion.
Delivery rate follows analytics.delivery: delivered / (delivered + undelivered +
failed); conversion_rate = attempts followed by a conversion within the window /
attempts.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import safe_div, wilson_interval
from switchboard.core.segments import SegmentInfo, segment_info

__all__ = ["SEGMENT_PRICE_COLUMNS", "TEMPLATE_COLUMNS", "SegmentInfo", "segment_info", "segment_prices",
           "template_stats"]

TEMPLATE_COLUMNS = [
    "template_id", "variant", "messages", "encoding", "ucs2_share", "avg_segments", "delivered", "failed",
    "delivery_rate", "rate_ci_low", "rate_ci_high", "converted", "conversion_rate", "cost_usd", "cost_per_message",
    "cost_per_delivered",
]


def template_stats(con, *, start: date, end: date, filters: Filters | None = None,
                   by_country: bool = False) -> pd.DataFrame:
    """Per template and variant (and per country with ``by_country=True``): encoding, segments, cost, outcomes.

    Columns: template_id, variant, [country_iso2 when by_country], messages, encoding
    ("GSM-7", "UCS-2", "mixed" when the template's messages differ, e.g. a
    placeholder with an emoji, or NULL when unknown), ucs2_share, avg_segments,
    delivered, failed, delivery_rate, rate_ci_low, rate_ci_high (95 % Wilson),
    converted, conversion_rate, cost_usd, cost_per_message, cost_per_delivered.
    Ordered by messages, descending.
    """
    columns = TEMPLATE_COLUMNS[:2] + (["country_iso2"] if by_country else []) + TEMPLATE_COLUMNS[2:]
    extra = "country_iso2" if by_country else "NULL"
    df = _sql.query(con, "template_stats", start, end, filters, extra_key=extra)
    if df.empty:
        return _sql.empty(columns)
    if by_country:
        df = df.rename(columns={"extra_key": "country_iso2"})
    known = df["known_encoding"].to_numpy("float64")
    ucs2 = df["ucs2_messages"].to_numpy("float64")
    df["ucs2_share"] = safe_div(ucs2, known)
    df["encoding"] = np.select([known == 0, ucs2 == 0, ucs2 == known], [None, "GSM-7", "UCS-2"], default="mixed")
    delivered, failed = df["delivered"].to_numpy("float64"), df["failed"].to_numpy("float64")
    df["delivery_rate"] = safe_div(delivered, delivered + failed)
    df["rate_ci_low"], df["rate_ci_high"] = wilson_interval(delivered, delivered + failed)
    df["conversion_rate"] = safe_div(df["converted"], df["messages"])
    df["cost_usd"] = df["cost_usd"].astype("float64")
    df["cost_per_message"] = safe_div(df["cost_usd"], df["messages"])
    df["cost_per_delivered"] = safe_div(df["cost_usd"], delivered)
    for c in ("messages", "delivered", "failed", "converted"):
        df[c] = df[c].astype("int64")
    return df[columns].reset_index(drop=True)


SEGMENT_PRICE_COLUMNS = ["country_iso2", "country_name", "messages", "priced_segments", "price_per_segment_usd"]


def segment_prices(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """What one SMS segment cost per recipient country in the period, from what Twilio billed
    (``SEGMENT_PRICE_COLUMNS``), for pricing a draft body: its segments x the country's price.

    One row per country with at least one priced message (``message_facts``, the sidebar's
    filters; the channel filter keeps or drops all of it, SMS only). ``messages``: SMS in the
    period (priced or not); ``priced_segments``: segments of the priced ones;
    ``price_per_segment_usd`` = their cost / priced_segments (USD, a segment-weighted mean, so a
    two-segment message counts twice). Most messages first, then by country code.
    """
    where, params = _sql.where_for("message_facts", start, end, filters)
    df = con.execute(
        f"""
        SELECT country_iso2, count(*) AS messages,
               sum(num_segments) FILTER (WHERE cost_usd IS NOT NULL) AS priced_segments,
               sum(cost_usd) FILTER (WHERE num_segments IS NOT NULL) AS priced_cost
        FROM message_facts
        WHERE {where} AND country_iso2 IS NOT NULL
        GROUP BY country_iso2
        HAVING sum(num_segments) FILTER (WHERE cost_usd IS NOT NULL) > 0
        ORDER BY messages DESC, country_iso2
        """,
        params,
    ).df()
    if df.empty:
        return _sql.empty(SEGMENT_PRICE_COLUMNS)
    df = _sql.add_country_names(con, df)
    df["country_name"] = df["country_name"].fillna(df["country_iso2"])
    df["messages"] = df["messages"].astype("int64")
    df["priced_segments"] = df["priced_segments"].astype("int64")
    df["price_per_segment_usd"] = df["priced_cost"].astype("float64") / df["priced_segments"]
    return df[SEGMENT_PRICE_COLUMNS].reset_index(drop=True)
