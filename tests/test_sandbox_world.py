"""The sandbox's simulated world: determinism, valid numbers, segments, ground truth, files."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import phonenumbers
import pytest

from switchboard.core.segments import segment_info
from switchboard.sandbox.world import (
    CONVERSION_COLUMNS,
    SEND_COLUMNS,
    Scenario,
    generate,
    message_body,
    write_bulk_export,
    write_send_logs,
)

END = datetime(2026, 6, 1, tzinfo=UTC)
SMALL = Scenario(messages=1000, calls=100, days=7, end=END)


@pytest.fixture(scope="module")
def small():
    return generate(SMALL)


@pytest.fixture(scope="module")
def medium():
    # Big enough for the injected effects to stand out of the noise.
    return generate(Scenario(messages=80_000, calls=6_000, days=60, end=END))


def test_small_world_is_instant():
    generate(Scenario(messages=10, calls=2, days=1, end=END))  # warm the per-country number plans
    # CPU time, not wall time: the shared CI machine may be busy. About 0.1 s on an idle core.
    t = time.process_time()
    w = generate(Scenario(seed=11, messages=1000, calls=100, days=7, end=END))
    assert time.process_time() - t < 0.6
    outbound = (w.messages["direction"] != "inbound").sum()  # the rest are members' replies (issue 18)
    assert outbound == 1000 and len(w.calls) == 100


def test_same_seed_same_world_and_other_seed_differs(small):
    again = generate(SMALL)
    pd.testing.assert_frame_equal(small.messages, again.messages)
    pd.testing.assert_frame_equal(small.calls, again.calls)
    pd.testing.assert_frame_equal(small.send_log, again.send_log)
    pd.testing.assert_frame_equal(small.conversions, again.conversions)
    assert small.accounts == again.accounts
    other = generate(Scenario(seed=8, messages=1000, calls=100, days=7, end=END))
    assert other.messages["sid"].tolist() != small.messages["sid"].tolist()
    assert other.accounts[0]["auth_token"] != small.accounts[0]["auth_token"]


def test_every_number_is_valid_and_in_its_country(small):
    out = small.messages[small.messages["direction"] != "inbound"]
    inbound = small.messages[small.messages["direction"] == "inbound"]
    assert len(inbound)  # members' replies: From is the member, in the member's country
    pairs = pd.concat([
        out[["to", "country"]].astype(object),
        inbound[["from", "country"]].rename(columns={"from": "to"}).astype(object),
        small.calls[["to", "country"]].astype(object),
    ]).drop_duplicates()
    for number, country in pairs.itertuples(index=False):
        parsed = phonenumbers.parse(number, None)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.region_code_for_number(parsed) == country, (number, country)
    assert small.messages["sid"].is_unique and small.calls["sid"].is_unique
    assert small.messages["sid"].str.fullmatch(r"SM[0-9a-f]{32}").all()
    assert small.calls["sid"].str.fullmatch(r"CA[0-9a-f]{32}").all()


def test_at_least_forty_countries_with_differing_profiles(medium):
    gt = medium.ground_truth
    assert len(gt["countries"]) >= 40
    rates = gt["delivery_rate_by_country"]
    assert rates["GB"] > rates["NG"] + 0.05
    prices = medium.messages.assign(unit=medium.messages["price"] / medium.messages["num_segments"])
    delivered = prices[prices["status"] == "delivered"].groupby("country", observed=True)["unit"].median()
    assert delivered["ID"] > 20 * delivered["US"]
    carriers = medium.messages[medium.messages["country"] == "ID"]["carrier"].astype(object).unique()
    assert {"Telkomsel", "Indosat Ooredoo Hutchison"} <= set(carriers)


def test_segments_and_encoding_match_twilio_rules(small):
    m = small.messages
    for key in np.unique(m["body_key"]):
        i = int(np.flatnonzero(m["body_key"].to_numpy() == key)[0])
        info = segment_info(message_body(small, i))
        assert (info.encoding, info.segments) == (m["encoding"].iat[i], int(m["num_segments"].iat[i]))
    assert {"GSM-7", "UCS-2"} <= set(m["encoding"].astype(object))
    alert = m[(m["template_id"] == "alert_login") & m["locale"].astype(str).str.startswith("en")
              & (m["direction"] != "inbound")]
    if len(alert):  # smart quotes force UCS-2 onto English
        assert (alert["encoding"] == "UCS-2").all()


def test_carrier_incident_is_real(medium):
    inc = next(i for i in medium.ground_truth["incidents"] if i["kind"] == "carrier_filtering")
    assert inc["observed_error_rate_after_ramp"] > inc["observed_error_rate_before"] + 0.15
    assert inc["observed_error_rate_other_carriers_after"] < inc["observed_error_rate_before"] + 0.05
    # Check it independently from the frame, by day.
    m = medium.messages
    on = (m["country"] == "ID") & (m["carrier"] == inc["carrier"])
    day = pd.to_datetime(m["date_created"], unit="s", utc=True).dt.date.astype(str)
    late = on & (day >= inc["start_date"])
    early = on & (day < inc["start_date"])
    assert (m.loc[late, "error_code"] == 30007).mean() > (m.loc[early, "error_code"] == 30007).mean() + 0.1


def test_landline_country_fails_with_30006(medium):
    inc = next(i for i in medium.ground_truth["incidents"] if i["kind"] == "landline_heavy")
    m = medium.messages
    eg = m[m["country"] == inc["country"]]
    land = eg["line_type"] == "landline"
    assert 0.1 < land.mean() < 0.35
    assert (eg.loc[land, "error_code"] == 30006).mean() > 0.9
    for number in eg.loc[land, "to"].astype(object).unique()[:20]:
        assert phonenumbers.number_type(phonenumbers.parse(number)) == phonenumbers.PhoneNumberType.FIXED_LINE


def test_experiment_effects_are_in_the_data(medium):
    exps = {e["experiment_id"]: e for e in medium.ground_truth["experiments"]}
    pr = exps["exp_pr_short_template"]["observed"]
    assert pr["short"]["in_region"]["conversion_rate"] > pr["control"]["in_region"]["conversion_rate"] + 0.04
    assert abs(pr["short"]["outside_region"]["conversion_rate"]
               - pr["control"]["outside_region"]["conversion_rate"]) < 0.03
    alpha = exps["exp_alpha_sender"]["observed"]
    assert alpha["alpha_sender"]["in_region"]["delivery_rate"] < alpha["long_code"]["in_region"]["delivery_rate"] - 0.04
    # The variant is recorded in the send log and matches the template.
    log = medium.send_log
    pr_rows = log[log["experiment_id"] == "exp_pr_short_template"]
    assert set(zip(pr_rows["variant"], pr_rows["template_id"])) == {("control", "pr_standard"), ("short", "pr_short")}


def test_voice_fallbacks_follow_failed_sms(medium):
    log = medium.send_log
    m = medium.messages.set_index("sid")
    fb = log[log["fallback_of"].notna()]
    assert len(fb) > 100 and (fb["channel"] == "voice").all()
    sms = log.set_index("event_id").loc[fb["fallback_of"]]
    assert (sms["channel"] == "sms").all()
    statuses = m.loc[sms["provider_sid"], "status"].astype(object)
    assert (statuses != "delivered").all()
    assert (fb["sent_at"].to_numpy() > sms["sent_at"].to_numpy()).all()
    assert (fb["user_id"].to_numpy() == sms["user_id"].to_numpy()).all()
    assert medium.ground_truth["voice_fallbacks"]["calls"] == len(fb)


def test_send_logs_in_every_format(small, tmp_path):
    for fmt in ("jsonl", "csv", "parquet"):
        paths = write_send_logs(small, tmp_path / fmt, fmt)
        names = sorted(p.name for p in paths)
        sends = [p for p in paths if p.name.startswith("sends-")]
        assert len(sends) in (7, 8) and names[-1] == "sends-2026-05-31." + fmt
        assert "ground_truth.json" in names
        if fmt == "jsonl":
            frames = [pd.read_json(p, lines=True, dtype=False) for p in sends]
        elif fmt == "csv":
            frames = [pd.read_csv(p, dtype=str) for p in sends]
        else:
            frames = [pd.read_parquet(p) for p in sends]
        log = pd.concat(frames, ignore_index=True)
        assert list(log.columns) == SEND_COLUMNS
        assert len(log) == len(small.send_log) and log["event_id"].is_unique
        assert log["sent_at"].astype(str).str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").all()
        assert set(log["channel"]) == {"sms", "voice", "push", "email"}
        sms_sids = set(log.loc[log["channel"] == "sms", "provider_sid"])
        assert sms_sids == set(small.messages.loc[small.messages["direction"] != "inbound", "sid"])
        assert log.loc[log["channel"].isin(["push", "email"]), "provider_sid"].isna().all()
        conv = pd.concat([pd.read_json(p, lines=True, dtype=False) if fmt == "jsonl"
                          else pd.read_csv(p, dtype=str) if fmt == "csv" else pd.read_parquet(p)
                          for p in paths if p.name.startswith("conversions-")], ignore_index=True)
        assert list(conv.columns) == CONVERSION_COLUMNS and len(conv) == len(small.conversions)
    gt = json.loads((tmp_path / "jsonl" / "ground_truth.json").read_text())
    assert gt["messages"] == 1000 and gt["incidents"]


def test_bulk_export_day_files(small, tmp_path):
    paths = write_bulk_export(small, tmp_path)
    assert all(p.parent.name == "Messages" and p.name.endswith(".json.gz") for p in paths)
    rows = []
    for p in paths:
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh]
    main = small.messages[small.messages["account_idx"] == 0]  # with the members' replies, as Twilio exports
    assert len(rows) == len(main) and {r["direction"] for r in rows} == {"outbound-api", "inbound"}
    assert {r["sid"] for r in rows} == set(main["sid"])
    r = rows[0]
    assert r["date_created"].endswith("Z") and "T" in r["date_created"]
    assert not {"uri", "subresource_uris", "price_unit", "api_version", "error_message"} & set(r)
    assert r["price"].startswith("-") and r["num_segments"].isdigit()
    day = paths[0].name[:10]
    with gzip.open(paths[0], "rt", encoding="utf-8") as fh:
        assert all(json.loads(line)["date_created"].startswith(day) for line in fh)


def test_scenario_country_mix_knob():
    w = generate(Scenario(messages=500, calls=10, days=3, end=END, countries=(("BR", 3.0), ("MX", 1.0))))
    assert set(w.messages["country"].astype(object)) == {"BR", "MX"}
    with pytest.raises(ValueError):
        generate(Scenario(messages=10, calls=1, days=1, end=END, countries=(("XX", 1.0),)))


def test_send_logs_replace_an_earlier_world_but_keep_other_files(small, tmp_path):
    write_send_logs(generate(Scenario(messages=300, calls=10, days=3, end=datetime(2026, 5, 1, tzinfo=UTC))), tmp_path)
    (tmp_path / "sends-campaign-42.jsonl").write_text("{}\n")
    write_send_logs(small, tmp_path)
    days = sorted(p.name for p in tmp_path.glob("sends-2026-*.jsonl"))
    assert days[0] >= "sends-2026-05-24" and (tmp_path / "sends-campaign-42.jsonl").exists()


def test_world_counts_segments_with_the_one_core_rule():
    from switchboard.sandbox.catalog import TEMPLATES
    from switchboard.sandbox.world import segment_info as world_segment_info

    for texts in TEMPLATES.values():
        for text in texts.values():
            for body in (text.replace("{code}", "123456"), text * 3, "€" * 81, "😀" * 36):
                info = segment_info(body)
                assert world_segment_info(body) == (info.encoding, info.segments), body[:30]
