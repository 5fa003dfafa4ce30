"""The Responses page (issue 18) through Streamlit's AppTest on a warehouse the real ingest built from the
sandbox: it renders, its numbers are the analytics', and phone numbers are masked."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from switchboard.analytics import responses

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture()
def page(small_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(small_warehouse.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/responses.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_responses_page_shows_the_analytics_numbers(page: AppTest, small_warehouse: Path) -> None:
    assert page.title[0].value == "Responses"
    con = duckdb.connect(str(small_warehouse), read_only=True)
    bounds = con.execute("SELECT min(sent_day), max(sent_day) FROM attempt_facts").fetchone()
    start, end = max(bounds[0], date.fromordinal(bounds[1].toordinal() - 29)), bounds[1]
    summary = responses.response_summary(con, start=start, end=end).set_index("classification")["replies"]
    total, _ = responses.opted_out_members(con, limit=500)
    con.close()
    cards = {m.label: m.value for m in page.metric}
    assert cards["Replies"] == f"{int(summary.sum()):,}"
    assert cards["Opt-outs"] == f"{int(summary.get('opt_out', 0)):,}"
    assert total > 0 and any(f"{total:,} member" in c.value for c in page.caption)
    shown = [df.value for df in page.dataframe]
    members = next(d for d in shown if "member" in d.columns)
    assert members["member"].str.contains("•").all()  # masked


def test_per_variant_switch(page: AppTest) -> None:
    page.segmented_control(key="responses_by").set_value("Variant (experiment)").run()
    assert not page.exception
    rates = next(df.value for df in page.dataframe if "opt_out_rate" in df.value.columns)
    assert rates["key"].str.contains("exp_mkt_urgency").any()
