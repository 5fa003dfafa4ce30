"""Every analytics function on the warehouse the real pipeline builds (tests/conftest.py small_warehouse).

Hand-built warehouses check the numbers; this checks the contract: the views ingest
really publishes, opened read-only the way the dashboard opens them, answer every
function, and the totals agree with the sandbox world they came from.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.analytics import countries, delivery, errors, fallback, insights, templates, voice
from switchboard.ingest import warehouse

pytest.importorskip("switchboard.ingest.pipeline")


@pytest.fixture(scope="module")
def con(small_warehouse):
    con = warehouse.connect(small_warehouse, read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def period(small_world):
    return {"start": small_world.start.date(), "end": (small_world.end - timedelta(days=1)).date()}


def test_totals_agree_with_the_world(con, period, small_world):
    truth = small_world.ground_truth
    s = delivery.summary(con, **period).iloc[0]
    assert s.sent == truth["messages"]
    assert s.delivered == truth["status_counts"].get("delivered", 0)
    assert s.failed + s.undelivered == truth["messages"] - s.delivered - s.pending - s.canceled
    top = errors.top_errors(con, **period, limit=100)
    assert dict(zip(top["error_code"], top["failures"])) == {
        int(k): v for k, v in truth["error_code_counts"].items()}
    assert voice.voice_summary(con, **period).iloc[0].calls == truth["calls"]


def test_every_function_answers(con, period):
    for by in delivery.DIMENSIONS:
        assert not delivery.delivery_by(con, **period, by=by).empty, by
    frames = [
        delivery.summary_with_change(con, **period), delivery.latency_by_country(con, **period),
        errors.new_or_rising_errors(con, **period), errors.error_trend(con, **period),
        countries.country_overview(con, **period), countries.sms_users_by_country(con, **period),
        countries.channel_recommendation(con, **period), voice.voice_by_country(con, **period),
        fallback.fallback_by_country(con, **period), fallback.fallback_summary(con, **period),
        templates.template_stats(con, **period), templates.template_stats(con, **period, by_country=True),
    ]
    assert all(len(f.columns) > 0 for f in frames)
    code = int(errors.top_errors(con, **period).iloc[0].error_code)
    assert len(errors.error_samples(con, code, **period, n=3)) == 3
    overview = countries.country_overview(con, **period)
    assert overview["country_iso3"].notna().all()  # the map needs ISO-3 for every country
    found = insights.what_changed(con, end=period["end"], recent_days=3, baseline_days=10)
    assert list(found.columns) == insights.FINDING_COLUMNS
