"""Voice: how calls end, how long they last, how many reach a machine, what they cost.

Reads ``call_facts`` (every outbound call, fallback calls included). Outcomes are
Twilio's final call statuses; ``answer_rate = completed / (completed + busy +
no_answer + failed + canceled)`` (calls still ringing or in progress are left out).
Durations are of completed calls. ``machine_share`` = completed calls answered by a
machine or fax / completed calls (answering-machine detection must be on).

Which path answers: for a period of whole UTC days (``date`` values) and filters on
countries, purposes, templates, channels or the extra columns carrier, region and status,
the counts come from ``_daily_call_rollup`` (calls pre-counted per day and outcome, built by
``ingest.warehouse.refresh_facts``) and the durations from ``_daily_call_duration_rollup``
(completed calls counted per day, country and exact duration; ``call_facts`` when purposes or
templates are filtered), the quantiles read off those counts: the same values as
``quantile_cont`` (to the last bit of the interpolation). Otherwise, or when the warehouse has no up-to-date rollup, everything
from ``call_facts``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import quantiles_from_counts, safe_div, wilson_interval

OUTCOME_COLUMNS = [
    "calls", "completed", "busy", "no_answer", "failed", "canceled", "in_progress", "answer_rate",
    "answer_ci_low", "answer_ci_high", "duration_p50_s", "duration_p90_s", "duration_mean_s", "machine_answered",
    "machine_share", "cost_usd", "cost_per_answered",
]
COUNTRY_COLUMNS = ["country_iso2", "country_iso3", "country_name"] + OUTCOME_COLUMNS
SUMMARY_COLUMNS = OUTCOME_COLUMNS
_COUNTS = ["calls", "completed", "busy", "no_answer", "failed", "canceled", "in_progress", "machine_answered"]


def _outcomes(con, key: str, start: date, end: date, filters: Filters | None) -> pd.DataFrame:
    rolled = _sql.rollup_where(con, "_daily_call_rollup", start, end, filters, prefix="r")
    if rolled:  # the same counts, pre-aggregated per day; durations pre-counted per value when possible
        where_r, params = rolled
        by_value = _sql.rollup_where(con, "_daily_call_duration_rollup", start, end, filters, prefix="d")
        if by_value:
            where_d, params_d = by_value
            durations = (f"SELECT {key} AS key, duration_s AS x, sum(n)::BIGINT AS n "
                         f"FROM _daily_call_duration_rollup WHERE {where_d} GROUP BY ALL ORDER BY key, x")
        else:
            where_d, params_d = _sql.where_for("call_facts", start, end, filters)
            durations = (f"SELECT {key} AS key, duration_s AS x, count(*) AS n FROM call_facts "
                         f"WHERE {where_d} AND status = 'completed' AND duration_s IS NOT NULL "
                         f"GROUP BY ALL ORDER BY key, x")
        df = con.execute(_sql.render("voice_outcomes_rollup", key=key, where_r=where_r), params).df()
        d = con.execute(durations, params_d).fetchnumpy()
        q = quantiles_from_counts(np.asarray(d["key"], dtype=object), np.asarray(d["x"]), np.asarray(d["n"]))
        none = (float("nan"),) * 3
        stats = np.array([q[k][:3] if k in q else none for k in df["key"].tolist()], dtype="float64").reshape(-1, 3)
        df["duration_p50_s"], df["duration_p90_s"], df["duration_mean_s"] = stats[:, 0], stats[:, 1], stats[:, 2]
    else:
        where, params = _sql.where_for("call_facts", start, end, filters)
        df = con.execute(_sql.render("voice_outcomes", key=key, where=where), params).df()
    if "duration_q" in df:  # the view's quantile_cont list
        df = _sql.split_quantiles(df, "duration_q", ["duration_p50_s", "duration_p90_s"])
    final = sum(df[c].to_numpy("float64") for c in ("completed", "busy", "no_answer", "failed", "canceled"))
    completed = df["completed"].to_numpy("float64")
    df["answer_rate"] = safe_div(completed, final)
    df["answer_ci_low"], df["answer_ci_high"] = wilson_interval(completed, final)
    df["machine_share"] = safe_div(df["machine_answered"], completed)
    df["cost_usd"] = df["cost_usd"].astype("float64")
    df["cost_per_answered"] = safe_div(df["cost_usd"], completed)
    for c in _COUNTS:
        df[c] = df[c].astype("int64")
    return df


def voice_by_country(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """Call outcomes per callee country.

    Columns: country_iso2, country_iso3, country_name, calls, completed, busy,
    no_answer, failed, canceled, in_progress, answer_rate, answer_ci_low,
    answer_ci_high (95 % Wilson), duration_p50_s, duration_p90_s, duration_mean_s,
    machine_answered, machine_share, cost_usd, cost_per_answered. Ordered by calls,
    descending.
    """
    df = _outcomes(con, "country_iso2", start, end, filters)
    if df.empty:
        return _sql.empty(COUNTRY_COLUMNS)
    df = _sql.add_country_names(con, df.rename(columns={"key": "country_iso2"}), iso3="country_iso3")
    return df[COUNTRY_COLUMNS].reset_index(drop=True)


def voice_summary(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """The same outcome columns as voice_by_country for all calls, in one row (zeros when none)."""
    df = _outcomes(con, "'all'", start, end, filters)
    if df.empty:
        row = {c: 0 for c in _COUNTS} | {"cost_usd": 0.0}
        df = pd.DataFrame([row])
        for c in OUTCOME_COLUMNS:
            if c not in df:
                df[c] = float("nan")
    return df[SUMMARY_COLUMNS].reset_index(drop=True)
