"""Switchboard dashboard: ``streamlit run dashboard/app.py`` (or ``switchboard dashboard``).

This entry script owns what every page shares: the page list (``st.navigation``), the
sidebar filters (kept in the URL query string, so a link reproduces the view) and the
warehouse status. Each page in ``app_pages/`` reads the resulting
:class:`dashboard.components.View` and only draws what ``analytics`` returns.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repo root.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st

from analytics.filters import Filters
from dashboard import components, data

PAGES = Path(__file__).resolve().parent / "app_pages"
DEFAULT_DAYS = 30

st.set_page_config(page_title="Switchboard", page_icon="📶", layout="wide")


def _pages() -> dict[str, list[st.Page]]:
    def page(file: str, title: str, icon: str, url: str, default: bool = False) -> st.Page:
        return st.Page(PAGES / file, title=title, icon=icon, url_path=url, default=default)

    sections = {
        "Delivery": [
            page("overview.py", "Overview", ":material/dashboard:", "overview", default=True),
            page("countries.py", "Countries", ":material/public:", "countries"),
            page("errors.py", "Errors", ":material/error:", "errors"),
            page("voice.py", "Voice & fallback", ":material/call:", "voice"),
        ],
        "Content": [page("templates.py", "Templates", ":material/sms:", "templates")],
        "Warehouse": [page("data_health.py", "Data", ":material/database:", "data")],
    }
    # Pages other engineers add (experiments, sender) join the list when their file exists.
    optional = [
        ("Delivery", "experiments.py", "Experiments", ":material/science:", "experiments"),
        ("Content", "send_campaign.py", "Send test campaign", ":material/send:", "send"),
    ]
    for section, file, title, icon, url in optional:
        if (PAGES / file).exists():
            sections[section].append(page(file, title, icon, url))
    return sections


def _date_range(bounds: data.DataBounds) -> tuple[date, date]:
    last = bounds.last_day or date.today()
    first = bounds.first_day or last - timedelta(days=DEFAULT_DAYS - 1)
    default = (max(first, last - timedelta(days=DEFAULT_DAYS - 1)), last)
    picked = st.sidebar.date_input(
        "Dates (UTC)",
        value=default,
        min_value=first,
        max_value=last,
        key="dates",
        bind="query-params",
        help=f"Inclusive UTC days. Defaults to the last {DEFAULT_DAYS} days with data.",
    )
    if isinstance(picked, (tuple, list)):
        if len(picked) == 2:
            return picked[0], picked[1]
        if len(picked) == 1:  # the user clicked the first day of a new range
            return picked[0], picked[0]
        return default
    return picked, picked


def _sidebar(bounds: data.DataBounds) -> components.View:
    st.sidebar.title("Switchboard")
    start, end = _date_range(bounds)
    options = data.filter_options() if not bounds.empty else {
        "countries": None, "channels": [], "purposes": [], "templates": []}
    countries = options["countries"]
    names = dict(zip(countries["iso2"], countries["name"])) if countries is not None else {}
    picked_countries = st.sidebar.multiselect(
        "Countries", list(names), format_func=lambda c: names.get(c, c), key="country", bind="query-params",
        placeholder="All countries",
    )
    channels = st.sidebar.multiselect("Channel", options["channels"], key="channel", bind="query-params",
                                      placeholder="All channels",
                                      help="SMS-only charts ignore this unless it excludes SMS.")
    purposes = st.sidebar.multiselect("Purpose", options["purposes"], key="purpose", bind="query-params",
                                      placeholder="All purposes")
    templates = st.sidebar.multiselect("Template", options["templates"], key="template", bind="query-params",
                                       placeholder="All templates")
    show_full = st.sidebar.toggle(
        "Show full numbers", value=False, key="show_full_numbers",
        help="Phone numbers are masked (+44 7•••• ••123) unless you turn this on. Not kept in links.",
    )
    if bounds.empty:
        st.sidebar.caption("No data yet.")
    else:
        st.sidebar.caption(
            f"Warehouse: {bounds.messages:,} messages, {bounds.calls:,} calls, "
            f"{bounds.first_day:%d %b %Y} – {bounds.last_day:%d %b %Y}."
        )
    return components.View(
        start=start,
        end=end,
        filters=Filters(
            countries=tuple(picked_countries),
            channels=tuple(channels),
            purposes=tuple(purposes),
            templates=tuple(templates),
        ),
        show_full_numbers=show_full,
    )


def main() -> None:
    page = st.navigation(_pages())
    try:
        bounds = data.data_bounds()
    except data.WarehouseUnavailable as err:
        st.title(page.title)
        st.warning(str(err), icon=":material/database_off:")
        st.stop()
    st.session_state[components.VIEW_KEY] = _sidebar(bounds)
    st.session_state[components.BOUNDS_KEY] = bounds
    try:
        page.run()
    except data.WarehouseUnavailable as err:  # the snapshot vanished mid-run (being replaced)
        st.warning(str(err), icon=":material/database_off:")


main()
