"""The Alerts page in headless Chromium: the open alert with its sentence and timeline, the sidebar badge on
another page, and the alert's link opening the Errors page filtered to the alert's country."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerts_util import build_alert_warehouse
from tests.browser_util import SCREENSHOTS, StreamlitServer, launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_sync = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium not installed (apt-get install -y chromium)", allow_module_level=True)

IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    data_dir = tmp_path_factory.mktemp("browser_alerts")
    build_alert_warehouse(data_dir / "warehouse.duckdb")
    with StreamlitServer(data_dir) as srv:
        yield srv


def test_alerts_page_badge_and_link_in_a_browser(server: StreamlitServer) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1600})
            pg.goto(f"{server.url}/alerts")
            pg.wait_for_selector('[data-testid="stExpander"]', timeout=60_000)
            pg.wait_for_function(IDLE, timeout=60_000)
            assert pg.locator('[data-testid="stException"]').count() == 0
            body = pg.inner_text("body")
            assert "error_rise: Indonesia · Telkomsel · 30003 (open)" in body
            assert "of SMS to Indonesia on Telkomsel failed with 30003" in body
            assert "1 open alert: see the Alerts page." in pg.inner_text('[data-testid="stSidebar"]')
            pg.screenshot(path=str(SCREENSHOTS / "alerts_page.png"), full_page=True)
            href = pg.get_by_text("Open the filtered view").first.get_attribute("href")
            assert href == "/errors?country=Indonesia&dates=2026-12-06&dates=2026-12-07", href
            pg.goto(server.url + href)  # Streamlit opens markdown links in a new tab: follow it here
            pg.wait_for_selector('[data-testid="stDataFrame"]', state="attached", timeout=60_000)
            pg.wait_for_function(IDLE, timeout=60_000)
            assert pg.locator('[data-testid="stException"]').count() == 0
            sidebar = pg.inner_text('[data-testid="stSidebar"]')
            assert "Indonesia" in sidebar  # the country filter came with the link
            assert "1 open alert" in sidebar  # the badge is on every page
        finally:
            browser.close()
