"""Delivery: how many messages were sent, delivered, failed or still pending, and at what cost.

Definitions (used by every analytics module):

* **sent**: every outbound SMS in ``message_facts`` whose ``sent_at`` falls in the
  period, whatever its status.
* **delivered**: status delivered or read. **undelivered** / **failed**: Twilio's two
  final failure statuses. **pending**: not final yet (queued, sending, sent, …).
  **canceled**: canceled before sending. sent = delivered + undelivered + failed +
  pending + canceled.
* **delivery_rate = delivered / (delivered + undelivered + failed)**: only messages
  whose outcome is known. Pending messages are *not* in the denominator (they would
  make the last day look bad until receipts arrive); they are reported separately.
  ``rate_ci_low``/``rate_ci_high`` are the 95 % Wilson interval of that rate.
* **cost_usd**: sum of priced messages (unpriced ones count 0);
  **cost_per_delivered = cost_usd / delivered**.

Periods are inclusive UTC days ``start``..``end``.

Which path answers: when the period is whole UTC days (``date`` values) and every filter
is on countries, purposes, templates, channels or the extra columns carrier, region,
error_code, error_category and status, ``summary``, ``summary_with_change`` and
``delivery_by`` on day, week, country, purpose, template, carrier, error_category or
region read ``_daily_message_rollup`` (message_facts pre-counted per day, built by
``ingest.warehouse.refresh_facts``), and ``delivery_by("channel")`` reads
``_daily_attempt_rollup``: the same numbers. Otherwise (a datetime period, another
filter, ``by`` sender or variant, or a warehouse without an up-to-date rollup:
``analytics._sql.rollup_ready``) they read the views. ``latency_by_country`` reads
``_daily_latency_rollup`` (delivered SMS counted per day, country, region, carrier and exact
latency) under the same conditions but with no purpose or template filter and extra filters
on carrier or region only, else ``message_facts``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import (
    quantiles_from_counts,
    relative_change,
    safe_div,
    two_proportion_z,
    wilson_interval,
)

COUNT_COLUMNS = ["sent", "delivered", "undelivered", "failed", "pending", "canceled"]
RATE_COLUMNS = ["delivery_rate", "rate_ci_low", "rate_ci_high", "cost_usd", "cost_per_delivered"]
SUMMARY_COLUMNS = ["sent", "delivered", "undelivered", "failed", "pending", "canceled",
                   "delivery_rate", "rate_ci_low", "rate_ci_high", "cost_usd", "cost_per_delivered"]

# Grouping dimensions on message_facts: public name -> SQL expression (the allow-list).
DIMENSIONS: dict[str, str] = {
    "day": "sent_day",
    "week": "CAST(date_trunc('week', sent_day) AS DATE)",
    "country": "country_iso2",
    "channel": "channel",  # answered from attempt_facts (every channel), see delivery_by
    "purpose": "purpose",
    "template": "template_id",
    "sender": "sender",
    "carrier": "carrier",
    "error_category": "error_category",
    "region": "region",
    "variant": "variant",
}


def add_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Add delivery_rate, its Wilson interval and cost_per_delivered to a frame of counts."""
    final = df["delivered"].to_numpy("float64") + df["undelivered"].to_numpy("float64") + df["failed"].to_numpy(
        "float64")
    df["delivery_rate"] = safe_div(df["delivered"].to_numpy("float64"), final)
    low, high = wilson_interval(df["delivered"].to_numpy("float64"), final)
    df["rate_ci_low"], df["rate_ci_high"] = low, high
    df["cost_usd"] = df["cost_usd"].astype("float64")
    df["cost_per_delivered"] = safe_div(df["cost_usd"].to_numpy("float64"), df["delivered"].to_numpy("float64"))
    for c in COUNT_COLUMNS:
        df[c] = df[c].astype("int64")
    return df


# The dimensions _daily_message_rollup keeps (sender and variant are not in it: they would multiply
# its rows; delivery_by on them reads message_facts).
ROLLUP_DIMENSIONS = frozenset({"day", "week", "country", "purpose", "template", "carrier", "error_category",
                               "region"})


def _counts_any(con, start: date, end: date, filters: Filters | None, key: str = "'all'",
                split_at: date | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """delivery_counts for [start, end] over the counted messages (``_sql.counted``: the daily rollup
    when it can answer and keeps ``columns``, else message_facts; same frame). ``split_at``: label rows
    sent on or after that day 'cur', others 'prev'."""
    period = "'all'" if split_at is None else "CASE WHEN is_current THEN 'cur' ELSE 'prev' END"
    return _sql.query(con, "delivery_counts", start, end, filters, split_at=split_at, columns=columns, key=key,
                      period=period)


def summary(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """One row describing SMS delivery in the period.

    Columns: sent, delivered, undelivered, failed, pending, canceled, delivery_rate,
    rate_ci_low, rate_ci_high, cost_usd, cost_per_delivered.
    Always exactly one row: an empty period gives zero counts and NaN rates.
    """
    df = _counts_any(con, start, end, filters)
    if df.empty:
        df = pd.DataFrame([{c: 0 for c in COUNT_COLUMNS} | {"cost_usd": 0.0}])
    return add_rates(df)[SUMMARY_COLUMNS].reset_index(drop=True)


def summary_with_change(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """``summary`` for the period next to the previous period of equal length.

    One row. For every summary column ``c``: ``c`` (this period), ``c_prev`` (previous
    period) and ``c_change``: the relative change (current - prev) / prev for counts and
    costs (NaN when prev is 0), and the absolute difference in rate points for
    delivery_rate (0.96 -> 0.81 gives -0.15). Also prev_start, prev_end and
    delivery_rate_p_value (two-sided two-proportion z test of the two rates).
    One pass over both periods.
    """
    prev_start, prev_end = _sql.previous_period(start, end)
    df = _counts_any(con, prev_start, end, filters, split_at=start)
    rows = {}
    for period in ("cur", "prev"):
        part = df[df["period"] == period]
        if part.empty:
            part = pd.DataFrame([{c: 0 for c in COUNT_COLUMNS} | {"cost_usd": 0.0}])
        rows[period] = add_rates(part.reset_index(drop=True))[SUMMARY_COLUMNS].iloc[0]
    out: dict[str, object] = {}
    for c in SUMMARY_COLUMNS:
        cur, prev = rows["cur"][c], rows["prev"][c]
        if c in COUNT_COLUMNS:
            cur, prev = int(cur), int(prev)
        out[c] = cur
        out[f"{c}_prev"] = prev
        if c in ("delivery_rate", "rate_ci_low", "rate_ci_high"):
            out[f"{c}_change"] = cur - prev
        else:
            out[f"{c}_change"] = float(relative_change(cur, prev))
    cur_final = rows["cur"]["delivered"] + rows["cur"]["undelivered"] + rows["cur"]["failed"]
    prev_final = rows["prev"]["delivered"] + rows["prev"]["undelivered"] + rows["prev"]["failed"]
    test = two_proportion_z(rows["cur"]["delivered"], cur_final, rows["prev"]["delivered"], prev_final)
    out["delivery_rate_p_value"] = float(test.p_value)
    out["prev_start"], out["prev_end"] = prev_start, prev_end
    return pd.DataFrame([out])


def summary_with_change_columns() -> list[str]:
    cols = []
    for c in SUMMARY_COLUMNS:
        cols += [c, f"{c}_prev", f"{c}_change"]
    return cols + ["delivery_rate_p_value", "prev_start", "prev_end"]


def delivery_by(con, *, start: date, end: date, by: str = "day", filters: Filters | None = None) -> pd.DataFrame:
    """Delivery counts and rates per value of one dimension.

    ``by``: one of day, week, country, channel, purpose, template, sender, carrier,
    error_category, region, variant (unknown names raise ValueError). ``channel`` reads
    ``attempt_facts`` (every send attempt: an answered call counts as delivered; busy,
    no-answer, failed or canceled calls as failed; push/email as pending since they
    have no receipts); every other dimension reads SMS in ``message_facts``.

    Columns: <by> (the dimension value, named after the dimension: day, week, country
    (ISO-2), …), sent, delivered, undelivered, failed, pending, canceled, delivery_rate,
    rate_ci_low, rate_ci_high, cost_usd, cost_per_delivered. Ordered by the dimension;
    for day and week every day/week of the period is present (zeros) once there is data.
    """
    key = _sql.dimension(DIMENSIONS, by)
    columns = [by] + SUMMARY_COLUMNS
    if by == "channel":
        df = _sql.query(con, "delivery_by_channel", start, end, filters)
    else:  # sender and variant are not kept by the rollup: their column makes counted() read the facts
        df = _counts_any(con, start, end, filters, key=key, columns=() if by in ROLLUP_DIMENSIONS else (key,))
    if df.empty:
        return _sql.empty(columns)
    df = df.drop(columns=["period"]).rename(columns={"key": by})
    if by in ("day", "week"):
        df = _fill_calendar(df, by, start, end)
    return add_rates(df)[columns].reset_index(drop=True)


def _fill_calendar(df: pd.DataFrame, by: str, start: date, end: date) -> pd.DataFrame:
    # a period given as datetimes covers the UTC days it touches
    start, end = ((d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UTC).date() if isinstance(d, datetime) else d
                  for d in (start, end))
    if by == "day":
        calendar = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    else:
        first = start - timedelta(days=start.weekday())
        calendar = [first + timedelta(weeks=i) for i in range(((end - first).days // 7) + 1)]
    df[by] = pd.to_datetime(df[by]).dt.date
    full = pd.DataFrame({by: calendar})
    df = full.merge(df, on=by, how="left")
    for c in COUNT_COLUMNS + ["cost_usd"]:
        df[c] = df[c].fillna(0)
    return df


LATENCY_COLUMNS = ["country_iso2", "country_name", "delivered", "latency_p50_s", "latency_p90_s", "latency_mean_s"]


def latency_by_country(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """Time to deliver per recipient country: seconds from sent to the delivered receipt.

    Delivered SMS only. Columns: country_iso2, country_name, delivered (messages
    measured), latency_p50_s, latency_p90_s (linear-interpolated quantiles),
    latency_mean_s. Ordered by delivered, descending.
    """
    # messages counted per exact latency (whole-second receipts: a few hundred values per country), the
    # quantiles read off the cumulative counts with quantile_cont's rule (stats_basic.quantiles_from_counts)
    sql, params = _sql.counted_sql(con, "latency_counts", start, end, filters)
    v = con.execute(sql, params).fetchnumpy()
    q = quantiles_from_counts(np.asarray(v["country_iso2"], dtype=object), np.asarray(v["x"]), np.asarray(v["n"]))
    if not q:
        return _sql.empty(LATENCY_COLUMNS)
    df = pd.DataFrame([(k, total, p50, p90, mean) for k, (p50, p90, mean, total) in q.items()],
                      columns=["country_iso2", "delivered", "latency_p50_s", "latency_p90_s", "latency_mean_s"])
    df = df.sort_values(["delivered", "country_iso2"], ascending=[False, True], na_position="last", kind="stable")
    df = _sql.add_country_names(con, df)
    df["delivered"] = df["delivered"].astype("int64")
    return df[LATENCY_COLUMNS].reset_index(drop=True)


__all__ = [
    "DIMENSIONS",
    "SUMMARY_COLUMNS",
    "add_rates",
    "delivery_by",
    "latency_by_country",
    "summary",
    "summary_with_change",
]

