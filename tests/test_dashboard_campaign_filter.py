"""The campaign filter from the URL (the sender's results link) and pages that open before the first ingest.

``?campaign_id=<id>`` is applied on every page as ``Filters(extra=(("campaign_id", id),))``,
shown in the sidebar as a removable "Campaign: <id> ✕" filter and kept across page switches;
the sidebar offers a campaign selector only when the warehouse has campaigns. The Send page
(and the template checker) render without a warehouse; data pages say what to run.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from switchboard.analytics import delivery, errors, voice
from switchboard.analytics import experiments as ex
from switchboard.analytics.filters import Filters
from switchboard.dashboard import components as ui
from switchboard.dashboard import data
from switchboard.ingest import warehouse
from switchboard.sender import api
from tests.browser_util import build_demo_warehouse

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
END = date(2026, 11, 20)  # the demo warehouse's last day
DEFAULT = {"start": END - timedelta(days=29), "end": END}
A, B = "pwreset-rehearsal", "promo-nov"
DATA_PAGES = ["overview", "countries", "errors", "voice", "experiments", "templates", "data_health"]


def campaign(cid: str) -> Filters:
    return Filters(extra=api.results_filter_extra(cid))  # the sender's own filter: what the link promises


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo warehouse as is (no campaigns), and a copy where two campaigns own part of the traffic."""
    plain = tmp_path_factory.mktemp("no_campaigns")
    build_demo_warehouse(plain / "warehouse.duckdb", end=END)
    both = tmp_path_factory.mktemp("two_campaigns")
    shutil.copy(plain / "warehouse.duckdb", both / "warehouse.duckdb")
    con = warehouse.connect(both / "warehouse.duckdb")
    # A: password resets of the last 10 days (SMS); B: verifications of the last 10 days, with their
    # voice fallbacks, so the filter reaches message, call and attempt facts.
    con.execute(f"""
        UPDATE send_log SET campaign_id = '{A}'
        WHERE purpose = 'password_reset' AND sent_at >= TIMESTAMPTZ '{END - timedelta(days=9)}';
        UPDATE send_log SET campaign_id = '{B}'
        WHERE purpose = 'verification' AND sent_at >= TIMESTAMPTZ '{END - timedelta(days=9)}';
    """)
    warehouse.refresh_facts(con)
    con.execute("CHECKPOINT")
    con.close()
    return {"plain": plain, "both": both}


@pytest.fixture()
def two_campaigns(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(dirs["both"]))
    return dirs["both"]


@pytest.fixture()
def con(dirs: dict[str, Path]):
    c = warehouse.connect(dirs["both"] / "warehouse.duckdb", read_only=True)
    yield c
    c.close()


def app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def switch(at: AppTest, file: str) -> AppTest:
    at.switch_page(f"app_pages/{file}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sent(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Sent"]


def chip(at: AppTest):
    return next((b for b in at.sidebar.button if b.key == "campaign_clear"), None)


def test_link_shows_exactly_the_campaign_and_clearing_restores_the_total(two_campaigns: Path, con) -> None:
    only_a = delivery.summary(con, filters=campaign(A), **DEFAULT).iloc[0]
    total = delivery.summary(con, **DEFAULT).iloc[0]
    a_messages = con.execute("SELECT count(*) FROM message_facts WHERE campaign_id = ? AND sent_day >= ?",
                             [A, DEFAULT["start"]]).fetchone()[0]
    assert 0 < only_a["sent"] == a_messages < total["sent"]

    at = app(**api.dashboard_filters(A))
    assert sent(at) == ui.compact(a_messages)
    assert chip(at) is not None and chip(at).label == "Campaign: pwreset-rehearsal ✕"
    assert at.query_params.get("campaign_id") == A

    # Kept across navigation, and honoured by the other pages (calls: B has the fallbacks, A none).
    switch(at, "voice")
    assert at.query_params.get("campaign_id") == A and chip(at) is not None
    assert voice.voice_summary(con, filters=campaign(A), **DEFAULT).iloc[0]["calls"] == 0
    assert voice.voice_summary(con, **DEFAULT).iloc[0]["calls"] > 0
    assert any("No calls of campaign pwreset-rehearsal" in i.value for i in at.info)
    del at.query_params["campaign_id"]  # a page switch in the browser may drop unbound parameters
    switch(at, "overview")
    assert sent(at) == ui.compact(a_messages)
    assert at.query_params.get("campaign_id") == A  # written back from the session

    # ✕ removes it: the total is back, the URL no longer carries it, and it stays removed on other pages.
    chip(at).click().run()
    assert not at.exception
    assert sent(at) == ui.compact(total['sent'])
    assert "campaign_id" not in at.query_params and chip(at) is None
    switch(at, "voice")
    assert chip(at) is None


def test_selector_offered_only_when_the_warehouse_has_campaigns(dirs: dict[str, Path], two_campaigns: Path,
                                                                 con, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app()
    picker = at.sidebar.selectbox(key="campaign_pick")
    assert picker.options == [B, A]  # sorted, from dashboard.data.filter_options
    picker.set_value(B).run()
    assert not at.exception
    only_b = delivery.summary(con, filters=campaign(B), **DEFAULT).iloc[0]
    assert sent(at) == ui.compact(only_b['sent'])
    assert chip(at).label == "Campaign: promo-nov ✕" and at.query_params.get("campaign_id") == B

    data.forget_connections()
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(dirs["plain"]))
    at = app()
    assert not [s for s in at.sidebar.selectbox if s.key == "campaign_pick"]
    assert chip(at) is None


def test_every_page_honours_the_campaign(two_campaigns: Path, con) -> None:
    """One session walks every page with the campaign on: no exception, the chip everywhere, filtered numbers."""
    b = campaign(B)
    at = app(campaign_id=B)
    for page in DATA_PAGES[1:]:
        switch(at, page)
        assert chip(at) is not None, page
        assert at.query_params.get("campaign_id") == B, page
        if page == "errors":
            shown = at.dataframe[0].value
            top_b, top_all = (errors.top_errors(con, limit=15, filters=f, **DEFAULT) for f in (b, None))
            assert list(shown["failures"]) == list(top_b["failures"]) != list(top_all["failures"])
        elif page == "voice":
            calls_b, calls_all = (voice.voice_summary(con, filters=f, **DEFAULT).iloc[0]["calls"] for f in (b, None))
            assert {m.label: m.value for m in at.metric}["Calls"] == ui.compact(calls_b)
            assert 0 < calls_b < calls_all
        elif page == "experiments":  # the campaign is kept; templates and channels are not (analytics.experiments)
            users = at.dataframe[0].value.set_index("experiment_id")["users"]
            users_b, users_all = (ex.list_experiments(con, filters=f, **DEFAULT).set_index("experiment_id")["users"]
                                  for f in (b, None))
            assert users.to_dict() == users_b.to_dict() != users_all.to_dict()


@pytest.mark.parametrize("value", ["no-such-campaign", "x' OR '1'='1", "'; DROP TABLE send_log; --",
                                   "[click](javascript:alert(1)) :red[x]"])
def test_unknown_or_hostile_campaign_id_is_just_a_value(two_campaigns: Path, con, value: str) -> None:
    at = app(campaign_id=value)
    assert sent(at) == "0"
    assert any("No messages of campaign" in i.value for i in at.info)  # the empty state, not a traceback
    assert any("in the warehouse yet" in c.value for c in at.sidebar.caption)
    assert chip(at) is not None and chip(at).label.startswith("Campaign: ")
    assert "](" not in chip(at).label.replace("\\](", "")  # Markdown link syntax is escaped
    assert con.execute("SELECT count(*) FROM send_log").fetchone()[0] > 0


def test_experiment_link_selects_the_experiment(two_campaigns: Path) -> None:
    at = app(experiment="otp_copy_test")
    switch(at, "experiments")
    assert at.selectbox(key="experiment").value == "otp_copy_test"
    at = app(experiment="not-an-experiment")
    switch(at, "experiments")
    assert any("not-an-experiment" in w.value for w in at.warning)


# --- before the first ingest ---------------------------------------------------------------------


def test_send_page_opens_without_a_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))  # an empty folder: no warehouse file
    for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    at = app()
    # A data page: the friendly message, no sidebar filters (they need the warehouse's choices).
    assert at.title[0].value == "Overview"
    assert any("switchboard ingest" in w.value and "make demo" in w.value for w in at.warning)
    assert not at.metric
    switch(at, "send_campaign")
    assert at.title[0].value == "Send test campaign"
    assert any(h.value.startswith("Preview: ") for h in at.subheader)  # the example campaign's dry run
    assert at.dataframe and at.metric
    assert any("switchboard ingest" in i.value for i in at.sidebar.info)  # the status, in the sidebar
    assert not (tmp_path / "warehouse.duckdb").exists()  # the page created nothing
