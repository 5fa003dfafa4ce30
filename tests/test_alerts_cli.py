"""``switchboard alerts check [--dry-run]``: the dry run reads the published snapshot and writes nothing; the
real check writes the state, POSTs to ``--webhook`` and publishes, so the dashboard sees the alert."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from switchboard import cli
from switchboard.ingest import publish
from tests.alerts_util import incident_world
from tests.test_alerts_notify import Receiver


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ingest DB whose last day holds an incident, published as the snapshot."""
    monkeypatch.chdir(tmp_path)  # no alerts.toml here: the built-in rules
    for var in ("SWITCHBOARD_ALERT_WEBHOOK_URL", "SWITCHBOARD_ALERT_EMAIL_TO", "SWITCHBOARD_ALERTS_FILE"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "data"
    d.mkdir()
    con = duckdb.connect(str(d / "ingest.duckdb"))
    incident_world(incident_days=range(29, 30), total_days=30, con=con)
    con.execute("CHECKPOINT")
    publish.publish(con, d / "ingest.duckdb", d / "warehouse.duckdb")
    con.close()
    return d


def _alerts(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'alerts'").fetchone()[0]:
            return []
        return con.execute("SELECT alert_id, status FROM alerts").fetchall()
    finally:
        con.close()


def test_dry_run_prints_what_would_open_and_writes_nothing(data_dir, capsys):
    assert cli.main(["alerts", "check", "--dry-run", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "OPENED    error_rise|ID|Indosat Ooredoo Hutchison|*|30007|* would be opened [notify: dashboard only]" in out
    assert "failed with 30007 (Message filtered)" in out and out.rstrip().splitlines()[-1].startswith("alerts: 1 opened")
    assert _alerts(data_dir / "ingest.duckdb") == [] and _alerts(data_dir / "warehouse.duckdb") == []


def test_check_writes_posts_to_the_webhook_and_publishes(data_dir, capsys):
    receiver = Receiver()
    try:
        code = cli.main(["alerts", "check", "--webhook", receiver.url, "--data-dir", str(data_dir)])
        assert code == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "is opened [notify: webhook]" in out and "notifications: 1 sent" in out
        (body,) = receiver.bodies  # Slack's format by default
        assert body["text"].startswith(":large_orange_circle: *WARNING* opened: error_rise\n")
        assert "failed with 30007" in body["text"]
        again = cli.main(["alerts", "check", "--webhook", receiver.url, "--data-dir", str(data_dir)])
        assert again == 0 and len(receiver.bodies) == 1  # an incident alerts once
    finally:
        receiver.close()
    assert _alerts(data_dir / "warehouse.duckdb") == [("error_rise|ID|Indosat Ooredoo Hutchison|*|30007|*", "open")]


def test_bad_arguments_are_one_line_and_exit_2(data_dir, capsys, tmp_path):
    assert cli.main(["alerts"]) == 2
    assert "switchboard alerts check" in capsys.readouterr().err
    assert cli.main(["alerts", "check", "--webhook", "ftp://x", "--data-dir", str(data_dir)]) == 2
    assert "give an http(s) URL" in capsys.readouterr().err
    assert cli.main(["alerts", "check", "--config", str(tmp_path / "none.toml"), "--data-dir", str(data_dir)]) == 2
    assert "no such alerts file" in capsys.readouterr().err
    assert cli.main(["alerts", "check", "--dry-run", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "run `switchboard ingest` first" in capsys.readouterr().err
