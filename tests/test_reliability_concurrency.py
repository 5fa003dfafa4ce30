"""Reliability: concurrency (issue 8). While ingests run and publish new snapshots, the
dashboard keeps answering, never shows a lock error or a traceback, and then shows the
new data.

* ``test_readers_in_other_processes_never_fail_while_ingest_publishes``: two reader
  processes use the dashboard's data layer (``dashboard.data``: the published snapshot,
  read-only, re-opened when a new version appears) in a tight loop while ``switchboard
  ingest`` runs three times in a row in another process (each run publishes a snapshot).
  No read may fail, and the readers must see the message count grow to the final one.
* ``test_dashboard_pages_load_while_ingest_publishes`` (browser): the real streamlit
  server in headless Chromium, Overview reloaded again and again during the same kind of
  ingest runs: every load settles with no ``stException`` and no "cannot be opened"
  warning, and after the last run the sidebar shows the new message count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 1, tzinfo=UTC)
CLOCKS = (END - timedelta(days=6), END - timedelta(days=3), END + timedelta(days=1))

READER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, os.environ["REPO"])
    from switchboard.dashboard import data
    stop = Path(sys.argv[1])
    seen, errors, reads = [], [], 0
    while not stop.exists():
        try:
            b = data.data_bounds()
            freshness = data.freshness()
            reads += 1
            if not seen or seen[-1] != b.messages:
                seen.append(b.messages)
        except data.WarehouseUnavailable as exc:  # only acceptable before the first publish
            if seen:
                errors.append("unavailable after data was shown: " + str(exc)[:300])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        time.sleep(0.02)
    print(json.dumps({"seen": seen, "errors": errors, "reads": reads}))
""")


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=41, days=10, messages=30_000, calls=3_000, end=END))


def _ingest_env(server: SandboxServer) -> dict[str, str]:
    return {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
            "SWITCHBOARD_TWILIO_BASE_URL": server.base_url, "TWILIO_API_KEY": "", "TWILIO_API_SECRET": ""}


def _run_ingests(server: SandboxServer, clock: SimClock, data_dir: Path, clocks=CLOCKS) -> list[int]:
    """One ingest per clock time; returns the return codes."""
    codes = []
    for when in clocks:
        clock.set(when)
        proc = subprocess.run([sys.executable, "-m", "switchboard.cli", "ingest", "--source", "twilio", "--quiet",
                               "--data-dir", str(data_dir)], env=_ingest_env(server), cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
        codes.append(proc.returncode)
    return codes


def _messages(data_dir: Path) -> int:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM message_facts").fetchone()[0])
    finally:
        con.close()


@pytest.mark.slow
def test_readers_in_other_processes_never_fail_while_ingest_publishes(tmp_path: Path, world) -> None:
    data_dir = tmp_path / "data"
    clock = SimClock(CLOCKS[0])
    stop = tmp_path / "stop"
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "REPO": str(ROOT)}
    with SandboxServer(world, clock=clock) as server:
        assert _run_ingests(server, clock, data_dir, clocks=CLOCKS[:1]) == [0]
        first = _messages(data_dir)
        readers = [subprocess.Popen([sys.executable, "-c", READER, str(stop)], env=env, cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            time.sleep(2.0)  # readers are up and reading the first snapshot
            codes = _run_ingests(server, clock, data_dir, clocks=CLOCKS[1:])
            time.sleep(1.5)  # let them see the last snapshot
        finally:
            stop.touch()
            outputs = [r.communicate(timeout=120) for r in readers]
    assert codes == [0, 0]
    final = _messages(data_dir)
    assert final > first, "the later ingests should have brought new messages"
    for out, err in outputs:
        report = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        assert report is not None, err[-2000:]
        assert report["errors"] == [], report["errors"][:5]
        assert report["reads"] >= 20
        assert report["seen"][0] == first and report["seen"][-1] == final, report["seen"]
        assert report["seen"] == sorted(report["seen"]), "a reader went back to an older snapshot"


@pytest.mark.browser
@pytest.mark.slow
def test_dashboard_pages_load_while_ingest_publishes(tmp_path: Path, world) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    from tests.browser_util import StreamlitServer, launch_chromium

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    data_dir = tmp_path / "data"
    clock = SimClock(CLOCKS[0])
    with SandboxServer(world, clock=clock) as sandbox:
        assert _run_ingests(sandbox, clock, data_dir, clocks=CLOCKS[:1]) == [0]
        first = _messages(data_dir)
        codes: list[int] = []
        ingests = threading.Thread(target=lambda: codes.extend(_run_ingests(sandbox, clock, data_dir, CLOCKS[1:])))
        with StreamlitServer(data_dir) as server, playwright.sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            captions: list[str] = []
            loads = 0

            def load_once() -> str:
                page.goto(server.url + "/overview", wait_until="domcontentloaded")
                page.wait_for_selector('[data-testid="stSidebar"] >> text=/Warehouse: [0-9,]+ messages/',
                                       timeout=60_000)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
                    " || !/running/i.test(document.querySelector('[data-testid=\"stStatusWidget\"]').innerText)",
                    timeout=60_000)
                errors = page.locator('[data-testid="stException"]')
                assert errors.count() == 0, errors.first.inner_text()
                body = page.locator('[data-testid="stApp"]').inner_text()
                assert "cannot be opened" not in body and "Could not set lock" not in body, body[:500]
                caption = page.locator('[data-testid="stSidebar"]').get_by_text("Warehouse:").first.inner_text()
                return caption

            captions.append(load_once())
            ingests.start()
            while ingests.is_alive():
                captions.append(load_once())
                loads += 1
            ingests.join()
            final = _messages(data_dir)
            captions.append(load_once())
            browser.close()
    assert codes == [0, 0]
    assert loads >= 2, "the ingests ended before the dashboard could be loaded during them"
    assert f"{first:,} messages" in captions[0]
    assert f"{final:,} messages" in captions[-1], captions[-3:]
