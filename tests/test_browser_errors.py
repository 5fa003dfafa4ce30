"""The Errors page in headless Chromium at common laptop widths: the error-code table shows every
column without a horizontal scroll (issue 14: at 1400 px Trend, Retryable and What to do sat
off-screen), the advice is on screen, and the banner and the table use the same word for a change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_util import SCREENSHOTS, StreamlitServer, build_demo_warehouse, launch_chromium

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium not installed (apt-get install -y chromium)", allow_module_level=True)

# Each dataframe: its header cells (the grid's accessible table lists the columns it draws) and its
# scroller's widths (scrollWidth > clientWidth: a horizontal scroll hides columns).
TABLES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]')).map(df => {
  const sc = df.querySelector('.dvn-scroller');
  return {headers: Array.from(df.querySelectorAll('th')).map(t => t.textContent.trim()),
          scroll: sc ? sc.scrollWidth : null, client: sc ? sc.clientWidth : null,
          right: df.getBoundingClientRect().right};
})"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    data_dir = tmp_path_factory.mktemp("browser_errors")
    build_demo_warehouse(data_dir / "warehouse.duckdb")
    with StreamlitServer(data_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(server: StreamlitServer) -> Iterator[object]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.mark.parametrize("width", [1400, 1920])
def test_error_table_fits_without_horizontal_scroll(server: StreamlitServer, browser, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 1800})
    try:
        pg = context.new_page()
        pg.goto(f"{server.url}/errors")
        pg.wait_for_selector('[data-testid="stDataFrame"] th', state="attached", timeout=60_000)
        pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
        assert pg.locator('[data-testid="stException"]').count() == 0
        tables = pg.evaluate(TABLES_JS)
        codes = next(t for t in tables if "Code" in t["headers"])
        assert codes["headers"][-3:] == ["Change", "Trend", "Retryable"], codes["headers"]
        assert codes["scroll"] is not None and codes["scroll"] <= codes["client"] + 1, codes
        assert codes["right"] <= width
        for t in tables:  # the sample-messages table fits too
            assert t["scroll"] <= t["client"] + 1, t
        # the advice the table used to hide at its right edge: on screen, one line per code
        advice = pg.locator('[data-testid="stExpander"]', has_text="What to do, code by code")
        assert advice.count() == 1 and advice.locator("li").count() >= 3
        box = advice.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width
        # the trend words are explained on the page
        assert pg.get_by_text("Too few to tell", exact=False).count() >= 1
        pg.screenshot(path=str(SCREENSHOTS / f"errors_{width}.png"), full_page=True)
    finally:
        context.close()
