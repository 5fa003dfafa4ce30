"""Voice: how calls end, how long they last, how many reach a machine, what they cost.

Reads ``call_facts`` (every outbound call, fallback calls included). Outcomes are
Twilio's final call statuses; ``answer_rate = completed / (completed + busy +
no_answer + failed + canceled)`` (calls still ringing or in progress are left out).
Durations are of completed calls. ``machine_share`` = completed calls answered by a
machine or fax / completed calls (answering-machine detection must be on).

Which path answers (``analytics._sql.counted``): for a period of whole UTC days (``date`` values)
and filters on countries, purposes, templates, channels or the extra columns carrier, region and
status, the counts come from ``_daily_call_rollup`` (calls pre-counted per day and outcome, built by
``ingest.warehouse.refresh_facts``), else from ``call_facts`` counted one per row; the durations from
``_daily_call_duration_rollup`` (completed calls counted per day, country and exact duration;
``call_facts`` when purposes or templates are filtered). The quantiles are read off those counts
either way: the same values as ``quantile_cont`` (to the last bit of the interpolation).
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
    df = _sql.query(con, "voice_outcomes", start, end, filters, key=key)
    # completed calls counted per exact duration (the duration rollup, or call_facts when it cannot
    # answer, e.g. a purpose filter), the quantiles read off the cumulative counts with quantile_cont's rule
    sql, params = _sql.counted_sql(con, "voice_durations", start, end, filters, key=key)
    d = con.execute(sql, params).fetchnumpy()
    q = quantiles_from_counts(np.asarray(d["key"], dtype=object), np.asarray(d["x"]), np.asarray(d["n"]))
    none = (float("nan"),) * 3
    stats = np.array([q[k][:3] if k in q else none for k in df["key"].tolist()], dtype="float64").reshape(-1, 3)
    df["duration_p50_s"], df["duration_p90_s"], df["duration_mean_s"] = stats[:, 0], stats[:, 1], stats[:, 2]
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
