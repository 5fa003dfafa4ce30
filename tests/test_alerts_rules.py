"""Alert rules on hand-built warehouses: each built-in rule finds what was put there, and nothing else;
false discoveries are controlled across cells; alerts.toml tunes and adds rules, or says what is wrong."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest

from switchboard.alerts import evaluate, rules
from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings
from tests.alerts_util import INDOSAT, config, day, end_of, incident_world, traffic
from tests.test_analytics_warehouse import Hand, at


def only(ev, rule):
    return [f for f in ev.findings if f.rule == rule]


# --------------------------------------------------------------------------- built-in rules


def test_carrier_incident_alerts_naming_country_carrier_code_and_template():
    con = incident_world()
    ev = evaluate.evaluate(con, config(), end_of(28))
    assert [f.rule for f in ev.findings] == ["error_rise"], [f.sentence for f in ev.findings]
    f = ev.findings[0]
    assert (f.country_iso2, f.carrier, f.error_code, f.template_id) == ("ID", INDOSAT, 30007, None)
    # day 28: 24 hours x 2 Indosat SMS, one failing each hour: 24 of 48 failed, none in the baseline
    assert (f.recent_value, f.baseline_value, f.impact) == pytest.approx((0.5, 0.0, 24.0))
    assert f.evidence["templates"] == ["pr_standard"]
    assert f.sentence.startswith("In the 24 hours to 30 Nov 23:50 UTC, 50% of SMS to Indonesia on "
                                 f"{INDOSAT} failed with 30007 (Message filtered), against 0% over the previous "
                                 "28 days: about 24 members not reached; template pr_standard. What to do: ")
    assert f.link == "/errors?country=Indonesia&dates=2026-11-29&dates=2026-11-30"
    assert f.q_value <= 0.01


def test_quiet_days_raise_nothing_and_the_incident_is_not_seen_before_it_starts():
    con = incident_world()
    for k in (27, 31, 35):
        ev = evaluate.evaluate(con, config(), end_of(k))
        assert ev.findings == [], (k, [f.sentence for f in ev.findings])
    assert set(ev.evaluated) >= {"error_rise", "delivery_drop", "cost_rise", "latency", "fallback_failure",
                                 "pumping"}


def test_opt_out_rule_is_skipped_with_its_reason_without_response_facts():
    con = incident_world(total_days=30)
    con.execute("DROP TABLE IF EXISTS _response_facts CASCADE")  # a warehouse from before responses
    ev = evaluate.evaluate(con, config(), end_of(29))
    assert "opt_out" not in ev.evaluated
    assert "_response_facts" in ev.skipped["opt_out"]


def test_opt_out_rate_rise_alerts_per_country_and_template():
    h = Hand()
    for k in range(30):
        traffic(h, k)
    # the members of 2 of each day's 96 SMS (pr_standard, Indonesia) reply STOP; on day 29, of 30; 40 more
    # ask for HELP that day (not an opt-out)
    for k in range(30):
        sent = sorted((m for m in h.messages if m["date_sent"].date() == day(k)), key=lambda m: m["date_sent"])
        for m in sent[:30 if k == 29 else 2]:
            h.reply(m["sid"], "STOP")
        if k == 29:
            for m in sent[30:70]:
                h.reply(m["sid"], "HELP")
    con = h.build()
    ev = evaluate.evaluate(con, config(), end_of(29))
    found = only(ev, "opt_out")
    assert len(found) == 1, [f.sentence for f in ev.findings]
    f = found[0]
    assert (f.country_iso2, f.template_id, f.kind) == ("ID", "pr_standard", "opt_out")
    # recent: day 29's 96 delivered SMS, 30 answered STOP; baseline: days 1-28, 2 of 96 a day
    assert f.recent_value == pytest.approx(30 / 96)
    assert f.baseline_value == pytest.approx(2 / 96)
    assert f.evidence == {"recent": [30, 96], "baseline": [56, 2688]}
    assert f.impact == pytest.approx(30 - 2 / 96 * 96)
    assert ("31% of SMS delivered to Indonesia with template pr_standard were answered with an opt-out keyword, "
            "against 2.1% over the previous 28 days: about 28 more members opted out.") in f.sentence
    # the same count as "what changed" and the Responses page (analytics.responses.opt_out_cells)
    from switchboard.analytics import responses

    cells = responses.opt_out_cells(con, start=day(1), split=day(29), end=day(29), by=["country_iso2", "template_id"])
    assert cells[["n1", "k1", "n0", "k0"]].values.tolist() == [[96, 30, 2688, 56]]


def test_voice_fallback_failing_alerts():
    h = Hand()
    for k in range(30):
        for i in range(20):
            _, event = h.sms(day=day(k), hour=10, minute=i, status="undelivered", error=30003, carrier="Telkomsel")
            answered = k < 29 or i < 4  # day 29: 16 of 20 fallback calls not answered
            h.call(day=day(k), hour=10, minute=i, second=30, fallback_of=event,
                   status="completed" if answered else "no-answer", answered_by="human" if answered else None)
    con = h.build()
    ev = evaluate.evaluate(con, config(min_volume=10), at(day(29), 23, 0))
    found = only(ev, "fallback_failure")
    assert len(found) == 1, [f.sentence for f in ev.findings]
    assert found[0].country_iso2 == "ID"
    assert found[0].recent_value == pytest.approx(16 / 20)
    assert "of voice fallback calls to Indonesia were not answered" in found[0].sentence


def test_slow_delivery_alerts_on_the_carrier():
    h = Hand()
    for k in range(30):
        for hour in range(24):
            for c in ("Telkomsel", INDOSAT):
                slow = k == 29 and c == INDOSAT
                h.sms(day=day(k), hour=hour, minute=10, carrier=c, latency_s=600 if slow else 8)
    ev = evaluate.evaluate(h.build(), rules.parse({"defaults": {"recent_hours": 24, "min_volume": 20},
                                                   "rule": [{"name": "latency", "scope": ["country", "carrier"]}]}),
                           at(day(29), 23, 10))
    found = only(ev, "latency")
    assert [(f.country_iso2, f.carrier) for f in found] == [("ID", INDOSAT)], [f.sentence for f in ev.findings]
    assert found[0].recent_value == 1.0 and found[0].baseline_value == 0.0
    assert "took longer than 120 s" in found[0].sentence


# --------------------------------------------------------------------------- false discoveries


def _noise_world(cells: int, seed: int, broken: str | None = None):
    """``cells`` templates, each failing 10% of the time, baseline and recent alike; ``broken`` fails 40%
    on the last day."""
    rng = random.Random(seed)
    h = Hand()
    for t in range(cells):
        template = f"t{t:03d}"
        for k in range(29):
            for i in range(10 if k < 28 else 40):
                p = 0.4 if (template == broken and k == 28) else 0.1
                bad = rng.random() < p
                h.sms(day=day(k), hour=i % 24, minute=i // 24, template=template, send_log=True,
                      status="undelivered" if bad else "delivered", error=30003 if bad else None)
    return h.build()


def test_benjamini_hochberg_keeps_noise_across_many_cells_out_and_the_real_cell_in():
    """200 template cells of pure noise: raw p-values below alpha happen (so an uncorrected test would
    alert), the corrected ones do not; a real change among them is still found."""
    cfg = rules.parse({"defaults": {"recent_hours": 24, "alpha": 0.05}, "rule": [
        {"name": "by_template", "metric": "failure_rate", "scope": ["template"], "min_volume": 20,
         "min_effect": 0.0, "min_ratio": 1.0, "min_impact": 0}]})
    cfg = rules.Config(rules=(cfg.rule("by_template"),))
    con = _noise_world(200, seed=7, broken="t042")
    end = at(day(28), 23, 59)
    cells = evaluate._rate_cells(con, cfg.rule("by_template"), end)
    from switchboard.analytics.stats_basic import two_proportion_z

    raw = two_proportion_z(cells["k1"], cells["n1"], cells["k0"], cells["n0"], "greater").p_value
    noise = np.asarray(raw)[cells["template_id"].to_numpy() != "t042"]
    assert (noise < 0.05).sum() >= 3  # without a correction these would be alerts
    found = evaluate.evaluate(con, cfg, end).findings
    assert [f.template_id for f in found] == ["t042"], [(f.template_id, f.q_value) for f in found]


# --------------------------------------------------------------------------- alerts.toml


def test_no_file_means_the_built_in_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = rules.load(settings=Settings(data_dir=tmp_path))
    assert [r.name for r in cfg.rules] == [r.name for r in rules.DEFAULT_RULES]
    assert cfg.channels == () and cfg.source == "built-in defaults"


def test_file_tunes_a_built_in_adds_a_rule_and_names_channels(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text("""
dashboard_url = "https://switchboard.example.com/"
[defaults]
recent_hours = 6
quiet_minutes = 30
[[rule]]
name = "cost_rise"
enabled = false
[[rule]]
name = "otp_by_sender"
metric = "failure_rate"
scope = ["country", "sender"]
where = {purpose = "password_reset"}
severity = "critical"
channels = ["webhook"]
[channels.webhook]
url = "https://hooks.example.com/T000/B000/XXXX"
format = "json"
[channels.email]
to = ["oncall@example.com"]
host = "127.0.0.1"
port = 2525
[delivery]
max_attempts = 3
""")
    cfg = rules.load(path)
    assert not cfg.rule("cost_rise").enabled and cfg.rule("error_rise").recent_hours == 6
    r = cfg.rule("otp_by_sender")
    assert (r.metric, r.scope, r.where, r.severity, r.channels, r.recent_hours, r.quiet_minutes) == (
        "failure_rate", ("country", "sender"), (("purpose", "password_reset"),), "critical", ("webhook",), 6.0, 30.0)
    assert cfg.webhooks == (rules.Webhook("https://hooks.example.com/T000/B000/XXXX", "json"),)
    assert cfg.email.to == ("oncall@example.com",) and cfg.email.port == 2525
    assert cfg.max_attempts == 3 and cfg.dashboard_url == "https://switchboard.example.com"
    assert cfg.channels == ("webhook", "email")


@pytest.mark.parametrize(("text", "says"), [
    ("[[rule]]\nname = 'x'\n", "rule 'x' needs a metric"),
    ("[[rule]]\nname = 'x'\nmetric = 'speed'\n", "is not a metric"),
    ("[[rule]]\nname = 'x'\nmetric = 'fallback_failure_rate'\nscope = ['carrier']\n", "can be scoped by"),
    ("[defaults]\nmin_volume = -1\n", "must be a number >= 0"),
    ("[defaults]\nfoo = 1\n", "unknown key 'foo'"),
    ("[rules]\n", "unknown section(s) rules"),
    ("[channels.webhook]\nurl = 'ftp://x'\n", "http(s) URL"),
    ("[[rule]]\nname = 'error_rise'\nseverity = 'loud'\n", "must be one of info, warning, critical"),
    ("not toml =", "not valid TOML"),
])
def test_mistakes_in_the_file_name_the_file_and_the_fix(tmp_path, text, says):
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        rules.load(path)
    assert str(path) in str(err.value) and says in str(err.value)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such alerts file"):
        rules.load(tmp_path / "nope.toml")


def test_channels_from_settings_when_the_file_names_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWITCHBOARD_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("SWITCHBOARD_ALERT_EMAIL_TO", "a@example.com, b@example.org")
    monkeypatch.setenv("SWITCHBOARD_SMTP_PORT", "2525")
    monkeypatch.setenv("SWITCHBOARD_SMTP_PASSWORD", "hunter2")
    settings = Settings.from_env()
    assert "hunter2" not in repr(settings) and "127.0.0.1:9" not in repr(settings)
    cfg = rules.load(settings=settings)
    assert cfg.webhooks == (rules.Webhook("http://127.0.0.1:9/hook", "slack"),)
    assert cfg.email.to == ("a@example.com", "b@example.org") and cfg.email.port == 2525
    assert cfg.email.password == "hunter2" and "hunter2" not in repr(cfg)


def test_settings_list_the_alert_variables_and_hide_secrets(monkeypatch):
    from switchboard.core.settings import settings_help

    monkeypatch.setenv("SWITCHBOARD_SMTP_PASSWORD", "hunter2")
    text = settings_help()
    for name in ("ALERT_WEBHOOK_URL", "ALERT_EMAIL_TO", "SMTP_HOST", "SMTP_PORT", "SMTP_PASSWORD", "ALERTS_FILE"):
        assert f"SWITCHBOARD_{name}" in text
    assert "hunter2" not in text and "(secret, not shown)" in text


def test_window_is_anchored_at_the_newest_message():
    con = incident_world(total_days=30)
    assert evaluate.newest_message(con) == end_of(29)
    assert evaluate.evaluate(con, config()).as_of == end_of(29)
    empty = Hand().build()
    ev = evaluate.evaluate(empty, config())
    assert ev.as_of is None and ev.findings == [] and "no messages" in ev.skipped["error_rise"]
    _ = timedelta
