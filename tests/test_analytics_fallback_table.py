"""switchboard.analytics.fallback reads the pre-joined _fallback_chain_facts when the warehouse has it (and
the chain counts from _daily_attempt_rollup when that can answer):
the answer must be exactly the one computed from attempt_facts joined to call_facts, with or
without filters, on a seeded synthetic warehouse (bench.bench_analytics.build) and by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from switchboard.analytics import fallback
from switchboard.analytics.filters import Filters
from tests.conftest import bench_periods
from tests.test_analytics_fallback import con as hand_con  # noqa: F401 (fixture)
from tests.test_analytics_warehouse import D0

FILTERS = [None, Filters(countries=("BR", "MX", "IN")), Filters(purposes=("verification",)),
           Filters(channels=("sms",)), Filters(channels=("voice",)), Filters(countries=("ID",), extra=(("region", "Asia"),)),
           Filters(extra=(("error_category", "unreachable-handset"),)), Filters(extra=(("variant", "B"),)),
           Filters(countries=("IN", "BR"), extra=(("encoding", "UCS-2"),))]


def _both(con, fn, **kw):
    """(pre-joined chains + daily attempt rollup, the views only), plus the two mixes."""
    from switchboard.analytics import _sql

    table = fn(con, use_table=True, **kw)
    mixed = fn(con, use_table=False, **kw)
    _sql.USE_ROLLUPS = False
    try:
        facts = fn(con, use_table=False, **kw)
        mixed2 = fn(con, use_table=True, **kw)
    finally:
        _sql.USE_ROLLUPS = True
    pd.testing.assert_frame_equal(mixed, facts)
    pd.testing.assert_frame_equal(mixed2, facts)
    return table, facts


def _by_country(con, use_table, **kw):
    df = fallback._chains(con, "country_iso2", use_table=use_table, **kw)
    return df.reset_index(drop=True)


def _summary(con, use_table, **kw):
    return fallback._chains(con, "channel", use_table=use_table, **kw).reset_index(drop=True)


@pytest.mark.parametrize("flt", FILTERS)
def test_table_and_facts_paths_agree(seeded, flt):
    assert fallback._has_chain_table(seeded)
    assert seeded.execute("SELECT count(*) FROM _fallback_chain_facts").fetchone()[0] > 0
    for start, end in bench_periods():
        for fn in (_by_country, _summary):
            table, facts = _both(seeded, fn, start=start, end=end, filters=flt)
            pd.testing.assert_frame_equal(table, facts)
    # the public functions take the table path here
    start, end = bench_periods()[0]
    df = fallback.fallback_by_country(seeded, start=start, end=end, filters=flt)
    assert df["rescued"].sum() == _by_country(seeded, False, start=start, end=end, filters=flt)["rescued"].sum()


def test_seeded_warehouse_has_rescues(seeded):
    start, end = bench_periods()[0]
    df = fallback.fallback_by_country(seeded, start=start, end=end)
    assert df["fell_back_to_voice"].sum() > 0 and df["rescued"].sum() > 0 and df["members_rescued"].sum() > 0


def test_hand_warehouse_paths_agree(hand_con):  # noqa: F811
    for flt in (None, Filters(countries=("BR",)), Filters(countries=("ID",))):
        for fn in (_by_country, _summary):
            table, facts = _both(hand_con, fn, start=D0, end=D0, filters=flt)
            pd.testing.assert_frame_equal(table, facts)


def test_without_the_table_falls_back_to_the_facts(hand_con):  # noqa: F811
    expected = fallback.fallback_by_country(hand_con, start=D0, end=D0)
    hand_con.execute("ALTER TABLE _fallback_chain_facts RENAME TO _fallback_chain_facts_away")
    try:
        assert not fallback._has_chain_table(hand_con)
        pd.testing.assert_frame_equal(fallback.fallback_by_country(hand_con, start=D0, end=D0), expected)
    finally:
        hand_con.execute("ALTER TABLE _fallback_chain_facts_away RENAME TO _fallback_chain_facts")
