"""The daily attempt rollup (_daily_attempt_rollup, built by ingest/facts.sql) must give exactly
the frames the attempt_facts queries give: delivery_by(channel), channel_recommendation and
template_stats, with and without filters, on a seeded synthetic warehouse. Calls the rollup
cannot answer (datetime periods, filters on columns it does not keep) read the view."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import duckdb
import pandas as pd
import pytest

from switchboard.analytics import _sql, countries, delivery, templates
from switchboard.analytics.filters import Filters
from tests.conftest import bench_periods

FILTERS = [None, Filters(countries=("BR", "MX", "IN")), Filters(purposes=("verification",)),
           Filters(channels=("sms",)), Filters(channels=("voice", "push")), Filters(templates=("otp_push",)),
           Filters(countries=("ID",), extra=(("encoding", "UCS-2"),)), Filters(extra=(("variant", "B"),)),
           Filters(extra=(("region", "Asia"),)), Filters(extra=(("campaign_id", "nope"),))]

CASES = {
    "delivery_by(channel)": lambda con, **kw: delivery.delivery_by(con, by="channel", **kw),
    "channel_recommendation": lambda con, **kw: countries.channel_recommendation(con, **kw),
    "template_stats": lambda con, **kw: templates.template_stats(con, **kw),
    "template_stats(by_country)": lambda con, **kw: templates.template_stats(con, by_country=True, **kw),
}


def _both(con, fn, **kw):
    assert _sql.USE_ROLLUPS
    rolled = fn(con, **kw)
    _sql.USE_ROLLUPS = False
    try:
        facts = fn(con, **kw)
    finally:
        _sql.USE_ROLLUPS = True
    return rolled, facts


def _same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> None:
    keys = [k for k in keys if k in a.columns]
    if keys:  # order among equal sort keys is not specified: compare in a total order
        a = a.sort_values(keys, na_position="first").reset_index(drop=True)
        b = b.sort_values(keys, na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("flt", FILTERS)
def test_rollup_and_view_agree(seeded, name, flt):
    assert _sql.has_table(seeded, "_daily_attempt_rollup")
    for start, end in bench_periods():
        rolled, facts = _both(seeded, CASES[name], start=start, end=end, filters=flt)
        assert list(rolled.columns) == list(facts.columns)
        _same(rolled, facts, ["channel", "country_iso2", "template_id", "variant"])


def test_rollup_is_used_only_when_it_can_answer(seeded):
    from bench.bench_analytics import END, START

    assert _sql.rollup_where(seeded, "_daily_attempt_rollup", START, END, None) is not None
    assert _sql.rollup_where(seeded, "_daily_attempt_rollup", START, END, Filters(countries=("BR",))) is not None
    assert _sql.rollup_where(seeded, "_daily_attempt_rollup", START, END,
                             Filters(extra=(("campaign_id", "c1"),))) is None
    lo = datetime.combine(START, time(6), tzinfo=UTC)
    hi = datetime.combine(END, time(18), tzinfo=UTC)
    assert _sql.rollup_where(seeded, "_daily_attempt_rollup", lo, hi, None) is None
    with pytest.raises(ValueError):
        _sql.rollup_where(seeded, "_daily_attempt_rollup", END, START, None)
    # a datetime period reads the view, and still answers
    df = delivery.delivery_by(seeded, start=lo, end=hi, by="channel")
    assert df["sent"].sum() > 0


def test_seeded_warehouse_exercises_the_outcomes(seeded):
    from bench.bench_analytics import END, START

    df = delivery.delivery_by(seeded, start=START, end=END, by="channel")
    assert set(df["channel"]) >= {"sms", "voice", "push"}
    assert df["delivered"].sum() > 0 and df["failed"].sum() > 0 and df["cost_usd"].sum() > 0
    t = templates.template_stats(seeded, start=START, end=END)
    assert t["converted"].sum() > 0 and t["avg_segments"].notna().any()


# --------------------------------------------------------------------------- _daily_message_rollup

MESSAGE_FILTERS = [None, Filters(countries=("BR", "MX", "IN")), Filters(purposes=("verification",)),
                   Filters(channels=("sms",)), Filters(channels=("voice",)), Filters(templates=("otp_sms",)),
                   Filters(countries=("ID", "BR"), extra=(("carrier", "Vivo"),)), Filters(extra=(("region", "Asia"),)),
                   Filters(extra=(("error_code", 30003),)), Filters(extra=(("status", "undelivered"),)),
                   Filters(extra=(("campaign_id", "nope"),))]


def _message_cases():
    from switchboard.analytics import errors, insights

    return {
        "top_errors": lambda con, start, end, filters: errors.top_errors(con, start=start, end=end, filters=filters),
        "new_or_rising_errors": lambda con, start, end, filters: errors.new_or_rising_errors(
            con, start=start, end=end, filters=filters, alpha=0.5, min_failures=1, min_ratio=1.0),
        "what_changed": lambda con, start, end, filters: insights.what_changed(con, end=end, filters=filters),
    }


# (what_changed with every threshold at 0 is left out: its many findings tie on lost_deliveries,
# and the order among ties differs from run to run even on the view alone)
@pytest.mark.parametrize("name", ["top_errors", "new_or_rising_errors", "what_changed"])
@pytest.mark.parametrize("flt", MESSAGE_FILTERS)
def test_message_rollup_and_view_agree(seeded, name, flt):
    assert _sql.has_table(seeded, "_daily_message_rollup")
    fn = _message_cases()[name]
    for start, end in bench_periods():
        rolled, facts = _both(seeded, lambda con, **kw: fn(con, **kw), start=start, end=end, filters=flt)
        assert list(rolled.columns) == list(facts.columns)
        pd.testing.assert_frame_equal(rolled.reset_index(drop=True), facts.reset_index(drop=True),
                                      check_exact=False, rtol=1e-9, atol=1e-12)


def test_message_cases_are_not_all_empty(seeded):
    from bench.bench_analytics import END, START

    cases = _message_cases()
    assert len(cases["top_errors"](seeded, START, END, None)) > 0
    week = END - timedelta(days=6)
    assert len(cases["new_or_rising_errors"](seeded, week, END, None)) > 0
    assert len(cases["what_changed"](seeded, week, END, None)) > 0


# --------------------------------------------------------------------------- delivery, errors, countries, voice

def _delivery_cases():
    from switchboard.analytics import errors, voice

    out = {
        "summary": lambda con, **kw: delivery.summary(con, **kw),
        "summary_with_change": lambda con, **kw: delivery.summary_with_change(con, **kw),
        "error_trend": lambda con, **kw: errors.error_trend(con, **kw),
        "error_trend(top 50)": lambda con, **kw: errors.error_trend(con, top_n=50, **kw),
        "country_overview": lambda con, **kw: countries.country_overview(con, **kw),
        "voice_by_country": lambda con, **kw: voice.voice_by_country(con, **kw),
        "voice_summary": lambda con, **kw: voice.voice_summary(con, **kw),
        "latency_by_country": lambda con, **kw: delivery.latency_by_country(con, **kw),
    }
    for by in sorted(delivery.ROLLUP_DIMENSIONS):
        out[f"delivery_by({by})"] = lambda con, by=by, **kw: delivery.delivery_by(con, by=by, **kw)
    return out


# filters the message and call rollups answer, ones only one of them answers (error_code: no call
# column; country_overview then reads both views), and ones neither keeps (campaign_id)
DELIVERY_FILTERS = MESSAGE_FILTERS + [Filters(countries=("IN",), purposes=("verification", "marketing"),
                                              templates=("otp", "promo_a", "otp_voice")),
                                      Filters(extra=(("status", "completed"),)), Filters(countries=("ZZ",)),
                                      Filters(extra=(("error_category", "unreachable-handset"),))]


def _periods():
    """bench_periods() plus a period that starts before the data and a 90-day one ending after it."""
    from bench.bench_analytics import END, START

    return bench_periods() + [(START - timedelta(days=5), START + timedelta(days=3)),
                              (END - timedelta(days=60), END + timedelta(days=30))]


@pytest.mark.parametrize("name", list(_delivery_cases()))
@pytest.mark.parametrize("flt", DELIVERY_FILTERS)
def test_delivery_rollups_and_views_agree(seeded, name, flt):
    fn = _delivery_cases()[name]
    for table in ("_daily_message_rollup", "_daily_call_rollup", "_daily_call_duration_rollup",
                  "_daily_latency_rollup"):
        assert _sql.rollup_ready(seeded, table)
    for start, end in _periods():
        try:
            rolled, facts = _both(seeded, fn, start=start, end=end, filters=flt)
        except duckdb.Error:  # a filter call_facts has no column for (error_code): the view path fails too
            _sql.USE_ROLLUPS = False
            try:
                with pytest.raises(duckdb.Error):
                    fn(seeded, start=start, end=end, filters=flt)
            finally:
                _sql.USE_ROLLUPS = True
            assert name in ("country_overview", "voice_by_country", "voice_summary")
            continue
        assert list(rolled.columns) == list(facts.columns)
        _same(rolled, facts, ["day", "week", "country", "purpose", "template", "carrier", "error_category",
                              "region", "country_iso2", "error_code"])


def test_delivery_cases_are_not_trivial(seeded):
    """The seeded data reaches every count the comparisons above compare."""
    from bench.bench_analytics import END, START
    from switchboard.analytics import errors, voice

    s = delivery.summary(seeded, start=START, end=END)
    assert (s[["delivered", "undelivered", "failed", "pending"]].iloc[0] > 0).all()
    assert delivery.summary_with_change(seeded, start=END - timedelta(days=6), end=END)["sent_prev"].iloc[0] > 0
    assert len(errors.error_trend(seeded, start=START, end=END)) > 0
    v = voice.voice_by_country(seeded, start=START, end=END)
    assert v["completed"].sum() > 0 and v["busy"].sum() > 0 and v["machine_answered"].sum() > 0
    assert v["duration_p90_s"].notna().all() and (v["duration_p90_s"] > v["duration_p50_s"]).any()
    # p50/p90 that fall between two values (interpolated), not only on one
    assert ((v["duration_p50_s"] % 1) != 0).any() or ((v["duration_p90_s"] % 1) != 0).any()
    o = countries.country_overview(seeded, start=START, end=END)
    assert o["voice_calls"].sum() > 0 and o["sms_failed"].sum() > 0


def test_datetime_periods_and_unkept_columns_read_the_views(seeded):
    """A period given as datetimes, or a filter the rollups do not keep, never reads a rollup; the
    answer is still the view's (the rollups' whole days would give a different one here)."""
    from bench.bench_analytics import END, START
    from switchboard.analytics import errors, voice

    lo = datetime.combine(START + timedelta(days=3), time(6), tzinfo=UTC)
    hi = datetime.combine(END, time(18), tzinfo=UTC)
    for table in ("_daily_message_rollup", "_daily_call_rollup"):
        assert _sql.rollup_where(seeded, table, lo, hi, None) is None
        assert _sql.rollup_where(seeded, table, START, END, Filters(extra=(("campaign_id", "c"),))) is None
        assert _sql.rollup_where(seeded, table, START, END, Filters(countries=("BR",))) is not None
    assert _sql.rollup_where(seeded, "_daily_message_rollup", START, END, Filters(extra=(("sender", "MG1"),))) is None
    assert _sql.rollup_where(seeded, "_daily_call_rollup", START, END, Filters(extra=(("error_code", 1),))) is None
    # the duration rollup keeps no purpose or template: voice then reads the durations from call_facts
    for flt in (Filters(templates=("otp_voice",)), Filters(purposes=("verification",))):
        assert _sql.rollup_where(seeded, "_daily_call_duration_rollup", START, END, flt) is None
        assert _sql.rollup_where(seeded, "_daily_call_rollup", START, END, flt) is not None
    assert _sql.rollup_where(seeded, "_daily_call_duration_rollup", START, END, Filters(countries=("BR",))) is not None
    assert _sql.rollup_where(seeded, "_daily_latency_rollup", START, END, Filters(templates=("otp",))) is None
    assert _sql.rollup_where(seeded, "_daily_latency_rollup", START, END, Filters(extra=(("status", "read"),))) is None
    assert _sql.rollup_where(seeded, "_daily_latency_rollup", START, END,
                             Filters(countries=("BR",), extra=(("carrier", "Vivo"),))) is not None
    days = (START + timedelta(days=3), END)
    for fn in (delivery.summary, countries.country_overview, voice.voice_summary,
               lambda con, **kw: delivery.delivery_by(con, by="day", **kw),
               lambda con, **kw: errors.error_trend(con, **kw)):
        part, whole_days = _both(seeded, fn, start=lo, end=hi)
        _same(part, whole_days, ["day", "country_iso2"])  # both read the view
        by_days = fn(seeded, start=days[0], end=days[1])
        count = "sent" if "sent" in part else "calls" if "calls" in part else "sms_sent"
        assert part[count].sum() < by_days[count].sum()  # a part of those days: the view answered
    # sender and variant are not in the message rollup: delivery_by on them reads message_facts
    for by in ("sender", "variant"):
        rolled, facts = _both(seeded, lambda con, by=by, **kw: delivery.delivery_by(con, by=by, **kw),
                              start=START, end=END)
        _same(rolled, facts, [by])
        assert rolled["sent"].sum() > 0


# --------------------------------------------------------------------------- stale rollups

def test_facts_sql_marks_every_rollup_and_its_sources():
    from switchboard.ingest import warehouse

    d = warehouse.facts_definition()
    marked = {s.split()[3] for s in d.finish if s.startswith("COMMENT ON TABLE") and s.endswith(f"'{_sql.ROLLUP_MARK}'")}
    needed = set(_sql.ROLLUP_SOURCES) | {t for srcs in _sql.ROLLUP_SOURCES.values() for t in srcs}
    assert set(_sql.ROLLUPS) <= set(_sql.ROLLUP_SOURCES)
    assert needed <= marked, f"facts.sql does not mark {sorted(needed - marked)} with {_sql.ROLLUP_MARK!r}"
    # every marked table is built by a block (the marks run after all of them: a later CREATE OR REPLACE
    # would drop them), and no block statement carries a mark of its own
    assert needed <= {b.table for b in d.builds}
    assert all(_sql.ROLLUP_MARK not in b.select for b in d.builds)


def test_a_refresh_that_skips_the_rollups_makes_the_analytics_read_the_views(tmp_path):
    """A warehouse whose facts were rebuilt by a build that does not write these rollups (an older
    one) must not be answered from the now stale rollups."""
    from bench.bench_analytics import END, START, build
    from switchboard.analytics import errors, fallback, voice
    from switchboard.ingest import warehouse

    path = tmp_path / "w.duckdb"
    build(path, 3000, seed=5)
    con = warehouse.connect(path)
    try:
        for table in _sql.ROLLUP_SOURCES:
            assert _sql.rollup_ready(con, table), table
        before = delivery.summary(con, start=START, end=END)
        # new data arrives: the last 200 messages and 30 calls are gone, then an "older build" refreshes
        # the facts only (the CREATE statements before the rollups and the marks)
        con.execute("DELETE FROM twilio_messages WHERE sid IN (SELECT sid FROM twilio_messages "
                    "ORDER BY date_sent DESC LIMIT 200)")
        con.execute("DELETE FROM twilio_calls WHERE sid IN (SELECT sid FROM twilio_calls "
                    "ORDER BY start_time DESC LIMIT 30)")
        d = warehouse.facts_definition()
        for b in d.builds:
            if b.table.startswith("_daily_") or "append" in b.options:
                continue
            for view in b.scopes:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {d.scopes[view]}")
            params = {"conversion_window_minutes": 30} if "$conversion_window_minutes" in b.select else None
            con.execute(f"CREATE OR REPLACE TABLE {b.table} AS {b.select}", params)
        for table in _sql.ROLLUP_SOURCES:
            assert not _sql.rollup_ready(con, table), table
            assert _sql.rollup_where(con, table, START, END, None) is None if table in _sql.ROLLUPS else True
        assert not fallback._has_chain_table(con)
        after = delivery.summary(con, start=START, end=END)
        assert after["sent"].iloc[0] == before["sent"].iloc[0] - 200  # the facts, not the stale rollup
        assert int(con.execute("SELECT sum(n) FROM _daily_message_rollup").fetchone()[0]) == before["sent"].iloc[0]
        calls = voice.voice_summary(con, start=START, end=END)["calls"].iloc[0]
        assert calls == con.execute("SELECT count(*) FROM call_facts").fetchone()[0]
        trend = errors.error_trend(con, start=START, end=END)
        assert trend.groupby("day")["sent"].first().sum() == after["sent"].iloc[0]
        # a full refresh by this build writes fresh rollups and marks again
        warehouse.refresh_facts(con)
        for table in _sql.ROLLUP_SOURCES:
            assert _sql.rollup_ready(con, table), table
        pd.testing.assert_frame_equal(delivery.summary(con, start=START, end=END), after)
        # a rollup rebuilt alone (by a build with another definition of it) loses its mark too
        con.execute("CREATE OR REPLACE TABLE _daily_call_rollup AS SELECT * FROM _daily_call_rollup")
        assert not _sql.rollup_ready(con, "_daily_call_rollup") and _sql.rollup_ready(con, "_daily_message_rollup")
    finally:
        con.close()


# --------------------------------------------------------------------------- one definition per metric

def test_each_counted_facts_relation_has_its_rollups_columns(seeded):
    """Every query is written once over a counted relation: the facts counted one per row
    (counted_<relation>.sql) must offer every column of its rollup under the same name, so the
    same text runs on both; and the rollup's counts and sums equal the facts' over the same days."""
    from bench.bench_analytics import END, START

    for table, spec in _sql.ROLLUPS.items():
        rollup_cols = {r[0] for r in seeded.execute(f"DESCRIBE {table}").fetchall()}
        assert rollup_cols == spec.keeps, table  # ROLLUPS says what the rollup keeps, exactly
        _sql.USE_ROLLUPS = False
        try:
            facts = _sql.counted(seeded, table, START, END, None)
        finally:
            _sql.USE_ROLLUPS = True
        rolled = _sql.counted(seeded, table, START, END, None)
        assert rolled.rolled and not facts.rolled
        facts_cols = {r[0] for r in seeded.execute(f"DESCRIBE SELECT * FROM {facts.relation}", facts.params).fetchall()}
        assert rollup_cols <= facts_cols, (table, sorted(rollup_cols - facts_cols))
        sums = [c for c in ("n", "cost_usd", "cost_sq", "priced", "segments", "segmented") if c in rollup_cols]
        select = ", ".join(f"sum({c})::DOUBLE" for c in sums)
        a = seeded.execute(f"SELECT {select} FROM {rolled.relation}", rolled.params).fetchone()
        b = seeded.execute(f"SELECT {select} FROM {facts.relation}", facts.params).fetchone()
        assert a == pytest.approx(b, rel=1e-12), table
        assert a[0] > 0, table


def test_counted_reads_the_facts_for_a_column_the_rollup_does_not_keep(seeded):
    from bench.bench_analytics import END, START

    assert _sql.counted(seeded, "_daily_message_rollup", START, END, None, columns=("carrier",)).rolled
    assert not _sql.counted(seeded, "_daily_message_rollup", START, END, None, columns=("sender",)).rolled
    assert not _sql.counted(seeded, "_daily_message_rollup", START, END, Filters(extra=(("sender", "MG1"),))).rolled
    split = _sql.counted(seeded, "_daily_message_rollup", START, END, None, split_at=END)
    current = seeded.execute(f"SELECT sum(n) FILTER (WHERE is_current) FROM {split.relation}", split.params).fetchone()[0]
    assert current == delivery.summary(seeded, start=END, end=END)["sent"].iloc[0] > 0


def test_no_query_is_written_twice():
    """The *_rollup.sql twins are gone: one named query per metric."""
    from pathlib import Path

    import switchboard.analytics as pkg

    assert not sorted(Path(pkg.__file__).parent.glob("*_rollup.sql"))
