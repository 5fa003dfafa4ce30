"""Experiments, the data half: the per-variant (and per-country) aggregates in SQL.

``experiments_variant_metrics.sql`` (over attempt_facts) or ``experiments_variant_metrics_exposures.sql``
(over the pre-shaped ``_experiment_exposures``, when it is up to date and can answer the filters): the
same rows. ``experiment_data`` runs the one query behind a page of experiments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import duckdb
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.experiments.model import _ALL_TIME, _INT_COLUMNS, _SUM_COLUMNS
from switchboard.analytics.filters import Filters

# Segments for the breakdown: public name -> SQL on the first exposure (alias f). The allow-list.
_SEGMENTS: dict[str, tuple[str, str]] = {
    "none": ("CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"),
    "country": ("f.country_iso2", "f.country_name"),
}


def _experiment_filters(filters: Filters | None) -> Filters:
    """Drop the template and channel filters: they are what experiments vary (module docstring)."""
    filters = filters or Filters()
    return replace(filters, templates=(), channels=())


# _experiment_exposures (ingest/facts.sql): the exposures pre-shaped for the per-member GROUP BY.
# It keeps these attempt_facts columns for the filters (countries -> country_iso2, purposes ->
# purpose; channel and template filters are dropped for experiments) and these Filters.extra ones.
# USE_EXPOSURES_TABLE = False makes every call read attempt_facts (tests compare both paths).
USE_EXPOSURES_TABLE = True
EXPOSURES_TABLE = "_experiment_exposures"
EXPOSURES_MARK = "switchboard experiment exposures v4"
# Valid when nothing but the period and the experiment (constant per member) filters the exposures:
# every exposure of the member lies in [start, end), so its all-time totals are the answer; or the row
# is the member's only exposure in the period (both neighbours, in exposure order, outside it).
_WHOLE_MEMBER = "(a.member_first_at >= $f_start AND a.member_last_at < $f_end)"
_SINGLE_EXPOSURE = ("(a.prev_sent_at IS NULL OR a.prev_sent_at < $f_start) "
                    "AND (a.next_sent_at IS NULL OR a.next_sent_at >= $f_end)")
_EXPOSURES_EXTRA = frozenset({"experiment_id", "variant", "campaign_id", "region"})
DEFAULT_PRE_DAYS = 28
# The CUPED covariates _experiment_exposures carries per exposure (ingest/facts.sql), for the pre-period
# length in the column's name: experiment_data and preperiod_data read the column off each member's first
# exposure when the table has it for the pre_days asked, else preperiod_data counts at query time.
_PRE_COLUMNS: dict[str, str] = {"conversions": "pre_conversions_{days}d"}
_CUPED_SUMS = ("x_sum", "x_sum_squares", "xy_sum", "pre_users")
_CUPED_SELECT = (", sum(x) AS x_sum, sum(x * x) AS x_sum_squares, coalesce(sum(x) FILTER (WHERE converted), 0) "
                 "AS xy_sum, count(*) FILTER (WHERE x > 0) AS pre_users")


def _exposures_ready(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this warehouse has an up-to-date ``_experiment_exposures``: it carries EXPOSURES_MARK
    (written by this build's facts.sql) and ``_attempt_facts`` carries a comment too (facts.sql marks
    it at the end of a refresh; a refresh by an older build replaces it without one, leaving the
    exposures stale). False on the Parquet export, an older warehouse or a stale one."""
    rows = dict(con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND list_contains($names, table_name)",
        {"names": [EXPOSURES_TABLE, "_attempt_facts"]}).fetchall())
    return rows.get(EXPOSURES_TABLE) == EXPOSURES_MARK and bool(rows.get("_attempt_facts"))


def _period_only(filters: Filters) -> bool:
    """Whether nothing but the period and the experiment filters the exposures (then _WHOLE_MEMBER and
    _SINGLE_EXPOSURE hold)."""
    return (not filters.countries and not filters.purposes
            and all(column == "experiment_id" for column, _ in filters.extra))


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = $t AND column_name = $c", {"t": table, "c": column}).fetchone()[0])


def _exposures_can_answer(con: duckdb.DuckDBPyConnection, filters: Filters) -> bool:
    """Whether ``_experiment_exposures`` answers a call with these (experiment) filters."""
    return (USE_EXPOSURES_TABLE and all(column in _EXPOSURES_EXTRA for column, _ in filters.extra)
            and _exposures_ready(con))


def _pre_column(con: duckdb.DuckDBPyConnection, filters: Filters, covariate: str, pre_days: int) -> str | None:
    """The column of ``_experiment_exposures`` holding this covariate over ``pre_days`` days, when the table
    answers these filters and carries it; else None."""
    column = _PRE_COLUMNS[covariate].format(days=int(pre_days)) if covariate in _PRE_COLUMNS else None
    if column and _exposures_can_answer(con, filters) and _has_column(con, EXPOSURES_TABLE, column):
        return column
    return None


def _aggregates(
    con: duckdb.DuckDBPyConnection,
    experiment_ids: Sequence[str] | None,
    *,
    start: date | None,
    end: date | None,
    filters: Filters | None,
    window_minutes: float | None,
    segment: str = "none",
    x_column: str | None = None,
) -> pd.DataFrame:
    """The per-variant aggregates; with ``x_column`` (a pre-period column of _experiment_exposures, the
    exposures path only) also the CUPED sums (_CUPED_SUMS) over each member's first exposure."""
    lo = start or _ALL_TIME[0]
    hi = end or _ALL_TIME[1]
    filters = _experiment_filters(filters)
    where, params = _sql.where_for("attempt_facts", lo, hi, filters, alias="a")
    if segment not in _SEGMENTS:
        raise ValueError(f"Unknown segment {segment!r}; allowed: {', '.join(_SEGMENTS)}")
    segment_sql, segment_name_sql = _SEGMENTS[segment]
    if _exposures_can_answer(con, filters):
        period_only = _period_only(filters)
        sql = _sql.render("experiments_variant_metrics_exposures", where=where, segment=segment_sql,
                          segment_name=segment_name_sql, whole=_WHOLE_MEMBER if period_only else "false",
                          single=_SINGLE_EXPOSURE if period_only else "false",
                          x=f"f.{x_column}" if x_column else "0", cuped=_CUPED_SELECT if x_column else "")
    else:
        x_column = None
        sql = _sql.render("experiments_variant_metrics", where=where, segment=segment_sql,
                          segment_name=segment_name_sql)
    params.update(
        all_experiments=experiment_ids is None,
        experiment_ids=list(experiment_ids or []),
        window_minutes=None if window_minutes is None else float(window_minutes),
    )
    df = con.execute(sql, params).df()
    for c in _SUM_COLUMNS:
        df[c] = pd.to_numeric(df[c]).astype("int64" if c in _INT_COLUMNS else "float64")
    for c in _CUPED_SUMS if x_column else ():
        df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    return df


def _last_data_day(con: duckdb.DuckDBPyConnection) -> date | None:
    row = con.execute("SELECT max(sent_day) FROM attempt_facts").fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class ExperimentData:
    """Every experiment's per-variant aggregates in a period, per country of the first exposure
    (``aggregates``: the ``experiments_variant_metrics.sql`` columns), and the warehouse's last day
    of data. One query; ``list_from``, ``analyse_from`` and ``country_breakdown_from`` derive
    ``list_experiments``, ``analyse_experiment`` and ``country_breakdown`` from it without SQL
    (per-member counts and sums add up over countries: each member is in one, their first
    exposure's). The Experiments page reads it once instead of grouping the exposures three times."""

    aggregates: pd.DataFrame
    last_data_day: date | None
    start: date | None
    end: date | None
    window_minutes: float | None
    # The CUPED sums of the same members (issue 19), per experiment_id, segment and variant (_CUPED_SUMS: the
    # conversions covariate over pre_days days), when _experiment_exposures carries that covariate; else None
    # (preperiod_data counts them). preperiod_from turns them into the chosen experiment's PrePeriodData.
    pre_days: int | None = None
    cuped: pd.DataFrame | None = None


def experiment_data(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
    pre_days: int | None = DEFAULT_PRE_DAYS,
) -> ExperimentData:
    """The one query behind a page of experiments (see ``ExperimentData``); same filters as the others.
    ``pre_days``: the CUPED pre-period whose sums come with it when the warehouse carries them (None: none)."""
    filters = _experiment_filters(filters)
    x_column = _pre_column(con, filters, "conversions", pre_days) if pre_days is not None else None
    df = _aggregates(con, None, start=start, end=end, filters=filters, window_minutes=window_minutes,
                     segment="country", x_column=x_column)
    cuped = None
    if x_column:
        cuped = df[["experiment_id", "segment", "variant", *_CUPED_SUMS]].copy()
        df = df.drop(columns=list(_CUPED_SUMS))
    return ExperimentData(df, _last_data_day(con) if not df.empty else None, start, end, window_minutes,
                          int(pre_days) if x_column else None, cuped)




# --------------------------------------------------------------------------- #
# Pre-period covariate (CUPED) and opt-outs per member (issue 19)
# --------------------------------------------------------------------------- #
# The pre-period behaviour CUPED adjusts with: public name -> (user_id, x) per member with history, x
# counted in [first exposure - $pre_days days, first exposure). The allow-list (never user input).
_COVARIATES: dict[str, str] = {
    "conversions": ("SELECT u.user_id, count(*) AS x FROM firsts u JOIN conversions c ON c.user_id = u.user_id "
                    "AND c.occurred_at >= u.first_at - to_days(CAST($pre_days AS INTEGER)) "
                    "AND c.occurred_at < u.first_at GROUP BY u.user_id"),
    "deliveries": ("SELECT u.user_id, count(*) AS x FROM firsts u JOIN attempt_facts p ON p.user_id = u.user_id "
                   "AND p.is_delivered AND p.sent_at >= u.first_at - to_days(CAST($pre_days AS INTEGER)) "
                   "AND p.sent_at < u.first_at GROUP BY u.user_id"),
}
# helper B's replies table (ingest): one row per classified reply; an opt-out counts when it came at
# or after the member's first exposure (an earlier STOP cannot be the experiment's doing).
RESPONSES_TABLE = "_response_facts"
_OPT_OUT = ("SELECT DISTINCT u.user_id FROM firsts u JOIN _response_facts r ON r.user_id = u.user_id "
            "AND r.experiment_id = $experiment_id AND r.classification = 'opt_out' AND r.received_at >= u.first_at")
_NO_OPT_OUT = "SELECT CAST(NULL AS VARCHAR) AS user_id WHERE false"
# The same for experiments_preperiod_exposures.sql: each opted-out member's last opt-out reply (they count
# when it came at or after the first exposure, i.e. when some opt-out did).
_OPT_OUT_LAST = ("SELECT r.user_id, max(r.received_at) AS last_at FROM _response_facts r "
                 "WHERE r.experiment_id = $experiment_id AND r.classification = 'opt_out' GROUP BY r.user_id")
_NO_OPT_OUT_LAST = "SELECT CAST(NULL AS VARCHAR) AS user_id, CAST(NULL AS TIMESTAMPTZ) AS last_at WHERE false"
PREPERIOD_COLUMNS = ["variant", "segment", "segment_name", "users", "y_sum", "x_sum", "x_sum_squares", "xy_sum",
                     "pre_users", "opt_out_users"]


@dataclass(frozen=True)
class PrePeriodData:
    """Per variant and country of the first exposure: the CUPED sums and the opt-out counts.

    ``rows``: ``PREPERIOD_COLUMNS`` (y = the member converted, x = their ``covariate`` count in the
    ``pre_days`` days before their first exposure); ``has_responses``: whether the warehouse has
    ``_response_facts`` (without it ``opt_out_users`` is 0 and means "not measured")."""

    experiment_id: str
    rows: pd.DataFrame
    covariate: str
    pre_days: int
    has_responses: bool


def has_responses(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse has helper B's ``_response_facts`` (replies classified, opt-outs among them)."""
    return _sql.has_table(con, RESPONSES_TABLE)


def preperiod_data(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
    pre_days: int = DEFAULT_PRE_DAYS,
    covariate: str = "conversions",
) -> PrePeriodData:
    """CUPED sums and opt-outs of ``experiment_id`` (``experiments_preperiod.sql``); same members,
    conversion definition and filters as ``variant_metrics``. ``pre_days`` (>= 1) is the pre-period
    length; ``covariate`` is "conversions" (any conversion of the member) or "deliveries" (their
    delivered attempts, any purpose)."""
    if covariate not in _COVARIATES:
        raise ValueError(f"Unknown covariate {covariate!r}; allowed: {', '.join(_COVARIATES)}")
    if int(pre_days) < 1:
        raise ValueError("pre_days must be at least 1 (the days before first exposure CUPED reads)")
    filters = _experiment_filters(filters)
    where, params = _sql.where_for("attempt_facts", start or _ALL_TIME[0], end or _ALL_TIME[1], filters, alias="a")
    responses = has_responses(con)
    x_column = _pre_column(con, filters, covariate, pre_days)
    if x_column:
        sql = _sql.render("experiments_preperiod_exposures", where=where, x_column=x_column,
                          opt_out=_OPT_OUT_LAST if responses else _NO_OPT_OUT_LAST,
                          whole=_WHOLE_MEMBER if _period_only(filters) else "false",
                          single=_SINGLE_EXPOSURE if _period_only(filters) else "false")
    else:
        sql = _sql.render("experiments_preperiod", where=where, covariate=_COVARIATES[covariate],
                          opt_out=_OPT_OUT if responses else _NO_OPT_OUT)
        params.update(pre_days=int(pre_days))
    params.update(experiment_id=experiment_id,
                  window_minutes=None if window_minutes is None else float(window_minutes))
    df = con.execute(sql, params).df()
    for c in PREPERIOD_COLUMNS[3:]:
        df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    return PrePeriodData(experiment_id, df[PREPERIOD_COLUMNS], covariate, int(pre_days), responses)


@dataclass(frozen=True)
class OptOuts:
    """Per variant and country of the first exposure: the members who opted out at or after their first
    exposure (``rows``: variant, segment, opt_out_users; only groups with some), and whether the warehouse
    has ``_response_facts`` at all (without it nothing is measured)."""

    experiment_id: str
    rows: pd.DataFrame
    has_responses: bool


def opt_out_data(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
) -> OptOuts:
    """The opt-out counts of ``preperiod_data`` alone (``experiments_opt_outs.sql``: only the members who
    replied STOP are looked up); from ``preperiod_data`` itself when ``_experiment_exposures`` cannot answer."""
    filters = _experiment_filters(filters)
    columns = ["variant", "segment", "opt_out_users"]
    if not has_responses(con):
        return OptOuts(experiment_id, pd.DataFrame({c: pd.Series(dtype="int64" if c == "opt_out_users" else object)
                                                    for c in columns}), False)
    if not _exposures_can_answer(con, filters):
        pre = preperiod_data(con, experiment_id, start=start, end=end, filters=filters)
        rows = pre.rows.loc[pre.rows["opt_out_users"] > 0, columns].reset_index(drop=True)
        return OptOuts(experiment_id, rows, True)
    where, params = _sql.where_for("attempt_facts", start or _ALL_TIME[0], end or _ALL_TIME[1], filters, alias="a")
    params.update(experiment_id=experiment_id)
    df = con.execute(_sql.render("experiments_opt_outs", where=where, opt_out=_OPT_OUT_LAST), params).df()
    df["opt_out_users"] = pd.to_numeric(df["opt_out_users"]).astype("int64")
    return OptOuts(experiment_id, df[columns], True)


def preperiod_from(page: ExperimentData, experiment_id: str, opt_outs: OptOuts) -> PrePeriodData | None:
    """``preperiod_data`` for ``experiment_id`` (the conversions covariate over ``page.pre_days`` days) without
    SQL: the members, conversions and CUPED sums come with the page's one query (``experiment_data``), the
    opt-outs from ``opt_out_data``. None when the page's query carries no CUPED sums (``page.cuped`` is None):
    then call ``preperiod_data``."""
    if page.cuped is None or page.pre_days is None:
        return None
    keys = ["variant", "segment"]
    agg = page.aggregates[page.aggregates["experiment_id"] == experiment_id]
    sums = page.cuped[page.cuped["experiment_id"] == experiment_id]
    rows = agg[[*keys, "segment_name", "users", "conversions"]].rename(columns={"conversions": "y_sum"})
    rows = rows.merge(sums[[*keys, *_CUPED_SUMS]], on=keys, how="left", validate="one_to_one")
    rows = rows.merge(opt_outs.rows, on=keys, how="left", validate="one_to_one")
    for c in PREPERIOD_COLUMNS[3:]:
        rows[c] = pd.to_numeric(rows[c]).fillna(0).astype("int64")
    rows = rows.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)
    return PrePeriodData(experiment_id, rows[PREPERIOD_COLUMNS], "conversions", int(page.pre_days),
                         opt_outs.has_responses)
