"""SMS pumping watch on hand-built warehouses: pumped OTPs (one prefix, sequential numbers, new members, no
codes used) alert with their prefix and evidence; a real surge of members who use their codes does not."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from switchboard.alerts import evaluate, pumping, rules
from tests.alerts_util import day
from tests.test_analytics_warehouse import Hand, at

RULE = rules.Rule("pumping", "pumping", recent_hours=24, min_volume=100, min_ratio=3.0, min_impact=100,
                  severity="critical")


def _otp(h: Hand, when, number: str, user: str, *, converts: bool) -> None:
    h.sms(day=when.date(), hour=when.hour, minute=when.minute, purpose="password_reset", template="pr_standard",
          user=user, carrier="Telkomsel")
    h.messages[-1]["to_number"] = number
    if converts:
        h.convert(user, when + timedelta(minutes=2), "password_reset_completed")


def _two_range_world():
    """A small country whose members all have +62 8123, 8127 or 8129 numbers (40 codes a day, 80% used); on day
    28, 400 codes to sequential numbers in two of those prefixes: the attack is most of the country's traffic."""
    rng = random.Random(5)
    h = Hand()
    members = {f"U{i}": f"+62812{rng.choice('379')}{rng.randrange(10**6):06d}" for i in range(300)}
    for k in range(29):
        for i in range(40):
            user = rng.choice(list(members))
            _otp(h, at(day(k), i % 24, i), members[user], user, converts=rng.random() < 0.8)
    for i in range(400):
        _otp(h, at(day(28), i % 24, 1 + i // 24), f"+62812{'37'[i % 2]}{500000 + i // 2:06d}", f"NEW{i}",
             converts=False)
    return h.build()


def test_two_ranges_that_dominate_their_country_are_both_named():
    """Each pumped prefix is measured against the rest of the country, not against a country its own codes
    inflated eleven times (then a prefix holding a third of the baseline could never be three times above it)."""
    found = pumping.detect(_two_range_world(), RULE, at(day(28), 23, 59))
    assert len(found) == 1
    assert sorted(found[0].evidence["prefixes"]) == ["+628123", "+628127"]
    assert found[0].evidence["new_member_share"] > 0.9


def _world(*, pumped: bool = False, surge: bool = False, seed: int = 3):
    """28 days of normal OTP traffic to +62 812 numbers of 300 members (80% use their code), then day 28:
    ``pumped`` adds 400 codes to sequential +62 8777 numbers of new ids that nobody uses; ``surge`` adds
    400 codes to existing members at random numbers, who use them."""
    rng = random.Random(seed)
    h = Hand()
    members = {f"U{i}": f"+62812{rng.randrange(10**7):07d}" for i in range(300)}
    for k in range(29):
        for i in range(40):
            user = rng.choice(list(members))
            _otp(h, at(day(k), i % 24, i), members[user], user, converts=rng.random() < 0.8)
    if pumped:
        for i in range(400):
            _otp(h, at(day(28), i % 24, 1 + i // 24), f"+628777{100000 + i:06d}", f"NEW{i}", converts=False)
    if surge:
        for i in range(400):
            user = rng.choice(list(members))
            _otp(h, at(day(28), i % 24, 1 + i // 24), members[user], user, converts=rng.random() < 0.8)
    return h.build()


def test_prefix_length_comes_from_phonenumbers():
    # +62 812 (Telkomsel's destination code) and one more digit
    assert pumping.prefix_length(["+6281234567890", "+6281299999999"]) == len("+628123")
    assert pumping.prefix_length(["not a number"]) is None


def test_pumped_prefix_alerts_with_its_evidence_and_the_prefix_to_block():
    con = _world(pumped=True)
    found = pumping.detect(con, RULE, at(day(28), 23, 59))
    assert len(found) == 1
    f = found[0]
    assert (f.kind, f.country_iso2, f.severity) == ("pumping", "ID", "critical")
    assert f.evidence["prefixes"] == ["+628777"]
    assert f.evidence["messages_recent"] == 400
    assert f.evidence["conversion_recent"] == 0.0 and f.evidence["conversion_baseline"] > 0.6
    assert f.evidence["new_member_share"] == 1.0 and f.evidence["sequential_share"] == 1.0
    assert f.sentence.startswith("SMS pumping suspected in Indonesia: in the 24 hours to 30 Nov 23:59 UTC, 400 "
                                 "one-time-code SMS went to +628777")
    assert "block these prefixes" in f.sentence


def test_a_real_surge_of_members_using_their_codes_is_not_pumping():
    con = _world(surge=True)
    assert pumping.detect(con, RULE, at(day(28), 23, 59)) == []


def test_normal_days_raise_no_pumping_alert():
    con = _world(pumped=True)
    for k in (20, 27):
        assert pumping.detect(con, RULE, at(day(k), 23, 59)) == []


@pytest.mark.parametrize("pumped", [True, False])
def test_pumping_runs_as_a_built_in_rule(pumped):
    con = _world(pumped=pumped)
    cfg = rules.parse({"defaults": {"recent_hours": 24}})
    ev = evaluate.evaluate(con, cfg, at(day(28), 23, 59))
    assert "pumping" in ev.evaluated
    assert [f.rule for f in ev.findings if f.kind == "pumping"] == (["pumping"] if pumped else [])
