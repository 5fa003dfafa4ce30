"""SMS pumping watch: artificially inflated OTP traffic to a few number prefixes.

Per destination country and number prefix (the country calling code and the national destination code
plus one digit, lengths from phonenumbers), over the one-time-code purposes (verification, password reset,
login, OTP, 2FA), recent window against baseline:

* **volume**: recent OTP SMS against the baseline rate scaled to the window; a one-sided Poisson test,
  Benjamini-Hochberg over every prefix checked. Real when q <= alpha, at least ``min_ratio`` times the
  expected count and at least ``min_impact`` messages above it;
* **conversion**: the share of those OTP sends the member used (attempt_facts.converted) against the
  country's baseline: pumped codes are never used;
* **new members**: the share of recent recipients (user_id) never seen before the window;
* **sequential numbers**: the share of recent numbers within 10 of another recent number of the prefix.

A prefix is suspected when its volume is real and at least two of the three other signals agree
(conversion below half the country's, over half new members, over 30 % sequential numbers). One alert per
country lists its suspected prefixes: the prefixes to block.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
from scipy.stats import poisson

from switchboard.alerts import days
from switchboard.alerts import findings as fmt
from switchboard.alerts.findings import Finding
from switchboard.alerts.rules import Rule
from switchboard.analytics.stats_basic import benjamini_hochberg

OTP_PURPOSES = ("%verif%", "%password%", "%otp%", "%login%", "%2fa%")


def otp(column: str = "purpose") -> str:
    """SQL: the row's purpose is a one-time code's (verification, password reset, login, OTP, 2FA)."""
    return "(" + " OR ".join(f"{column} ILIKE '{p}'" for p in OTP_PURPOSES) + ")"


OTP_PURPOSE = otp()
ROLLUP = "_daily_prefix_rollup"  # OTP SMS per day, country, purpose and prefix (ingest/facts.sql)
NEAR = 10  # numbers this close count as sequential
CONVERSION_DROP = 0.5
NEW_SHARE = 0.5
SEQUENTIAL_SHARE = 0.3


def prefix_length(numbers: list[str]) -> int | None:
    """Characters of an E.164 number that make its prefix: '+', calling code, destination code, one digit."""
    lengths = []
    for n in numbers:
        try:
            p = phonenumbers.parse(n, None)
        except phonenumbers.NumberParseException:
            continue
        ndc = phonenumbers.length_of_national_destination_code(p) or 2
        lengths.append(1 + len(str(p.country_code)) + ndc + 1)
    return Counter(lengths).most_common(1)[0][0] if lengths else None


def otp_purposes(con: Any) -> list[str]:
    """The warehouse's one-time-code purposes, from the small daily rollup when it is there: a list to
    match exactly is far cheaper on millions of rows than five ILIKEs."""
    source = "_daily_message_rollup" if _has(con, "_daily_message_rollup") else "message_facts"
    return [r[0] for r in con.execute(f"SELECT DISTINCT purpose FROM {source} WHERE {OTP_PURPOSE}").fetchall()]


def _has(con: Any, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND table_name = $t", {"t": table}).fetchone()[0])


def detect(con: Any, rule: Rule, as_of: datetime) -> list[Finding]:
    end = as_of + timedelta(microseconds=1)
    recent = end - timedelta(hours=rule.recent_hours)
    base = recent - timedelta(days=rule.baseline_days)
    purposes = otp_purposes(con)
    if not purposes:
        return []
    lengths = _prefix_lengths(con, rule, recent, end, purposes)
    if lengths.empty:
        return []
    cells = _cells(con, lengths, base, recent, end, purposes, rule.min_impact)
    if cells.empty:
        return []
    hours0 = rule.baseline_days * 24
    cells["expected"] = np.maximum(cells["n0"], 0.5) * rule.recent_hours / hours0
    cells["p"] = poisson.sf(cells["n1"] - 1, cells["expected"])
    cells["q"] = benjamini_hochberg(cells["p"].to_numpy(float))
    cells["excess"] = cells["n1"] - cells["n0"] * rule.recent_hours / hours0
    # Pumping is concentrated: a prefix must outgrow the rest of its country's OTP traffic, so a country whose
    # codes all doubled (a launch, a campaign) is not dozens of suspects (and its evidence is not computed).
    # The rest: without the prefixes that are themselves real and large, or an attack on two or three ranges
    # that dominates a small country's traffic would raise the bar it is measured against.
    totals = _country_growth(con, lengths, base, recent, end, purposes)
    real = (cells["q"] <= rule.alpha) & (cells["excess"] >= rule.min_impact)
    growth = cells["country_iso2"].map(_rest_growth(cells[real], totals)).fillna(1.0)
    loud = cells[real & (cells["n1"] >= rule.min_ratio * np.maximum(growth, 1.0) * cells["expected"])]
    if loud.empty:
        return []
    loud = _signals(con, loud.merge(lengths, on="country_iso2"), base, recent, end, purposes)
    suspected = loud[loud["signals"] >= 2]
    names = dict(con.execute("SELECT iso2, name FROM countries").fetchall())
    return [_finding(rule, country, group, names.get(country), recent, end)
            for country, group in suspected.groupby("country_iso2", sort=True)]


def _country_growth(con: Any, lengths: pd.DataFrame, base: datetime, recent: datetime, end: datetime,
                    purposes: list[str]) -> dict[str, tuple[int, float]]:
    """Per country: (recent OTP SMS, what its baseline rate predicts for the window); no string work: cheap. The
    baseline's whole days come from the prefix rollup (alerts.days)."""
    hours0 = (recent - base).total_seconds() / 3600
    hours1 = (end - recent).total_seconds() / 3600
    params: dict[str, Any] = {"b": base, "r": recent, "e": end, "c": list(lengths["country_iso2"]), "p": purposes}

    def facts(lo: str, hi: str) -> str:
        return ("SELECT country_iso2, count(*) FILTER (WHERE sent_at >= $r) AS n1, "
                "count(*) FILTER (WHERE sent_at < $r) AS n0 "
                f"FROM message_facts WHERE sent_at >= ${lo} AND sent_at < ${hi} AND list_contains($c, country_iso2) "
                "AND list_contains($p, purpose) GROUP BY 1")

    split = days.rolled(con, ROLLUP, base, recent)
    if split is None:
        sql = facts("b", "e")
    else:
        params |= split
        sql = (f"SELECT country_iso2, sum(n1), sum(n0) FROM ({facts('b', 't0')} UNION ALL {facts('t1', 'e')} "
               f"UNION ALL SELECT country_iso2, 0, sum(n) FROM {ROLLUP} WHERE sent_day >= $d0 AND sent_day < $d1 "
               "AND list_contains($c, country_iso2) AND list_contains($p, purpose) GROUP BY 1) GROUP BY 1")
    rows = con.execute(sql, params).fetchall()
    return {c: (int(n1), int(n0) * hours1 / hours0) for c, n1, n0 in rows}


def _rest_growth(real: pd.DataFrame, totals: dict[str, tuple[int, float]]) -> dict[str, float]:
    """Per country: its recent OTP SMS outside the ``real`` prefixes over what the baseline predicts for them."""
    out = {}
    for country, (n1, expected) in totals.items():
        mine = real[real["country_iso2"] == country]
        out[country] = (n1 - mine["n1"].sum()) / max(expected - mine["expected"].sum(), 1.0)
    return out


def _prefix_lengths(con: Any, rule: Rule, recent: datetime, end: datetime, purposes: list[str]) -> pd.DataFrame:
    """Countries with at least ``min_volume`` recent OTP SMS and their prefix length (from sampled numbers)."""
    rows = con.execute(
        "SELECT country_iso2, count(*) n, list(to_number ORDER BY to_number)[1:5] sample FROM message_facts "
        "WHERE sent_at >= $r AND sent_at < $e AND list_contains($p, purpose) AND to_number IS NOT NULL "
        "AND country_iso2 IS NOT NULL GROUP BY 1 HAVING count(*) >= $v",
        {"r": recent, "e": end, "v": rule.min_volume, "p": purposes}).fetchall()
    out = [(c, prefix_length(list(sample))) for c, _, sample in rows]
    return pd.DataFrame([(c, n) for c, n in out if n], columns=["country_iso2", "plen"])


def _cells(con: Any, lengths: pd.DataFrame, base: datetime, recent: datetime, end: datetime,
           purposes: list[str], min_recent: float) -> pd.DataFrame:
    """OTP SMS per country and prefix: recent n1 and cost, then baseline n0 only for the prefixes with at
    least ``min_recent`` recent SMS (the only ones that can pass min_impact), in the countries they are in:
    the baseline scan is the costly one (a string prefix per row), so it reads as little as it can."""
    con.register("_alert_plen", lengths)
    try:
        recent_cells = con.execute(
            "SELECT m.country_iso2, left(m.to_number, l.plen) AS prefix, count(*) AS n1, "
            "coalesce(sum(m.cost_usd), 0) AS cost1 FROM message_facts m JOIN _alert_plen l USING (country_iso2) "
            "WHERE m.sent_at >= $r AND m.sent_at < $e AND list_contains($p, m.purpose) GROUP BY ALL "
            "HAVING count(*) >= $min",
            {"r": recent, "e": end, "p": purposes, "min": min_recent}).df()
        if recent_cells.empty:
            return recent_cells.assign(n0=pd.Series(dtype="int64"))
        wanted = recent_cells[["country_iso2", "prefix"]].merge(lengths, on="country_iso2")
        base_cells = _baseline(con, wanted, base, recent, purposes)
    finally:
        con.unregister("_alert_plen")
    out = recent_cells.merge(base_cells, on=["country_iso2", "prefix"], how="left")
    out["n0"] = out["n0"].fillna(0).astype("int64")
    return out


def rollup_length(calling_code: int | None) -> int | None:
    """Characters of ``_daily_prefix_rollup.prefix`` for a country with this calling code (ingest/facts.sql):
    '+', the calling code and five more digits."""
    if calling_code is None:
        return None
    return 7 if calling_code < 10 else 8 if calling_code < 100 else 9 if calling_code < 1000 else None


def _baseline(con: Any, wanted: pd.DataFrame, base: datetime, recent: datetime, purposes: list[str]) -> pd.DataFrame:
    """n0: baseline OTP SMS per wanted (country, prefix). A country whose watch prefix is no longer than the
    rollup's reads the baseline's whole days from ``_daily_prefix_rollup`` (its prefixes cut to the watch's
    length) and only the two partial days from message_facts; any other country reads message_facts."""
    split = days.rolled(con, ROLLUP, base, recent)
    rolled = pd.Series(False, index=wanted.index)
    if split is not None:
        codes = dict(con.execute("SELECT iso2, calling_code FROM countries WHERE list_contains($c, iso2)",
                                 {"c": sorted(set(wanted["country_iso2"]))}).fetchall())
        limit = wanted["country_iso2"].map(lambda c: rollup_length(codes.get(c)))
        rolled = limit.notna() & (wanted["plen"] <= limit.fillna(0))
    parts = [_facts_baseline(con, wanted[~rolled], [(base, recent)], purposes)]
    if rolled.any():
        w = wanted[rolled]
        parts.append(_facts_baseline(con, w, [(base, split["t0"]), (split["t1"], recent)], purposes))
        con.register("_alert_wanted", w)
        try:
            parts.append(con.execute(
                f"SELECT r.country_iso2, left(r.prefix, w.plen) AS prefix, sum(r.n) AS n0 FROM {ROLLUP} r "
                "JOIN (SELECT DISTINCT country_iso2, plen FROM _alert_wanted) w USING (country_iso2) "
                "WHERE r.sent_day >= $d0 AND r.sent_day < $d1 AND list_contains($p, r.purpose) "
                "AND list_contains($prefixes, left(r.prefix, w.plen)) GROUP BY ALL",
                {"d0": split["d0"], "d1": split["d1"], "p": purposes,
                 "prefixes": sorted(set(w["prefix"]))}).df())
        finally:
            con.unregister("_alert_wanted")
    out = pd.concat([p for p in parts if not p.empty] or [parts[0]], ignore_index=True)
    return out.groupby(["country_iso2", "prefix"], as_index=False)["n0"].sum()


def _facts_baseline(con: Any, wanted: pd.DataFrame, spans: list[tuple[datetime, datetime]],
                    purposes: list[str]) -> pd.DataFrame:
    """OTP SMS per wanted (country, prefix) sent in ``spans``, from message_facts: the costly scan (a string
    prefix per row), bounded by the spans and the wanted countries."""
    if wanted.empty or not spans:
        return pd.DataFrame({"country_iso2": pd.Series(dtype=object), "prefix": pd.Series(dtype=object),
                             "n0": pd.Series(dtype="int64")})
    params: dict[str, Any] = {"p": purposes, "prefixes": sorted(set(wanted["prefix"]))}
    selects = []
    for i, (lo, hi) in enumerate(spans):
        params |= {f"lo{i}": lo, f"hi{i}": hi}
        selects.append(
            "SELECT m.country_iso2, left(m.to_number, w.plen) AS prefix "
            "FROM message_facts m JOIN (SELECT DISTINCT country_iso2, plen FROM _alert_wanted) w "
            f"USING (country_iso2) WHERE m.sent_at >= $lo{i} AND m.sent_at < $hi{i} "
            "AND list_contains($p, m.purpose) AND list_contains($prefixes, left(m.to_number, w.plen))")
    con.register("_alert_wanted", wanted)
    try:
        return con.execute(f"SELECT country_iso2, prefix, count(*) AS n0 FROM ({' UNION ALL '.join(selects)}) "
                           "GROUP BY ALL", params).df()
    finally:
        con.unregister("_alert_wanted")


def _signals(con: Any, loud: pd.DataFrame, base: datetime, recent: datetime, end: datetime,
             purposes: list[str]) -> pd.DataFrame:
    """Conversion, new-member and sequential-number evidence of the loud prefixes. Every scan is bounded by
    the windows: a member is new when the baseline window never messaged them. That one reads weeks of
    attempt_facts, so it runs only for the prefixes it can decide or describe: those with at least one of the
    two other signals (with neither, two of three cannot agree and the prefix is not reported)."""
    con.register("_alert_loud", loud[["country_iso2", "prefix", "plen"]])
    params = {"r": recent, "e": end, "p": purposes}
    try:
        ev = con.execute(f"""
            WITH recent AS ({_RECENT}),
            conv AS (
                SELECT event_id, converted FROM attempt_facts
                WHERE sent_at >= $r AND sent_at < $e AND event_id IN (SELECT event_id FROM recent)
            ),
            nums AS (
                SELECT country_iso2, prefix, num,
                       least(coalesce(num - lag(num) OVER w, 1e12), coalesce(lead(num) OVER w - num, 1e12)) AS gap
                FROM (SELECT DISTINCT country_iso2, prefix, num FROM recent WHERE num IS NOT NULL)
                WINDOW w AS (PARTITION BY country_iso2, prefix ORDER BY num)
            )
            SELECT r.country_iso2, r.prefix,
                   avg(c.converted::INT) AS conversion,
                   count(DISTINCT r.user_id) AS members,
                   any_value(q.sequential) AS sequential
            FROM recent r
            LEFT JOIN conv c USING (event_id)
            LEFT JOIN (SELECT country_iso2, prefix, avg((gap <= {NEAR})::INT) AS sequential FROM nums GROUP BY ALL) q
                   ON q.country_iso2 = r.country_iso2 AND q.prefix = r.prefix
            GROUP BY ALL""", params).df()
    finally:
        con.unregister("_alert_loud")
    countries = list(loud["country_iso2"].unique())
    out = loud.merge(ev, on=["country_iso2", "prefix"], how="left")
    out["conversion_baseline"] = out["country_iso2"].map(_conversion_baseline(con, countries, base, recent,
                                                                              purposes)).astype(float)
    low_conv = ((out["conversion_baseline"] > 0)
                & (out["conversion"] <= CONVERSION_DROP * out["conversion_baseline"])).to_numpy()
    sequential = (out["sequential"] >= SEQUENTIAL_SHARE).to_numpy()
    out = out.merge(_new_members(con, out[low_conv | sequential], base, recent, end, purposes),
                    on=["country_iso2", "prefix"], how="left")
    out["new_share"] = out["new_members"] / out["members"].where(out["members"] > 0)
    out["signals"] = low_conv.astype(int) + (out["new_share"] >= NEW_SHARE).to_numpy().astype(int) \
        + sequential.astype(int)
    return out


# the recent OTP SMS of the loud prefixes (_alert_loud), with their number as an integer
_RECENT = """
    SELECT l.country_iso2, l.prefix, m.to_number, m.user_id, m.event_id,
           try_cast(regexp_replace(m.to_number, '[^0-9]', '', 'g') AS HUGEINT) AS num
    FROM message_facts m
    JOIN _alert_loud l ON m.country_iso2 = l.country_iso2 AND left(m.to_number, l.plen) = l.prefix
    WHERE m.sent_at >= $r AND m.sent_at < $e AND list_contains($p, m.purpose)"""


def _new_members(con: Any, prefixes: pd.DataFrame, base: datetime, recent: datetime, end: datetime,
                 purposes: list[str]) -> pd.DataFrame:
    """Recent members of ``prefixes`` that no attempt in the baseline window went to, per prefix."""
    if prefixes.empty:
        return pd.DataFrame({"country_iso2": pd.Series(dtype=object), "prefix": pd.Series(dtype=object),
                             "new_members": pd.Series(dtype="int64")})
    con.register("_alert_loud", prefixes[["country_iso2", "prefix", "plen"]])
    try:
        new = con.execute(f"""
            WITH recent AS ({_RECENT})
            SELECT r.country_iso2, r.prefix, count(DISTINCT r.user_id) AS new_members
            FROM recent r ANTI JOIN (SELECT user_id FROM attempt_facts WHERE sent_at >= $b AND sent_at < $r) s
                 ON s.user_id = r.user_id
            GROUP BY ALL""", {"b": base, "r": recent, "e": end, "p": purposes}).df()
    finally:
        con.unregister("_alert_loud")
    out = prefixes[["country_iso2", "prefix"]].merge(new, on=["country_iso2", "prefix"], how="left")
    out["new_members"] = out["new_members"].fillna(0).astype("int64")  # every member seen before: none new
    return out


def _conversion_baseline(con: Any, countries: list[str], base: datetime, recent: datetime,
                         purposes: list[str]) -> dict[str, float]:
    """The share of baseline OTP SMS whose code was used, per country: the whole days from
    ``_daily_attempt_rollup``, the partial ones from attempt_facts (alerts.days)."""
    params: dict[str, Any] = {"b": base, "r": recent, "c": countries, "p": purposes}

    def facts(lo: str, hi: str) -> str:
        return ("SELECT country_iso2, count(*) FILTER (WHERE converted) AS k, count(*) AS n FROM attempt_facts "
                f"WHERE sent_at >= ${lo} AND sent_at < ${hi} AND channel = 'sms' AND list_contains($c, country_iso2) "
                "AND list_contains($p, purpose) AND converted IS NOT NULL GROUP BY 1")

    split = days.rolled(con, "_daily_attempt_rollup", base, recent)
    if split is None:
        sql = facts("b", "r")
    else:
        params |= split
        sql = (f"SELECT country_iso2, sum(k), sum(n) FROM ({facts('b', 't0')} UNION ALL {facts('t1', 'r')} "
               "UNION ALL SELECT country_iso2, sum(n) FILTER (WHERE converted), sum(n) FROM _daily_attempt_rollup "
               "WHERE sent_day >= $d0 AND sent_day < $d1 AND channel = 'sms' AND list_contains($c, country_iso2) "
               "AND list_contains($p, purpose) AND converted IS NOT NULL GROUP BY 1) GROUP BY 1")
    return {c: int(k or 0) / int(n) for c, k, n in con.execute(sql, params).fetchall() if n}


def _finding(rule: Rule, country: str, group: pd.DataFrame, name: str | None, recent: datetime,
             end: datetime) -> Finding:
    group = group.sort_values("excess", ascending=False)
    prefixes = group["prefix"].tolist()
    n1, expected, excess = int(group["n1"].sum()), float(group["expected"].sum()), float(group["excess"].sum())
    cost = float(group["cost1"].sum())
    conv, conv0 = _mean(group, "conversion", "n1"), float(group["conversion_baseline"].iloc[0])
    new, seq = _mean(group, "new_share", "members"), _mean(group, "sequential", "n1")
    head = f"In the {fmt.window_words(rule.recent_hours)} to {end:%d %b %H:%M} UTC"
    sentence = (
        f"SMS pumping suspected in {name or country}: {head[0].lower()}{head[1:]}, {n1:,} one-time-code SMS went to "
        f"{fmt.names(prefixes[:5])}{' and more' if len(prefixes) > 5 else ''}, against about {fmt.about(expected)} "
        f"expected from the previous {fmt.window_words(rule.baseline_days * 24)}; {fmt.pct(conv)} of the codes "
        f"were used (country usually {fmt.pct(conv0)}), {fmt.pct(new)} went to never-seen members and "
        f"{fmt.pct(seq)} to sequential numbers: about ${cost:,.2f} spent. What to do: block these prefixes in "
        "your sign-up / reset flow and in Twilio's SMS Geo Permissions, rate-limit codes per prefix, and check "
        "the requests' IPs.")
    evidence = {"prefixes": prefixes, "messages_recent": n1, "expected": round(expected, 1),
                "conversion_recent": _round(conv), "conversion_baseline": _round(conv0),
                "new_member_share": _round(new), "sequential_share": _round(seq), "cost_usd": round(cost, 2),
                "per_prefix": group[["prefix", "n1", "n0", "expected", "conversion", "new_share", "sequential",
                                     "q"]].round(4).to_dict("records")}
    return Finding(
        rule=rule.name, kind="pumping", severity=rule.severity, country_iso2=country, country_name=name,
        cells={"country": country}, metric="otp_messages", baseline_value=expected, recent_value=float(n1),
        impact=excess, p_value=float(group["p"].min()), q_value=float(group["q"].min()), sentence=sentence,
        what_to_do="Block the prefixes, rate-limit one-time codes per prefix and destination.",
        link=fmt.link("overview", country=name or country, start=recent, end=end), evidence=evidence, since=recent,
        prefix=None)


def _mean(group: pd.DataFrame, col: str, weight: str) -> float:
    v, w = group[col].to_numpy(float), group[weight].to_numpy(float)
    ok = np.isfinite(v) & (w > 0)
    return float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")


def _round(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 4)
