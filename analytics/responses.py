"""Responses (issue 18): opt-out, HELP and opt-in rates per template, variant, country, purpose and
campaign, with 95 % Wilson intervals and daily trends; who is opted out now (numbers masked).

The warehouse classifies and links every reply (``responses`` view, ``ingest/responses.sql``). Here a
reply counts for the SMS it answers: ``opt_out_rate`` = delivered SMS answered with an opt-out keyword /
delivered SMS, by the send's day and the send's template, variant, country… (``responses_rates.sql``).
Replies that answer no message of ours are counted in ``response_summary`` only.

``opt_out_cells`` is the one count behind every opt-out *spike*: the Overview's "what changed"
(``analytics.insights``), the ``opt_out`` alert rule (``switchboard.alerts``) and this module's
``opt_out_spikes`` read it and test it the same way (a one-sided two-proportion z test of the recent rate
against the baseline's); only their windows and thresholds differ.

A warehouse built before issue 18 has no ``responses`` view: every function returns an empty frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.filters import Filters, day_bounds, where
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
# The cells an opt-out spike can be counted in: output column -> message_facts expression (never user text).
OPT_OUT_KEYS = {
    "country_iso2": "m.country_iso2",
    "carrier": "m.carrier",
    "template_id": "m.template_id",
    "variant": "m.experiment_id || ' · ' || m.variant",
    "experiment_id": "m.experiment_id",
    "sender": "m.sender",
    "purpose": "m.purpose",
    "campaign_id": "m.campaign_id",
}
OPT_OUT_COUNTS = ["n1", "k1", "n0", "k0"]
SPIKE_COLUMNS = ["key", "delivered", "opt_outs", "opt_out_rate", "baseline_delivered", "baseline_opt_outs",
                 "baseline_rate", "ratio", "p_value"]


def available(con) -> bool:
    """Whether this warehouse has the responses view and the table behind it (built by ingest since
    issue 18)."""
    return bool(con.execute(
        "SELECT (SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() "
        "AND view_name = 'responses') > 0 AND (SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND table_name = '_response_facts') > 0").fetchone()[0])


def opt_out_cells(con, *, start: date | datetime, split: date | datetime, end: date | datetime,
                  by: Sequence[str] = (), filters: Filters | None = None, daily: bool = False) -> pd.DataFrame:
    """THE opt-out count for spikes: per cell of ``by`` (names of ``OPT_OUT_KEYS``), delivered SMS sent
    in the baseline [start, split) (``n0``) and in the recent period [split, end] (``n1``), and how many
    of them the member answered with an opt-out keyword (``k0``, ``k1``; ``opt_out_cells.sql``). Dates are
    whole UTC days (``end`` inclusive), datetimes instants (``end`` exclusive). ``filters`` apply to
    ``message_facts``. ``daily``: one row per cell and UTC send day (``day``), its counts in the columns
    of the period it falls in. A cell whose key is NULL (no template, no experiment) is its own row.
    Every SMS is counted, with or without a send-log record. A warehouse without replies, or a period no
    opt-out answers, gives an empty frame (and costs no scan of the SMS).

    Where the counts come from (the same numbers either way; ``tests/test_analytics_insights.py``): ``k``
    from ``_opt_out_messages`` (the few answered messages; a warehouse without it joins the replies to
    ``message_facts``); ``n`` from ``_daily_message_rollup`` when it can answer (whole days, keys and
    filters it keeps; ``_sql.counted``), the SMS of an experiment from ``message_facts`` for the variant
    keys, else from ``message_facts``."""
    by = list(by)
    for key in by:
        _sql.dimension(OPT_OUT_KEYS, key)
    columns = by + (["day"] if daily else []) + OPT_OUT_COUNTS
    if not available(con):
        return _sql.empty(columns)
    clause, params = where("message_facts", start, end, filters, alias="m", prefix="o")
    params["o_split"] = day_bounds(split, split)[0]
    if not con.execute("SELECT count(*) FROM (SELECT 1 FROM responses WHERE classification = 'opt_out' AND "
                       "linked_sid IS NOT NULL AND received_at >= $s LIMIT 1)", {"s": params["o_start"]}).fetchone()[0]:
        # no opt-out answers a message of the period (a reply comes after its message): every k is 0, and
        # the scan of the period's SMS (the cost of this function) tells nothing a spike could be made of
        return _sql.empty(columns)

    def count(relation: str, keys: list[str], extra: str = "") -> pd.DataFrame:
        sql = _sql.render("opt_out_cells", keys="".join(f"{OPT_OUT_KEYS[k]} AS {k}, " for k in keys),
                          relation=relation, where=clause + extra)
        return con.execute(sql, params).df()

    answered = "_opt_out_messages" if _sql.has_table(con, "_opt_out_messages") else (
        "(SELECT * FROM message_facts WHERE sid IN (SELECT linked_sid FROM responses "
        "WHERE classification = 'opt_out' AND linked_sid IS NOT NULL))")
    k = count(answered, by)
    if k.empty:
        return _sql.empty(columns)
    n = _delivered(con, by, start, split, end, filters, count)
    keys = by + ["day", "recent"]
    df = n.merge(k.rename(columns={"n": "k"}), on=keys, how="outer")
    recent = df["recent"].to_numpy(bool)
    n_, k_ = df["n"].fillna(0).to_numpy("int64"), df["k"].fillna(0).to_numpy("int64")
    df = df.assign(n1=np.where(recent, n_, 0), k1=np.where(recent, k_, 0), n0=np.where(recent, 0, n_),
                   k0=np.where(recent, 0, k_))
    group = by + (["day"] if daily else [])
    if group:
        df = df.groupby(group, dropna=False, sort=True)[OPT_OUT_COUNTS].sum().reset_index()
    else:
        df = df[OPT_OUT_COUNTS].sum().to_frame().T
    if daily:
        df["day"] = pd.to_datetime(df["day"]).dt.date
    df[OPT_OUT_COUNTS] = df[OPT_OUT_COUNTS].astype("int64")
    return df[columns].reset_index(drop=True)


_EXPERIMENT_KEYS = ("variant", "experiment_id")  # not in _daily_message_rollup


def _delivered(con, by: list[str], start, split, end, filters: Filters | None, count) -> pd.DataFrame:
    """Delivered SMS per cell of ``by``, day and period (``by``, day, recent, n). The keys the daily rollup
    keeps come from it (or from message_facts when it cannot answer); the experiment keys from the SMS of
    an experiment in message_facts, the rest of the traffic being the rollup's count less theirs."""
    base = [k for k in by if k not in _EXPERIMENT_KEYS]
    rel = _sql.counted(con, "_daily_message_rollup", start, end, filters, prefix="r", split_at=split, columns=base)
    cols = "".join(f"{k}, " for k in base)
    total = con.execute(f"SELECT {cols} sent_day AS day, coalesce(is_current, false) AS recent, "
                        f"sum(n)::BIGINT AS n FROM {rel.relation} WHERE is_delivered GROUP BY ALL", rel.params).df()
    if len(base) == len(by):
        return total
    exp = count("message_facts", by, " AND m.experiment_id IS NOT NULL")
    keys = base + ["day", "recent"]
    if exp.empty:
        return total.assign(**{k: None for k in by if k not in base})[by + ["day", "recent", "n"]]
    rest = total.merge(exp.groupby(keys, dropna=False)["n"].sum().rename("n_exp").reset_index(), on=keys,
                       how="left")
    rest["n"] = rest["n"] - rest["n_exp"].fillna(0).astype("int64")
    rest = rest[rest["n"] > 0].drop(columns="n_exp").assign(**{k: None for k in by if k not in base})
    return pd.concat([exp, rest[by + ["day", "recent", "n"]]], ignore_index=True)


def opt_out_test(cells: pd.DataFrame) -> pd.DataFrame:
    """The test every opt-out spike gets: ``cells`` (``opt_out_cells``' counts) with ``p1``/``p0`` (the
    recent and baseline rates), ``p_value`` (one-sided two-proportion z test: p1 > p0; NaN when a period
    has no delivered SMS), ``ratio`` (p1 / p0) and ``extra`` (opt-outs beyond the baseline rate:
    k1 - p0 * n1, the members lost to the spike)."""
    t = two_proportion_z(cells["k1"].to_numpy(float), cells["n1"].to_numpy(float),
                         cells["k0"].to_numpy(float), cells["n0"].to_numpy(float), "greater")
    return cells.assign(p1=t.p1, p0=t.p0, p_value=t.p_value, ratio=safe_div(t.p1, t.p0),
                        extra=cells["k1"].to_numpy(float) - np.nan_to_num(t.p0) * cells["n1"].to_numpy(float))


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
    """Groups whose opt-out rate in [start, end] rose against the period of equal length before it
    (``opt_out_cells`` and ``opt_out_test``, the count and test "what changed" and the alerts use;
    ``SPIKE_COLUMNS``: delivered and opt_outs are the period's, ``ratio`` = rate / baseline rate). Only
    groups with ``min_delivered`` delivered SMS in both periods and p < ``alpha``; biggest ratio first."""
    key = by
    _sql.dimension(DIMENSIONS, by)
    p0, _ = _sql.previous_period(start, end)
    cells = opt_out_cells(con, start=p0, split=start, end=end, by=[key], filters=filters)
    cells = cells[(cells["n1"] >= min_delivered) & (cells["n0"] >= min_delivered)]
    if cells.empty:
        return _sql.empty(SPIKE_COLUMNS)
    df = opt_out_test(cells.rename(columns={key: "key"}).reset_index(drop=True))
    df = df.assign(delivered=df["n1"], opt_outs=df["k1"], opt_out_rate=df["p1"], baseline_delivered=df["n0"],
                   baseline_opt_outs=df["k0"], baseline_rate=df["p0"])
    df = df[df["p_value"] < alpha].sort_values("ratio", ascending=False, na_position="first")
    return df[SPIKE_COLUMNS].reset_index(drop=True)


__all__ = ["DIMENSIONS", "KINDS", "OPT_OUT_KEYS", "available", "opt_out_cells", "opt_out_spikes", "opt_out_test",
           "opted_out_members", "response_rates", "response_summary", "response_trend"]
