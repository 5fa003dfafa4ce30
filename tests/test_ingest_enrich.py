"""Enrichment (countries, regions, carriers, prices), body encoding in SQL, the retrying HTTP client."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.core.twilio import RetryingHttpClient, TwilioAuthError, TwilioUnavailable
from switchboard.ingest import enrich, warehouse
from switchboard.ingest.encoding import encoding_sql, length_sql


def test_known_numbers_resolve_to_country_and_carrier():
    got = enrich.lookup_numbers(["+14155552671", "+447400123456", "+5511961234567", "+6281234567890",
                                 "+390612345678", "+201001234567", "not a number", "+999123"]).set_index("number")
    assert got.loc["+14155552671", "country"] == "US"
    assert got.loc["+447400123456", "country"] == "GB"
    assert got.loc["+5511961234567", "country"] == "BR"
    assert got.loc["+6281234567890", "country"] == "ID"
    assert got.loc["+6281234567890", "carrier"] == "Telkomsel"
    assert got.loc["+390612345678", "country"] == "IT"  # Italian leading zero kept
    assert got.loc["+201001234567", "country"] == "EG"
    assert got.loc["+201001234567", "carrier"] == "Vodafone"
    assert pd.isna(got.loc["not a number", "country"])
    assert pd.isna(got.loc["+999123", "country"])


def test_fast_parse_agrees_with_phonenumbers_on_sandbox_numbers():
    import numpy as np
    import phonenumbers
    from phonenumbers import carrier

    from switchboard.sandbox.numbers import draw_numbers

    rng = np.random.default_rng(4)
    numbers = []
    for region in ("US", "GB", "IN", "ID", "BR", "EG", "NG", "DE", "MX", "FR", "PH", "IT"):
        numbers += list(draw_numbers(region, 150, rng)[0])
    got = enrich.lookup_numbers(numbers)
    for row in got.itertuples():
        p = phonenumbers.parse(row.number)
        assert row.country == phonenumbers.region_code_for_number(p)
        assert (None if pd.isna(row.carrier) else row.carrier) == (carrier.name_for_number(p, "en") or None)


def test_countries_have_regions_from_m49():
    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    regions = dict(con.execute("SELECT iso2, region FROM countries").fetchall())
    assert regions["BR"] == "Americas" and regions["ID"] == "Asia" and regions["EG"] == "Africa"
    assert regions["DE"] == "Europe" and regions["AU"] == "Oceania" and regions["XK"] == "Europe"
    assert con.execute("SELECT count(*) FROM countries WHERE region IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT subregion FROM countries WHERE iso2 = 'ID'").fetchone()[0] == "South-eastern Asia"


def test_price_usd_is_the_positive_cost_through_fx():
    from switchboard.ingest.twilio_api import MESSAGES, upsert_records

    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    base = {"account_sid": "AC1", "status": "delivered", "to": "+447400123456",
            "date_sent": "Mon, 19 Oct 2026 10:00:00 +0000", "date_updated": "Mon, 19 Oct 2026 10:00:05 +0000"}
    recs = [{**base, "sid": "SM1", "price": "-0.04000", "price_unit": "USD"},
            {**base, "sid": "SM2", "price": "-0.10000", "price_unit": "EUR"},
            {**base, "sid": "SM3", "price": None, "price_unit": "USD"}]
    con.execute("BEGIN")
    upsert_records(con, MESSAGES, recs, run_id=1, source="api", location="p", reject_source="t")
    con.execute("COMMIT")
    rows = dict(con.execute("SELECT sid, price_usd::DOUBLE FROM twilio_messages").fetchall())
    assert rows["SM1"] == pytest.approx(0.04)
    assert rows["SM2"] == pytest.approx(0.10 * enrich.FX_USD_PER_UNIT["EUR"])
    assert rows["SM3"] is None
    assert con.execute("SELECT to_country, to_carrier FROM twilio_messages WHERE sid = 'SM1'").fetchone()[0] == "GB"


_con = duckdb.connect()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc XYZ019@£$¥èé\n\r{}[]~|^€\\`Δ“”’–…😀ĞЖ中\u00a0\t")), max_size=200))
def test_sql_encoding_matches_segment_info(body):
    from switchboard.core.segments import segment_info

    enc, length = _con.execute(f"SELECT {encoding_sql('$b')}, {length_sql('$b')}", {"b": body}).fetchall()[0]
    info = segment_info(body)
    assert (enc, length) == (info.encoding, info.length)


class _Resp:
    def __init__(self, status, headers=None):
        self.status_code, self.headers, self.text = status, headers or {}, "{}"


def _client(answers, monkeypatch):
    client = RetryingHttpClient(max_retries=4, sleep=lambda s: slept.append(s))
    slept: list[float] = []
    calls = iter(answers)

    def fake(self, method, url, *a, **k):
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    from twilio.http.http_client import TwilioHttpClient

    monkeypatch.setattr(TwilioHttpClient, "request", fake)
    return client, slept


def test_retry_after_is_honoured_and_5xx_and_drops_retry(monkeypatch):
    import requests

    client, slept = _client([_Resp(429, {"Retry-After": "3"}), _Resp(503), requests.ConnectionError("reset"),
                             _Resp(200)], monkeypatch)
    assert client.request("GET", "http://x/y").status_code == 200
    assert slept[0] == 3 and len(slept) == 3 and client.retries == 3


def test_retries_are_bounded_and_auth_errors_stop_at_once(monkeypatch):
    client, slept = _client([_Resp(500)] * 5, monkeypatch)
    with pytest.raises(TwilioUnavailable):
        client.request("GET", "http://x/y")
    assert len(slept) == 4
    client, slept = _client([_Resp(401)], monkeypatch)
    with pytest.raises(TwilioAuthError, match="TWILIO_AUTH_TOKEN"):
        client.request("GET", "http://x/y?secret=1")
    assert slept == []


def test_credentials_from_env_api_key_or_secrets_toml(tmp_path):
    from switchboard.core.twilio import CredentialsMissing, find_credentials

    secrets = tmp_path / ".streamlit" / "secrets.toml"
    c = find_credentials({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok"}, secrets)
    assert (c.account_sid, c.username, c.password) == ("AC1", "AC1", "tok")
    assert "tok" not in repr(c)
    c = find_credentials({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_API_KEY": "SK1", "TWILIO_API_SECRET": "s"}, secrets)
    assert (c.account_sid, c.username, c.password) == ("AC1", "SK1", "s")
    secrets.parent.mkdir()
    secrets.write_text('[twilio]\naccount_sid = " AC2 "\nauth_token = "t2\\n"\n')  # whitespace is stripped
    c = find_credentials({}, secrets)
    assert (c.account_sid, c.password) == ("AC2", "t2")
    with pytest.raises(CredentialsMissing, match="TWILIO_ACCOUNT_SID"):
        find_credentials({}, tmp_path / "nowhere" / "secrets.toml")


def test_a_broken_secrets_file_is_a_clear_error_naming_it(tmp_path):
    from switchboard.core.errors import ConfigError
    from switchboard.core.twilio import find_credentials

    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[twilio]\naccount_sid = "AC2\n')  # unterminated string
    with pytest.raises(ConfigError, match=str(secrets)):
        find_credentials({}, secrets)
    # the environment does not hide a broken file: both the ingest and the sender read the same rule
    with pytest.raises(ConfigError, match="not valid TOML"):
        find_credentials({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, secrets)


def test_cli_help_lists_the_options():
    import argparse

    from switchboard.ingest import cli, export

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    text = p.format_help()
    for opt in ("--source", "--since", "--until", "--full-refresh", "--lag-hours", "--send-logs", "--bulk-export",
                "--quiet", "--data-dir"):
        assert opt in text
    p = argparse.ArgumentParser()
    export.add_arguments(p)
    assert "--parquet" in p.format_help()
