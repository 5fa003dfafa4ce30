"""Issue 16: the demo that moves. ``switchboard demo --live``: the sandbox's live traffic, its signed status
callbacks and Event Streams batches into a real ``switchboard listen``, the continuous ingest, and the dashboard
in headless Chromium, where a number changes by itself.

Every wait is tied to progress: the demo's own "run N ok" lines (a published snapshot each), then what the
page shows. The timeouts are safety nets for a stalled process, never the thing waited for.
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from switchboard.sandbox.api.events import MCC
from tests.browser_util import SCREENSHOTS, free_port, launch_chromium
from tests.live_util import Command

SMALL = ["--days", "2", "--messages", "2000", "--calls", "100", "--sandbox-port", "0", "--seed", "5"]
RUN_OK = r"run (\d+) ok in .*twilio \+(\d+).*receiver \+(\d+)"


def _rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_live_demo_statuses_move_callbacks_arrive_and_the_warehouse_catches_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    args = ["demo", "--live", "--no-dashboard", *SMALL, "--live-rate", "20", "--every", "2", "--data-dir",
            str(data_dir)]
    with Command(args, data_dir) as demo:
        demo.wait_line(r"^3/4  Continuous ingest every 2 s")
        seen_events = 0
        for _ in range(3):  # three published runs after the first ingest, each with pushed events
            m = demo.wait_line(RUN_OK)
            seen_events += int(m.group(3))
        assert demo.interrupt() == 0, demo.stderr()
        assert "Traceback" not in demo.stderr()
    assert seen_events > 0
    wh = data_dir / "warehouse.duckdb"
    pushed = dict(_rows(wh, "SELECT push_source, count(*) FROM twilio_events GROUP BY ALL"))
    assert pushed.get("callback", 0) > 0 and pushed.get("event-stream", 0) > 0, pushed  # both paths, signed
    assert _rows(wh, "SELECT count(*) FROM twilio_events WHERE matched_run_id IS NOT NULL")[0][0] > 0
    # Event Streams events carry the network (MCC/MNC), kept in twilio_events.extra: the MCC is the country's.
    networks = _rows(wh, "SELECT f.country_iso2, json_extract_string(e.extra, '$.mcc'), "
                         "json_extract_string(e.extra, '$.mnc') FROM twilio_events e JOIN message_facts f USING (sid) "
                         "WHERE e.push_source = 'event-stream' AND json_extract_string(e.extra, '$.mcc') IS NOT NULL")
    assert networks and all(MCC[cc] == mcc and len(mnc) == 2 for cc, mcc, mnc in networks), networks[:5]
    # Statuses moved on the wall clock: live messages (sent after the history) reached a final status.
    live_final = _rows(wh, "SELECT count(*) FROM message_facts WHERE status IN ('delivered', 'undelivered', 'failed') "
                           "AND sent_at >= (SELECT min(started_at) FROM ingest_runs)")[0][0]
    assert live_final > 0
    # The freshness view: the receiver's events were in the warehouse well within a minute of their time.
    fresh = _rows(wh, "SELECT count(*), max(lag_p95_s), max(newest_age_s) FROM freshness "
                      "WHERE source = 'receiver' AND fresh_records > 0 AND run_id > (SELECT min(run_id) "
                      "FROM ingest_runs WHERE source = 'continuous')")[0]
    assert fresh[0] >= 2 and 0 <= fresh[1] < 60 and 0 <= fresh[2] < 60, fresh
    refused = (data_dir / "listen.log").read_text()
    assert " 403" not in refused and "signature" not in refused.lower(), refused[-2000:]


playwright_sync = pytest.importorskip("playwright.sync_api")


def _messages(caption: str) -> int:
    return int(re.search(r"([\d,]+) messages", caption).group(1).replace(",", ""))


def _wait_healthy(url: str, demo: Command, timeout: float = 120) -> None:
    """Streamlit answers its health check (the RECIPES way: the server's own readiness signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert demo.proc.poll() is None, demo.stderr()[-3000:]
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the dashboard did not become healthy: {demo.stderr()[-3000:]}")
CAPTION_JS = """() => Array.from(document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]'))
  .map(e => e.textContent).find(t => t.startsWith('Warehouse:')) || ''"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium not installed")
def test_the_live_demo_visibly_moves_in_a_browser(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    args = ["demo", "--live", *SMALL, "--live-rate", "20", "--every", "2", "--port", str(port), "--data-dir",
            str(data_dir)]
    with Command(args, data_dir) as demo, playwright_sync.sync_playwright() as p:
        demo.wait_line(rf"^4/4  Dashboard: http://localhost:{port}")
        _wait_healthy(f"http://localhost:{port}", demo)
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://localhost:{port}/overview", timeout=120_000)
            page.wait_for_function(f"() => ({CAPTION_JS})().length > 0", timeout=120_000)
            before = page.evaluate(CAPTION_JS)
            assert re.match(r"Warehouse: [\d,]+ messages", before), before
            # the page's header (drawn after the sidebar) says how old the data is
            page.get_by_text(re.compile(r"data as of \d\d:\d\d:\d\d UTC \(.+ ago\)")).first.wait_for(
                timeout=120_000)
            # Progress: a run that loaded new messages is published after the page drew...
            while int(demo.wait_line(RUN_OK).group(2)) == 0:
                pass
            # ...and the page redraws by itself (no reload, no click): the count moves.
            page.wait_for_function(f"(b) => ({CAPTION_JS})() !== b", arg=before, timeout=120_000)
            after = page.evaluate(CAPTION_JS)
            assert _messages(after) > _messages(before), (before, after)
            assert page.locator('[data-testid="stException"]').count() == 0
            page.goto(f"http://localhost:{port}/data", timeout=120_000)
            page.get_by_text("Freshness over time").wait_for(timeout=120_000)
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=120_000)
            assert page.get_by_text(re.compile("Freshness per run")).count() >= 1
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "live_demo_data.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
        assert demo.interrupt() == 0, demo.stderr()
