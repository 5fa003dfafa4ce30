"""The dashboard's Alerts page through Streamlit's AppTest (dashboard/app.py: navigation, sidebar badge)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from switchboard.dashboard import data
from tests.alerts_util import build_alert_warehouse, incident_world

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "app_pages/alerts.py"


@pytest.fixture(scope="module")
def alert_dir(tmp_path_factory) -> Path:
    """A warehouse with one resolved and one open alert, failed notifications (tests.alerts_util)."""
    d = tmp_path_factory.mktemp("alerts_page")
    build_alert_warehouse(d / "warehouse.duckdb")
    return d


def open_alerts(monkeypatch, folder: Path) -> AppTest:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(folder))
    data.forget_connections()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_open_and_resolved_alerts_with_timeline_and_attempts(monkeypatch, alert_dir):
    at = open_alerts(monkeypatch, alert_dir)
    assert {m.label: m.value for m in at.metric} == {"Open alerts": "1", "Critical": "0", "Resolved": "1",
                                                    "Notifications failed": "3"}
    labels = [e.label for e in at.expander]
    assert labels[0] == "**WARNING** error_rise: Indonesia · Telkomsel · 30003 (open)"
    assert labels[1] == ("**WARNING** error_rise: Indonesia · Indosat Ooredoo Hutchison · 30007 "
                         "(resolved 03 Dec 23:50)")
    text = " ".join(m.value for m in at.markdown)
    assert "of SMS to Indonesia on Telkomsel failed with 30003" in text
    assert "[Open the filtered view](/errors?country=Indonesia&dates=2026-12-06&dates=2026-12-07)" in text
    frames = [df.value for df in at.dataframe]
    events = [f for f in frames if "event" in f.columns and "notify" in f.columns]
    assert [f["event"].tolist() for f in events] == [["opened"], ["opened", "resolved"]]
    tried = [f for f in frames if "ok" in f.columns]
    assert tried and all(not ok for f in tried for ok in f["ok"])


def test_the_sidebar_badge_counts_open_alerts(monkeypatch, alert_dir):
    at = open_alerts(monkeypatch, alert_dir)
    assert [e.value for e in at.sidebar.error] == ["1 open alert: see the Alerts page."]


def test_a_warehouse_without_alerts_says_so(monkeypatch, tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    incident_world(total_days=29, con=con)
    con.close()
    at = open_alerts(monkeypatch, tmp_path)
    assert any("No alert has been raised" in s.value for s in at.success)
    assert not at.sidebar.error


@pytest.mark.slow
def test_suspected_pumping_shows_its_evidence_and_the_prefixes_to_block(monkeypatch, tmp_path):
    """The demo's data: the sandbox's default world (its pumping episode runs into the last day), the built-in
    rules run once at its end, as the demo's ingest does."""
    from switchboard.alerts import rules, run
    from tests.test_alerts_truth import default_world

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    w, _ = default_world(con=con)
    run(con, rules.parse({}))
    con.execute("CHECKPOINT")
    con.close()
    (episode,) = w.ground_truth["pumping"]
    at = open_alerts(monkeypatch, tmp_path)
    labels = [e.label for e in at.expander]
    assert "**CRITICAL** pumping: Nigeria (open)" in labels, labels
    text = " ".join(m.value for m in at.markdown)
    assert "SMS pumping suspected in Nigeria" in text and "block these prefixes" in text
    (block,) = [e.value for e in at.error if e.value.startswith("Prefixes to block: ")]
    shown = sorted(p.strip("`") for p in block.removeprefix("Prefixes to block: ").split(", "))
    assert len(shown) == len(episode["prefixes"])
    assert all(any(r.startswith(p) for p in shown) for r in episode["prefixes"]), (shown, episode["prefixes"])
    (per,) = [df.value for df in at.dataframe if "sequential" in df.value.columns]
    assert sorted(per["prefix"]) == shown
    assert (per["conversion"] < 0.05).all() and (per["new_share"] > 0.9).all() and (per["sequential"] > 0.8).all()
