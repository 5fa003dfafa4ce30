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


# Twilio's final call statuses -> their count column; any other status (queued, ringing, in-progress)
# counts as in_progress, a NULL status only in calls.
_FINAL = {"completed": "completed", "busy": "busy", "no-answer": "no_answer", "failed": "failed",
          "canceled": "canceled"}


def _pivot(cells: list[tuple]) -> dict[object, dict[str, float]]:
    """(key, status, is_machine, n, cost_usd) cells -> key -> its count columns and cost_usd."""
    out: dict[object, dict[str, float]] = {}
    for key, status, is_machine, n, cost in cells:
        c = out.get(key)
        if c is None:
            c = out[key] = dict.fromkeys(_COUNTS, 0) | {"cost_usd": 0.0}
        c["calls"] += n
        if status is not None:
            c[_FINAL.get(status, "in_progress")] += n
        if status == "completed" and is_machine:
            c["machine_answered"] += n
        if cost is not None:
            c["cost_usd"] += cost
    return out


def _outcomes(con, key: str, start: date, end: date, filters: Filters | None) -> dict[str, list | np.ndarray]:
    """Per ``key`` value, ordered by calls (descending) then key: ``key`` and every OUTCOME_COLUMNS column.

    Columns, not a frame: the callers build their frame once (pandas' column-by-column inserts cost
    more than both queries' planning at 10M messages)."""
    sql, params = _sql.counted_sql(con, "voice_outcomes", start, end, filters, key=key)
    per_key = _pivot(con.execute(sql, params).fetchall())
    keys = sorted(per_key, key=lambda k: (-per_key[k]["calls"], k is None, k if k is not None else ""))
    cols: dict[str, list | np.ndarray] = {"key": keys}
    for c in _COUNTS:
        cols[c] = np.array([per_key[k][c] for k in keys], dtype="int64")
    # completed calls counted per exact duration (the duration rollup, or call_facts when it cannot
    # answer, e.g. a purpose filter), the quantiles read off the cumulative counts with quantile_cont's rule
    sql, params = _sql.counted_sql(con, "voice_durations", start, end, filters, key=key)
    d = con.execute(sql, params).fetchnumpy()
    q = quantiles_from_counts(np.asarray(d["key"], dtype=object), np.asarray(d["x"]), np.asarray(d["n"]))
    none = (float("nan"),) * 3
    stats = np.array([q[k][:3] if k in q else none for k in keys], dtype="float64").reshape(-1, 3)
    for j, c in enumerate(("duration_p50_s", "duration_p90_s", "duration_mean_s")):
        cols[c] = stats[:, j]
    final = sum(cols[c].astype("float64") for c in ("completed", "busy", "no_answer", "failed", "canceled"))
    completed = cols["completed"].astype("float64")
    cols["answer_rate"] = safe_div(completed, final)
    cols["answer_ci_low"], cols["answer_ci_high"] = wilson_interval(completed, final)
    cols["machine_share"] = safe_div(cols["machine_answered"], completed)
    cols["cost_usd"] = np.array([per_key[k]["cost_usd"] for k in keys], dtype="float64")
    cols["cost_per_answered"] = safe_div(cols["cost_usd"], completed)
    return cols


def _country_names(con, keys: list) -> tuple[list, list]:
    """iso3 and name of each iso2 in ``keys`` (None where unknown): one fetch of the 250-row dimension."""
    rows = con.execute("SELECT iso2, iso3, name FROM countries").fetchall()
    names = {iso2: (iso3, name) for iso2, iso3, name in rows}
    found = [names.get(k, (None, None)) for k in keys]
    return [f[0] for f in found], [f[1] for f in found]


def voice_by_country(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """Call outcomes per callee country.

    Columns: country_iso2, country_iso3, country_name, calls, completed, busy,
    no_answer, failed, canceled, in_progress, answer_rate, answer_ci_low,
    answer_ci_high (95 % Wilson), duration_p50_s, duration_p90_s, duration_mean_s,
    machine_answered, machine_share, cost_usd, cost_per_answered. Ordered by calls,
    descending.
    """
    cols = _outcomes(con, "country_iso2", start, end, filters)
    if not cols["key"]:
        return _sql.empty(COUNTRY_COLUMNS)
    cols["country_iso2"] = cols.pop("key")
    cols["country_iso3"], cols["country_name"] = _country_names(con, cols["country_iso2"])
    return pd.DataFrame({c: cols[c] for c in COUNTRY_COLUMNS})


def voice_summary(con, *, start: date, end: date, filters: Filters | None = None) -> pd.DataFrame:
    """The same outcome columns as voice_by_country for all calls, in one row (zeros when none)."""
    cols = _outcomes(con, "'all'", start, end, filters)
    if not cols["key"]:
        row = {c: 0 for c in _COUNTS} | {"cost_usd": 0.0}
        return pd.DataFrame([{c: row.get(c, float("nan")) for c in SUMMARY_COLUMNS}])
    return pd.DataFrame({c: cols[c] for c in SUMMARY_COLUMNS})
