"""Issue 16: the page header's data age ("data as of 23:10:05 UTC (40 s ago)") from the snapshot's publish time,
and the Data page's freshness history on a warehouse published before the freshness view existed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from switchboard.dashboard import data
from switchboard.dashboard.live import age_text

PUBLISHED = datetime(2026, 12, 4, 23, 10, 5, tzinfo=UTC)


def _snap(at: datetime) -> data.Snapshot:
    return data.Snapshot("/w.duckdb", 1, int(at.timestamp() * 1e9), 100)


@pytest.mark.parametrize(("later", "text"), [
    (timedelta(seconds=40), "data as of 23:10:05 UTC (40 s ago)"),
    (timedelta(seconds=0.4), "data as of 23:10:05 UTC (0 s ago)"),
    (timedelta(minutes=7, seconds=3), "data as of 23:10:05 UTC (7 min ago)"),
    (timedelta(hours=5), "data as of 04 Dec 2026 23:10:05 UTC (5 h ago)"),  # another day: the date is said
    (timedelta(days=3), "data as of 04 Dec 2026 23:10:05 UTC (3 days ago)"),
    (timedelta(seconds=-2), "data as of 23:10:05 UTC (0 s ago)"),  # clock skew never reads "-2 s"
])
def test_age_text(later: timedelta, text: str) -> None:
    assert age_text(_snap(PUBLISHED), now=PUBLISHED + later) == text


def test_the_snapshot_time_is_the_file_publish_time(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    snap = data.current_snapshot(path)
    assert age_text(snap, now=datetime.fromtimestamp(path.stat().st_mtime, UTC) + timedelta(seconds=12)).endswith(
        "(12 s ago)")


def test_freshness_history_is_empty_without_the_view(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    data.forget_connections()
    try:
        history = data.freshness_history()
    finally:
        data.forget_connections()
    assert history.empty and {"source", "visible_at", "lag_p95_s", "newest_age_s"} <= set(history.columns)
