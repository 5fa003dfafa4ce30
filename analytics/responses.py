"""Responses (issue 18): opt-out, HELP and opt-in rates per template, variant, country, purpose and
campaign, with 95 % Wilson intervals and daily trends; who is opted out now (numbers masked).

The warehouse classifies and links every reply (``responses`` view, ``ingest/responses.sql``). Here a
reply counts for the SMS it answers: ``opt_out_rate`` = delivered SMS answered with an opt-out keyword /
delivered SMS, by the send's day and the send's template, variant, country… (``responses_rates.sql``).
Replies that answer no message of ours are counted in ``response_summary`` only.

A warehouse built before issue 18 has no ``responses`` view: every function returns an empty frame.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import safe_div, two_proportion_z, wilson_interval
from switchboard.core.phones import mask_number

# The groupings a caller may ask for: name -> attempt_facts expression (never user text in SQL).
DIMENSIONS = {
    "template_id": "template_id",
    "variant": "experiment_id || ' · ' || variant",
    "country_iso2": "country_iso2",
    "purpose": "purpose",
    "campaign_id": "campaign_id",
    "experiment_id": "experiment_id",
}
KINDS = ("opt_out", "help", "opt_in", "other")
RATE_COLUMNS = [
    "key", "messages", "delivered", "opt_outs", "opt_out_rate", "opt_out_ci_low", "opt_out_ci_high",
    "helps", "help_rate", "help_ci_low", "help_ci_high", "opt_ins", "others",
]
TREND_COLUMNS = ["day", "key", "delivered", "opt_outs", "opt_out_rate", "opt_out_ci_low", "opt_out_ci_high",
                 "helps", "help_rate"]
SUMMARY_COLUMNS = ["classification", "replies", "linked", "members"]
OPTED_OUT_COLUMNS = ["member", "our_number", "country_iso2", "user_id", "since", "evidence", "keyword"]
SPIKE_COLUMNS = ["key", "delivered", "opt_outs", "opt_out_rate", "baseline_delivered", "baseline_opt_outs",
                 "baseline_rate", "ratio", "p_value"]


def available(con) -> bool:
    """Whether this warehouse has the responses view (built by ingest since issue 18)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'responses'").fetchone()[0])


def _rates(con, start: date, end: date, filters: Filters | None, by: str | None, daily: bool) -> pd.DataFrame:
    key = _sql.dimension(DIMENSIONS, by) if by else "'all'"
    day = "sent_day" if daily else "NULL::DATE"
    where, params = _sql.where_for("attempt_facts", start, end, filters)
    sql = _sql.render("responses_rates", key=key, day=day, where=where)
    return con.execute(sql, params).df()


def _with_rates(df: pd.DataFrame) -> pd.DataFrame:
    delivered = df["delivered"].to_numpy("float64")
    for kind, col in (("opt_out", "opt_outs"), ("help", "helps")):
        k = df[col].to_numpy("float64")
        df[f"{kind}_rate"] = safe_div(k, delivered)
        df[f"{kind}_ci_low"], df[f"{kind}_ci_high"] = wilson_interval(k, delivered)
    for c in ("messages", "delivered", "opt_outs", "helps", "opt_ins", "others"):
        if c in df:
            df[c] = df[c].astype("int64")
    return df


def response_rates(con, *, start: date, end: date, by: str = "template_id",
                   filters: Filters | None = None) -> pd.DataFrame:
    """Per ``by`` (``DIMENSIONS``: template_id, variant, country_iso2, purpose, campaign_id,
    experiment_id) for SMS sent in [start, end]: messages, delivered, opt_outs (delivered SMS answered with
    an opt-out keyword), opt_out_rate with its 95 % Wilson interval, the same for HELP, opt_ins, others.
    ``key`` is the group (``experiment · variant`` for variants; NULL where the attempt has none).
    Most delivered first."""
    if not available(con):
        return _sql.empty(RATE_COLUMNS)
    df = _rates(con, start, end, filters, by, daily=False)
    if df.empty:
        return _sql.empty(RATE_COLUMNS)
    return _with_rates(df)[RATE_COLUMNS].reset_index(drop=True)


def response_trend(con, *, start: date, end: date, by: str | None = None,
                   filters: Filters | None = None) -> pd.DataFrame:
    """Daily opt-out and HELP rates by the send's UTC day (``TREND_COLUMNS``), one series per ``by``
    value (``key`` = 'all' when ``by`` is None). Days without a delivered SMS are absent."""
    if not available(con):
        return _sql.empty(TREND_COLUMNS)
    df = _rates(con, start, end, filters, by, daily=True)
    if df.empty:
        return _sql.empty(TREND_COLUMNS)
    df = _with_rates(df).sort_values(["key", "day"], na_position="last")
    return df[TREND_COLUMNS].reset_index(drop=True)


def response_summary(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """Replies received in [start, end] per classification: replies, linked (answer a message of ours
    within the window), distinct members. Only the country filter applies (a reply has no channel)."""
    if not available(con):
        return _sql.empty(SUMMARY_COLUMNS)
    lo, hi = _sql.day_bounds(start, end)
    params: dict = {"f_start": lo, "f_end": hi}
    country = ""
    if filters and filters.countries:
        country, params["f_countries"] = "AND list_contains($f_countries, country_iso2)", list(filters.countries)
    df = con.execute(_sql.render("responses_summary", country=country), params).df()
    if df.empty:
        return _sql.empty(SUMMARY_COLUMNS)
    return df[SUMMARY_COLUMNS]


def opted_out_members(con, *, limit: int = 1000, countries: tuple[str, ...] = ()) -> tuple[int, pd.DataFrame]:
    """(how many (member, our number) pairs are opted out now, up to ``limit`` of them, newest first).
    ``member`` and ``our_number`` are masked (core.phones.mask_number): phone numbers are PII."""
    if not available(con):
        return 0, _sql.empty(OPTED_OUT_COLUMNS)
    where, params = "", {"limit": int(limit)}
    if countries:
        where, params["countries"] = "WHERE list_contains($countries, country_iso2)", list(countries)
    total = con.execute(f"SELECT count(*) FROM opted_out_members {where}",
                        {k: v for k, v in params.items() if k != "limit"}).fetchone()[0]
    df = con.execute(
        f"""SELECT member_number, our_number, country_iso2, user_id, since, evidence, keyword
            FROM opted_out_members {where} ORDER BY since DESC, member_number LIMIT $limit""", params).df()
    df["member"] = df.pop("member_number").map(mask_number)
    df["our_number"] = df["our_number"].map(mask_number)
    return int(total), df[OPTED_OUT_COLUMNS]


def opt_out_spikes(con, *, start: date, end: date, by: str = "template_id", filters: Filters | None = None,
                   min_delivered: int = 200, alpha: float = 0.01) -> pd.DataFrame:
    """Groups whose opt-out rate in [start, end] rose against the period of equal length before it:
    a one-sided two-proportion z test (``SPIKE_COLUMNS``; ``ratio`` = rate / baseline rate). Only groups
    with ``min_delivered`` delivered SMS in both periods and p < ``alpha``; biggest ratio first."""
    if not available(con):
        return _sql.empty(SPIKE_COLUMNS)
    now = response_rates(con, start=start, end=end, by=by, filters=filters)
    p0, p1 = _sql.previous_period(start, end)
    before = response_rates(con, start=p0, end=p1, by=by, filters=filters)
    df = now.merge(before[["key", "delivered", "opt_outs"]], on="key", suffixes=("", "_b"))
    df = df[(df["delivered"] >= min_delivered) & (df["delivered_b"] >= min_delivered)]
    if df.empty:
        return _sql.empty(SPIKE_COLUMNS)
    test = two_proportion_z(df["opt_outs"], df["delivered"], df["opt_outs_b"], df["delivered_b"],
                            alternative="greater")
    df = df.assign(baseline_delivered=df["delivered_b"], baseline_opt_outs=df["opt_outs_b"],
                   baseline_rate=safe_div(df["opt_outs_b"], df["delivered_b"]), p_value=test.p_value)
    df["ratio"] = safe_div(df["opt_out_rate"], df["baseline_rate"])
    df = df[df["p_value"] < alpha].sort_values("ratio", ascending=False, na_position="first")
    return df[SPIKE_COLUMNS].reset_index(drop=True)


__all__ = ["DIMENSIONS", "KINDS", "available", "opt_out_spikes", "opted_out_members", "response_rates",
           "response_summary", "response_trend"]
