"""Switchboard dashboard: ``streamlit run dashboard/app.py`` (or ``switchboard dashboard``).

This entry script owns what every page shares: the page list (``st.navigation``), the
sidebar filters (kept in the URL query string, so a link reproduces the view) and the
warehouse status. Each page in ``app_pages/`` reads the resulting
:class:`dashboard.components.View` and only draws what ``analytics`` returns.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import streamlit as st

from switchboard.analytics.filters import Filters
from switchboard.dashboard import components, data, live

PAGES = Path(__file__).resolve().parent / "app_pages"
DEFAULT_DAYS = 30
# Pages that work before the first ingest (url paths): the template checker and the sender need
# no warehouse. Every other page stops with "run switchboard ingest / make demo" until one exists.
WITHOUT_WAREHOUSE = {"templates", "send"}
NO_DATA = data.DataBounds(first_day=None, last_day=None, messages=0, calls=0, attempts=0)

# The campaign filter travels as ?campaign_id=<id> (sender.api.dashboard_filters: the sender's
# results link). It is not a widget-bound parameter: a link may name a campaign the warehouse does
# not hold (yet), which a bound selectbox would silently drop, so app.py keeps it itself.
CAMPAIGN_PARAM = "campaign_id"
CAMPAIGN_STATE = "switchboard_campaign"
CAMPAIGN_CHOICE = "switchboard_campaign_choice"  # set by the picker or the ✕, read once by the next run
CAMPAIGN_PICKER = "campaign_pick"
CAMPAIGN_CLEAR = "campaign_clear"

st.set_page_config(page_title="Switchboard", page_icon="📶", layout="wide")


def _pages() -> dict[str, list[st.Page]]:
    def page(file: str, title: str, icon: str, url: str, default: bool = False) -> st.Page:
        return st.Page(PAGES / file, title=title, icon=icon, url_path=url, default=default)

    return {
        "Delivery": [
            page("overview.py", "Overview", ":material/dashboard:", "overview", default=True),
            page("countries.py", "Countries", ":material/public:", "countries"),
            page("errors.py", "Errors", ":material/error:", "errors"),
            page("voice.py", "Voice & fallback", ":material/call:", "voice"),
            page("experiments.py", "Experiments", ":material/science:", "experiments"),
        ],
        "Content": [
            page("templates.py", "Templates", ":material/sms:", "templates"),
            page("responses.py", "Responses", ":material/reply:", "responses"),
            page("send_campaign.py", "Send test campaign", ":material/send:", "send"),
        ],
        "Warehouse": [page("data_health.py", "Data", ":material/database:", "data")],
        "Watch": [page("alerts.py", _alerts_title(), ":material/notifications:", "alerts")],
    }


def _open_alerts() -> int:
    """Open alerts in the snapshot (0 without a warehouse or alert tables): the sidebar's badge."""
    from switchboard.alerts import read

    try:
        return int(data.run(read.open_count))
    except data.WarehouseUnavailable:
        return 0


def _alerts_title() -> str:
    n = _open_alerts()
    return f"Alerts · {n} open" if n else "Alerts"


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


def _campaign_in_url() -> str | None:
    """The campaign filter: the URL's ``campaign_id``, else the one this session picked.

    Written back to the URL on every run, so the link keeps it after a page switch even
    where the switch drops query parameters no widget is bound to. An empty ``?campaign_id=``
    clears it. The picker and the ✕ only record a choice, which wins over the URL of the
    run they trigger (the URL the browser still shows); this function alone edits the URL.
    """
    values = st.query_params.get_all(CAMPAIGN_PARAM)
    if CAMPAIGN_CHOICE in st.session_state:  # the picker or the ✕ just ran: the choice beats the URL
        campaign = st.session_state.pop(CAMPAIGN_CHOICE)
    elif values:
        campaign = values[-1].strip() or None
    else:
        campaign = st.session_state.get(CAMPAIGN_STATE)
    st.session_state[CAMPAIGN_STATE] = campaign
    if campaign is None:
        if values:
            del st.query_params[CAMPAIGN_PARAM]
    elif values != [campaign]:
        st.query_params[CAMPAIGN_PARAM] = campaign
    return campaign


def _pick_campaign() -> None:
    if st.session_state.get(CAMPAIGN_PICKER):
        st.session_state[CAMPAIGN_CHOICE] = st.session_state[CAMPAIGN_PICKER]


def _clear_campaign() -> None:
    st.session_state[CAMPAIGN_CHOICE] = None


def _campaign_filter(known: list[str]) -> str | None:
    """The active campaign as a removable chip, or a selector when the warehouse has campaigns."""
    campaign = _campaign_in_url()
    if campaign is not None:
        st.sidebar.button(
            f"Campaign: {components.md_escape(components.shorten(campaign, 48))} ✕", key=CAMPAIGN_CLEAR,
            on_click=_clear_campaign, icon=":material/campaign:", width="stretch",
            help="Every page shows only this campaign's sends (the link's campaign_id). Click to show all traffic.",
        )
        if campaign not in known:
            st.sidebar.caption(
                f"No campaign {components.md_escape(components.shorten(campaign, 48))} in the warehouse yet: "
                "it appears after `switchboard ingest` loads its send log."
            )
    elif known:
        st.sidebar.selectbox(
            "Campaign", known, index=None, key=CAMPAIGN_PICKER, on_change=_pick_campaign,
            placeholder="All campaigns", help="Test campaigns run by the sender (send-log campaign_id).",
        )
    return campaign


def _sidebar(bounds: data.DataBounds) -> components.View:
    st.sidebar.title("Switchboard")
    start, end = _date_range(bounds)
    options = data.filter_options() if not bounds.empty else {
        "countries": None, "channels": [], "purposes": [], "templates": [], "campaigns": []}
    campaign = _campaign_filter(list(options.get("campaigns") or []))
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
    if bounds.outside:
        st.sidebar.warning(components.outside_note(bounds), icon=":material/event_busy:")
    open_alerts = _open_alerts()
    if open_alerts:  # the badge: visible on every page
        st.sidebar.error(f"{open_alerts} open alert{'s' if open_alerts > 1 else ''}: see the Alerts page.",
                         icon=":material/notifications_active:")
    return components.View(
        start=start,
        end=end,
        filters=Filters(
            countries=tuple(picked_countries),
            channels=tuple(channels),
            purposes=tuple(purposes),
            templates=tuple(templates),
            extra=((CAMPAIGN_PARAM, campaign),) if campaign is not None else (),
        ),
        show_full_numbers=show_full,
    )


def _no_warehouse_sidebar(reason: str) -> components.View:
    """The sidebar of a page that works without a warehouse, before the first ingest: no filters to offer."""
    st.sidebar.title("Switchboard")
    st.sidebar.info(reason, icon=":material/database_off:")
    today = date.today()
    return components.View(start=today - timedelta(days=DEFAULT_DAYS - 1), end=today, filters=Filters())


def main() -> None:
    page = st.navigation(_pages())
    try:
        bounds = data.data_bounds()
    except data.WarehouseUnavailable as err:
        if page.url_path not in WITHOUT_WAREHOUSE:
            st.title(page.title)
            live.data_age()  # keeps checking: the page draws itself once the first ingest publishes
            st.warning(str(err), icon=":material/database_off:")
            st.stop()
        # The sidebar's filters are not drawn, so the links' filter parameters stay untouched.
        st.session_state[components.VIEW_KEY] = _no_warehouse_sidebar(str(err))
        st.session_state[components.BOUNDS_KEY] = NO_DATA
    else:
        st.session_state[components.VIEW_KEY] = _sidebar(bounds)
        st.session_state[components.BOUNDS_KEY] = bounds
    try:
        page.run()
    except data.WarehouseUnavailable as err:  # the snapshot vanished mid-run (being replaced)
        st.warning(str(err), icon=":material/database_off:")


main()
