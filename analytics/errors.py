"""Errors: which Twilio error codes cost us deliveries, whether they are new or rising, and what to do.

A **failure** is an SMS whose final status is undelivered or failed (``is_failed``),
attributed to its ``error_code``. ``share_of_failures`` divides by *all* failed
messages of the period (including failures Twilio reported without a code), so the
shares of the listed codes add up to at most 1. ``error_rate`` = failures / sent.
The previous period has the same length and ends the day before ``start``.

"New", "rising" and "falling" have ONE definition (``classify``): the banner of the Errors page
(``new_or_rising_errors``) and the table's trend column (``top_errors``) both read it, so a code is
rising in one exactly when it is in the other; ``trend_explained`` says it in words for the page.

Which path answers: ``top_errors``, ``new_or_rising_errors`` and ``error_trend`` read
``_daily_message_rollup`` (message_facts pre-counted per day) when the period is whole
UTC days and every filter is one it keeps (see ``analytics.delivery``), else
``message_facts``; same numbers. ``error_samples`` always reads ``message_facts``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import benjamini_hochberg, relative_change, safe_div, two_proportion_z

TOP_ERRORS_COLUMNS = [
    "error_code", "error_name", "category", "failures", "share_of_failures", "error_rate", "failures_prev",
    "error_rate_prev", "rate_change", "trend", "retryable", "what_to_do", "more_info",
]
NEW_OR_RISING_COLUMNS = [
    "error_code", "error_name", "category", "status", "failures", "failures_prev", "sent", "sent_prev",
    "error_rate", "error_rate_prev", "rate_ratio", "excess_failures", "p_value", "q_value", "what_to_do",
]
SAMPLE_COLUMNS = ["sid", "sent_at", "country_iso2", "carrier", "sender", "template_id", "status", "error_code"]
TREND_COLUMNS = ["day", "error_code", "error_name", "failures", "sent", "error_rate"]

# ONE definition of "new", "rising" and "falling" serves the Errors page's banner (new_or_rising_errors)
# and its table (top_errors' trend): ``classify``. Defaults: at least 20 failures, a rate at least 1.5x
# (or at most 1/1.5 of) the previous one, and significant after a Benjamini–Hochberg correction over
# every code seen in either period (q <= 0.01).
RISING_ALPHA = 0.01
RISING_MIN_FAILURES = 20
RISING_MIN_RATIO = 1.5
TRENDS = ("new", "rising", "falling", "steady", "too few to tell")


def trend_explained(alpha: float = RISING_ALPHA, min_failures: int = RISING_MIN_FAILURES,
                    min_ratio: float = RISING_MIN_RATIO) -> str:
    """What the trend words mean, in one paragraph for the page (the same thresholds ``classify`` uses)."""
    return (f"**Rising**: the error rate is at least {min_ratio:g}× the previous period's, on at least "
            f"{min_failures} failures, and the rise is significant after a false-discovery correction over every "
            f"code (q ≤ {alpha:g}). **New**: the same test for a code absent in the previous period. **Falling**: "
            f"the mirror (at most 1/{min_ratio:g} of the previous rate, from at least {min_failures} failures). "
            f"**Too few to tell**: under {min_failures} failures in both periods. **Steady**: no such change.")


def _by_code(con, start: date, end: date, filters: Filters | None) -> pd.DataFrame:
    prev_start, _ = _sql.previous_period(start, end)
    long = _sql.query(con, "errors_by_code", prev_start, end, filters, split_at=start)
    columns = ["error_code", "sent", "failed", "sent_prev", "failed_prev", "error_name", "category", "retryable",
               "what_to_do", "more_info"]
    if long.empty:
        return _sql.empty(columns)
    long["error_code"] = long["error_code"].fillna(-1).astype("int64")
    cur = long[long["is_current"]].set_index("error_code")[["sent", "failed"]]
    prev = long[~long["is_current"]].set_index("error_code")[["sent", "failed"]].add_suffix("_prev")
    df = cur.join(prev, how="outer").fillna(0).reset_index()
    catalogue = con.execute("SELECT code AS error_code, name AS error_name, category, retryable, what_to_do, "
                            "more_info FROM error_codes").df()
    df = df.merge(catalogue, on="error_code", how="left")
    df.loc[df["error_code"] >= 0, "category"] = df.loc[df["error_code"] >= 0, "category"].fillna("unknown")
    df["error_code"] = df["error_code"].astype("float64").where(df["error_code"] >= 0)
    return df[columns]


def _code_table(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Split the per-code frame into failing codes and period totals."""
    totals = {c: float(df[c].sum()) for c in ("sent", "failed", "sent_prev", "failed_prev")}
    codes = df[df["error_code"].notna()].copy()
    codes["error_code"] = codes["error_code"].astype("int64")
    return codes, totals


def classify(codes: pd.DataFrame, totals: dict[str, float], *, alpha: float = RISING_ALPHA,
             min_failures: int = RISING_MIN_FAILURES, min_ratio: float = RISING_MIN_RATIO) -> pd.DataFrame:
    """THE trend of every code seen in either period (``codes``: error_code, failed, failed_prev).

    Adds failures, failures_prev, sent, sent_prev, error_rate, error_rate_prev, rate_ratio,
    excess_failures, p_value and q_value (one-sided two-proportion z test that the rate rose,
    Benjamini–Hochberg over these codes) and ``trend`` (``TRENDS``, see ``trend_explained``):
    new / rising when it failed at least ``min_failures`` messages, its rate rose at least
    ``min_ratio`` times (or it is new) and q <= ``alpha``; falling by the mirror test; too few to
    tell under ``min_failures`` failures in both periods; else steady.
    """
    codes = codes.copy()
    f1, f0 = codes["failed"].to_numpy("float64"), codes["failed_prev"].to_numpy("float64")
    up = two_proportion_z(f1, totals["sent"], f0, totals["sent_prev"], alternative="greater")
    down = two_proportion_z(f1, totals["sent"], f0, totals["sent_prev"], alternative="less")
    codes["failures"], codes["failures_prev"] = codes["failed"].astype("int64"), codes["failed_prev"].astype("int64")
    codes["sent"], codes["sent_prev"] = int(totals["sent"]), int(totals["sent_prev"])
    codes["error_rate"], codes["error_rate_prev"] = up.p1, up.p0
    codes["rate_ratio"] = safe_div(up.p1, up.p0)
    codes["excess_failures"] = f1 - np.nan_to_num(up.p0) * totals["sent"]
    codes["p_value"] = up.p_value
    codes["q_value"] = benjamini_hochberg(up.p_value)
    ratio = codes["rate_ratio"].to_numpy("float64")
    is_new = f0 == 0
    rose = (f1 >= min_failures) & (is_new | (np.nan_to_num(ratio, nan=np.inf) >= min_ratio)) & (
        np.nan_to_num(codes["q_value"].to_numpy("float64"), nan=1.0) <= alpha)
    fell = (f0 >= min_failures) & (np.nan_to_num(ratio, nan=np.inf) <= 1 / min_ratio) & (
        np.nan_to_num(benjamini_hochberg(down.p_value), nan=1.0) <= alpha)
    codes["trend"] = np.select([rose & is_new, rose, fell, (f1 < min_failures) & (f0 < min_failures)],
                               ["new", "rising", "falling", "too few to tell"], default="steady")
    return codes


def _classified(con, start: date, end: date, filters: Filters | None, **rule: float) -> tuple[pd.DataFrame,
                                                                                             dict[str, float]]:
    """Every failing code of either period with its ``classify`` columns, and the period totals."""
    df = _by_code(con, start, end, filters)
    if df.empty:
        return df, {}
    codes, totals = _code_table(df)
    codes = codes[(codes["failed"] > 0) | (codes["failed_prev"] > 0)]
    return (classify(codes, totals, **rule) if not codes.empty else codes), totals


def top_errors(con, *, start: date, end: date, filters: Filters | None = None, limit: int = 10,
               alpha: float = RISING_ALPHA, min_failures: int = RISING_MIN_FAILURES,
               min_ratio: float = RISING_MIN_RATIO) -> pd.DataFrame:
    """The error codes behind most failed SMS in the period, with the catalogue's advice.

    Columns: error_code, error_name (official name), category, failures,
    share_of_failures (of all failed messages), error_rate (failures / sent),
    failures_prev, error_rate_prev (previous period of equal length), rate_change
    (relative change of error_rate, NaN when it was 0), trend (``classify``: new, rising,
    falling, steady or too few to tell; a code is new or rising here exactly when
    ``new_or_rising_errors`` with the same thresholds lists it), retryable, what_to_do,
    more_info. Ordered by failures, descending; at most ``limit`` rows.
    """
    codes, totals = _classified(con, start, end, filters, alpha=alpha, min_failures=min_failures,
                                min_ratio=min_ratio)
    codes = codes[codes["failed"] > 0] if not codes.empty else codes
    if codes.empty:
        return _sql.empty(TOP_ERRORS_COLUMNS)
    codes["share_of_failures"] = safe_div(codes["failed"].to_numpy("float64"), totals["failed"])
    codes["rate_change"] = relative_change(codes["error_rate"], codes["error_rate_prev"])
    codes = codes.sort_values(["failures", "error_code"], ascending=[False, True]).head(int(limit))
    return codes[TOP_ERRORS_COLUMNS].reset_index(drop=True)


def new_or_rising_errors(con, *, start: date, end: date, filters: Filters | None = None,
                         alpha: float = RISING_ALPHA, min_failures: int = RISING_MIN_FAILURES,
                         min_ratio: float = RISING_MIN_RATIO) -> pd.DataFrame:
    """Error codes that are new or rising against the previous period, and really so: the codes
    whose ``classify`` trend is new or rising.

    A code is reported when (1) it failed at least ``min_failures`` messages this
    period, (2) its error rate (failures / sent) rose by at least ``min_ratio`` times (or
    it did not occur before: status "new"), and (3) a one-sided two-proportion z test
    of the two error rates is significant after a Benjamini–Hochberg correction over
    every code seen in either period (q_value ≤ ``alpha``).

    Columns: error_code, error_name, category, status ("new" or "rising"), failures,
    failures_prev, sent, sent_prev, error_rate, error_rate_prev, rate_ratio,
    excess_failures (failures beyond what the previous rate predicts), p_value,
    q_value, what_to_do. Ordered by excess_failures, descending.
    """
    codes, _ = _classified(con, start, end, filters, alpha=alpha, min_failures=min_failures, min_ratio=min_ratio)
    if codes.empty:
        return _sql.empty(NEW_OR_RISING_COLUMNS)
    out = codes[codes["trend"].isin(["new", "rising"])].rename(columns={"trend": "status"})
    if out.empty:
        return _sql.empty(NEW_OR_RISING_COLUMNS)
    out = out.sort_values(["excess_failures", "error_code"], ascending=[False, True])
    return out[NEW_OR_RISING_COLUMNS].reset_index(drop=True)


def error_samples(con, code: int, *, start: date, end: date, filters: Filters | None = None,
                  n: int = 5) -> pd.DataFrame:
    """Up to ``n`` message sids that failed with ``code`` in the period, newest first.

    For pasting into a Twilio support ticket or the console. Columns: sid, sent_at,
    country_iso2, carrier, sender, template_id, status, error_code.
    """
    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    where, params = _sql.where_for("message_facts", start, end, filters)
    params["code"] = int(code)
    # n is a validated int written into the SQL: a literal LIMIT lets DuckDB use its top-N operator
    sql = (f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM message_facts WHERE {where} AND error_code = $code "
           f"ORDER BY sent_at DESC, sid LIMIT {n:d}")
    rows = con.execute(sql, params).fetchall()  # a handful of rows: skip the Arrow round trip of .df()
    if not rows:
        return _sql.empty(SAMPLE_COLUMNS)
    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    df["sent_at"] = pd.to_datetime(df["sent_at"], utc=True)
    return df


def error_trend(con, *, start: date, end: date, filters: Filters | None = None, top_n: int = 5) -> pd.DataFrame:
    """Daily failures of the period's ``top_n`` error codes (by failures), zero-filled.

    Columns: day, error_code, error_name, failures, sent (all SMS that day),
    error_rate (failures / sent). One row per day × code; ordered by day then by the
    code's rank.
    """
    df = _sql.query(con, "errors_daily", start, end, filters)
    failing = df[df["error_code"].notna() & (df["failed"] > 0)]
    if failing.empty:
        return _sql.empty(TREND_COLUMNS)
    ranked = failing.groupby("error_code")["failed"].sum().reset_index()
    ranked = ranked.sort_values(["failed", "error_code"], ascending=[False, True]).head(int(top_n))
    top = ranked["error_code"].astype("int64").tolist()
    df["day"] = pd.to_datetime(df["day"]).dt.date
    sent = df.groupby("day")["sent"].sum()
    days = pd.date_range(start, end, freq="D").date
    grid = pd.MultiIndex.from_product([days, top], names=["day", "error_code"]).to_frame(index=False)
    counts = failing.assign(error_code=failing["error_code"].astype("int64"), day=pd.to_datetime(
        failing["day"]).dt.date).groupby(["day", "error_code"])["failed"].sum().rename("failures").reset_index()
    out = grid.merge(counts, on=["day", "error_code"], how="left")
    out["failures"] = out["failures"].fillna(0).astype("int64")
    out["sent"] = out["day"].map(sent).fillna(0).astype("int64")
    out["error_rate"] = safe_div(out["failures"], out["sent"])
    names = con.execute("SELECT code, name FROM error_codes WHERE list_contains($codes, code)",
                        {"codes": top}).df().set_index("code")["name"]
    out["error_name"] = out["error_code"].map(names)
    return out[TREND_COLUMNS].reset_index(drop=True)
