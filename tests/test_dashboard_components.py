"""Formatting and privacy helpers of the dashboard (no Streamlit runtime needed)."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from switchboard.analytics.filters import Filters
from switchboard.dashboard import components as ui


@pytest.mark.parametrize(("number", "masked"), [
    ("+447700900123", "+44 7•••• ••123"),
    ("+14155550123", "+1 4•••• ••123"),
    ("+5511987654321", "+55 1•••• •••321"),
    ("+44 7700 900123", "+44 7•••• ••123"),
])
def test_mask_number(number: str, masked: str) -> None:
    assert ui.mask_number(number) == masked


@pytest.mark.parametrize("value", ["MG" + "1" * 32, "Switchbd", None, 42, "12"])
def test_non_numbers_are_left_alone(value: object) -> None:
    assert ui.mask_number(value) == value


def test_mask_text_finds_numbers_inside_lines() -> None:
    line = '{"to": "+447700900123", "event_id": "E17", "sent_at": "2026-11-20"}'
    masked = ui.mask_text(line)
    assert "+447700900123" not in masked and "+44 7•••• ••123" in masked
    assert "E17" in masked


def test_privacy_masks_phone_columns_and_drops_bodies() -> None:
    df = pd.DataFrame({"sid": ["SM1"], "to_number": ["+447700900123"], "body": ["Your code is 123456"]})
    view = ui.View(date(2026, 1, 1), date(2026, 1, 2), Filters())
    out = ui.privacy(df, view)
    assert "body" not in out.columns
    assert out["to_number"].iloc[0] == "+44 7•••• ••123"
    shown = ui.privacy(df, ui.View(date(2026, 1, 1), date(2026, 1, 2), Filters(), show_full_numbers=True))
    assert shown["to_number"].iloc[0] == "+447700900123"
    assert "body" not in shown.columns  # bodies never, whatever the toggle


def test_formats() -> None:
    assert ui.pct(0.9571) == "95.7%"
    assert ui.pct(math.nan) == "–"
    assert ui.usd(1234.5) == "$1,234"
    assert ui.usd(0.0079) == "$0.0079"
    assert ui.count(12345) == "12,345"


def test_world_map_uses_iso3_and_names() -> None:
    df = pd.DataFrame({"country_iso3": ["GBR", "IDN", None], "country_name": ["United Kingdom", "Indonesia", None],
                       "delivery_rate": [0.97, 0.6, 0.5], "sms_sent": [10, 20, 1]})
    fig = ui.world_map(df, hover={"sms_sent": ","})
    trace = fig.data[0]
    assert list(trace.locations) == ["GBR", "IDN"]
    assert trace.locationmode == "ISO-3"
    assert "United Kingdom" in list(trace.hovertext)
    assert fig.layout.coloraxis.colorbar.tickformat == ".0%"
    assert ui.PLOTLY_CONFIG["topojsonURL"] == "/app/static/"


def test_privacy_masks_number_columns_under_any_name() -> None:
    df = pd.DataFrame({"x": ["+447700900123", "+14155550123"], "sid": ["SM1", "SM2"], "n": [1, 2]})
    out = ui.privacy(df, ui.View(date(2026, 1, 1), date(2026, 1, 2), Filters()))
    assert out["x"].tolist() == ["+44 7•••• ••123", "+1 4•••• ••123"]
    assert out["sid"].tolist() == ["SM1", "SM2"]
    assert out["n"].tolist() == [1, 2]


@pytest.mark.parametrize(("value", "shown"), [
    (0, "0"), (9_999, "9,999"), (10_000, "10.0k"), (321_746, "321.7k"), (999_949, "999.9k"), (999_950, "1.00M"),
    (3_222_765, "3.22M"), (9_994_999, "9.99M"), (9_995_000, "10.0M"), (12_345_678, "12.3M"),
    (999_949_999, "999.9M"), (1_234_567_890, "1.23B"), (None, "–"), (math.nan, "–"),
])
def test_compact_counts(value: object, shown: str) -> None:
    assert ui.compact(value) == shown
    assert len(shown) <= 6


@pytest.mark.parametrize(("value", "shown"), [
    (0.0566, "$0.0566"), (0.00012, "$0.0001"), (12.345, "$12.35"), (99.99, "$99.99"), (252.35, "$252.35"), (999.994, "$999.99"),
    (999.996, "$1,000"), (1_234.4, "$1,234"),
    (646_213.0, "$646.2k"), (164_019.4, "$164.0k"), (1_234_567.0, "$1.23M"), (-646_213.0, "-$646.2k"),
    (None, "–"), (math.nan, "–"),
])
def test_usd_compact(value: object, shown: str) -> None:
    assert ui.usd_compact(value) == shown
    assert len(shown.lstrip("-")) <= 7


def test_missing_carriers_show_as_unknown_with_the_reason() -> None:
    # libphonenumber has no carrier data for US numbers (number portability): ingest stores NULL.
    df = pd.DataFrame({"carrier": ["Vodafone", None, float("nan")], "sent": [3, 2, 1]})
    assert ui.with_carrier_labels(df)["carrier"].tolist() == ["Vodafone", "unknown", "unknown"]
    assert "number portability" in ui.CARRIER_HELP
    assert ui.with_carrier_labels(df.drop(columns="carrier")).equals(df.drop(columns="carrier"))


MAIN = "AC" + "a" * 32
SUB = "AC" + "b" * 28 + "1234"


@pytest.mark.parametrize(("source", "main", "label"), [
    (f"messages:{MAIN}", MAIN, "Messages, main account"),
    (f"calls:{SUB}", MAIN, "Calls, subaccount AC…1234"),
    (f"messages:{SUB}", None, "Messages, account AC…1234"),
    ("send-logs", MAIN, "Send logs"),
    ("send_logs", None, "Send logs"),
    ("twilio", None, "Twilio API"),
    ("bulk-export", None, "BulkExport files"),
    ("some_new-source", None, "Some new source"),
])
def test_sources_are_named_for_people(source: str, main: str | None, label: str) -> None:
    assert ui.source_label(source, main) == label


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "just now"), (-30, "just now"), (120, "2 min ago"), (3599, "59 min ago"), (3600, "1 h ago"),
    (47 * 3600, "47 h ago"), (3 * 86400 + 5, "3 days ago"), (-3600, "in the future"),
    (None, "–"), (math.nan, "–"), (math.inf, "–"),
])
def test_ago_reads_like_a_person(seconds: float | None, text: str) -> None:
    assert ui.ago(seconds) == text
