"""Insights: what changed, said in plain sentences, ranked by what it costs us.

``what_changed`` compares the last ``recent_days`` (ending on ``end``) with the
``baseline_days`` before them, for every country × carrier × template × error-code
cell of SMS in ``message_facts`` and their roll-ups.

How (SQL aggregates, Python does statistics):

1. One scan of the warehouse groups messages by country, carrier, template, error
   code and period; GROUPING SETS over that small result give every roll-up
   (``insights_cells.sql``).
2. Every cell gets a test, all p-values pooled into one multiple-testing correction
   (Bonferroni by default: family-wise error ``alpha`` over thousands of cells, so a
   report of noise is very unlikely; ``correction="bh"`` for Benjamini–Hochberg):

   * **error_rise**: error rate of one code (failures with the code / messages with a
     final status) in a country [× carrier] [× template] rose; one-sided Fisher
     exact test (the z test's normal tail is several times too small for a small
     cell with rare failures: noise over thousands of cells checked day after day).
     Impact: lost deliveries = failures beyond the baseline rate.
   * **delivery_drop**: delivery rate of a segment fell (any mix of errors; Fisher too).
   * **cost_rise**: mean cost per SMS of a segment rose (Welch z test). Impact:
     USD added over the recent period.
   * **persistent_error** (``persistent=True``): a code fails far more SMS in a
     country (or one carrier there) than in every other country, over the whole
     window — a standing problem (e.g. a country where many members have landlines:
     30006) that a before/after comparison cannot see. If its daily series shows a
     real step (change point, Bonferroni over findings × days), it is reported as the
     error_rise it is, dated from the step.
   * **opt_out_rise** (``opt_outs=True``, a warehouse with replies): the share of delivered SMS that
     members answered with an opt-out keyword rose, for an A/B variant, a template, a country or a
     template in one country. The counts and the test are the ones the opt_out alert rule and the
     Responses page use (``analytics.responses.opt_out_cells`` / ``opt_out_test``: one-sided
     two-proportion z test). Impact: members who opted out beyond the baseline rate. A cell is tested
     only with ``opt_out_min_volume`` delivered SMS in both periods and an opt-out in either.

   A finding must be significant (adjusted p ≤ ``alpha``) **and** large: the rate moved by at
   least ``min_effect`` (absolute) and by ``min_ratio`` times (error rates), with at
   least ``min_lost`` lost deliveries, or cost rose ``min_cost_ratio`` times and by at
   least ``min_cost_added`` USD; persistent errors need ``persistent_min_effect`` and
   ``persistent_min_ratio`` against the other countries; opt-out rises need ``opt_out_min_effect``,
   ``opt_out_min_ratio`` and ``opt_out_min_extra`` members.
3. One incident is reported once. Within a country (and error code), the largest
   finding is refined to the most specific cell (carrier, template, both) that still
   explains it (see ``_refine``); cells overlapping a reported one are dropped. A
   delivery drop mostly explained (≥ 50 %) by reported error findings on overlapping
   cells is dropped too, and a persistent error is dropped when an overlapping rise of
   the same code accounts for most of it. Opt-out rises get the same treatment across their cells
   (``_OptOuts``): the largest is refined to the narrowest cell inside it that explains it (a variant
   within its template, a template within a country), and a cell whose opt-outs outside the reported
   ones show no real rise is dropped.
4. The onset ("since 12 Nov") is the most likely change point of the finding's
   daily series over baseline + recent (one query for all findings).

Columns: see FINDING_COLUMNS and ``what_changed``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from switchboard.analytics import _sql, responses
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import (
    benjamini_hochberg,
    change_point,
    fisher_one_sided,
    mean_change_point,
    safe_div,
    two_proportion_z,
    welch_z,
)

FINDING_COLUMNS = [
    "rank", "kind", "country_iso2", "country_name", "carrier", "template_id", "variant", "error_code", "error_name",
    "error_category", "metric", "baseline_value", "recent_value", "delivery_rate_baseline", "delivery_rate_recent",
    "messages_baseline", "messages_recent", "lost_deliveries", "opt_outs_added", "cost_added_usd", "p_value",
    "q_value", "onset", "sentence", "what_to_do",
]

ALL = "<all>"  # a rolled-up dimension (insights_cells.sql)
UNKNOWN = "<unknown>"  # a NULL value of a dimension (e.g. carrier not known)
_KEYS = ["country", "carrier", "template"]


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01
    min_effect: float = 0.02
    min_ratio: float = 1.5
    min_lost: float = 10.0
    min_cost_ratio: float = 1.2
    min_cost_added: float = 5.0
    persistent_min_effect: float = 0.05
    persistent_min_ratio: float = 5.0
    explain_share: float = 0.75
    correction: str = "bonferroni"
    opt_out_min_volume: int = 200
    opt_out_min_effect: float = 0.005
    opt_out_min_ratio: float = 2.0
    opt_out_min_extra: float = 10.0


def what_changed(con, *, end: date | datetime, recent_days: int = 7, baseline_days: int = 28,
                 filters: Filters | None = None,
                 alpha: float = 0.01, min_effect: float = 0.02, min_ratio: float = 1.5, min_lost: float = 10,
                 min_cost_ratio: float = 1.2, min_cost_added: float = 5.0, persistent: bool = True,
                 persistent_min_effect: float = 0.05, persistent_min_ratio: float = 5.0,
                 explain_share: float = 0.75, max_findings: int = 20,
                 correction: str = "bonferroni", since: datetime | None = None, opt_outs: bool = True,
                 opt_out_min_volume: int = 200, opt_out_min_effect: float = 0.005, opt_out_min_ratio: float = 2.0,
                 opt_out_min_extra: float = 10) -> pd.DataFrame:
    """Statistically real and large changes in SMS delivery, cost and opt-outs, most harmful first.

    Recent period: the ``recent_days`` days ending on ``end`` (inclusive); baseline: the
    ``baseline_days`` days before it. Thresholds: see the module docstring.

    Columns (one row per finding, at most ``max_findings``):
    rank (1 = largest impact: members affected, i.e. lost deliveries or opt-outs added, then
    cost added), kind (error_rise, delivery_drop, cost_rise, persistent_error, opt_out_rise),
    country_iso2, country_name, carrier
    and template_id (NULL when the finding spans all of them, "(unknown)" for messages
    whose carrier / template is not known; an opt-out rise of a variant names its template when it
    sent one only), variant ("experiment · variant", opt_out_rise only), error_code, error_name,
    error_category (error kinds only), metric (error_rate, delivery_rate,
    cost_per_message, opt_out_rate; for persistent_error "error_rate_vs_other_countries"),
    baseline_value and recent_value of that metric (persistent_error: the rate in the
    other countries and in this cell over baseline + recent), delivery_rate_baseline and
    delivery_rate_recent of the finding's segment, messages_baseline,
    messages_recent (opt_out_rise: delivered SMS), lost_deliveries, opt_outs_added (opt_out_rise:
    members who opted out beyond the baseline rate), cost_added_usd, p_value, q_value (adjusted
    p-value over every cell tested: Bonferroni by default, ``correction="bh"`` for
    Benjamini–Hochberg), onset (first day of the change;
    NULL for persistent errors), sentence (plain English), what_to_do (error
    catalogue advice; for opt-out rises a fixed advice).

    ``opt_outs=False`` leaves opt-outs out (the alerts check them with their own rule and scopes).

    ``since`` (an instant) makes the recent period ``[since, end)`` with ``end`` an instant too,
    and the baseline the ``baseline_days`` before ``since``: the alerts' hours-long window
    (switchboard.alerts), read from the facts since a rollup holds whole days only.
    """
    if correction not in ("bonferroni", "bh"):
        raise ValueError("correction must be 'bonferroni' or 'bh'")
    th = Thresholds(alpha, min_effect, min_ratio, min_lost, min_cost_ratio, min_cost_added, persistent_min_effect,
                    persistent_min_ratio, explain_share, correction, opt_out_min_volume, opt_out_min_effect,
                    opt_out_min_ratio, opt_out_min_extra)
    if recent_days < 1 or baseline_days < 1:
        raise ValueError("recent_days and baseline_days must be >= 1")
    if since is not None:
        if not isinstance(end, datetime) or not since < end:
            raise ValueError("with since, end must be a later instant (datetime)")
        recent_start: date | datetime = since
    else:
        recent_start = end - timedelta(days=recent_days - 1)
    base_start = recent_start - timedelta(days=baseline_days)
    if since is not None:
        cells_sql, params = _instant_cells(con, since, end, baseline_days, filters)
    else:
        cells_sql, params = _sql.counted_sql(con, "insights_cells", base_start, end, filters, split_at=recent_start)
    raw = {k: np.ma.filled(v, np.nan) if v.dtype.kind == "f" else np.ma.filled(v) for k, v in
           con.execute(cells_sql, params).fetchnumpy().items()}
    if len(raw["code"]) == 0:
        return _sql.empty(FINDING_COLUMNS)
    cells = _Cells(raw)
    day_span = (base_start, end) if since is None else (_as_day(base_start), _as_day(end))  # whole days: the rollup
    oo = _OptOuts(responses.opt_out_cells(con, start=base_start, split=recent_start, end=end, by=_OPT_OUT_FINE,
                                          filters=filters, daily=True), th, day_span) if opt_outs else None
    cand, oo_q = _candidates(cells, th, persistent, oo.p if oo is not None else np.empty(0))
    parts = []
    if not cand.empty:
        chosen = _order(_dedupe(cand, th)).head(int(max_findings)).reset_index(drop=True)
        chosen = _attach_segment(chosen, cells)
        parts.append(_date(chosen, _daily(con, chosen, *day_span, filters), recent_start, th))
    if oo is not None:
        parts.append(oo.findings(oo_q))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _sql.empty(FINDING_COLUMNS)
    chosen = _order(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]).head(int(max_findings))
    return _describe(con, chosen.reset_index(drop=True), recent_days)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    """Most harmful first: members affected (lost deliveries, or opt-outs added), then USD added."""
    members = df["lost_deliveries"].astype("float64")
    if "opt_outs_added" in df:
        members = members.fillna(df["opt_outs_added"].astype("float64"))
    return (df.assign(_members=members)
            .sort_values(["_members", "cost_added_usd"], ascending=False, na_position="last", kind="stable")
            .drop(columns="_members"))


# --------------------------------------------------------------------------- cells

_CELL_COLUMNS = "country_iso2, carrier, template_id, error_code, is_delivered, is_failed, n, cost_usd, cost_sq, priced"


def _as_day(t: date | datetime) -> date:
    return t.date() if isinstance(t, datetime) else t


def _instant_cells(con, since: datetime, end: datetime, baseline_days: int,
                   filters: Filters | None) -> tuple[str, dict]:
    """insights_cells for a recent period between two instants (the alerts' window): the baseline is the
    ``baseline_days`` whole UTC days before the day ``since`` falls on, read from the daily rollup; the
    recent period is read from the facts. The part of ``since``'s day before it is in neither, so one
    scan of the hours-long window replaces a scan of the whole baseline (10M rows: 6 s -> well under 1 s)."""
    first_recent_day = _as_day(since)
    base = _sql.counted(con, "_daily_message_rollup", first_recent_day - timedelta(days=baseline_days),
                        first_recent_day - timedelta(days=1), filters, prefix="b")
    recent = _sql.counted(con, "_daily_message_rollup", since, end, filters, prefix="r")
    relation = (f"(SELECT {_CELL_COLUMNS}, false AS is_current FROM {base.relation} UNION ALL "
                f"SELECT {_CELL_COLUMNS}, true AS is_current FROM {recent.relation})")
    return _sql.render("insights_cells", messages=relation), base.params | recent.params


class _Cells:
    """The insights_cells result as numpy columns (a few thousand rows: no DataFrame on the hot path)."""

    def __init__(self, raw: dict[str, np.ndarray]):
        self.country = raw["country"].astype(object)
        self.carrier = raw["carrier"].astype(object)
        self.template = raw["template"].astype(object)
        self.code = raw["code"].astype("int64")
        for name in ("n1", "n0", "delivered1", "delivered0", "failed1", "failed0", "cost1", "cost0", "cost_sq1",
                     "cost_sq0", "priced1", "priced0", "seg_final1", "seg_final0"):
            setattr(self, name, np.nan_to_num(raw[name].astype("float64")))
        self.final1 = self.delivered1 + self.failed1
        self.final0 = self.delivered0 + self.failed0
        is_seg = self.code == -1
        in_country = self.country != ALL
        self.seg = np.flatnonzero(is_seg & in_country)
        self.local_codes = np.flatnonzero(~is_seg & in_country)
        self.global_codes = np.flatnonzero(~is_seg & ~in_country)
        total = np.flatnonzero(is_seg & ~in_country)
        self.total_final1 = float(self.final1[total[0]]) if len(total) else 0.0
        self.total_final = self.total_final1 + (float(self.final0[total[0]]) if len(total) else 0.0)

    def segment_row(self, country: str, carrier: str, template: str) -> int | None:
        i = self.seg[(self.country[self.seg] == country) & (self.carrier[self.seg] == carrier)
                     & (self.template[self.seg] == template)]
        return int(i[0]) if len(i) else None


def _level(df: pd.DataFrame) -> np.ndarray:
    """How specific a cell is: 0 = whole country, 1 = one carrier or template, 2 = both."""
    return (df["carrier"] != ALL).to_numpy(int) + (df["template"] != ALL).to_numpy(int)


def _block(c: _Cells, idx: np.ndarray, kind: str, metric: str, p0, p1, p, lost, added, large, volume,
           counts=(np.nan, np.nan, np.nan, np.nan)) -> dict:
    """One kind of test over the cells ``idx``; ``counts`` = (k1, n1, k0, n0) of a proportion test."""
    n = len(idx)
    k1, n1, k0, n0 = (_col(x, n) for x in counts)
    return {"volume": _col(volume, n), "k1": k1, "n1": n1, "k0": k0, "n0": n0, "kind": np.full(n, kind, dtype=object), "metric": np.full(n, metric, dtype=object),
            "country": c.country[idx], "carrier": c.carrier[idx], "template": c.template[idx],
            "code": c.code[idx] if kind in ("error_rise", "persistent_error") else np.full(n, -1),
            "baseline_value": _col(p0, n), "recent_value": _col(p1, n), "p_value": _col(p, n),
            "lost_deliveries": _col(lost, n), "cost_added_usd": _col(added, n),
            "large": np.broadcast_to(np.asarray(large, bool), (n,)).copy()}


def _col(x: object, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype="float64"), (n,)).copy()


def _error_rise(c: _Cells, th: Thresholds) -> dict[str, np.ndarray]:
    """error_rise: one code's share of final messages rose in a segment."""
    i = c.local_codes
    t = fisher_one_sided(c.failed1[i], c.seg_final1[i], c.failed0[i], c.seg_final0[i], "greater")
    p0 = np.nan_to_num(t.p0)
    lost = c.failed1[i] - p0 * c.seg_final1[i]
    ratio = safe_div(t.p1, t.p0)
    large = ((t.p1 - p0 >= th.min_effect) & ((c.failed0[i] == 0) | (np.nan_to_num(ratio, nan=np.inf) >= th.min_ratio))
             & (lost >= th.min_lost))
    return _block(c, i, "error_rise", "error_rate", t.p0, t.p1, t.p_value, lost, np.nan, large,
                  c.seg_final1[i], (c.failed1[i], c.seg_final1[i], c.failed0[i], c.seg_final0[i]))


def _delivery_drop(c: _Cells, th: Thresholds) -> dict[str, np.ndarray]:
    """delivery_drop: a segment's delivery rate fell."""
    i = c.seg
    t = fisher_one_sided(c.delivered1[i], c.final1[i], c.delivered0[i], c.final0[i], "less")
    lost = (np.nan_to_num(t.p0) - t.p1) * c.final1[i]
    large = (np.nan_to_num(t.p0) - t.p1 >= th.min_effect) & (lost >= th.min_lost)
    return _block(c, i, "delivery_drop", "delivery_rate", t.p0, t.p1, t.p_value, lost, np.nan, large,
                  c.final1[i], (c.final1[i] - c.delivered1[i], c.final1[i], c.final0[i] - c.delivered0[i],
                                c.final0[i]))


def _cost_rise(c: _Cells, th: Thresholds) -> dict[str, np.ndarray]:
    """cost_rise: mean cost per priced SMS rose in a segment."""
    i = c.seg
    m1, m0 = safe_div(c.cost1[i], c.priced1[i]), safe_div(c.cost0[i], c.priced0[i])
    v1 = np.maximum(safe_div(c.cost_sq1[i], c.priced1[i]) - m1 ** 2, 0)
    v0 = np.maximum(safe_div(c.cost_sq0[i], c.priced0[i]) - m0 ** 2, 0)
    p_two = welch_z(m1, v1, c.priced1[i], m0, v0, c.priced0[i])
    p_one = np.where(np.isnan(p_two), np.nan, np.where(m1 > m0, p_two / 2, 1 - p_two / 2))
    added = (m1 - m0) * c.priced1[i]
    large = (np.nan_to_num(safe_div(m1, m0)) >= th.min_cost_ratio) & (np.nan_to_num(added) >= th.min_cost_added)
    return _block(c, i, "cost_rise", "cost_per_message", m0, m1, p_one, np.nan, added, large, c.priced1[i])


def _persistent_error(c: _Cells, th: Thresholds) -> dict[str, np.ndarray]:
    """persistent_error: a code fails far more in a country (or one carrier there) than in all the
    others, over the whole window (baseline + recent): a standing problem, not this week's noise."""
    i = c.local_codes[c.template[c.local_codes] == ALL]
    g = c.global_codes
    glob = dict(zip(c.code[g].tolist(), (c.failed1[g] + c.failed0[g]).tolist()))
    top = c.local_codes[(c.carrier[c.local_codes] == ALL) & (c.template[c.local_codes] == ALL)]
    own = dict(zip(zip(c.country[top].tolist(), c.code[top].tolist()), (c.failed1[top] + c.failed0[top]).tolist()))
    top_seg = c.seg[(c.carrier[c.seg] == ALL) & (c.template[c.seg] == ALL)]
    own_final = dict(zip(c.country[top_seg].tolist(), (c.final1[top_seg] + c.final0[top_seg]).tolist()))
    keys = list(zip(c.country[i].tolist(), c.code[i].tolist()))
    peer_failed = np.array([glob.get(code, 0.0) - own.get((cty, code), 0.0) for cty, code in keys])
    peer_final = np.array([c.total_final - own_final.get(cty, 0.0) for cty, _ in keys])
    k, n = c.failed1[i] + c.failed0[i], c.seg_final1[i] + c.seg_final0[i]
    t = two_proportion_z(k, n, peer_failed, peer_final, "greater")
    p0 = np.nan_to_num(t.p0)
    lost = c.failed1[i] - p0 * c.seg_final1[i]  # this week's failures beyond the other countries' rate
    large = ((t.p1 - p0 >= th.persistent_min_effect)
             & (np.nan_to_num(safe_div(t.p1, t.p0), nan=np.inf) >= th.persistent_min_ratio)
             & (lost >= th.min_lost))
    return _block(c, i, "persistent_error", "error_rate_vs_other_countries", t.p0, t.p1, t.p_value,
                  lost, np.nan, large, n, (k, n, peer_failed, peer_final))


def _candidates(c: _Cells, th: Thresholds, persistent: bool,
                others: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell's test, one correction over all of them and the ``others`` p-values (the opt-out
    cells'); returns the real and large cells, and the others' adjusted p-values."""
    blocks = [_error_rise(c, th), _delivery_drop(c, th), _cost_rise(c, th)]
    if persistent and c.total_final > 0:
        blocks.append(_persistent_error(c, th))
    cols = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    pooled = np.concatenate([cols["p_value"], np.asarray(others, dtype="float64")])
    if th.correction == "bh":
        q = benjamini_hochberg(pooled)
    else:
        tested = int(np.isfinite(pooled).sum())
        q = np.minimum(pooled * max(tested, 1), 1.0)
    cols["q_value"], others_q = q[:len(cols["p_value"])], q[len(cols["p_value"]):]
    keep = cols.pop("large") & (np.nan_to_num(cols["q_value"], nan=1.0) <= th.alpha)
    cand = pd.DataFrame({k: v[keep] for k, v in cols.items()})
    if cand.empty:
        return cand, others_q
    for k in _KEYS + ["kind", "metric"]:
        cand[k] = cand[k].astype(object)
    cand["level"] = _level(cand)
    cand["impact"] = np.where(cand["kind"] == "cost_rise", cand["cost_added_usd"], cand["lost_deliveries"])
    return cand, others_q


# --------------------------------------------------------------------------- dedupe


def _contains(outer: pd.Series, inner: pd.Series) -> bool:
    return all(outer[k] == ALL or outer[k] == inner[k] for k in ("carrier", "template"))


def _overlaps(a: pd.Series, b: pd.Series) -> bool:
    return all(a[k] == ALL or b[k] == ALL or a[k] == b[k] for k in ("carrier", "template"))


def _refine(top: pd.Series, group: pd.DataFrame, th: Thresholds) -> pd.Series:
    """Walk down from ``top`` to the most specific cell that explains it.

    A narrower cell (one more of carrier / template fixed) explains its parent when
    either it carries ``explain_share`` of the top cell's impact, or what is left of
    the parent without it shows no real change (one-sided test p >= alpha, or fewer
    than ``min_lost`` lost deliveries): noise elsewhere in a country must not hide the
    carrier that broke. It must also *concentrate* the problem: its share of the
    parent's impact has to exceed its share of the parent's traffic by 10 points, so a
    template that carries all of a carrier's messages is not named as the cause.
    """
    best = top
    while True:
        deeper = group[group["level"] == best["level"] + 1]
        deeper = deeper[np.array([_contains(best, row) for _, row in deeper.iterrows()], dtype=bool)]
        if deeper.empty:
            return best
        if best["volume"] > 0:
            concentrated = deeper["impact"] / best["impact"] - deeper["volume"] / best["volume"] >= 0.1
        else:
            concentrated = deeper["impact"] > 0
        explains = (deeper["impact"] >= th.explain_share * top["impact"]) | _rest_is_quiet(best, deeper, th)
        deeper = deeper[concentrated & explains]
        if deeper.empty:
            return best
        best = deeper.sort_values("impact", ascending=False).iloc[0]


def _rest_is_quiet(parent: pd.Series, children: pd.DataFrame, th: Thresholds) -> np.ndarray:
    """For each child: does the parent *without* that child show no real, large change?"""
    if children.empty or not np.isfinite(parent["k1"]):
        return np.zeros(len(children), dtype=bool)
    k1 = parent["k1"] - children["k1"].to_numpy("float64")
    n1 = parent["n1"] - children["n1"].to_numpy("float64")
    if parent["kind"] == "persistent_error":  # the comparison group (other countries) stays the same
        k0 = np.full(len(children), parent["k0"])
        n0 = np.full(len(children), parent["n0"])
    else:
        k0 = parent["k0"] - children["k0"].to_numpy("float64")
        n0 = parent["n0"] - children["n0"].to_numpy("float64")
    t = two_proportion_z(k1, n1, k0, n0, "greater")
    lost = k1 - np.nan_to_num(t.p0) * n1
    quiet = (np.nan_to_num(t.p_value, nan=1.0) >= th.alpha) | (lost < th.min_lost)
    return quiet & np.isfinite(children["k1"].to_numpy("float64"))


def _pick(group: pd.DataFrame, th: Thresholds) -> list[pd.Series]:
    """Greedy: largest finding, refined; drop everything overlapping it; repeat."""
    picked = []
    # largest first; among equal impacts the broadest cell, so refinement starts at the top
    rest = group.assign(_rounded=group["impact"].round(6)).sort_values(["_rounded", "level"], ascending=[False, True])
    while not rest.empty:
        chosen = _refine(rest.iloc[0], rest, th)
        picked.append(chosen)
        keep = np.array([not _overlaps(chosen, row) for _, row in rest.iterrows()], dtype=bool)
        rest = rest[keep]
    return picked


def _dedupe(cand: pd.DataFrame, th: Thresholds) -> pd.DataFrame:
    picked: list[pd.Series] = []
    for kind, keys in (("error_rise", ["country", "code"]), ("delivery_drop", ["country"]),
                       ("cost_rise", ["country"]), ("persistent_error", ["country", "code"])):
        part = cand[cand["kind"] == kind]
        for _, group in part.groupby(keys, sort=False):
            picked.extend(_pick(group, th))
    if not picked:
        return pd.DataFrame(columns=cand.columns)
    out = pd.DataFrame(picked).reset_index(drop=True)
    rises = out[out["kind"] == "error_rise"]
    errors_found = out[out["kind"].isin(["error_rise", "persistent_error"])]
    drop = []
    for i, row in out.iterrows():
        if row["kind"] == "delivery_drop":
            same = errors_found[errors_found["country"] == row["country"]]
            explained = sum(r["lost_deliveries"] for _, r in same.iterrows() if _overlaps(row, r))
            if explained >= 0.5 * row["lost_deliveries"]:
                drop.append(i)
        elif row["kind"] == "persistent_error":
            same = rises[(rises["country"] == row["country"]) & (rises["code"] == row["code"])]
            if any(_overlaps(row, r) and r["lost_deliveries"] >= 0.5 * row["lost_deliveries"]
                   for _, r in same.iterrows()):
                drop.append(i)
    return out.drop(index=drop).reset_index(drop=True)


# --------------------------------------------------------------------------- opt-out rises

_OPT_OUT_FINE = ["country_iso2", "template_id", "variant"]  # the atoms every opt-out cell is a union of
# The cells an opt-out rise is looked for in; on equal numbers the earlier (narrower) one is named.
_OPT_OUT_CELLS = (("variant",), ("country_iso2", "template_id"), ("template_id",), ("country_iso2",))
_OPT_OUT_TODO = ("Read the wording and check how often these members are messaged: a member who opted out "
                 "cannot be sent SMS from that number until they reply START (Twilio refuses it with 21610).")


class _OptOuts:
    """Opt-out rises (kind opt_out_rise) over the cells of ``_OPT_OUT_CELLS``, from one
    ``responses.opt_out_cells`` frame per country x template x variant ("atom") and send day.

    ``p`` is every cell's p-value (NaN for a cell not tested: fewer than ``opt_out_min_volume``
    delivered SMS in a period, or no opt-out at all), pooled by ``what_changed`` into its correction;
    ``findings(q)`` picks the real and large cells with their adjusted p-values ``q``.
    """

    def __init__(self, fine: pd.DataFrame, th: Thresholds, day_span: tuple[date, date]):
        self.th, self.day_span = th, day_span
        counts = responses.OPT_OUT_COUNTS
        if fine.empty:
            self.daily, self.atoms = fine, pd.DataFrame(columns=_OPT_OUT_FINE + counts)
        else:
            grouped = fine.groupby(_OPT_OUT_FINE, dropna=False, sort=True)
            self.daily = fine.assign(_atom=grouped.ngroup().to_numpy())
            self.atoms = grouped[counts].sum().reset_index()
        self.counts = self.atoms[counts].to_numpy("float64").reshape(-1, 4)
        # every cell as a boolean mask over the atoms, from integer codes (a few thousand atoms and cells)
        n_atoms = len(self.atoms)
        codes, values = {}, {}
        for d in _OPT_OUT_FINE:
            codes[d], values[d] = pd.factorize(self.atoms[d], use_na_sentinel=True)  # NULL: -1
        ranks, self.keys, masks = [], [], [np.zeros((0, n_atoms), dtype=bool)]
        for rank, dims in enumerate(_OPT_OUT_CELLS):
            combo = np.stack([codes[d] for d in dims], axis=1).reshape(n_atoms, len(dims))
            known = (combo >= 0).all(axis=1)
            cells, inverse = np.unique(combo[known], axis=0, return_inverse=True)
            group = np.full(n_atoms, -1)
            group[known] = inverse.ravel()
            masks.append(group[None, :] == np.arange(len(cells))[:, None])
            ranks += [rank] * len(cells)
            self.keys += [{d: values[d][c] for d, c in zip(dims, cell, strict=True)} for cell in cells]
        self.masks = np.concatenate(masks)
        self.rank = np.array(ranks, dtype=int)
        self.t = self._test(self.masks)
        n1, k1, n0, k0 = (self.t[c].to_numpy("float64") for c in counts)
        tested = (n1 >= th.opt_out_min_volume) & (n0 >= th.opt_out_min_volume) & (k1 + k0 > 0)
        self.p = np.where(tested, self.t["p_value"].to_numpy("float64"), np.nan)
        p1, p0 = self.t["p1"].to_numpy("float64"), self.t["p0"].to_numpy("float64")
        ratio = self.t["ratio"].to_numpy("float64")
        self.large = tested & (p1 - np.nan_to_num(p0) >= th.opt_out_min_effect) & (
            (k0 == 0) | (np.nan_to_num(ratio) >= th.opt_out_min_ratio)) & (
            self.t["extra"].to_numpy("float64") >= th.opt_out_min_extra)

    def _test(self, masks: np.ndarray) -> pd.DataFrame:
        sums = masks.astype("float64") @ self.counts if len(self.atoms) else np.zeros((len(masks), 4))
        return responses.opt_out_test(pd.DataFrame(sums.reshape(-1, 4), columns=responses.OPT_OUT_COUNTS))

    def _quiet(self, mask: np.ndarray) -> bool:
        """Do these atoms' opt-outs show no real, large rise (uncorrected test, as ``_rest_is_quiet``)?"""
        t = self._test(mask[None, :]).iloc[0]
        return bool(not (t["n1"] > 0 and t["n0"] > 0) or not np.isfinite(t["p_value"])
                    or t["p_value"] >= self.th.alpha or t["extra"] < self.th.opt_out_min_extra)

    def _refine(self, top: int, real: list[int]) -> int:
        """Walk down from ``top`` to the narrowest real cell inside it that explains it (as ``_refine``)."""
        extra, n1 = self.t["extra"].to_numpy("float64"), self.t["n1"].to_numpy("float64")
        best = top
        while True:
            picks = []
            for i in real:
                inside = not (self.masks[i] & ~self.masks[best]).any()
                same = inside and not (self.masks[best] & ~self.masks[i]).any()
                if i == best or not inside or (same and self.rank[i] >= self.rank[best]):
                    continue
                concentrated = same or extra[i] / extra[best] - n1[i] / n1[best] >= 0.1
                explains = (extra[i] >= self.th.explain_share * extra[top]
                            or self._quiet(self.masks[best] & ~self.masks[i]))
                if concentrated and explains:
                    picks.append(i)
            if not picks:
                return best
            best = max(picks, key=lambda i: (round(extra[i], 6), -self.rank[i]))

    def findings(self, q: np.ndarray) -> pd.DataFrame:
        real = self.large & (np.nan_to_num(q, nan=1.0) <= self.th.alpha)
        extra = self.t["extra"].to_numpy("float64")
        order = sorted(np.flatnonzero(real).tolist(), key=lambda i: (-round(extra[i], 6), self.rank[i]))
        covered = np.zeros(len(self.atoms), dtype=bool)
        picked = []
        while order:
            top = order[0]
            chosen = self._refine(top, order)
            picked.append(chosen)
            covered |= self.masks[chosen]
            order = [i for i in order if i not in (top, chosen) and not self._quiet(self.masks[i] & ~covered)]
        return pd.DataFrame([self._row(i, q[i]) for i in picked])

    def _row(self, i: int, q: float) -> dict:
        t, key, mask = self.t.iloc[i], self.keys[i], self.masks[i]
        template = key.get("template_id")
        if template is None and "variant" in key:  # a variant that sent one template only: name it
            sent = self.atoms.loc[mask, "template_id"].dropna().unique()
            template = sent[0] if len(sent) == 1 else None
        return {
            "kind": "opt_out_rise", "metric": "opt_out_rate", "country": key.get("country_iso2", ALL),
            "carrier": ALL, "template": template if template is not None else ALL, "code": -1,
            "variant": key.get("variant"), "baseline_value": float(t["p0"]), "recent_value": float(t["p1"]),
            "p_value": float(t["p_value"]), "q_value": float(q), "lost_deliveries": np.nan,
            "opt_outs_added": float(t["extra"]), "cost_added_usd": np.nan, "delivery_rate_baseline": np.nan,
            "delivery_rate_recent": np.nan, "messages_baseline": int(t["n0"]), "messages_recent": int(t["n1"]),
            "onset": self._onset(mask),
        }

    def _onset(self, mask: np.ndarray) -> date | None:
        """The most likely change point of the cell's daily opt-out rate over baseline + recent."""
        rows = self.daily[mask[self.daily["_atom"].to_numpy()]]
        by_day = rows.groupby("day")[responses.OPT_OUT_COUNTS].sum()
        calendar = pd.date_range(self.day_span[0], self.day_span[1], freq="D").date
        by_day = by_day.reindex(calendar, fill_value=0)
        k = change_point((by_day["k0"] + by_day["k1"]).to_numpy(), (by_day["n0"] + by_day["n1"]).to_numpy())
        return None if k is None else by_day.index[k]


# --------------------------------------------------------------------------- description


def _attach_segment(chosen: pd.DataFrame, c: _Cells) -> pd.DataFrame:
    out = chosen.copy()
    rows = [c.segment_row(r.country, r.carrier, r.template) for r in out.itertuples()]

    def pick(arr: np.ndarray) -> np.ndarray:
        return np.array([arr[i] if i is not None else np.nan for i in rows], dtype="float64")

    out["delivery_rate_recent"] = safe_div(pick(c.delivered1), pick(c.final1))
    out["delivery_rate_baseline"] = safe_div(pick(c.delivered0), pick(c.final0))
    out["messages_recent"] = np.nan_to_num(pick(c.n1)).astype("int64")
    out["messages_baseline"] = np.nan_to_num(pick(c.n0)).astype("int64")
    return out


def _daily(con, chosen: pd.DataFrame, base_start: date, end: date, filters: Filters | None) -> dict[int, pd.DataFrame]:
    """Daily n / final / delivered / failed / cost of every finding's cell, zero-filled over the window.

    One scan: per finding, conditional aggregates (``FILTER (WHERE <its cell>)``) by day,
    restricted to the findings' countries. Every value is a bound parameter.
    """
    if chosen.empty:
        return {}
    messages = _sql.counted(con, "_daily_message_rollup", base_start, end, filters)
    params = dict(messages.params)
    aggs, countries = [], []
    for j, r in enumerate(chosen.itertuples()):
        conds = []
        for col, key, value in (("country_iso2", "c", r.country), ("carrier", "car", r.carrier),
                                ("template_id", "tpl", r.template)):
            if value == ALL:
                continue
            if value == UNKNOWN:
                conds.append(f"{col} IS NULL")
            else:
                conds.append(f"{col} = $d{j}_{key}")
                params[f"d{j}_{key}"] = value
        cell = " AND ".join(conds) or "true"
        failed = "is_failed"
        if r.code >= 0:
            failed += f" AND error_code = $d{j}_code"
            params[f"d{j}_code"] = int(r.code)
        def count(cond: str, name: str) -> str:
            return f"coalesce(sum(n) FILTER (WHERE {cond}), 0)::BIGINT AS {name}"

        aggs.append(f"{count(cell, f'n_{j}')}, "
                    f"{count(f'{cell} AND (is_delivered OR is_failed)', f'final_{j}')}, "
                    f"{count(f'{cell} AND is_delivered', f'delivered_{j}')}, "
                    f"{count(f'{cell} AND {failed}', f'failed_{j}')}, "
                    f"coalesce(sum(cost_usd) FILTER (WHERE {cell}), 0) AS cost_{j}")
        countries.append(None if r.country in (ALL, UNKNOWN) else r.country)
    scope = ""
    if all(c is not None for c in countries):
        scope = " AND list_contains($d_countries, country_iso2)"
        params["d_countries"] = sorted(set(countries))
    sql = (f"SELECT sent_day AS day, {', '.join(aggs)} FROM {messages.relation} WHERE true{scope} "
           "GROUP BY sent_day")
    daily = con.execute(sql, params).df()
    calendar = pd.date_range(base_start, end, freq="D").date
    daily["day"] = pd.to_datetime(daily["day"]).dt.date
    daily = daily.set_index("day").reindex(calendar, fill_value=0)
    out = {}
    for j, i in enumerate(chosen.index):
        part = daily[[f"n_{j}", f"final_{j}", f"delivered_{j}", f"failed_{j}", f"cost_{j}"]].astype("float64")
        part.columns = ["n", "final", "delivered", "failed", "cost"]
        out[int(i)] = part
    return out


def _date(chosen: pd.DataFrame, daily: dict[int, pd.DataFrame], recent_start: date, th: Thresholds) -> pd.DataFrame:
    """Date every finding; a persistent error with a real step in its series becomes an error_rise.

    The step is tested (one-sided two-proportion test, Bonferroni over the persistent
    findings times the days the change point could have picked) between the days before
    the change point and the days from it on, and must be large by the same thresholds as
    any error rise.
    """
    out = chosen.copy()
    out["onset"] = None
    # Bonferroni over the persistent findings and over every split the change point could pick
    n_days = len(next(iter(daily.values()))) if daily else 1
    n_tests = max(int((out["kind"] == "persistent_error").sum()), 1) * max(n_days, 1)
    for i, r in out.iterrows():
        series = daily.get(int(i))
        if series is None or series.empty:
            continue
        if r["kind"] == "cost_rise":
            k = mean_change_point(series["cost"].to_numpy(), series["n"].to_numpy())
        else:
            k = change_point(series["failed"].to_numpy(), series["final"].to_numpy())
        if k is None:
            continue
        onset = series.index[k]
        if r["kind"] != "persistent_error":
            out.at[i, "onset"] = onset
            continue
        before, after = series.iloc[:k].sum(), series.iloc[k:].sum()
        first_recent = recent_start.date() if isinstance(recent_start, datetime) else recent_start
        recent = series[series.index >= first_recent].sum()
        t = two_proportion_z(after["failed"], after["final"], before["failed"], before["final"], "greater")
        p1, p0, p = float(t.p1), float(t.p0), float(t.p_value)
        lost = recent["failed"] - p0 * recent["final"] if np.isfinite(p0) else np.nan
        real = (np.isfinite(p) and p * n_tests <= th.alpha and p1 - p0 >= th.min_effect
                and (before["failed"] == 0 or p1 / p0 >= th.min_ratio) and lost >= th.min_lost)
        if real:
            out.at[i, "kind"], out.at[i, "metric"], out.at[i, "onset"] = "error_rise", "error_rate", onset
            out.at[i, "baseline_value"] = p0
            out.at[i, "recent_value"] = safe_div(recent["failed"], recent["final"]).item()
            out.at[i, "lost_deliveries"] = lost
            out.at[i, "p_value"], out.at[i, "q_value"] = p, min(p * n_tests, 1.0)
            out.at[i, "delivery_rate_baseline"] = safe_div(before["delivered"], before["final"]).item()
            out.at[i, "messages_baseline"] = int(before["n"])
    return out


def _value(v: object) -> object:
    return None if v in (ALL, UNKNOWN) else v


UNKNOWN_LABEL = "(unknown)"


def _label(v: object) -> object:
    """Output value of a carrier/template key: None when rolled up, "(unknown)" when NULL in the data."""
    return None if v == ALL else UNKNOWN_LABEL if v == UNKNOWN else v


def _describe(con, df: pd.DataFrame, recent_days: int) -> pd.DataFrame:
    names = con.execute("SELECT iso2, name FROM countries").df().set_index("iso2")["name"]
    catalogue = con.execute("SELECT code, name, category, what_to_do FROM error_codes").df().set_index("code")
    df["country_iso2"] = df["country"].map(_value)
    df["country_name"] = df["country_iso2"].map(names)
    df["carrier"] = pd.Series([_label(v) for v in df["carrier"]], index=df.index, dtype=object)
    df["template_id"] = pd.Series([_label(v) for v in df["template"]], index=df.index, dtype=object)
    is_code = df["code"] >= 0
    df["error_code"] = pd.Series(df["code"].to_numpy("int64"), index=df.index, dtype="Int64").where(is_code, pd.NA)
    # Lists, not Series.map: mapping an all-NA Int64 column (only delivery drops) gives NA, not None
    codes = df["error_code"].tolist()
    df["error_name"] = pd.Series([catalogue["name"].get(c) if pd.notna(c) else None for c in codes],
                                 index=df.index, dtype=object)
    df["error_category"] = pd.Series([catalogue["category"].get(c, "unknown") if pd.notna(c) else None
                                      for c in codes], index=df.index, dtype=object)
    df["what_to_do"] = pd.Series([catalogue["what_to_do"].get(c) if pd.notna(c) else None for c in codes],
                                 index=df.index, dtype=object)
    variants = df["variant"] if "variant" in df else pd.Series(None, index=df.index, dtype=object)
    df["variant"] = pd.Series([v if isinstance(v, str) else None for v in variants], index=df.index, dtype=object)
    if "opt_outs_added" not in df:
        df["opt_outs_added"] = np.nan
    df.loc[df["kind"] == "opt_out_rise", "what_to_do"] = _OPT_OUT_TODO
    df["sentence"] = [_sentence(r, recent_days) for _, r in df.iterrows()]
    df["rank"] = np.arange(1, len(df) + 1)
    return df[FINDING_COLUMNS].reset_index(drop=True)


def _text(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def _place(r: pd.Series) -> str:
    place = _text(r["country_name"]) or _text(r["country_iso2"]) or "an unknown country"
    if r["carrier"] == UNKNOWN_LABEL:
        place += " on numbers with no known carrier"
    elif _text(r["carrier"]):
        place += f" on {r['carrier']}"
    if r["template_id"] == UNKNOWN_LABEL:
        place += " for messages without a template"
    elif _text(r["template_id"]):
        place += f" for template {r['template_id']}"
    return place


def _pct(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.0%}" if abs(x) >= 0.1 or x == 0 else f"{x:.1%}"


def _about(x: float) -> str:
    """Round to two significant figures: 4,137 -> 4,100."""
    if not np.isfinite(x):
        return "an unknown number of"
    x = int(np.rint(x))  # half to even, as round()
    if x >= 100:
        digits = len(str(x)) - 2
        x = int(round(x, -digits))
    return f"{x:,}"


def _day(d: date | None) -> str:
    return f" since {d.day} {d:%b}" if d else ""


def _error(r: pd.Series) -> str:
    name = _text(r["error_name"]) or "not in the catalogue"
    return f"error {int(r['error_code'])} ({name})"


def _opt_out_place(r: pd.Series) -> str:
    """'to variant e · v (template t)', 'to template t in Indonesia', 'in Indonesia'."""
    place = ""
    if _text(r["variant"]):
        place = f"to variant {r['variant']}" + (f" (template {r['template_id']})" if _text(r["template_id"]) else "")
    elif _text(r["template_id"]):
        place = f"to template {r['template_id']}"
    country = _text(r["country_name"]) or _text(r["country_iso2"])
    if country:
        place += f" in {country}" if place else f"in {country}"
    return place or "to all SMS"


def _sentence(r: pd.Series, recent_days: int) -> str:
    place = _place(r)
    lost = f"about {_about(r['lost_deliveries'])} lost deliveries"
    d0, d1 = _pct(r["delivery_rate_baseline"]), _pct(r["delivery_rate_recent"])
    if r["kind"] == "error_rise":
        return f"Delivery in {place} fell from {d0} to {d1}{_day(r['onset'])}: {_error(r)}, {lost}."
    if r["kind"] == "delivery_drop":
        return (f"Delivery in {place} fell from {d0} to {d1}{_day(r['onset'])}, spread over several error codes, "
                f"{lost}.")
    if r["kind"] == "opt_out_rise":
        return (f"Opt-out replies {_opt_out_place(r)} rose from {_pct(r['baseline_value'])} to "
                f"{_pct(r['recent_value'])} of delivered SMS{_day(r['onset'])}: about {_about(r['opt_outs_added'])} "
                "more members opted out.")
    if r["kind"] == "cost_rise":
        return (f"Cost per SMS in {place} rose from ${r['baseline_value']:.4f} to ${r['recent_value']:.4f}"
                f"{_day(r['onset'])}, about ${_about(r['cost_added_usd'])} more over the last {recent_days} days.")
    return (f"In {place}, {_error(r)} fails {_pct(r['recent_value'])} of SMS against {_pct(r['baseline_value'])} "
            f"in other countries, a standing problem rather than a change: {lost} in the last {recent_days} days.")
