"""The real dashboard in headless Debian Chromium: every page loads, draws, and has no exception.

One ``streamlit run`` server for the whole module (against a seeded warehouse in a tmp
data dir), one browser; a screenshot of each page goes to test-artifacts/screenshots/.
AppTest cannot see what the browser draws (a blank map passes it); this can.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser_util import SCREENSHOTS, StreamlitServer, build_demo_warehouse, launch_chromium

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium not installed (apt-get install -y chromium)", allow_module_level=True)

# url path -> (page title, elements that must be visible once the page has drawn)
PAGES = {
    "": ("Overview", ["stMetric", "stPlotlyChart"]),
    "countries": ("Countries", ["stPlotlyChart", "stDataFrame"]),
    "errors": ("Errors", ["stPlotlyChart", "stDataFrame"]),
    "voice": ("Voice & fallback", ["stMetric", "stPlotlyChart", "stDataFrame"]),
    "templates": ("Templates", ["stMetric", "stDataFrame", "stPlotlyChart"]),
    "data": ("Data", ["stMetric", "stDataFrame"]),
}
MAP_PAGES = {"", "countries"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    data_dir = tmp_path_factory.mktemp("browser_data")
    build_demo_warehouse(data_dir / "warehouse.duckdb")
    with StreamlitServer(data_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server: StreamlitServer) -> Iterator[object]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1440, "height": 1800})
        pg = context.new_page()
        yield pg
        context.close()
        browser.close()


SETTLED_JS = """() => {
  if (!document.querySelector('[data-testid="stMain"] h1')) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (!c.querySelector('.main-svg')) return false;
  }
  return true;
}"""


def wait_drawn(pg, testids: list[str], timeout_ms: int = 30_000, quiet_ms: int = 800) -> None:
    """Wait for the expected elements, then until the app has been idle and fully drawn for ``quiet_ms``.

    Streamlit shows its "running" widget only after a short delay and may redraw charts
    when the script finishes, so one look at the DOM can be too early.
    """
    pg.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    for testid in testids:
        pg.wait_for_selector(f'[data-testid="{testid}"]', state="visible", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        if pg.evaluate(SETTLED_JS):
            quiet_since = quiet_since or time.monotonic()
            if (time.monotonic() - quiet_since) * 1000 >= quiet_ms:
                return
        else:
            quiet_since = None
        pg.wait_for_timeout(100)
    raise AssertionError("page did not settle: still running or charts not drawn")


def assert_no_exception(pg) -> None:
    errors = pg.locator('[data-testid="stException"]')
    if errors.count():
        pytest.fail("Page shows an exception:\n" + errors.first.inner_text())


def map_shapes(pg) -> int:
    return pg.locator('[data-testid="stPlotlyChart"] path.choroplethlocation').count()


@pytest.mark.parametrize("path", list(PAGES))
def test_page_loads_draws_and_has_no_exception(server: StreamlitServer, page, path: str) -> None:
    title, testids = PAGES[path]
    page.goto(f"{server.url}/{path}")
    wait_drawn(page, testids)
    if path in MAP_PAGES:
        # Country shapes come from dashboard/static/world_110m.json, not a CDN: >100 drawn.
        page.wait_for_function(
            "() => document.querySelectorAll('path.choroplethlocation').length > 100", timeout=30_000)
    assert_no_exception(page)
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == title
    page.screenshot(path=str(SCREENSHOTS / f"{path or 'overview'}.png"), full_page=True)
    # No time limit here: render speed is bench/bench_dashboard.py's (a cold first load took 26 s at load 10).


def test_every_page_in_the_sidebar_loads(server: StreamlitServer, page) -> None:
    """Pages other engineers add (experiments, sender) are covered too: no exception, a title."""
    page.goto(server.url + "/")
    wait_drawn(page, ["stMetric"])
    links = page.locator('[data-testid="stSidebarNav"] a')
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(hrefs) >= len(PAGES)
    for href in hrefs:
        assert href
        if urlparse(href).path.strip("/") in PAGES:
            continue  # drawn and checked in detail above
        page.goto(href if href.startswith("http") else server.url + href)
        wait_drawn(page, [])
        assert_no_exception(page)
        page.screenshot(path=str(SCREENSHOTS / f"{urlparse(page.url).path.strip('/')}.png"), full_page=True)


def test_map_draws_country_shapes_offline(server: StreamlitServer, page) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/")
    wait_drawn(page, ["stPlotlyChart"])
    page.wait_for_function(
        "() => document.querySelectorAll('path.choroplethlocation').length > 100", timeout=30_000)
    assert map_shapes(page) > 100
    assert any(u.endswith("/app/static/world_110m.json") for u in requests)
    assert not [u for u in requests if "cdn.plot.ly" in u]


def test_sidebar_navigation_keeps_filters_in_the_url(server: StreamlitServer, page) -> None:
    page.goto(server.url + "/?country=Indonesia&country=Brazil")
    wait_drawn(page, ["stMetric"])
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "Indonesia" in sidebar.inner_text() and "Brazil" in sidebar.inner_text()
    page.locator('[data-testid="stSidebarNav"] a', has_text="Errors").click()
    wait_drawn(page, ["stDataFrame"])
    assert_no_exception(page)
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == "Errors"
    query = parse_qs(urlparse(page.url).query)
    assert sorted(query.get("country", [])) == ["Brazil", "Indonesia"], page.url
    page.screenshot(path=str(SCREENSHOTS / "errors_filtered.png"), full_page=True)


def test_country_drill_down_from_link(server: StreamlitServer, page) -> None:
    page.goto(server.url + "/countries?focus=United+Kingdom")
    wait_drawn(page, ["stPlotlyChart", "stDataFrame"])
    assert_no_exception(page)
    page.get_by_text("Recommended first channel").first.wait_for(timeout=20_000)
    assert page.locator("h3", has_text="United Kingdom").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "country_drill_down.png"), full_page=True)


def test_sql_box_runs_and_refuses_writes(server: StreamlitServer, page) -> None:
    page.goto(server.url + "/data")
    wait_drawn(page, ["stDataFrame"])
    page.get_by_role("tab", name="SQL").click()
    box = page.locator("textarea").first
    box.fill("COPY message_facts TO '/tmp/switchboard_leak.csv'")
    page.get_by_role("button", name="Run").click()
    page.get_by_text("Only read queries are allowed").wait_for(timeout=20_000)
    assert_no_exception(page)
    assert not Path("/tmp/switchboard_leak.csv").exists()
    box.fill("SELECT country_name, count(*) AS sent FROM message_facts GROUP BY ALL ORDER BY sent DESC")
    page.get_by_role("button", name="Run").click()
    page.get_by_role("button", name="Download Parquet").wait_for(timeout=20_000)
    assert_no_exception(page)
    page.screenshot(path=str(SCREENSHOTS / "data_sql.png"), full_page=True)


# Every element inside a metric card whose text is cut (an ellipsis: content wider than its box).
CUT_METRIC_TEXT_JS = """() => {
  const cut = [];
  for (const card of document.querySelectorAll('[data-testid="stMetric"]')) {
    for (const el of card.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"], '
                                           + '[data-testid="stMetricValue"] *, [data-testid="stMetricLabel"] *')) {
      if (el.scrollWidth > el.clientWidth + 1) cut.push(el.innerText.trim());
    }
  }
  return cut;
}"""


@pytest.mark.parametrize("width", [1280, 1400, 1920])
@pytest.mark.parametrize("path", ["", "voice"])
def test_metric_cards_read_whole_at_common_widths(server: StreamlitServer, page, path: str, width: int) -> None:
    """At 1400 px six cards in a row cut "$646,213" to "$646…" (issue 6): no card value or label is cut."""
    page.set_viewport_size({"width": width, "height": 1000})
    try:
        page.goto(f"{server.url}/{path}")
        wait_drawn(page, ["stMetric"])
        assert page.locator('[data-testid="stMetric"]').count() >= 5
        assert page.evaluate(CUT_METRIC_TEXT_JS) == []
        page.screenshot(path=str(SCREENSHOTS / f"cards_{path or 'overview'}_{width}.png"))
    finally:
        page.set_viewport_size({"width": 1440, "height": 1800})
