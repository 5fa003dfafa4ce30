"""The Twilio error-code catalogue: shipped data is valid, and bad edits fail clearly."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from switchboard.core.error_catalog import (
    CATEGORIES,
    CHANNELS,
    COLUMNS,
    DEFAULT_NAME,
    category_of,
    describe,
    load_error_catalog,
)
from switchboard.core.resources import data_file

REQUIRED_CODES = (30003, 30005, 30006, 30007, 30008, 21211, 21610, 21614, 21612, 21408, 20429, 30034, 13224)


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    return load_error_catalog()


def _rows() -> list[dict[str, str]]:
    text = data_file(DEFAULT_NAME).read_text(encoding="utf-8")  # the packaged file, as installed
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_catalogue_loads_with_the_warehouse_columns_and_types(catalog):
    assert tuple(catalog.columns) == COLUMNS
    assert catalog["code"].dtype == "int64"
    assert catalog["retryable"].dtype == bool
    assert catalog["code"].is_unique


def test_catalogue_has_at_least_45_codes_including_the_common_ones(catalog):
    assert len(catalog) >= 45
    missing = set(REQUIRED_CODES) - set(catalog["code"])
    assert not missing, f"missing codes: {sorted(missing)}"


def test_every_category_is_used_and_nothing_else(catalog):
    assert set(catalog["category"]) == set(CATEGORIES)


def test_channels_come_from_the_allowed_list(catalog):
    assert set(catalog["channel"]) <= set(CHANNELS)
    assert {"sms", "voice"} <= set(catalog["channel"])


def test_rows_are_complete(catalog):
    assert (catalog["name"].str.len() > 0).all()
    assert (catalog["what_to_do"].str.len() > 10).all()
    assert (
        catalog["more_info"] == "https://www.twilio.com/docs/api/errors/" + catalog["code"].astype(str)
    ).all()


@pytest.mark.parametrize(
    ("code", "name", "category", "retryable"),
    [
        (30003, "Unreachable destination handset", "unreachable-handset", True),
        (30005, "Unknown destination handset", "unknown-handset", False),
        (30006, "Landline or unreachable carrier", "landline", False),
        (30007, "Message filtered", "carrier-filtered", False),
        (30008, "Unknown error", "unknown", True),
        (21610, "Attempt to send to unsubscribed recipient", "opt-out", False),
        (21211, "Invalid 'To' Phone Number", "invalid-number", False),
        (30034, "US A2P 10DLC - Message from an Unregistered Number", "registration-compliance", False),
        (20429, "Too many requests", "rate-limit", True),
    ],
)
def test_well_known_codes(code, name, category, retryable):
    info = describe(code)
    assert (info.name, info.category, info.retryable, info.known) == (name, category, retryable, True)
    assert category_of(code) == category


def test_quoted_names_survive_the_csv(catalog):
    name = catalog.loc[catalog["code"] == 21612, "name"].item()
    assert name == 'Message cannot be sent with the current combination of "To" and/or "From" parameters'


def test_codes_are_accepted_as_strings_and_floats():
    assert category_of("30006") == "landline"
    assert category_of(30006.0) == "landline"  # nullable int columns arrive as floats
    with pytest.raises(ValueError, match="not a Twilio error code"):
        category_of("abc")


def test_unknown_code_points_to_the_dictionary():
    info = describe(12345)
    assert info.known is False
    assert info.category == "unknown"
    assert info.name == "Unknown error code 12345"
    assert "https://www.twilio.com/docs/api/errors/12345" in info.what_to_do
    assert info.more_info == "https://www.twilio.com/docs/api/errors/12345"
    assert category_of(12345) == "unknown"


def test_describe_uses_a_given_catalogue(tmp_path):
    rows = [row for row in _rows() if row["code"] == "30003"]
    rows[0]["category"] = "unknown"
    custom = load_error_catalog(_write(tmp_path / "custom.csv", rows))
    assert category_of(30003, custom) == "unknown"
    assert category_of(30006, custom) == "unknown"  # not in that catalogue


# --- broken catalogues -------------------------------------------------------------------


def test_duplicate_code_is_rejected_with_both_lines(tmp_path):
    rows = _rows()
    rows.append(dict(rows[0]))
    path = _write(tmp_path / "dup.csv", rows)
    with pytest.raises(ValueError) as error:
        load_error_catalog(path)
    message = str(error.value)
    assert f"duplicate code {rows[0]['code']}" in message
    assert "already on line 2" in message
    assert f"line {len(rows) + 1}" in message


def test_bad_category_is_rejected_with_the_allowed_list(tmp_path):
    rows = _rows()
    rows[3]["category"] = "spam"
    with pytest.raises(ValueError) as error:
        load_error_catalog(_write(tmp_path / "cat.csv", rows))
    message = str(error.value)
    assert f"line 5 (code {rows[3]['code']})" in message
    assert "category 'spam'" in message
    assert "carrier-filtered" in message  # tells which values are allowed


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("name", "", "name is empty"),
        ("what_to_do", "  ", "what_to_do is empty"),
        ("code", "30O3", "not a whole number"),
        ("channel", "email", "channel 'email'"),
        ("retryable", "maybe", "must be true or false"),
        ("more_info", "https://example.com", "should be https://www.twilio.com/docs/api/errors/"),
    ],
)
def test_each_bad_field_is_named(tmp_path, column, value, expected):
    rows = _rows()
    rows[0][column] = value
    with pytest.raises(ValueError, match="line 2") as error:
        load_error_catalog(_write(tmp_path / "bad.csv", rows))
    assert expected in str(error.value)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("code,name\n30003,Unreachable destination handset\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        load_error_catalog(path)
