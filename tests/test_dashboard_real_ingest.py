"""The dashboard on a warehouse built by the real ingest (``small_warehouse``: sandbox → twilio SDK → DuckDB).

The seeded demo warehouse in the other dashboard tests is hand-made; this checks the
pages against what ingest really publishes, including pages other engineers add.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from switchboard.analytics import countries, delivery
from switchboard.dashboard import components as ui
from switchboard.ingest import warehouse

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
APP = str(DASHBOARD / "app.py")
PAGE_FILES = sorted(p.name for p in (DASHBOARD / "app_pages").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture()
def real(small_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(small_warehouse.parent))
    monkeypatch.delenv("SWITCHBOARD_WAREHOUSE_NAME", raising=False)
    return small_warehouse


@pytest.mark.parametrize("file", PAGE_FILES)
def test_every_page_renders_on_a_real_ingest(real: Path, file: str) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(f"app_pages/{file}").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"


def test_overview_numbers_match_analytics_on_a_real_ingest(real: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    start, end = at.date_input(key="dates").value
    con = warehouse.connect(real, read_only=True)
    try:
        first, last = con.execute(
            "SELECT min(lo), max(hi) FROM (SELECT min(sent_day) lo, max(sent_day) hi FROM message_facts "
            "UNION ALL SELECT min(start_day), max(start_day) FROM call_facts "
            "UNION ALL SELECT min(sent_day), max(sent_day) FROM attempt_facts)").fetchone()
        # Default view: the last 30 days with data (here the whole 14-day history).
        assert (start, end) == (max(first, last - timedelta(days=29)), last)
        row = delivery.summary(con, start=start, end=end).iloc[0]
        shown = {m.label: m.value for m in at.metric}
        assert shown["Sent"] == ui.compact(row["sent"])
        assert shown["Delivery rate"] == ui.pct(row["delivery_rate"])
        assert shown["Cost"] == ui.usd_compact(row["cost_usd"])
        # Every country with traffic is on the map, by ISO-3.
        overview = countries.country_overview(con, start=start, end=end)
        fig = at.get("plotly_chart")[1]
        assert overview["country_iso3"].notna().sum() >= 10
        assert fig is not None
    finally:
        con.close()


def test_us_carriers_read_unknown_and_say_why(real: Path) -> None:
    # A real ingest stores no carrier for US numbers: libphonenumber has none (number portability).
    con = warehouse.connect(real, read_only=True)
    try:
        unknown = con.execute("SELECT count(*) FROM message_facts WHERE country_iso2 = 'US' AND carrier IS NULL"
                              ).fetchall()[0][0]
    finally:
        con.close()
    assert unknown > 0
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["focus"] = "US"
    at.run()
    at.switch_page("app_pages/countries.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "unknown" in captions and "number portability" in captions
    at.switch_page("app_pages/errors.py").run()
    assert not at.exception, [e.value for e in at.exception]
    samples = next((t.value for t in at.dataframe if "carrier" in t.value.columns), None)
    if samples is not None:
        assert samples["carrier"].notna().all() and "None" not in set(samples["carrier"])
