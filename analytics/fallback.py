"""Fallback: how often an SMS attempt fell back to another channel (voice), and what it saved.

A *chain* starts with an SMS attempt that is not itself a fallback (``attempt_facts``,
``channel = 'sms' AND NOT is_fallback``) sent in the period; its fallback is the attempt
whose ``fallback_of`` points to it (sent whenever, so a fallback just after ``end``
still counts). A chain *succeeds* when its SMS is delivered or, failing that, its
fallback is delivered (a call answered). *Rescued* chains are those the fallback alone
saved: SMS not delivered, fallback delivered.

Rates: ``fallback_rate = fell_back_to_voice / sms_attempts``;
``fallback_success_rate = fallback_delivered / fell_back``.
``fell_back`` counts a fallback on any channel; the other fallback columns describe
voice fallbacks (the call whose send-log attempt points back to the SMS, as the sender
writes them). Time to success of a rescued chain: seconds from the first SMS attempt to
the start of the answered fallback call. For chains the
SMS itself delivered, time to success is the delivery latency:
``analytics.delivery.latency_by_country``.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import safe_div

_COUNTS = ["sms_attempts", "sms_delivered", "fell_back", "fell_back_to_voice", "fallback_delivered", "rescued",
           "members_rescued"]
METRIC_COLUMNS = _COUNTS[:4] + ["fallback_rate"] + _COUNTS[4:5] + ["fallback_success_rate"] + _COUNTS[5:] + [
    "reached_rate", "rescue_seconds_p50", "rescue_seconds_p90"]
COUNTRY_COLUMNS = ["country_iso2", "country_name"] + METRIC_COLUMNS


def _names(con) -> pd.Series:
    return con.execute("SELECT iso2, name FROM countries").df().set_index("iso2")["name"]


# The SMS chains that fell back, joined to their fallback call: read from the facts, or from
# _fallback_chain_facts (the same rows, every attempt_facts column, pre-joined by
# ingest.warehouse.refresh_facts) so a 10M warehouse is not scanned twice. Same answer either way.
FELL_FROM_FACTS = ("attempt_facts a JOIN (SELECT event_id, is_answered AS fb_is_answered, started_at AS fb_started_at "
                   "FROM call_facts WHERE fallback_of IS NOT NULL) k ON k.event_id = a.fallback_event_id")
FELL_FROM_TABLE = "_fallback_chain_facts a"


def _has_chain_table(con) -> bool:
    """_fallback_chain_facts exists and is as fresh as the facts (analytics._sql.rollup_ready)."""
    return _sql.USE_ROLLUPS and _sql.rollup_ready(con, "_fallback_chain_facts")


def _chains(con, key: str, start: date, end: date, filters: Filters | None,
            use_table: bool | None = None) -> pd.DataFrame:
    where, params = _sql.where_for("attempt_facts", start, end, filters, alias="a")
    if use_table is None:
        use_table = _has_chain_table(con)
    fell_from = FELL_FROM_TABLE if use_table else FELL_FROM_FACTS
    # the chain counts read the counted attempts (the daily attempt rollup when it can answer)
    sql, counts_params = _sql.counted_sql(con, "fallback_chains", start, end, filters, key=key, where=where,
                                          fell_from=fell_from)
    df = con.execute(sql, params | counts_params).df()
    for c in _COUNTS:
        df[c] = df[c].astype("int64")
    df["fallback_rate"] = safe_div(df["fell_back_to_voice"], df["sms_attempts"])
    df["fallback_success_rate"] = safe_div(df["fallback_delivered"], df["fell_back"])
    df["reached_rate"] = safe_div(df["sms_delivered"] + df["rescued"], df["sms_attempts"])
    return df


def fallback_by_country(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """SMS-to-voice fallback per country.

    Columns: country_iso2, country_name, sms_attempts (chains), sms_delivered,
    fell_back (any fallback), fell_back_to_voice, fallback_rate, fallback_delivered,
    fallback_success_rate, rescued (chains reached only thanks to the fallback),
    members_rescued (distinct members among them), reached_rate ((sms_delivered +
    rescued) / sms_attempts), rescue_seconds_p50/_p90 (first attempt to success, rescued
    chains). Ordered by sms_attempts, descending.
    """
    df = _chains(con, "country_iso2", start, end, filters)
    if df.empty:
        return _sql.empty(COUNTRY_COLUMNS)
    df = df.rename(columns={"key": "country_iso2"})
    df["country_name"] = df["country_iso2"].map(_names(con))
    return df[COUNTRY_COLUMNS].reset_index(drop=True)


def fallback_summary(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """The fallback_by_country metrics over every country, one row (zeros and NaN when empty)."""
    df = _chains(con, "channel", start, end, filters)  # every chain starts with an SMS: one group
    if df.empty:
        df = pd.DataFrame([{c: 0 for c in _COUNTS}])
        for c in METRIC_COLUMNS:
            if c not in df:
                df[c] = float("nan")
    return df[METRIC_COLUMNS].reset_index(drop=True)
