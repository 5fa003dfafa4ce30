"""Every dashboard page through Streamlit's AppTest: no exception, the key elements, numbers equal analytics.

Runs ``dashboard/app.py`` (navigation + sidebar) and switches pages, as a user would,
against a small seeded warehouse, an empty one and a missing one.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from switchboard.analytics import countries, delivery, errors, fallback, voice
from switchboard.analytics.filters import Filters
from switchboard.dashboard import components as ui
from switchboard.dashboard import data
from switchboard.ingest import warehouse
from tests.browser_util import (
    build_absurd_warehouse,
    build_demo_warehouse,
    build_empty_warehouse,
    build_null_columns_warehouse,
)

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = {
    "Overview": "app_pages/overview.py",
    "Countries": "app_pages/countries.py",
    "Errors": "app_pages/errors.py",
    "Voice & fallback": "app_pages/voice.py",
    "Templates": "app_pages/templates.py",
    "Data": "app_pages/data_health.py",
}
END = date(2026, 11, 20)  # the demo warehouse's last day


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("demo")
    build_demo_warehouse(d / "warehouse.duckdb", end=END)
    return d


@pytest.fixture()
def demo(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(demo_dir))
    return demo_dir


@pytest.fixture()
def con(demo_dir: Path):
    c = warehouse.connect(demo_dir / "warehouse.duckdb", read_only=True)
    yield c
    c.close()


def app(**query: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def open_page(at: AppTest, title: str) -> AppTest:
    if title == "Overview":
        at.run()
    else:
        if not at._tree:
            at.run()
        at.switch_page(PAGES[title]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


DEFAULT = {"start": END - timedelta(days=29), "end": END}


@pytest.mark.parametrize("title", list(PAGES))
def test_every_page_renders_without_exception(demo: Path, title: str) -> None:
    at = open_page(app(), title)
    assert at.title[0].value == title
    assert not at.warning or title in ("Errors", "Templates", "Data")  # warnings there are content, not failures
    # issue 16: every page header says how old the data is
    ages = [c.value for c in at.caption if re.fullmatch(r"data as of (\d\d \w+ \d{4} )?\d\d:\d\d:\d\d UTC \(.+ ago\)",
                                                           c.value)]
    assert len(ages) == 1, [c.value for c in at.caption]


def test_overview_headline_equals_analytics(demo: Path, con) -> None:
    at = open_page(app(), "Overview")
    row = delivery.summary_with_change(con, **DEFAULT).iloc[0]
    shown = metrics(at)
    assert shown["Sent"] == ui.compact(row['sent'])
    assert shown["Delivered"] == ui.compact(row['delivered'])
    assert shown["Delivery rate"] == ui.pct(row["delivery_rate"])
    assert shown["Failed"] == ui.compact(row['failed'] + row['undelivered'])
    assert shown["Cost"] == ui.usd_compact(row["cost_usd"])
    # the cards are compact (3.22M, $164.0k); the exact figure is in the help
    helps = {m.label: m.help for m in at.metric}
    assert f"Exactly {int(row['sent']):,}." in helps["Sent"]
    assert f"Exactly ${row['cost_usd']:,.2f}." in helps["Cost"]
    assert len(at.get("plotly_chart")) == 2  # trend and map
    assert not at.error  # the What changed section computed too
    assert any("Indonesia" in m.value for m in at.markdown)  # the demo's incident is found


def test_sidebar_default_is_last_30_days_of_data(demo: Path) -> None:
    at = open_page(app(), "Overview")
    assert at.date_input(key="dates").value == (DEFAULT["start"], DEFAULT["end"])


def test_country_filter_changes_every_number(demo: Path, con) -> None:
    at = open_page(app(), "Overview")
    at.multiselect(key="country").set_value(["ID"]).run()
    assert not at.exception
    row = delivery.summary(con, filters=Filters(countries=("ID",)), **DEFAULT).iloc[0]
    assert metrics(at)["Sent"] == ui.compact(row['sent'])
    assert metrics(at)["Delivery rate"] == ui.pct(row["delivery_rate"])
    # The filter is shared: the next page sees it too.
    at.switch_page(PAGES["Voice & fallback"]).run()
    assert not at.exception
    calls = voice.voice_summary(con, filters=Filters(countries=("ID",)), **DEFAULT).iloc[0]
    assert metrics(at)["Calls"] == ui.compact(calls['calls'])


def test_link_with_query_string_reproduces_the_view(demo: Path, con) -> None:
    # Countries travel by name in links (readable URLs), dates as ISO days.
    at = open_page(app(country=["Indonesia", "Brazil"], dates=["2026-11-01", "2026-11-10"]), "Overview")
    assert at.multiselect(key="country").value == ["ID", "BR"]
    assert at.date_input(key="dates").value == (date(2026, 11, 1), date(2026, 11, 10))
    row = delivery.summary(con, start=date(2026, 11, 1), end=date(2026, 11, 10),
                           filters=Filters(countries=("ID", "BR"))).iloc[0]
    assert metrics(at)["Sent"] == ui.compact(row['sent'])


def test_channel_and_purpose_filters_apply(demo: Path, con) -> None:
    at = open_page(app(), "Overview")
    at.multiselect(key="purpose").set_value(["password_reset"]).run()
    assert not at.exception
    row = delivery.summary(con, filters=Filters(purposes=("password_reset",)), **DEFAULT).iloc[0]
    assert metrics(at)["Sent"] == ui.compact(row['sent'])
    at.multiselect(key="channel").set_value(["voice"]).run()  # SMS charts: no SMS left
    assert not at.exception
    assert metrics(at)["Sent"] == "0"
    assert any("No messages" in i.value for i in at.info)


def test_countries_page_table_and_drill_down(demo: Path, con) -> None:
    at = open_page(app(), "Countries")
    overview = countries.country_overview(con, **DEFAULT)
    assert len(at.dataframe[0].value) == len(overview)
    assert at.selectbox(key="focus").value == overview["country_iso2"].iloc[0]
    at.selectbox(key="focus").set_value("GB").run()
    assert not at.exception
    one = delivery.summary(con, filters=Filters(countries=("GB",)), **DEFAULT).iloc[0]
    assert metrics(at)["Sent"] == ui.compact(one['sent'])
    assert any("Recommended first channel" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 3  # map, country trend, carriers


def test_countries_map_metric_switch(demo: Path) -> None:
    at = open_page(app(), "Countries")
    for choice in ("Cost per delivered", "Volume"):
        at.segmented_control(key="map_metric").set_value(choice).run()
        assert not at.exception
        assert at.get("plotly_chart")


def test_errors_page_matches_analytics(demo: Path, con) -> None:
    at = open_page(app(), "Errors")
    top = errors.top_errors(con, limit=15, **DEFAULT)
    table = at.dataframe[0].value
    assert list(table["error_code"]) == list(top["error_code"])
    assert list(table["failures"]) == list(top["failures"])
    # Samples follow the selected code; numbers in them are masked.
    code = int(top["error_code"].iloc[1])
    at.selectbox(key="sample_code").set_value(code).run()
    samples = at.dataframe[-1].value
    assert set(samples["sid"]) <= set(errors.error_samples(con, code, n=10, **DEFAULT)["sid"])
    assert len(samples) > 0


def test_voice_page_matches_analytics(demo: Path, con) -> None:
    at = open_page(app(), "Voice & fallback")
    calls = voice.voice_summary(con, **DEFAULT).iloc[0]
    chains = fallback.fallback_summary(con, **DEFAULT).iloc[0]
    shown = metrics(at)
    assert shown["Calls"] == ui.compact(calls['calls'])
    assert shown["Answer rate"] == ui.pct(calls["answer_rate"])
    assert shown["Fallback rate"] == ui.pct(chains["fallback_rate"])
    assert shown["Members rescued"] == ui.compact(chains['members_rescued'])


def test_template_checker_is_live(demo: Path) -> None:
    at = open_page(app(), "Templates")
    at.text_area(key="checker_body").set_value("Hello 😀 your code is 1234").run()
    assert not at.exception
    assert metrics(at)["Encoding"] == "UCS-2"
    at.text_area(key="checker_body").set_value("x" * 161).run()
    shown = metrics(at)
    assert shown["Encoding"] == "GSM-7"
    assert shown["Segments"] == "2"
    assert len(at.dataframe) >= 2  # cost per country, per-template stats


def test_data_page_freshness_rejects_schema_sql(demo: Path) -> None:
    at = open_page(app(), "Data")
    assert any("failed" in w.value for w in at.warning)  # the demo's failed calls run
    frames = [df.value for df in at.dataframe]
    rejects = next(f for f in frames if "raw" in f.columns)
    assert not rejects["raw"].str.contains("+447700900123", regex=False).any()  # masked
    assert rejects["raw"].str.contains("+44 7•••• ••123", regex=False).any()
    assert any("column_name" in f.columns and "comment" in f.columns for f in frames)
    # The SQL box: a good query shows a table and both downloads.
    at.text_area(key="sql_query").set_value("SELECT count(*) AS n FROM message_facts")
    _submit(at)
    assert not at.exception and not at.error
    assert at.dataframe[-1].value["n"].iloc[0] > 0
    assert {b.label for b in at.download_button} == {"Download CSV", "Download Parquet"}


def test_freshness_cards_name_sources_for_people(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo's sources: messages:AC000… and calls:AC000… (cursors), send_logs (a run). "0.0 h ago" and
    # cut SIDs were what the cards showed before.
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "x" * 32)
    at = open_page(app(), "Data")
    cards = {m.label: m.value for m in at.metric}
    assert set(cards) == {"Messages, main account", "Calls, main account", "Send logs"}, cards
    ago = re.compile(r"^(just now|\d+ min ago|\d+ h ago|\d+ days ago)$")
    assert all(ago.match(value) for value in cards.values()), cards
    # The demo's last calls run failed: the card keeps its cursor's age, a warning says so by name.
    assert any("Last run of **Calls, main account** failed" in w.value for w in at.warning)


def test_sql_box_errors_are_messages_not_tracebacks(demo: Path) -> None:
    at = open_page(app(), "Data")
    at.text_area(key="sql_query").set_value("COPY message_facts TO '/tmp/leak.csv'")
    _submit(at)
    assert not at.exception
    assert any("Only read queries" in e.value for e in at.error)
    at.text_area(key="sql_query").set_value("SELECT nope FROM message_facts")
    _submit(at)
    assert any("nope" in e.value for e in at.error)
    # Types pandas cannot take are shown as text; a single huge value is a memory error in the box.
    at.text_area(key="sql_query").set_value("SELECT union_value(n := 1) AS u, DATE '0044-03-15 (BC)' AS d")
    _submit(at)
    assert not at.exception and not at.error
    assert at.dataframe[-1].value.iloc[0].to_dict() == {"u": "1", "d": "0044-03-15 (BC)"}
    at.text_area(key="sql_query").set_value("SELECT repeat('x', 1500000000) AS x")
    _submit(at)
    assert not at.exception
    assert any("memory" in e.value for e in at.error)
    at.text_area(key="sql_query").set_value("SELECT to_number FROM message_facts LIMIT 3")
    _submit(at)
    assert not at.error
    shown = at.dataframe[-1].value
    assert shown["to_number"].str.contains("•").all()
    # The result survives other widgets' reruns; unmasking applies to it too.
    at.toggle(key="show_full_numbers").set_value(True).run()
    shown = at.dataframe[-1].value
    assert not shown["to_number"].str.contains("•").any()
    assert shown["to_number"].str.startswith("+").all()


def _submit(at: AppTest) -> None:
    at.form_submit_button[0].click().run()


def test_show_full_numbers_toggle_unmasks(demo: Path) -> None:
    at = open_page(app(), "Data")
    at.toggle(key="show_full_numbers").set_value(True).run()
    rejects = next(df.value for df in at.dataframe if "raw" in df.value.columns)
    assert rejects["raw"].str.contains("+447700900123", regex=False).any()


# Every page file, including pages other engineers add (experiments, sender).
ALL_PAGE_FILES = sorted(p.name for p in (Path(APP).parent / "app_pages").glob("*.py") if not p.name.startswith("_"))


def _open_file(file: str) -> AppTest:
    at = app()
    at.run()
    at.switch_page(f"app_pages/{file}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("file", ALL_PAGE_FILES)
def test_empty_warehouse_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    build_empty_warehouse(tmp_path / "warehouse.duckdb")
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    at = _open_file(file)
    if file in {Path(p).name for p in PAGES.values()}:
        texts = [i.value for i in at.info]
        assert any("switchboard ingest" in t and "make demo" in t for t in texts), texts


# Pages that need no warehouse (dashboard/app.py WITHOUT_WAREHOUSE): they render before the first
# ingest and the sidebar says what to run; every other page stops with the message.
WITHOUT_WAREHOUSE = {"send_campaign.py", "templates.py"}


@pytest.mark.parametrize("file", ALL_PAGE_FILES)
def test_missing_warehouse_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "nothing-here"))
    at = _open_file(file)
    if file in WITHOUT_WAREHOUSE:
        assert any("switchboard ingest" in i.value for i in at.sidebar.info)
        assert not any("switchboard ingest" in w.value for w in at.main.warning)
    else:
        assert any("switchboard ingest" in w.value for w in at.warning)


def test_new_snapshot_shows_without_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    build_empty_warehouse(tmp_path / "warehouse.duckdb")
    at = open_page(app(), "Overview")
    assert any("No messages" in i.value for i in at.info)
    # Ingest publishes a new snapshot by rename, as ingest.warehouse.publish_snapshot does.
    build_demo_warehouse(tmp_path / "next.duckdb", end=END)
    warehouse.publish_snapshot(tmp_path / "next.duckdb", tmp_path / "warehouse.duckdb")
    at.run()
    assert not at.exception
    assert metrics(at)["Sent"] != "0"
    assert data.current_snapshot().path == str(tmp_path / "warehouse.duckdb")


# --- a warehouse an analyst wrote: timestamps in year 20261, year 1 and infinite, NULL-only rows ---

@pytest.fixture(scope="module")
def absurd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("absurd")
    build_absurd_warehouse(d / "warehouse.duckdb", end=END)
    return d


ABSURD_NOTE = "Left out of every page: 4 messages, 4 calls, 4 send-log records dated outside 01 Jan 2000"


@pytest.mark.parametrize("file", ALL_PAGE_FILES)
def test_every_page_survives_absurd_dates(absurd_dir: Path, monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    # Before: the sidebar's date range raised TypeError ('str' - timedelta) and pages "date value out of range".
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(absurd_dir))
    at = _open_file(file)
    assert any(ABSURD_NOTE in w.value for w in at.sidebar.warning), [w.value for w in at.sidebar.warning]
    assert at.date_input(key="dates").value == (DEFAULT["start"], DEFAULT["end"])


def test_absurd_rows_leave_the_numbers_unchanged(absurd_dir: Path, demo_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shown = {}
    for d in (demo_dir, absurd_dir):
        monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(d))
        shown[d] = metrics(open_page(app(), "Overview"))
    assert shown[absurd_dir] == shown[demo_dir]


@pytest.mark.parametrize("file", ALL_PAGE_FILES)
def test_a_warehouse_of_only_absurd_dates_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    build_absurd_warehouse(tmp_path / "warehouse.duckdb", demo=False)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    at = _open_file(file)
    assert any(ABSURD_NOTE in w.value for w in at.sidebar.warning)
    if file in {Path(p).name for p in PAGES.values()} - {"templates.py", "data_health.py"}:
        assert any(ABSURD_NOTE in w.value for w in at.main.warning)  # not "No data yet"


@pytest.fixture(scope="module")
def nulls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("nulls")
    build_null_columns_warehouse(d / "warehouse.duckdb", end=END)
    return d


@pytest.mark.parametrize("file", ALL_PAGE_FILES)
def test_every_page_survives_null_only_columns(nulls_dir: Path, monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    # Countries raised "merge on object and float64 columns" when no row had a country.
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(nulls_dir))
    at = _open_file(file)
    assert at.title
