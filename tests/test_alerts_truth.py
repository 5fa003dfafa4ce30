"""The alert rules on the sandbox's default world, replayed day by day against its ground truth: the injected
carrier incident alerts (right country, carrier, code, templates) within days of its start, the SMS-pumping
episode alerts (right country, the prefixes to block), and no alert is raised that ground truth does not
explain. ``python -m bench.bench_alerts_replay`` prints the same replay day by day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from switchboard.alerts import evaluate, rules
from tests.test_analytics_insights import DELIBERATE, load_world

# 150,000 SMS over 90 days is ~1,700 a day: a 3-day window gives the cells enough volume
CONFIG = rules.parse({"defaults": {"recent_hours": 72}})
# A fixed end: the same world, so the same replay, whatever day the suite runs (the default world ends today)
END = datetime(2026, 12, 5, tzinfo=UTC)


def default_world(messages: int = 150_000, calls: int = 15_000, seed: int = 7, end: datetime = END, con=None):
    """The default scenario (with ``messages`` and ``calls``) ending at ``end``, loaded into ``con`` (or an
    in-memory warehouse)."""
    world_mod = pytest.importorskip("switchboard.sandbox.world")
    w = world_mod.generate(world_mod.Scenario(seed=seed, messages=messages, calls=calls, end=end))
    return w, load_world(w, con)


@pytest.fixture(scope="module")
def world():
    return default_world()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def pumping_matches(f, episode: dict[str, Any]) -> bool:
    """A pumping finding is this episode's when it names the country, every prefix it names is the start of
    one of the episode's number ranges, and its window overlaps the episode."""
    prefixes = f.evidence.get("prefixes") or []
    return (f.country_iso2 == episode["country"] and bool(prefixes)
            and all(any(r.startswith(p) for r in episode["prefixes"]) for p in prefixes)
            and f.since < _when(episode["end"]) and _when(episode["start"]) <= f.since + timedelta(days=30))


def explanation(f, truth: dict) -> str | None:
    """What in ground truth explains a finding, or None. Incidents and known issues (US sends from an
    unregistered long code failing with 30034, opted-out members' SMS failing with 21610) explain a finding
    with their code, or a delivery drop in their country (a small cell whose mix of senders or members
    moved); a pumping episode explains a pumping finding naming its country and prefixes."""
    if f.kind == "pumping":
        for ep in truth.get("pumping", []):
            if pumping_matches(f, ep):
                return f"pumping {ep['country']} {ep['start'][:10]}"
        return None
    if (f.country_iso2, f.error_code) in DELIBERATE:
        return f"deliberate {f.country_iso2} {f.error_code}"
    for inc in truth["incidents"] + truth.get("known_issues", []):
        if inc.get("country") is None:  # everywhere (opt-outs): only its own code
            if f.error_code == inc["error_code"]:
                return f"{inc['kind']} {inc['error_code']}"
        elif inc["country"] == f.country_iso2 and f.error_code in (None, inc["error_code"]):
            return f"{inc['kind']} {inc['country']} {inc['error_code']}"
    return None


def replay(con, truth: dict, config: rules.Config = CONFIG, first_day: date | None = None,
           last_day: date | None = None) -> list[tuple[date, list]]:
    """(day, findings) for every day from a full baseline after the start to the last whole day."""
    k = first_day or date.fromisoformat(str(truth["start"])[:10]) + timedelta(days=31)  # a full baseline behind it
    last = last_day or (_when(truth["end"]) - timedelta(days=1)).date()
    out = []
    while k <= last:
        as_of = datetime(k.year, k.month, k.day, 23, 59, 59, tzinfo=UTC)
        out.append((k, evaluate.evaluate(con, config, as_of).findings))
        k += timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def replayed(world):
    w, con = world
    return replay(con, w.ground_truth)


@pytest.mark.slow
def test_replayed_day_by_day_nothing_is_invented(world, replayed):
    truth = world[0].ground_truth
    for day, findings in replayed:
        invented = [f.sentence for f in findings if explanation(f, truth) is None]
        assert not invented, (day, invented)


@pytest.mark.slow
def test_replayed_day_by_day_the_carrier_incident_alerts_during_its_ramp(world, replayed):
    truth = world[0].ground_truth
    carrier = next(i for i in truth["incidents"] if i["kind"] == "carrier_filtering")
    start = date.fromisoformat(carrier["start_date"])
    hits = [(day, f) for day, findings in replayed for f in findings
            if (f.rule, f.country_iso2, f.error_code) == ("error_rise", carrier["country"], carrier["error_code"])]
    assert hits, "the carrier incident never alerted"
    day, f = hits[0]
    assert start <= day <= start + timedelta(days=carrier["ramp_days"]), day  # alerted during its ramp
    assert f.carrier == carrier["carrier"], f.sentence
    assert f.evidence["templates"], f.sentence  # the templates hit are named
    assert "Indonesia" in f.sentence and "30007" in f.sentence


@pytest.mark.slow
def test_replayed_day_by_day_the_pumping_episode_alerts_with_its_prefixes(world, replayed):
    (episode,) = world[0].ground_truth["pumping"]
    hits = [(day, f) for day, findings in replayed for f in findings if f.kind == "pumping"]
    assert hits, "the pumping episode never alerted"
    day, f = hits[0]
    assert day == _when(episode["start"]).date(), day  # the evening of its first day
    assert all(pumping_matches(f, episode) for _, f in hits)
    # one alert prefix per pumped range: exactly the prefixes to block
    assert sorted(f.evidence["prefixes"]) == sorted({r[:len(f.evidence["prefixes"][0])] for r in episode["prefixes"]})
    assert f.rule == "pumping" and f.severity == "critical" and "Nigeria" in f.sentence


def test_the_detector_on_ground_truth_names_the_country_and_the_prefixes_to_block(world):
    """The default rules (a 24-hour window) at the end of the default history's pumping episode."""
    w, con = world
    (episode,) = w.ground_truth["pumping"]
    assert episode["messages"] == 1200 and episode["converted"] == 0 and episode["new_members"] == episode["numbers"]
    ev = evaluate.evaluate(con, rules.parse({}), _when(episode["end"]) - timedelta(seconds=1))
    (f,) = [f for f in ev.findings if f.kind == "pumping"]
    assert f.country_iso2 == episode["country"] and pumping_matches(f, episode), f.sentence
    assert len(f.evidence["prefixes"]) == len(episode["prefixes"])
    # the prefixes also hold a few real members' numbers, who use their codes
    assert f.evidence["conversion_recent"] < 0.05 and f.evidence["conversion_baseline"] > 0.5
    assert f.evidence["new_member_share"] > 0.9 and f.evidence["sequential_share"] > 0.8
    # the day before the episode: nothing
    before = evaluate.evaluate(con, rules.parse({}), _when(episode["start"]) - timedelta(seconds=1))
    assert not [f for f in before.findings if f.kind == "pumping"]


@pytest.mark.slow
def test_replayed_day_by_day_the_standing_landline_problem_alerts(world, replayed):
    """Egypt's landline-heavy members fail with 30006 from the first day: no before/after rule sees it, the
    standing_error rule (a code far above the other countries) does, from the first replayed day and on most
    days (a day whose cell is small can miss the thresholds), naming the country, the code and the templates."""
    landline = next(i for i in world[0].ground_truth["incidents"] if i["kind"] == "landline_heavy")
    hits = {day: f for day, findings in replayed for f in findings
            if (f.rule, f.country_iso2, f.error_code) == ("standing_error", landline["country"], landline["error_code"])}
    days = [day for day, _ in replayed]
    assert days[0] in hits and len(hits) >= 0.8 * len(days), (len(hits), len(days))  # from the first day on
    f = next(iter(hits.values()))
    assert f.kind == "persistent_error" and "Egypt" in f.sentence and "30006" in f.sentence, f.sentence
    assert "standing problem" in f.sentence and f.evidence["templates"], f.sentence
