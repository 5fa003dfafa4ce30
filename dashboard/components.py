"""Shared drawing helpers: every chart, card and table format lives here, so pages stay declarative.

Conventions: Plotly figures with a title that says what and in which unit, hover text
with the exact numbers, rates as percentages, money as USD, countries by name (ISO-3
only as the map's key). Phone numbers are masked unless the viewer turned on
"show full numbers" in the sidebar; message bodies are never shown (the warehouse
does not hold them).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from switchboard.analytics.filters import Filters
from switchboard.core.phones import mask_number, mask_text  # the one masking style (pages call ui.mask_*)
from switchboard.core.twilio import describe_account

# Streamlit serves dashboard/static/ at /app/static/ (enableStaticServing): Plotly's geo
# charts fetch world_110m.json from there instead of the CDN, so maps draw offline.
_log = logging.getLogger(__name__)
PLOTLY_CONFIG: dict[str, Any] = {"topojsonURL": "/app/static/", "displaylogo": False}
RATE_SCALE = "RdYlGn"


# --- the view every page renders -----------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """What the sidebar selected: the period, the filters and the privacy switch."""

    start: date
    end: date
    filters: Filters
    show_full_numbers: bool = False

    @property
    def period(self) -> dict[str, Any]:
        """Keyword arguments every analytics function takes."""
        return {"start": self.start, "end": self.end, "filters": self.filters}

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


VIEW_KEY = "switchboard_view"
BOUNDS_KEY = "switchboard_bounds"


def current_view() -> View:
    """The view app.py stored for this run (pages call this first)."""
    view = st.session_state.get(VIEW_KEY)
    if view is None:  # a page run on its own (AppTest of a single page file)
        raise RuntimeError("Run the dashboard through dashboard/app.py: it builds the sidebar filters.")
    return view


def page_header(title: str, caption: str | None = None, *, needs_data: bool = True) -> View:
    """Title, data age, caption and the view; on an empty warehouse says what to run and stops the page."""
    from switchboard.dashboard.live import data_age  # live imports dashboard.data: kept out of import time

    st.title(title)
    data_age()  # "data as of 23:10:05 UTC (40 s ago)"; redraws the page when ingest publishes
    view = current_view()
    if caption:
        st.caption(caption)
    bounds = st.session_state.get(BOUNDS_KEY)
    if needs_data and (bounds is None or bounds.empty):
        if bounds is not None and bounds.outside:
            st.warning(outside_note(bounds), icon=":material/event_busy:")
        else:
            no_data()
        st.stop()
    return view


def outside_note(bounds: Any) -> str:
    """What the dashboard left out of every page: rows dated outside its plausible window (``data.DataBounds``)."""
    parts = [f"{n:,} {what}" for n, what in ((bounds.outside_messages, "messages"), (bounds.outside_calls, "calls"),
                                             (bounds.outside_attempts, "send-log records")) if n]
    return (
        f"Left out of every page: {', '.join(parts)} dated outside {bounds.window_first:%d %b %Y} – "
        f"{bounds.window_last:%d %b %Y} (UTC), such as a sent_at in year 20261. Ingest rejects such rows, so "
        "something else wrote them. The SQL box on the Data page finds them, e.g. "
        f"`FROM message_facts WHERE sent_day NOT BETWEEN '{bounds.window_first}' AND '{bounds.window_last}'`."
    )


def period_caption(view: View) -> str:
    return f"{view.start:%d %b %Y} – {view.end:%d %b %Y} (UTC), {view.days} days."


# --- formatting ----------------------------------------------------------------------------------


def _nan(x: Any) -> bool:
    """Nothing to show: missing, NaN or infinite (a warehouse an analyst wrote may hold any of them)."""
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError, OverflowError):
        return False


def pct(x: Any, digits: int = 1) -> str:
    return "–" if _nan(x) else f"{float(x) * 100:.{digits}f}%"


def usd(x: Any) -> str:
    if _nan(x):
        return "–"
    x = float(x)
    if abs(x) >= 1000:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    return f"${x:.4f}"


def count(x: Any) -> str:
    return "–" if _nan(x) else f"{int(x):,}"


def _scaled(x: float) -> str:
    """1,234 -> "1,234"; 321,746 -> "321.7k"; 3,222,765 -> "3.22M"; 12,345,678 -> "12.3M"; then B."""
    a = abs(x)
    if a < 10_000:
        return f"{x:,.0f}"
    if a < 999_950:
        return f"{x / 1e3:.1f}k"
    if a < 9_995_000:
        return f"{x / 1e6:.2f}M"
    if a < 999_950_000:
        return f"{x / 1e6:.1f}M"
    return f"{x / 1e9:.2f}B"


def compact(x: Any) -> str:
    """A count short enough for a metric card at any common width (at most 6 characters below 1B)."""
    return "–" if _nan(x) else _scaled(float(int(x)))


def usd_compact(x: Any) -> str:
    """USD for a metric card: $0.0566, $252.35, $1,234, $646.2k, $1.23M (``usd`` gives the exact figure)."""
    if _nan(x):
        return "–"
    x = float(x)
    sign, a = ("-" if x < 0 else ""), abs(x)
    if a < 1:
        return f"{sign}${a:.4f}"
    if a < 999.995:
        return f"{sign}${a:.2f}"
    return f"{sign}${_scaled(a)}"


def seconds(x: Any) -> str:
    if _nan(x):
        return "–"
    x = float(x)
    return f"{x:.1f} s" if x < 120 else f"{x / 60:.1f} min"


# Characters that make inline Markdown (links, emphasis, code, HTML, maths, :directives:, tables).
# The value never starts a line (whitespace is collapsed), so list and heading markers are inert.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\](){}<>:~$|!])")


def md_escape(text: str) -> str:
    """``text`` shown literally where Streamlit renders Markdown (labels, captions): a value from
    a URL such as ``[x](javascript:…)`` or ``:red[…]`` stays text, never a link or a directive."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def shorten(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


PHONE_COLUMNS = ("to_number", "from_number", "to", "from", "number", "phone")


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _looks_like_numbers(column: pd.Series) -> bool:
    """A text column whose values are E.164 numbers, whatever its name (``SELECT to_number AS x``).

    Masking is a courtesy against shoulder-surfing and screenshots, not access control:
    whoever has the SQL box can read the warehouse.
    """
    if column.dtype != object and not pd.api.types.is_string_dtype(column):
        return False
    sample = column.dropna().head(50)
    return len(sample) > 0 and all(isinstance(v, str) and _E164.match(v) for v in sample)


def privacy(df: pd.DataFrame, view: View | None = None, *, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Mask phone-number columns (and numbers inside ``text_columns``) unless the viewer unmasked them.

    Also drops any ``body`` column defensively: bodies may hold one-time codes.
    """
    df = df.drop(columns=[c for c in df.columns if c.lower() in ("body", "message_body")], errors="ignore")
    if view is not None and view.show_full_numbers:
        return df
    df = df.copy()
    for c in df.columns:
        if c.lower() in PHONE_COLUMNS or _looks_like_numbers(df[c]):
            df[c] = df[c].map(mask_number)
    for c in text_columns:
        if c in df.columns:
            df[c] = df[c].map(mask_text)
    return df


# --- carriers -----------------------------------------------------------------------------------
# Ingest takes a number's carrier from libphonenumber's prefix data (ingest/enrich.py), and stores NULL
# where it has none: in the US, Canada and other countries with number portability a number's prefix
# does not tell its carrier, so libphonenumber ships no carrier data there. Tables showed "None".

UNKNOWN_CARRIER = "unknown"
CARRIER_HELP = (
    "The carrier the number's range was assigned to (libphonenumber's prefix data); a ported number may "
    "have moved since. \"unknown\" where there is no such data: in the US, Canada and other countries with "
    "number portability a number's prefix does not tell its carrier."
)


def with_carrier_labels(df: pd.DataFrame, column: str = "carrier") -> pd.DataFrame:
    """``df`` with missing carriers shown as "unknown" (see :data:`CARRIER_HELP`)."""
    if column not in df.columns:
        return df
    return df.assign(**{column: df[column].astype("object").where(df[column].notna(), UNKNOWN_CARRIER)})


def carrier_column(label: str = "Carrier") -> Any:
    return st.column_config.TextColumn(label, help=CARRIER_HELP)


# --- ingest sources, as a person reads them -------------------------------------------------------
# ingest_runs and ingest_state name sources by key: "twilio", "send-logs", "messages:AC…" (a cursor per
# Twilio resource and account). The Data page's cards showed those keys, cut, with "0.0 h ago".

SOURCE_NAMES = {"messages": "Messages", "calls": "Calls", "twilio": "Twilio API", "send-logs": "Send logs",
                "send_logs": "Send logs", "bulk-export": "BulkExport files", "bulk_export": "BulkExport files",
                "conversions": "Conversions", "receiver": "Status callbacks"}


def source_label(source: str, main_account: str | None = None) -> str:
    """``messages:AC…`` → "Messages, main account" / "Calls, subaccount AC…1234"; ``send-logs`` → "Send logs"."""
    kind, _, account = str(source).partition(":")
    name = SOURCE_NAMES.get(kind, kind.replace("_", " ").replace("-", " ").capitalize())
    if not account:
        return name
    if main_account is None:
        return f"{name}, account {describe_account(account)}"
    return f"{name}, main account" if account == main_account else f"{name}, subaccount {describe_account(account)}"


def ago(seconds: Any) -> str:
    """Seconds since something, for a person: "just now", "2 min ago", "5 h ago", "3 days ago"."""
    if _nan(seconds):
        return "–"
    s = float(seconds)
    if s < -300:  # more than clock skew: the time recorded is in the future
        return "in the future"
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 48 * 3600:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86400)} days ago"


# --- messages to the user ------------------------------------------------------------------------


def no_data(what: str = "messages or calls") -> None:
    from switchboard.dashboard.data import GET_DATA_HINT

    st.info(f"No {what} in the warehouse yet. {GET_DATA_HINT}", icon=":material/inbox:")


def nothing_in_period(view: View, what: str = "messages") -> None:
    campaign = dict(view.filters.extra).get("campaign_id")
    which = f" of campaign {md_escape(shorten(str(campaign), 48))}" if campaign is not None else ""
    st.info(
        f"No {what}{which} between {view.start:%d %b %Y} and {view.end:%d %b %Y} with these filters. "
        "Widen the date range or clear filters in the sidebar.",
        icon=":material/filter_alt_off:",
    )


# --- metric cards --------------------------------------------------------------------------------


def _change(value: Any, kind: str) -> str | None:
    if _nan(value):
        return None
    if kind == "points":
        return f"{float(value) * 100:+.1f} pts"
    return f"{float(value) * 100:+.1f}%"


def metric_card(
    label: str,
    value: str,
    change: Any = None,
    *,
    change_kind: str = "relative",
    higher_is_better: bool = True,
    help: str | None = None,
) -> None:
    """``st.metric`` with the change vs the previous period, coloured by whether up is good."""
    st.metric(
        label,
        value,
        _change(change, change_kind),
        delta_color="normal" if higher_is_better else "inverse",
        help=help,
        border=True,
    )


CARDS_PER_ROW = 3  # a card's value stays whole down to ~1200 px wide windows (sidebar open)


def card_slots(n: int, per_row: int = CARDS_PER_ROW) -> list[Any]:
    """``n`` equal columns for metric cards, ``per_row`` to a row (more rows as needed).

    Six cards in one row leave ~110 px per value at 1400 px: "$646,213" was cut to "$646…".
    With three per row and ``compact`` / ``usd_compact`` values every card reads whole.
    """
    slots: list[Any] = []
    while len(slots) < n:
        slots += st.columns(per_row)
    return slots[:n]


def _exact(text: str) -> str:
    return f" Exactly {text}."


def summary_cards(row: pd.Series, *, previous: str) -> None:
    """The headline cards: sent, delivered, delivery rate, failed, cost, cost per delivered (two rows of three).
    Large counts and amounts are shown compactly (3.22M, $164.0k); the help gives the exact figure."""
    cols = card_slots(6)
    vs = f"Change vs the previous period ({previous})."
    with cols[0]:
        metric_card("Sent", compact(row["sent"]), row.get("sent_change"),
                    help=f"Outbound SMS sent.{_exact(count(row['sent']))} {vs}")
    with cols[1]:
        metric_card("Delivered", compact(row["delivered"]), row.get("delivered_change"),
                    help=f"Status delivered or read.{_exact(count(row['delivered']))} {vs}")
    with cols[2]:
        metric_card("Delivery rate", pct(row["delivery_rate"]), row.get("delivery_rate_change"),
                    change_kind="points",
                    help=f"Delivered / (delivered + undelivered + failed); pending messages are left out. "
                         f"Change in percentage points. {vs}")
    with cols[3]:
        failed = row["failed"] + row["undelivered"]
        prev = row.get("failed_prev", math.nan) + row.get("undelivered_prev", math.nan)
        change = (failed - prev) / prev if prev and not _nan(prev) else None
        metric_card("Failed", compact(failed), change, higher_is_better=False,
                    help=f"Undelivered + failed.{_exact(count(failed))} {count(row['pending'])} still pending. {vs}")
    with cols[4]:
        cost = row["cost_usd"]
        exact = "" if _nan(cost) else _exact(f"${float(cost):,.2f}")
        metric_card("Cost", usd_compact(cost), row.get("cost_usd_change"), higher_is_better=False,
                    help=f"Twilio price of the messages, USD.{exact} {vs}")
    with cols[5]:
        metric_card("Cost per delivered", usd_compact(row["cost_per_delivered"]), row.get("cost_per_delivered_change"),
                    higher_is_better=False, help=f"Cost / delivered messages, USD. {vs}")


# --- charts --------------------------------------------------------------------------------------


def _layout(fig: go.Figure, title: str, *, height: int = 360) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        hoverlabel={"namelength": -1},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def show(fig: go.Figure, *, key: str | None = None) -> None:
    st.plotly_chart(fig, config=PLOTLY_CONFIG, key=key)


def rate_trend(df: pd.DataFrame, *, x: str = "day", title: str = "Delivery rate per day (%)",
               rate: str = "delivery_rate", volume: str = "sent") -> go.Figure:
    """Line of a rate with its 95 % interval band; hover shows volume."""
    d = df.sort_values(x)
    fig = go.Figure()
    if "rate_ci_low" in d and "rate_ci_high" in d:
        fig.add_trace(go.Scatter(x=d[x], y=d["rate_ci_high"], line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, mode="lines"))
        fig.add_trace(go.Scatter(x=d[x], y=d["rate_ci_low"], line={"width": 0}, fill="tonexty",
                                 fillcolor="rgba(31,119,180,0.15)", hoverinfo="skip", name="95% interval",
                                 mode="lines"))
    custom = d[[volume]].to_numpy() if volume in d else None
    fig.add_trace(go.Scatter(
        x=d[x], y=d[rate], mode="lines+markers", name="Delivery rate", line={"color": "#1f77b4"},
        customdata=custom,
        hovertemplate="%{x|%a %d %b %Y}<br>Delivery rate %{y:.1%}" + ("<br>Sent %{customdata[0]:,}" if custom is not None else "") + "<extra></extra>",
    ))
    # Rates live in the top of the scale: zoom to the data (down to 0 only when it goes there), up to 100 %.
    low_col = d["rate_ci_low"] if "rate_ci_low" in d else d[rate]
    low = low_col.min(skipna=True)
    bottom = 0.0 if _nan(low) else max(0.0, math.floor(float(low) * 10) / 10 - 0.05)
    fig.update_yaxes(tickformat=".0%", title="Delivery rate", range=[bottom, 1.005])
    fig.update_xaxes(title=None)
    return _layout(fig, title)


def world_map(df: pd.DataFrame, *, value: str = "delivery_rate", title: str = "Delivery rate by country (%)",
              hover: dict[str, str] | None = None, percent: bool = True, money: bool = False) -> go.Figure:
    """Choropleth keyed by ISO-3 (``country_iso3``), named by ``country_name``.

    ``hover``: extra columns → d3-format to show in the tooltip (``{"sms_sent": ",", "cost_usd": "$.2f"}``).
    Countries without data stay grey (land), so gaps are visible rather than hidden.
    """
    d = df.dropna(subset=["country_iso3", value])
    hover = hover or {}
    value_format = ":.1%" if percent else (":$.4f" if money else ":,")
    label = "Delivery rate" if value == "delivery_rate" else value.replace("_", " ").capitalize()
    fig = px.choropleth(
        d, locations="country_iso3", locationmode="ISO-3", color=value, hover_name="country_name",
        hover_data={"country_iso3": False, value: value_format,
                    **{c: f":{fmt}" for c, fmt in hover.items() if c in d}},
        color_continuous_scale=RATE_SCALE if percent else ("YlOrRd" if money else "Blues"),
        range_color=(max(0.0, float(d[value].quantile(0.02))), 1.0) if percent and len(d) else None,
        labels={value: label, **{c: c.replace("_", " ").capitalize() for c in hover}},
    )
    fig.update_geos(showcountries=True, countrycolor="#999", showland=True, landcolor="#e8e8e8",
                    showframe=False, projection_type="natural earth", showcoastlines=False,
                    lataxis_range=[-58, 85])
    fig.update_coloraxes(colorbar={"tickformat": ".0%" if percent else ("$.3f" if money else ","), "title": ""})
    fig = _layout(fig, title, height=430)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 50, "b": 0})
    return fig


def _label(column: str) -> str:
    return column.replace("_", " ").replace(" p50 s", " median (s)").capitalize()


def bar(df: pd.DataFrame, *, x: str, y: str, title: str, x_title: str | None = None, y_title: str | None = None,
        percent: bool = False, money: bool = False, horizontal: bool = False, color: str | None = None,
        hover: dict[str, str] | None = None, height: int = 360) -> go.Figure:
    """Bars of ``y`` per ``x``; hover shows the value formatted (%, $) and the ``hover`` columns."""
    value_format = ":.1%" if percent else (":$,.4f" if money else ":,")
    hover_data: dict[str, Any] = {y: value_format}
    hover_data |= {c: (f":{fmt}" if fmt else True) for c, fmt in (hover or {}).items() if c in df}
    labels = {c: _label(c) for c in hover_data} | {y: y_title or _label(y), x: x_title or _label(x)}
    if horizontal:
        fig = px.bar(df, x=y, y=x, orientation="h", color=color, hover_data=hover_data, labels=labels)
        fig.update_yaxes(title=x_title, autorange="reversed", type="category")
        axis = fig.update_xaxes
    else:
        fig = px.bar(df, x=x, y=y, color=color, hover_data=hover_data, labels=labels)
        fig.update_xaxes(title=x_title)
        axis = fig.update_yaxes
    axis(title=y_title, tickformat=".0%" if percent else ("$,.2f" if money else ","))
    if percent:
        axis(range=[0, 1.02])
    return _layout(fig, title, height=height)


def lines(df: pd.DataFrame, *, x: str, y: str, color: str, title: str, y_title: str, percent: bool = False,
          stacked: bool = False) -> go.Figure:
    labels = {y: y_title, color: _label(color), x: _label(x)}
    hover = {y: ":.2%" if percent else ":,"}
    if stacked:
        fig = px.area(df, x=x, y=y, color=color, labels=labels, hover_data=hover)
    else:
        fig = px.line(df, x=x, y=y, color=color, markers=True, labels=labels, hover_data=hover)
    fig.update_yaxes(title=y_title, tickformat=".0%" if percent else ",")
    fig.update_xaxes(title=None)
    return _layout(fig, title)


def donut(labels: Iterable[Any], values: Iterable[Any], *, title: str, colors: Iterable[str] | None = None) -> go.Figure:
    """A donut of the non-zero parts."""
    parts = [(lab, val, col) for lab, val, col in zip(labels, values, colors or [None] * 99) if val]
    fig = go.Figure(go.Pie(labels=[p[0] for p in parts], values=[p[1] for p in parts], hole=0.5, sort=False,
                           marker={"colors": [p[2] for p in parts]} if colors else None,
                           hovertemplate="%{label}<br>%{value:,} (%{percent})<extra></extra>"))
    return _layout(fig, title)


# --- tables --------------------------------------------------------------------------------------


def percent_column(label: str, help: str | None = None) -> Any:
    # Values are fractions (0.95); "percent" formats them as 95.00%.
    return st.column_config.NumberColumn(label, format="percent", help=help)


def money_column(label: str, help: str | None = None, *, precise: bool = False) -> Any:
    # SMS prices are fractions of a cent in many countries: per-message columns need 4 decimals.
    return st.column_config.NumberColumn(label, format="$%.4f" if precise else "dollar", help=help)


def count_column(label: str, help: str | None = None) -> Any:
    return st.column_config.NumberColumn(label, format="localized", help=help)


def table(df: pd.DataFrame, *, columns: dict[str, Any], key: str | None = None, height: int | str = "auto",
          selectable: bool = False) -> Any:
    """A sortable dataframe showing only ``columns`` (name → column config or label)."""
    config = {c: (st.column_config.Column(v) if isinstance(v, str) else v) for c, v in columns.items()}
    present = [c for c in columns if c in df.columns]
    kwargs: dict[str, Any] = {}
    if selectable:
        kwargs = {"on_select": "rerun", "selection_mode": "single-row"}
    return st.dataframe(df[present], column_config=config, column_order=present, hide_index=True,
                        key=key, height=height, **kwargs)


# --- insights ------------------------------------------------------------------------------------


def what_changed(view: View, *, recent_days: int = 7, baseline_days: int = 28, limit: int = 5) -> None:
    """The top sentences from ``analytics.insights.what_changed`` for the period's last week."""
    from switchboard.analytics import insights
    from switchboard.dashboard import data

    try:
        found = data.run(insights.what_changed, end=view.end, recent_days=recent_days,
                         baseline_days=baseline_days, filters=view.filters)
    except data.WarehouseUnavailable:
        raise
    except Exception as err:  # noqa: BLE001 - an optional section must not take the page down
        # The headline numbers and charts above are still right; say what failed, log the rest.
        _log.exception("what_changed failed")
        st.error(f"What changed could not be computed ({type(err).__name__}: {err}). "
                 "The numbers above are unaffected; the server log has the details.")
        return
    if found.empty:
        st.success(f"Nothing changed significantly in the {recent_days} days to {view.end:%d %b} against the "
                   f"{baseline_days} days before.", icon=":material/check_circle:")
        return
    st.caption(f"The {recent_days} days to {view.end:%d %b %Y} against the {baseline_days} days before.")
    for sentence in found["sentence"].head(limit):
        st.markdown(f"- {sentence}")
