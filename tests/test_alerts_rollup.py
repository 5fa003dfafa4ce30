"""The alert rules that read the daily rollups (issue 17's 1 s target at 10M) give the same cells and the same
findings as reading the facts alone, on a hand-built warehouse whose windows start and end mid-day: the rate
rules' baseline takes its whole UTC days from ``_daily_message_rollup`` / ``_daily_latency_rollup`` /
``_daily_attempt_rollup`` and only the edges from the facts; the pumping watch's from ``_daily_prefix_rollup``
and ``_daily_attempt_rollup``."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import datetime, timedelta

import pandas as pd
import pytest

from switchboard.alerts import days, evaluate, rules
from switchboard.analytics import _sql
from tests.alerts_util import INDOSAT, day
from tests.test_analytics_warehouse import Hand, at

TEMPLATES = ("pr_standard", "pr_short", "otp_login")
CARRIERS = ("Telkomsel", INDOSAT, None)


class Recording:
    """The connection, with every SQL statement it ran kept (to see which tables a rule read)."""

    def __init__(self, con):
        self.con, self.sql = con, []

    def execute(self, sql, *args):
        self.sql.append(sql)
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.fixture(scope="module")
def con():
    """40 days of SMS to two countries at every minute-ish of the day (so every window edge splits a day),
    failing, slow and falling back to calls at random rates that change on the last days."""
    rng = random.Random(11)
    h = Hand()
    for k in range(40):
        late = k >= 37
        for i in range(150):
            country = "ID" if i % 3 else "PH"
            carrier = CARRIERS[i % 3] if country == "ID" else "Globe"
            template = TEMPLATES[i % 5 % 3]
            bad = rng.random() < (0.35 if late and carrier == INDOSAT else 0.08)
            minute = rng.randrange(24 * 60)
            _, event = h.sms(day=day(k), hour=minute // 60, minute=minute % 60, country=country, carrier=carrier,
                             template=template, purpose="password_reset" if i % 2 else "login",
                             status="undelivered" if bad else rng.choice(["delivered", "delivered", "sent"]),
                             error=30007 if bad else None,
                             latency_s=rng.choice([5, 8, 119, 120, 121, 600 if late else 9]))
            if bad and i % 2:
                answered = rng.random() < (0.2 if late else 0.8)
                h.call(day=day(k), hour=minute // 60, minute=minute % 60, second=30, country=country,
                       fallback_of=event, template=template, purpose="password_reset",
                       status="completed" if answered else "no-answer", answered_by="human" if answered else None)
    con = h.build()
    return con


RULES = rules.parse({"defaults": {"min_volume": 1, "alpha": 0.5, "min_effect": 0.0, "min_ratio": 1.0,
                                  "min_impact": 0}, "rule": [
    {"name": "fail_cc", "metric": "failure_rate", "scope": ["country", "carrier"]},
    {"name": "fail_tpl", "metric": "failure_rate", "scope": ["template", "purpose"], "where": {"country": "ID"}},
    {"name": "fail_sender", "metric": "failure_rate", "scope": ["sender"]},  # no rollup keeps sender: facts
    {"name": "slow", "metric": "slow_delivery_rate", "scope": ["country", "carrier"]},
    {"name": "fb", "metric": "fallback_failure_rate", "scope": ["country", "template"]},
    {"name": "fb_days", "metric": "fallback_failure_rate", "recent_hours": 12, "baseline_days": 3.5}]})
# the opt-out rate counts through analytics.responses.opt_out_cells, whose rollup and facts paths
# tests/test_responses_*.py compare
RATE_RULES = [r for r in RULES.rules if r.engine == "rate" and r.metric != "opt_out_rate"]
INSTANTS = [at(day(39), 23, 59), at(day(38), 7, 13, 5), at(day(39), 0, 0), at(day(37), 18, 30)]


def _both(con, monkeypatch, fn):
    with_rollups = fn()
    with monkeypatch.context() as m:
        m.setattr(_sql, "USE_ROLLUPS", False)
        from_facts = fn()
    return with_rollups, from_facts


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns)).reset_index(drop=True)


@pytest.mark.parametrize("rule", RATE_RULES, ids=lambda r: r.name)
@pytest.mark.parametrize("as_of", INSTANTS, ids=lambda t: f"{t:%d-%H%M}")
def test_rate_cells_from_the_rollups_equal_the_facts(con, monkeypatch, rule, as_of):
    rolled, facts = _both(con, monkeypatch, lambda: evaluate._rate_cells(con, rule, as_of))
    assert len(facts) > 0 and facts["n0"].sum() > 0 and facts["k1"].sum() > 0  # a real comparison
    pd.testing.assert_frame_equal(_sorted(rolled), _sorted(facts))


def test_the_rollups_are_read_where_they_keep_the_rule_s_columns(con):
    reads = {}
    for rule in RATE_RULES:
        rec = Recording(con)
        evaluate._rate_cells(rec, rule, INSTANTS[1])
        reads[rule.name] = [t for t in _sql.ROLLUPS if any(t in s for s in rec.sql)]
    assert reads == {"fail_cc": ["_daily_message_rollup"], "fail_tpl": ["_daily_message_rollup"], "fail_sender": [],
                     "slow": ["_daily_latency_rollup"], "fb": ["_daily_attempt_rollup"],
                     "fb_days": ["_daily_attempt_rollup"], "fallback_failure": ["_daily_attempt_rollup"],
                     "latency": ["_daily_latency_rollup"]}  # the built-ins too


def _findings(ev):
    return sorted((asdict(f) for f in ev.findings), key=lambda f: (f["rule"], str(f["cells"])))


@pytest.mark.parametrize("as_of", INSTANTS, ids=lambda t: f"{t:%d-%H%M}")
def test_findings_from_the_rollups_equal_the_facts(con, monkeypatch, as_of: datetime):
    cfg = rules.Config(rules=tuple(RATE_RULES))
    rolled, facts = _both(con, monkeypatch, lambda: _findings(evaluate.evaluate(con, cfg, as_of)))
    assert rolled == facts
    if as_of == INSTANTS[0]:
        assert {f["rule"] for f in facts} >= {"fail_cc", "slow", "fb"}  # the late days' changes are found


def test_whole_days_of_a_window():
    t = at(day(3), 7, 0)
    assert days.whole_days(t, t + timedelta(days=2)) == (day(4), day(5))
    assert days.whole_days(at(day(3), 0, 0), at(day(5), 0, 0)) == (day(3), day(5))
    assert days.whole_days(t, t + timedelta(hours=20)) is None


# --------------------------------------------------------------------------- pumping


PUMPING = rules.Rule("pumping", "pumping", recent_hours=24, min_volume=100, min_ratio=3.0, min_impact=100,
                     severity="critical")


def _otp(h: Hand, when: datetime, country: str, number: str, user: str, *, converts: bool) -> None:
    h.sms(day=when.date(), hour=when.hour, minute=when.minute, country=country, purpose="password_reset",
          template="pr_standard", user=user, carrier=None)
    h.messages[-1]["to_number"] = number
    if converts:
        h.convert(user, when + timedelta(minutes=2), "password_reset_completed")


@pytest.fixture(scope="module")
def pumped():
    """31 days of OTP traffic to Indonesia (+62 812: a prefix of 7 characters, within the rollup's 8) and
    India (+91 98765: 9 characters, beyond the rollup's 8, so India's baseline is read from the facts), at
    random minutes; pumped sequential numbers nobody uses on the last two days in both countries."""
    rng = random.Random(5)
    h = Hand()
    members = {f"U{i}": (("ID", f"+62812{rng.randrange(10**7):07d}") if i % 2 else
                         ("IN", f"+9198765{rng.randrange(10**5):05d}")) for i in range(400)}
    for k in range(31):
        for _ in range(120):
            user = rng.choice(list(members))
            minute = rng.randrange(24 * 60)
            _otp(h, at(day(k), minute // 60, minute % 60), *members[user], user, converts=rng.random() < 0.8)
    for k in (29, 30):
        for i in range(300):
            minute = rng.randrange(24 * 60)
            when = at(day(k), minute // 60, minute % 60)
            _otp(h, when, "ID", f"+628777{100000 + 1000 * k + i:06d}", f"NEW{k}-{i}", converts=False)
            _otp(h, when, "IN", f"+9177777{10000 + 1000 * k + i:05d}", f"NIN{k}-{i}", converts=False)
    return h.build()


PUMP_INSTANTS = [at(day(30), 23, 59), at(day(30), 9, 41), at(day(29), 17, 5), at(day(25), 12, 0)]


@pytest.mark.parametrize("as_of", PUMP_INSTANTS, ids=lambda t: f"{t:%d-%H%M}")
def test_pumping_from_the_rollups_equals_the_facts(pumped, monkeypatch, as_of):
    from switchboard.alerts import pumping

    def run():
        rec = Recording(pumped)
        found = [asdict(f) for f in pumping.detect(rec, PUMPING, as_of)]
        return found, [t for t in ("_daily_prefix_rollup", "_daily_attempt_rollup") if any(t in s for s in rec.sql)]

    (rolled, read_rolled), (facts, read_facts) = _both(pumped, monkeypatch, run)
    assert rolled == facts
    assert read_facts == []
    if as_of != PUMP_INSTANTS[-1]:
        assert read_rolled == ["_daily_prefix_rollup", "_daily_attempt_rollup"]
        assert {(f["country_iso2"], tuple(f["evidence"]["prefixes"])) for f in facts} >= {("ID", ("+628777",))}
    else:
        assert facts == []  # a quiet day: nothing loud, so the rollups are not needed past the growth check


def test_pumping_baseline_counts_from_the_rollup_equal_the_facts(pumped, monkeypatch):
    """Both kinds of country (within the rollup's prefix and beyond it) at a mid-day instant, cell by cell."""
    from switchboard.alerts import pumping

    end = PUMP_INSTANTS[1] + timedelta(microseconds=1)
    recent = end - timedelta(hours=24)
    base = recent - timedelta(days=28)
    purposes = pumping.otp_purposes(pumped)
    lengths = pumping._prefix_lengths(pumped, PUMPING, recent, end, purposes)
    assert dict(zip(lengths["country_iso2"], lengths["plen"], strict=True)) == {"ID": 7, "IN": 9}
    rolled, facts = _both(pumped, monkeypatch, lambda: pumping._cells(pumped, lengths, base, recent, end,
                                                                      purposes, 1))
    assert set(facts["country_iso2"]) == {"ID", "IN"} and facts["n0"].sum() > 0
    pd.testing.assert_frame_equal(_sorted(rolled), _sorted(facts))
    assert pumping.rollup_length(62) == 8 and pumping.rollup_length(91) == 8 and pumping.rollup_length(1) == 7


def test_pumping_without_the_prefix_rollup_reads_the_facts(pumped, tmp_path):
    """A warehouse built before _daily_prefix_rollup (or refreshed by an older build) gives the same findings
    from the facts, with the other rollups still read."""
    from switchboard.alerts import pumping
    from switchboard.ingest import warehouse

    path = tmp_path / "old.duckdb"
    pumped.execute(f"ATTACH '{path}' AS old")
    try:
        pumped.execute("COPY FROM DATABASE memory TO old")
    finally:
        pumped.execute("DETACH old")
    old = warehouse.connect(path)
    try:
        old.execute("DROP TABLE _daily_prefix_rollup")
        for as_of in PUMP_INSTANTS[:2]:
            rec = Recording(old)
            with days.one_evaluation():
                found = [asdict(f) for f in pumping.detect(rec, PUMPING, as_of)]
            assert found == [asdict(f) for f in pumping.detect(pumped, PUMPING, as_of)] != []
            assert not any("_daily_prefix_rollup" in s for s in rec.sql)
            assert any("_daily_attempt_rollup" in s for s in rec.sql)
    finally:
        old.close()
