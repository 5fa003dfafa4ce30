"""One evaluation of every enabled rule over the warehouse, anchored at its newest message.

* ``error_rate``, ``delivery_rate`` and ``cost_per_message`` rules run through
  ``analytics.insights.what_changed`` (the Overview's engine: every country x carrier x template x code
  cell, refined to the most specific cell that explains an incident), given the rule's hours-long window
  and Benjamini-Hochberg as its correction. Rules with the same window and thresholds share one call.
* ``rate`` rules (voice fallback failures, slow deliveries, opt-outs, any failure rate in any scope) count
  a bad outcome per cell, recent against baseline, in one SQL scan each; every cell of every rate rule is
  tested (one-sided two-proportion z test) and all their p-values share one Benjamini-Hochberg correction,
  so checking thousands of cells does not turn noise into alerts. Opt-outs are counted by
  ``analytics.responses.opt_out_cells`` (delivered SMS and those answered with an opt-out keyword), the
  count behind the Overview's opt-out rises and the Responses page's spikes.
* ``pumping`` is the SMS-pumping watch (alerts.pumping).

The clock is the data's: ``as_of`` is the newest ``sent_at``, so replaying a history day by day gives the
same alerts as living through it, and a quiet warehouse does not "resolve" what it has not seen yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from switchboard.alerts import days, pumping
from switchboard.alerts import findings as fmt
from switchboard.alerts.findings import Finding
from switchboard.alerts.rules import SCOPES, Config, Rule
from switchboard.analytics import _sql, insights, responses
from switchboard.analytics.filters import Filters
from switchboard.analytics.stats_basic import benjamini_hochberg, two_proportion_z

KIND_OF_METRIC = {"error_rate": "error_rise", "delivery_rate": "delivery_drop", "cost_per_message": "cost_rise",
                  "standing_error_rate": "persistent_error"}


@dataclass
class Evaluation:
    as_of: datetime | None
    findings: list[Finding] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)  # rules that ran: their open alerts may resolve
    skipped: dict[str, str] = field(default_factory=dict)  # rule -> why it did not run


def newest_message(con: Any) -> datetime | None:
    row = con.execute("SELECT max(sent_at) FROM message_facts").fetchone()
    value = row[0] if row else None
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def evaluate(con: Any, config: Config, as_of: datetime | None = None) -> Evaluation:
    """Every enabled rule of ``config`` at ``as_of`` (default: the newest message)."""
    with days.one_evaluation():
        return _evaluate(con, config, as_of)


def _evaluate(con: Any, config: Config, as_of: datetime | None) -> Evaluation:
    as_of = as_of or newest_message(con)
    ev = Evaluation(as_of)
    rules = [r for r in config.rules if r.enabled]
    if as_of is None:
        ev.skipped = {r.name: "no messages in the warehouse yet" for r in rules}
        return ev
    groups: dict[tuple, list[Rule]] = {}
    for r in (r for r in rules if r.engine == "insights"):
        key = (r.recent_hours, round(r.baseline_days), r.where, r.alpha, r.min_effect, r.min_ratio, r.min_impact)
        groups.setdefault(key, []).append(r)
    for group in groups.values():
        ev.findings += _insights(con, group, as_of)
        ev.evaluated += [r.name for r in group]
    rate_rules = []
    for r in (r for r in rules if r.engine == "rate"):
        reason = _missing(con, r)
        if reason:
            ev.skipped[r.name] = reason
        else:
            rate_rules.append(r)
    ev.findings += _rates(con, rate_rules, as_of, config.dashboard_url)
    ev.evaluated += [r.name for r in rate_rules]
    for r in (r for r in rules if r.engine == "pumping"):
        ev.findings += pumping.detect(con, r, as_of)
        ev.evaluated.append(r.name)
    return ev


def _missing(con: Any, rule: Rule) -> str | None:
    """Why a rate rule cannot run on this warehouse, or None."""
    if rule.metric == "opt_out_rate" and not responses.available(con):
        return "no _response_facts table or responses view in this warehouse (responses are not ingested yet)"
    return None


def _window(rule: Rule, as_of: datetime) -> tuple[datetime, datetime, datetime]:
    """(baseline start, recent start, end): end is just after the newest message (exclusive)."""
    end = as_of + timedelta(microseconds=1)
    recent = end - timedelta(hours=rule.recent_hours)
    return recent - timedelta(days=rule.baseline_days), recent, end


def _filters(where: Iterable[tuple[str, str]]) -> Filters:
    w = dict(where)
    extra = tuple((SCOPES[k], w[k]) for k in ("carrier", "sender") if k in w)
    return Filters(countries=(w["country"],) if "country" in w else (),
                   purposes=(w["purpose"],) if "purpose" in w else (),
                   templates=(w["template"],) if "template" in w else (), extra=extra)


# --------------------------------------------------------------------------- insights rules


def _insights(con: Any, group: list[Rule], as_of: datetime) -> list[Finding]:
    r0 = group[0]
    _, recent, end = _window(r0, as_of)
    by_kind = {KIND_OF_METRIC[r.metric]: r for r in group}

    def changed(persistent: bool) -> pd.DataFrame:
        return insights.what_changed(
            con, end=end, since=recent, baseline_days=max(1, round(r0.baseline_days)), filters=_filters(r0.where),
            alpha=r0.alpha, min_effect=r0.min_effect, min_ratio=r0.min_ratio, min_lost=r0.min_impact,
            persistent=persistent, correction="bh", max_findings=50, opt_outs=False)

    # one call: the changes and (with the standing_error rule) the standing errors, a code failing far more
    # in a country than in the others, before and now alike, in one BH family
    df = changed("persistent_error" in by_kind)
    out = []
    for row in df.itertuples(index=False):
        rule = by_kind.get(row.kind)
        if rule is None:
            continue
        out.append(_from_insight(con, rule, row, recent, end))
    return out


def _from_insight(con: Any, rule: Rule, r: Any, recent: datetime, end: datetime) -> Finding:
    code = None if pd.isna(r.error_code) else int(r.error_code)
    carrier = None if r.carrier is None or pd.isna(r.carrier) else str(r.carrier)
    template = None if r.template_id is None or pd.isna(r.template_id) else str(r.template_id)
    impact = float(r.cost_added_usd) if r.kind == "cost_rise" else float(r.lost_deliveries)
    templates = _failing_templates(con, r.country_iso2, carrier, template, code, recent, end)
    cells = {"country": r.country_iso2, "carrier": carrier, "template": template, "error_code": code}
    f = Finding(
        rule=rule.name, kind=r.kind, severity=_severity(rule, impact if r.kind != "cost_rise" else 0.0),
        country_iso2=r.country_iso2, country_name=r.country_name, carrier=carrier, template_id=template,
        error_code=code, cells={k: v for k, v in cells.items() if v is not None}, metric=r.metric,
        baseline_value=float(r.baseline_value), recent_value=float(r.recent_value), impact=impact,
        p_value=float(r.p_value), q_value=float(r.q_value), what_to_do=r.what_to_do,
        link=fmt.link("errors" if code is not None else "overview", country=r.country_name or r.country_iso2,
                      template=template,
                      start=recent, end=end),
        evidence={"messages_recent": int(r.messages_recent), "messages_baseline": int(r.messages_baseline),
                  "delivery_rate_recent": _f(r.delivery_rate_recent),
                  "delivery_rate_baseline": _f(r.delivery_rate_baseline), "templates": templates},
        since=recent)
    return _with_sentence(f, rule, r, templates, end)


def _f(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _severity(rule: Rule, impact: float) -> str:
    return "critical" if impact >= rule.critical_impact else rule.severity


def _failing_templates(con: Any, country: str | None, carrier: str | None, template: str | None,
                       code: int | None, start: datetime, end: datetime) -> list[str]:
    """The templates most of the cell's recent failures were sent with (at most three)."""
    if template:
        return [template]
    conds, params = ["sent_at >= $s", "sent_at < $e", "is_failed", "template_id IS NOT NULL"], {"s": start, "e": end}
    for col, value in (("country_iso2", country), ("carrier", carrier), ("error_code", code)):
        if value is not None and value != "(unknown)":
            conds.append(f"{col} = ${col}")
            params[col] = value
    rows = con.execute(f"SELECT template_id, count(*) n FROM message_facts WHERE {' AND '.join(conds)} "
                       "GROUP BY 1 ORDER BY n DESC, 1 LIMIT 3", params).fetchall()
    total = sum(n for _, n in rows)
    return [t for t, n in rows if n >= 0.1 * total]


def _place(country_name: str | None, iso2: str | None, carrier: str | None, template: str | None) -> str:
    place = country_name or iso2 or "an unknown country"
    if carrier == "(unknown)":
        place += " (numbers with no known carrier)"
    elif carrier:
        place += f" on {carrier}"
    if template and template != "(unknown)":
        place += f" with template {template}"
    return place


def _with_sentence(f: Finding, rule: Rule, r: Any, templates: list[str], end: datetime) -> Finding:
    head = f"In the {fmt.window_words(rule.recent_hours)} to {end:%d %b %H:%M} UTC"
    place = _place(f.country_name, f.country_iso2, f.carrier, f.template_id)
    base = f"over the previous {fmt.window_words(rule.baseline_days * 24)}"
    tpl = (f"; template{'s' if len(templates) > 1 else ''} {fmt.names(templates)}"
           if templates and not f.template_id else "")
    todo = f" What to do: {f.what_to_do}" if f.what_to_do else ""
    if f.kind == "error_rise":
        name = r.error_name if isinstance(r.error_name, str) else "not in the catalogue"
        text = (f"{head}, {fmt.pct(f.recent_value)} of SMS to {place} failed with {f.error_code} ({name}), against "
                f"{fmt.pct(f.baseline_value)} {base}: about {fmt.about(f.impact)} members not reached{tpl}.{todo}")
    elif f.kind == "persistent_error":
        name = r.error_name if isinstance(r.error_name, str) else "not in the catalogue"
        text = (f"A standing problem, not a change: over the {fmt.window_words(rule.baseline_days * 24 + rule.recent_hours)}"
                f" to {end:%d %b %H:%M} UTC, {fmt.pct(f.recent_value)} of SMS to {place} failed with {f.error_code} "
                f"({name}), against {fmt.pct(f.baseline_value)} in the other countries: about {fmt.about(f.impact)} "
                f"members not reached{tpl}.{todo}")
    elif f.kind == "delivery_drop":
        text = (f"{head}, {fmt.pct(f.recent_value)} of SMS to {place} were delivered, against "
                f"{fmt.pct(f.baseline_value)} {base}, with no single error code to blame: about "
                f"{fmt.about(f.impact)} members not reached{tpl}. What to do: open the Errors page for the "
                "mix of codes and check the sender's status with Twilio.")
    else:
        text = (f"{head}, the cost per SMS to {place} was ${f.recent_value:.4f}, against ${f.baseline_value:.4f} "
                f"{base}: about ${fmt.about(f.impact)} more so far. What to do: check Twilio's price changes for "
                "the country and whether messages got longer (more segments, UCS-2).")
    return _replace(f, sentence=text)


def _replace(f: Finding, **kw: Any) -> Finding:
    from dataclasses import replace

    return replace(f, **kw)


# --------------------------------------------------------------------------- rate rules

# metric -> (relation with a time column t, the unit counted (n), the bad outcome (k))
_RATE_SQL = {
    "failure_rate": ("SELECT *, sent_at AS t, 'sms' AS channel FROM message_facts",
                     "is_delivered OR is_failed", "is_failed"),
    "slow_delivery_rate": ("SELECT *, sent_at AS t, 'sms' AS channel FROM message_facts",
                           "is_delivered AND delivery_latency_s IS NOT NULL", "delivery_latency_s > $latency"),
    "fallback_failure_rate": ("SELECT *, sent_at AS t FROM attempt_facts WHERE channel = 'voice' AND is_fallback",
                              "is_delivered IS NOT NULL", "NOT is_delivered"),
}  # opt_out_rate: analytics.responses.opt_out_cells (see _rate_cells)
_RATE_WORDS = {
    "failure_rate": ("of SMS to {place} failed", "members not reached"),
    "slow_delivery_rate": ("of SMS delivered to {place} took longer than {lat:g} s", "members waited longer"),
    "fallback_failure_rate": ("of voice fallback calls to {place} were not answered", "members not reached"),
    "opt_out_rate": ("of SMS delivered to {place} were answered with an opt-out keyword", "more members opted out"),
}
_RATE_TODO = {
    "failure_rate": "open the Errors page filtered to this view for the codes behind it.",
    "slow_delivery_rate": "check the carrier's status with Twilio; OTPs that arrive late are not used.",
    "fallback_failure_rate": "check the voice caller ID and the call's language; consider a different "
                             "fallback order for this country.",
    "opt_out_rate": "read the template's wording and how often these members are messaged.",
}


# metric -> (its daily rollup, the rollup rows the relation above keeps, unit, bad outcome, a facts relation
# read over the whole days too): the same counts summed over whole UTC days. The latency rollup holds only
# delivered SMS with a latency: the unit itself. (Opt-outs: analytics.responses.opt_out_cells, its own rollup.)
_RATE_ROLLUP = {
    "failure_rate": ("_daily_message_rollup", "true", "is_delivered OR is_failed", "is_failed", None),
    "slow_delivery_rate": ("_daily_latency_rollup", "true", "true", "delivery_latency_s > $latency", None),
    "fallback_failure_rate": ("_daily_attempt_rollup", "channel = 'voice' AND is_fallback",
                              "is_delivered IS NOT NULL", "NOT is_delivered", None),
}


def _rate_cells(con: Any, rule: Rule, as_of: datetime) -> pd.DataFrame:
    """k/n per cell of ``rule``'s scope, recent (1) and baseline (0).

    The baseline's whole UTC days come from the metric's daily rollup when it keeps every column of the
    rule's scope and filters (a few thousand rows instead of weeks of facts); the facts give the rest: the
    recent window, the part of the day the baseline starts in after its start, and the part of the day the
    recent window starts in before it. Same counts as reading the facts alone (tests/test_alerts_rollup.py)."""
    base, recent, end = _window(rule, as_of)
    dims = [SCOPES[s] for s in rule.scope]
    if rule.metric == "opt_out_rate":
        df = responses.opt_out_cells(con, start=base, split=recent, end=end, by=dims,
                                     filters=_opt_out_filters(rule.where))
        return df[df["n1"] >= rule.min_volume].reset_index(drop=True)
    relation, unit, bad = _RATE_SQL[rule.metric]
    where, params = [], {"base": base, "end": end, "recent": recent}
    for i, (k, v) in enumerate(rule.where):
        where.append(f"{SCOPES[k]} = $w{i}")
        params[f"w{i}"] = v
    if "$latency" in bad:
        params["latency"] = rule.latency_seconds
    select = "".join(f"{d}, " for d in dims)
    group = f" GROUP BY {', '.join(dims)}" if dims else ""

    def facts(lo: str, hi: str, relation: str = relation) -> str:
        conds = " AND ".join([f"t >= ${lo}", f"t < ${hi}", *where])
        return (f"SELECT {select}"
                f"count(*) FILTER (WHERE t >= $recent AND ({unit})) AS n1, "
                f"count(*) FILTER (WHERE t >= $recent AND ({unit}) AND ({bad})) AS k1, "
                f"count(*) FILTER (WHERE t < $recent AND ({unit})) AS n0, "
                f"count(*) FILTER (WHERE t < $recent AND ({unit}) AND ({bad})) AS k0 "
                f"FROM ({relation}) WHERE {conds}{group}")

    rollup = _RATE_ROLLUP.get(rule.metric)
    split = None
    if rollup is not None and {*dims, *(SCOPES[k] for k, _ in rule.where)} <= _sql.ROLLUPS[rollup[0]].keeps:
        split = days.rolled(con, rollup[0], base, recent)
    if split is None:
        sql = facts("base", "end")
    else:
        table, rows, r_unit, r_bad, also = rollup
        day = _sql.ROLLUPS[table].day
        params |= split
        conds = " AND ".join([f"{day} >= $d0", f"{day} < $d1", rows, *where])
        whole = (f"SELECT {select}0 AS n1, 0 AS k1, "
                 f"coalesce(sum(n) FILTER (WHERE {r_unit}), 0) AS n0, "
                 f"coalesce(sum(n) FILTER (WHERE ({r_unit}) AND ({r_bad})), 0) AS k0 "
                 f"FROM {table} WHERE {conds}{group}")
        sums = "CAST(sum(n1) AS BIGINT) AS n1, CAST(sum(k1) AS BIGINT) AS k1, " \
               "CAST(sum(n0) AS BIGINT) AS n0, CAST(sum(k0) AS BIGINT) AS k0"
        also = f" UNION ALL {facts('t0', 't1', also)}" if also else ""
        sql = (f"SELECT {select}{sums} FROM ({facts('base', 't0')} UNION ALL {whole}{also} "
               f"UNION ALL {facts('t1', 'end')}){group}")
    df = con.execute(sql, params).df()
    return df[df["n1"] >= rule.min_volume].reset_index(drop=True)


def _opt_out_filters(where: Iterable[tuple[str, str]]) -> Filters:
    """A rule's where on message_facts, channel included (message_facts is all SMS)."""
    w = dict(where)
    return Filters(countries=(w["country"],) if "country" in w else (),
                   channels=(w["channel"],) if "channel" in w else (),
                   purposes=(w["purpose"],) if "purpose" in w else (),
                   templates=(w["template"],) if "template" in w else (),
                   extra=tuple((SCOPES[k], w[k]) for k in ("carrier", "sender") if k in w))


def _rates(con: Any, rules: list[Rule], as_of: datetime, dashboard_url: str) -> list[Finding]:
    """Every cell of every rate rule tested; one Benjamini-Hochberg correction over all of them."""
    frames = []
    for rule in rules:
        cells = _rate_cells(con, rule, as_of)
        if cells.empty:
            continue
        t = two_proportion_z(cells["k1"].to_numpy(float), cells["n1"].to_numpy(float),
                             cells["k0"].to_numpy(float), cells["n0"].to_numpy(float), "greater")
        frames.append(cells.assign(_rule=rule.name, p1=t.p1, p0=t.p0, p=t.p_value))
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    df["q"] = benjamini_hochberg(df["p"].to_numpy(float))
    by_name = {r.name: r for r in rules}
    names = dict(con.execute("SELECT iso2, name FROM countries").fetchall())
    out = []
    for row in df.to_dict("records"):
        rule = by_name[row["_rule"]]
        if not _real(rule, row):
            continue
        out.append(_rate_finding(rule, row, as_of, names))
    return out


def _real(rule: Rule, row: dict[str, Any]) -> bool:
    p0, p1, q = row["p0"], row["p1"], row["q"]
    if not (np.isfinite(q) and np.isfinite(p0) and np.isfinite(p1)) or row["n0"] == 0:
        return False
    impact = row["k1"] - p0 * row["n1"]
    ratio_ok = p0 == 0 or p1 / p0 >= rule.min_ratio
    return bool(q <= rule.alpha and p1 - p0 >= rule.min_effect and ratio_ok and impact >= rule.min_impact)


def _rate_finding(rule: Rule, row: dict[str, Any], as_of: datetime, names: dict[str, str]) -> Finding:
    _, recent, end = _window(rule, as_of)
    cells = {s: row[SCOPES[s]] for s in rule.scope}
    country = cells.get("country")
    impact = float(row["k1"] - row["p0"] * row["n1"])
    place = _place(names.get(country) if country else None, country, cells.get("carrier"), cells.get("template"))
    for s in ("sender", "purpose"):
        if cells.get(s):
            place += f", {s} {cells[s]}"
    if not country:
        place = place.replace("an unknown country", "all countries")
    what, who = _RATE_WORDS[rule.metric]
    head = f"In the {fmt.window_words(rule.recent_hours)} to {end:%d %b %H:%M} UTC"
    base_words = f"over the previous {fmt.window_words(rule.baseline_days * 24)}"
    sentence = (f"{head}, {fmt.pct(row['p1'])} {what.format(place=place, lat=rule.latency_seconds)}, against "
                f"{fmt.pct(row['p0'])} {base_words}: about {fmt.about(impact)} {who}. "
                f"What to do: {_RATE_TODO[rule.metric]}")
    page = {"fallback_failure_rate": "voice", "opt_out_rate": "overview"}.get(rule.metric, "errors")
    return Finding(
        rule=rule.name, kind=_kind(rule), severity=_severity(rule, impact), country_iso2=country,
        country_name=names.get(country) if country else None, carrier=cells.get("carrier"),
        template_id=cells.get("template"), cells={k: v for k, v in cells.items() if v is not None},
        metric=rule.metric, baseline_value=float(row["p0"]), recent_value=float(row["p1"]), impact=impact,
        p_value=float(row["p"]), q_value=float(row["q"]), sentence=sentence, what_to_do=_RATE_TODO[rule.metric],
        link=fmt.link(page, country=names.get(country, country) if country else None, template=cells.get("template"),
                      start=recent, end=end),
        evidence={"recent": [int(row["k1"]), int(row["n1"])], "baseline": [int(row["k0"]), int(row["n0"])]},
        since=recent)


def _kind(rule: Rule) -> str:
    return {"fallback_failure_rate": "fallback_failure", "slow_delivery_rate": "latency",
            "opt_out_rate": "opt_out"}.get(rule.metric, "failure_rate")
