"""The Experiments page in headless Debian Chromium (issue 19): the per-country lift map draws its country
shapes offline, the "differs by country" warning and the decision card show, and nothing raises.
AppTest (tests/test_dashboard_experiments.py) checks the logic but is blind to what the browser draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_util import SCREENSHOTS, StreamlitServer, launch_chromium
from tests.test_browser_dashboard import assert_no_exception, wait_drawn
from tests.test_dashboard_experiments import build_v2_warehouse

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    data_dir = tmp_path_factory.mktemp("browser_experiments")
    build_v2_warehouse(data_dir / "warehouse.duckdb")
    with StreamlitServer(data_dir) as srv:
        yield srv


def test_region_flip_map_draws_with_the_warning(server: StreamlitServer) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            pg = browser.new_context(viewport={"width": 1440, "height": 1800}).new_page()
            pg.goto(f"{server.url}/experiments?experiment=exp_flip")
            wait_drawn(pg, ["stAlert", "stPlotlyChart", "stDataFrame"])
            # The shapes come from dashboard/static/world_110m.json (offline): one coloured per country with
            # data, BR and IN; without the file none is drawn.
            pg.wait_for_function(
                "() => document.querySelectorAll('path.choroplethlocation').length === 2", timeout=60_000)
            assert_no_exception(pg)
            text = pg.locator('[data-testid="stMain"]').inner_text()
            assert "differs by country: it helps in some and hurts in others" in text
            assert "Does the effect differ by country?" in text and "Power from history" in text
            pg.screenshot(path=str(SCREENSHOTS / "experiments_region_flip.png"), full_page=True)
        finally:
            browser.close()
