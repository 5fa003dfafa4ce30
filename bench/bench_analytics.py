"""Benchmark of every analytics function on a synthetic N-message warehouse.

    python -m bench.bench_analytics --messages 10000000 [--repeats 15] [--db PATH] [--rebuild]

Builds (or reuses) a synthetic warehouse: numeric columns are drawn with numpy
(vectorised), strings are made inside DuckDB from small lookup tables, and the real
``ingest.warehouse.refresh_facts`` materialises the analyst views. Then, in the same
run and on the same data, for each function it times

* the function itself (median and p95 over ``--repeats`` runs, after a warm-up),
* the *bare* single-table DuckDB aggregate that answers the same question with no
  filters machinery, no joins and no Python statistics (the floor), and
* the same computation in pandas on in-memory DataFrames of the facts (categoricals
  for strings, loaded once, not timed),

and prints a table with the ratios. Targets (issue 5): median < 150 ms at 10M messages,
≤ 3× the bare aggregate, ≥ 5× faster than pandas.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from switchboard.analytics import countries, delivery, errors, fallback, insights, templates, voice
from switchboard.analytics.filters import Filters
from switchboard.ingest import warehouse

END = date(2026, 11, 24)  # last day with data
DAYS = 90
START = END - timedelta(days=DAYS - 1)

COUNTRIES = ["US", "IN", "BR", "ID", "MX", "NG", "GB", "DE", "FR", "PH", "EG", "PK", "BD", "VN", "TH", "TR",
             "ZA", "KE", "CO", "AR", "ES", "IT", "PL", "CA", "AU", "JP", "MY", "PE", "CL", "SA"]
TEMPLATES = [("otp", "verification"), ("ver_code", "verification"), ("pr_standard", "password_reset"),
             ("pr_short", "password_reset"), ("alert_login", "account_alert"), ("alert_device", "account_alert"),
             ("promo_a", "marketing"), ("promo_b", "marketing")]
ERRORS = np.array([30003, 30005, 30006, 30007, 30008, 21610, 30034, 21614])
ERROR_MIX = np.array([0.35, 0.2, 0.08, 0.12, 0.15, 0.03, 0.04, 0.03])
FAILED_CODES = {21610, 21614}  # 'failed' status; the others are 'undelivered'


# --------------------------------------------------------------------------- data


def build(path: Path, n: int, seed: int = 1) -> None:
    """A synthetic warehouse of ``n`` SMS over DAYS days (plus ~n/10 calls, n/20 push, conversions)."""
    rng = np.random.default_rng(seed)
    t0 = int(datetime.combine(START, datetime.min.time(), tzinfo=UTC).timestamp())
    w = 1 / np.arange(1, len(COUNTRIES) + 1) ** 0.9
    country = rng.choice(len(COUNTRIES), size=n, p=w / w.sum()).astype(np.int16)
    carrier = rng.choice(3, size=n, p=[0.5, 0.3, 0.2]).astype(np.int8)
    template = rng.choice(len(TEMPLATES), size=n, p=[0.3, 0.15, 0.15, 0.1, 0.1, 0.08, 0.06, 0.06]).astype(np.int8)
    ts = t0 + rng.integers(0, DAYS * 86400, size=n)
    ts.sort()
    day = (ts - t0) // 86400
    p_fail = (0.03 + 0.12 * rng.random(len(COUNTRIES)))[country]
    # incident: 30007 on Indonesia's second carrier from day 70, ramping to +25 %
    incident = (country == COUNTRIES.index("ID")) & (carrier == 1) & (day >= 70)
    not_delivered = rng.random(n) < p_fail
    code = np.where(not_delivered, ERRORS[rng.choice(len(ERRORS), size=n, p=ERROR_MIX)], 0)
    hit = incident & (rng.random(n) < 0.25)
    code[hit] = 30007
    status = np.where(code == 0, 0, np.where(np.isin(code, list(FAILED_CODES)), 2, 1)).astype(np.int8)
    pending = (ts > t0 + DAYS * 86400 - 3600) & (rng.random(n) < 0.8)
    status[pending & (code == 0)] = 3
    segments = rng.choice([1, 2, 3], size=n, p=[0.7, 0.25, 0.05]).astype(np.int8)
    price = np.round((0.005 + 0.08 * rng.random(len(COUNTRIES)))[country] * segments, 5)
    latency = np.ceil(rng.lognormal(2.0, 0.8, size=n)).astype(np.int32)
    user = rng.integers(0, max(n // 5, 1), size=n).astype(np.int32)
    sender = rng.integers(0, 5, size=n).astype(np.int8)
    variant = rng.integers(0, 2, size=n).astype(np.int8)
    msgs = pd.DataFrame({"i": np.arange(n, dtype=np.int64), "country": country, "carrier": carrier,
                         "template": template, "ts": ts, "code": code.astype(np.int32), "status": status,
                         "segments": segments, "price": price, "latency": latency, "user_id": user,
                         "sender": sender, "variant": variant})
    # voice: fallbacks for 60 % of undelivered verification SMS, plus direct calls up to n/10
    verif = np.isin(template, [0, 1, 2, 3])
    fb_idx = np.flatnonzero((status == 1) & verif & (rng.random(n) < 0.6))
    m_calls = max(n // 10, len(fb_idx))
    direct = rng.integers(0, n, size=m_calls - len(fb_idx))
    of = np.concatenate([fb_idx, direct])
    is_fb = np.concatenate([np.ones(len(fb_idx), bool), np.zeros(len(direct), bool)])
    call_status = rng.choice(5, size=m_calls, p=[0.7, 0.08, 0.15, 0.05, 0.02]).astype(np.int8)
    calls = pd.DataFrame({"j": np.arange(m_calls, dtype=np.int64), "of": of, "is_fb": is_fb,
                          "ts": ts[of] + np.where(is_fb, 60 + rng.integers(0, 240, size=m_calls), 0),
                          "status": call_status, "duration": np.where(call_status == 0,
                                                                      rng.integers(5, 120, size=m_calls), 0),
                          "machine": rng.random(m_calls) < 0.1, "price": np.round(0.013 * rng.integers(1, 4, size=m_calls), 5)})
    # push attempts (no receipts) and conversions (most delivered verification SMS, some answered calls)
    n_push = n // 20
    push = pd.DataFrame({"k": np.arange(n_push, dtype=np.int64), "src": rng.integers(0, n, size=n_push)})
    conv_msg = np.flatnonzero((status == 0) & verif & (rng.random(n) < 0.6))
    conv_call = of[is_fb & (call_status == 0) & (rng.random(m_calls) < 0.5)]
    conv = pd.DataFrame({"src": np.concatenate([conv_msg, conv_call]),
                         "delay": rng.integers(20, 900, size=len(conv_msg) + len(conv_call))})
    conv["ts"] = ts[conv["src"].to_numpy()] + conv["delay"]
    conv.loc[len(conv_msg):, "ts"] += 300

    path.unlink(missing_ok=True)
    con = warehouse.connect(path)
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    _create_schema(con)
    con.register("_m", msgs)
    con.register("_k", calls)
    con.register("_p", push)
    con.register("_v", conv)
    con.execute("CREATE TEMP TABLE _country AS SELECT * FROM (SELECT unnest($c) AS iso2, "
                "generate_subscripts($c, 1) - 1 AS idx)", {"c": COUNTRIES})
    con.execute("CREATE TEMP TABLE _tpl AS SELECT unnest($t) AS template_id, unnest($p) AS purpose, "
                "generate_subscripts($t, 1) - 1 AS idx",
                {"t": [t for t, _ in TEMPLATES], "p": [p for _, p in TEMPLATES]})
    sql_status = "CASE status WHEN 0 THEN 'delivered' WHEN 1 THEN 'undelivered' WHEN 2 THEN 'failed' ELSE 'sent' END"
    con.execute(f"""
        INSERT INTO twilio_messages (sid, account_sid, messaging_service_sid, direction, from_number, to_number,
            status, error_code, num_segments, body_encoding, price, price_unit, price_usd, date_created,
            date_sent, date_updated, to_country, to_carrier, source)
        SELECT 'SM' || lpad(CAST(i AS VARCHAR), 32, '0'), 'AC1', 'MG' || sender, 'outbound-api', '+15550000000',
               '+' || (1000000000 + i), {sql_status}, nullif(code, 0), segments,
               CASE WHEN segments = 3 THEN 'UCS-2' ELSE 'GSM-7' END, -price, 'USD', CASE WHEN status = 3 THEN NULL ELSE price END,
               to_timestamp(ts), to_timestamp(ts), to_timestamp(ts + latency), c.iso2,
               CASE WHEN c.iso2 = 'ID' THEN ['Telkomsel', 'Indosat Ooredoo Hutchison', 'XL Axiata'][carrier + 1]
                    ELSE c.iso2 || ' Mobile ' || carrier END,
               'api'
        FROM _m JOIN _country c ON c.idx = _m.country""")
    con.execute("""
        INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, experiment_id, variant, user_id,
                              country, provider_sid)
        SELECT 'E' || i, to_timestamp(ts - 1), 'sms', t.purpose, t.template_id,
               CASE WHEN t.purpose = 'password_reset' THEN 'exp_pr' END,
               CASE WHEN t.purpose = 'password_reset' THEN ['control', 'short'][variant + 1] END,
               'U' || user_id, c.iso2, 'SM' || lpad(CAST(i AS VARCHAR), 32, '0')
        FROM _m JOIN _country c ON c.idx = _m.country JOIN _tpl t ON t.idx = _m.template""")
    call_status = ("CASE _k.status WHEN 0 THEN 'completed' WHEN 1 THEN 'busy' WHEN 2 THEN 'no-answer' "
                   "WHEN 3 THEN 'failed' ELSE 'canceled' END")
    con.execute(f"""
        INSERT INTO twilio_calls (sid, account_sid, direction, from_number, to_number, status, answered_by,
            duration_s, price, price_unit, price_usd, start_time, end_time, date_created, to_country, source)
        SELECT 'CA' || lpad(CAST(j AS VARCHAR), 32, '0'), 'AC1', 'outbound-api', '+15550000000',
               '+' || (1000000000 + of), {call_status},
               CASE WHEN _k.status = 0 THEN CASE WHEN machine THEN 'machine_start' ELSE 'human' END END,
               duration, -_k.price, 'USD', _k.price, to_timestamp(_k.ts), to_timestamp(_k.ts + duration),
               to_timestamp(_k.ts), c.iso2, 'api'
        FROM _k JOIN _m ON _m.i = _k.of JOIN _country c ON c.idx = _m.country""")
    con.execute("""
        INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, user_id, country, provider_sid,
                              fallback_of)
        SELECT 'C' || j, to_timestamp(_k.ts - 1), 'voice', t.purpose, t.template_id || '_voice', 'U' || user_id,
               c.iso2, 'CA' || lpad(CAST(j AS VARCHAR), 32, '0'), CASE WHEN is_fb THEN 'E' || of END
        FROM _k JOIN _m ON _m.i = _k.of JOIN _country c ON c.idx = _m.country JOIN _tpl t ON t.idx = _m.template""")
    con.execute("""
        INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, user_id, country)
        SELECT 'P' || k, to_timestamp(_m.ts + 5), 'push', 'verification', 'otp_push', 'U' || user_id, c.iso2
        FROM _p JOIN _m ON _m.i = _p.src JOIN _country c ON c.idx = _m.country""")
    con.execute("""
        INSERT INTO conversions (event_id, user_id, conversion_type, occurred_at)
        SELECT 'V' || row_number() OVER (), 'U' || user_id, 'verified', to_timestamp(_v.ts)
        FROM _v JOIN _m ON _m.i = _v.src""")
    _refresh_facts(con)
    con.execute("CHECKPOINT")
    con.close()


_create_schema = warehouse.create_schema
_refresh_facts = warehouse.refresh_facts


# --------------------------------------------------------------------------- what is timed

PERIOD = dict(start=START, end=END)
RECENT_START = END - timedelta(days=6)
BASE_START = RECENT_START - timedelta(days=28)


def _ts(d: date) -> str:
    return f"TIMESTAMPTZ '{d.isoformat()} 00:00:00+00'"


def cases(con) -> list[tuple[str, Callable[[], object], str]]:
    """(name, the analytics call, the bare single-table aggregate answering the same question).

    The bare query computes the same aggregates on the single materialised table, with the
    filters inlined as literals: no view, no bound parameters, no joins, no Python. For
    fallback it is the single-table part only (the function also joins the few chains that
    fell back to their call), for country_overview the SMS half.
    """
    lo, hi = _ts(START), _ts(END + timedelta(days=1))
    period = f"sent_at >= {lo} AND sent_at < {hi}"
    counts = ("count(*), count(*) FILTER (WHERE is_delivered), count(*) FILTER (WHERE status = 'undelivered'), "
              "count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE is_pending), sum(cost_usd)")
    prev_lo = _ts(START - timedelta(days=DAYS))
    return [
        ("delivery.summary", lambda: delivery.summary(con, **PERIOD),
         f"SELECT {counts} FROM _message_facts WHERE {period}"),
        ("delivery.summary_with_change", lambda: delivery.summary_with_change(con, **PERIOD),
         f"SELECT sent_at >= {lo}, {counts} FROM _message_facts WHERE sent_at >= {prev_lo} AND sent_at < {hi} "
         "GROUP BY 1"),
        ("delivery.delivery_by(day)", lambda: delivery.delivery_by(con, **PERIOD, by="day"),
         f"SELECT sent_day, {counts} FROM _message_facts WHERE {period} GROUP BY 1"),
        ("delivery.delivery_by(country)", lambda: delivery.delivery_by(con, **PERIOD, by="country"),
         f"SELECT country_iso2, {counts} FROM _message_facts WHERE {period} GROUP BY 1"),
        ("delivery.delivery_by(carrier)", lambda: delivery.delivery_by(con, **PERIOD, by="carrier"),
         f"SELECT carrier, {counts} FROM _message_facts WHERE {period} GROUP BY 1"),
        ("delivery.delivery_by(channel)", lambda: delivery.delivery_by(con, **PERIOD, by="channel"),
         "SELECT channel, count(*), count(*) FILTER (WHERE is_delivered), "
         "count(*) FILTER (WHERE provider_status = 'undelivered'), "
         "count(*) FILTER (WHERE provider_status IN ('failed', 'busy', 'no-answer')), "
         f"sum(cost_usd) FROM _attempt_facts WHERE {period} GROUP BY 1"),
        ("delivery.delivery_by(filtered)", lambda: delivery.delivery_by(
            con, **PERIOD, by="template", filters=Filters(countries=("BR", "MX"), purposes=("password_reset",))),
         f"SELECT template_id, {counts} FROM _message_facts WHERE {period} AND country_iso2 IN ('BR', 'MX') "
         "AND purpose = 'password_reset' GROUP BY 1"),
        ("delivery.latency_by_country", lambda: delivery.latency_by_country(con, **PERIOD),
         f"SELECT country_iso2, count(*), quantile_cont(delivery_latency_s, [0.5, 0.9]), avg(delivery_latency_s) "
         f"FROM _message_facts WHERE {period} AND is_delivered GROUP BY 1"),
        ("errors.top_errors", lambda: errors.top_errors(con, **PERIOD),
         f"SELECT error_code, sent_at >= {lo}, count(*), count(*) FILTER (WHERE is_failed) FROM _message_facts "
         f"WHERE sent_at >= {prev_lo} AND sent_at < {hi} GROUP BY 1, 2"),
        ("errors.new_or_rising_errors", lambda: errors.new_or_rising_errors(con, **PERIOD),
         f"SELECT error_code, sent_at >= {lo}, count(*), count(*) FILTER (WHERE is_failed) FROM _message_facts "
         f"WHERE sent_at >= {prev_lo} AND sent_at < {hi} GROUP BY 1, 2"),
        ("errors.error_samples", lambda: errors.error_samples(con, 30007, **PERIOD),
         f"SELECT sid FROM _message_facts WHERE {period} AND error_code = 30007 ORDER BY sent_at DESC LIMIT 5"),
        ("errors.error_trend", lambda: errors.error_trend(con, **PERIOD),
         f"SELECT sent_day, error_code, count(*), count(*) FILTER (WHERE is_failed) FROM _message_facts "
         f"WHERE {period} GROUP BY 1, 2"),
        ("countries.country_overview", lambda: countries.country_overview(con, **PERIOD),
         f"SELECT country_iso2, {counts} FROM _message_facts WHERE {period} GROUP BY 1"),
        ("countries.channel_recommendation", lambda: countries.channel_recommendation(con, **PERIOD),
         "SELECT country_iso2, channel, count(*), count(*) FILTER (WHERE is_delivered IS NOT NULL), "
         "count(*) FILTER (WHERE is_delivered), count(*) FILTER (WHERE converted AND fallback_event_id IS NULL), "
         f"sum(cost_usd) FROM _attempt_facts WHERE {period} GROUP BY 1, 2"),
        ("voice.voice_by_country", lambda: voice.voice_by_country(con, **PERIOD),
         "SELECT country_iso2, count(*), count(*) FILTER (WHERE status = 'completed'), "
         "count(*) FILTER (WHERE status = 'busy'), count(*) FILTER (WHERE status = 'no-answer'), "
         "count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'canceled'), "
         "count(*) FILTER (WHERE status = 'completed' AND is_machine), "
         "quantile_cont(duration_s, [0.5, 0.9]) FILTER (WHERE status = 'completed'), "
         "avg(duration_s) FILTER (WHERE status = 'completed'), sum(cost_usd) FROM _call_facts "
         f"WHERE started_at >= {lo} AND started_at < {hi} GROUP BY 1"),
        ("fallback.fallback_by_country", lambda: fallback.fallback_by_country(con, **PERIOD),
         "SELECT country_iso2, count(*), count(*) FILTER (WHERE is_delivered), count(fallback_event_id) "
         f"FROM _attempt_facts WHERE {period} AND channel = 'sms' AND NOT is_fallback GROUP BY 1"),
        ("templates.template_stats", lambda: templates.template_stats(con, **PERIOD),
         "SELECT template_id, variant, count(*), count(*) FILTER (WHERE encoding = 'UCS-2'), "
         "count(encoding), avg(num_segments), count(*) FILTER (WHERE is_delivered), "
         "count(*) FILTER (WHERE provider_status IN ('undelivered', 'failed')), count(*) FILTER (WHERE converted), "
         f"sum(cost_usd) FROM _attempt_facts WHERE {period} AND channel = 'sms' GROUP BY 1, 2"),
        ("insights.what_changed", lambda: insights.what_changed(con, end=END),
         f"SELECT country_iso2, carrier, template_id, error_code, sent_at >= {_ts(RECENT_START)}, count(*), "
         "count(*) FILTER (WHERE is_delivered), count(*) FILTER (WHERE is_failed), sum(cost_usd), "
         f"sum(cost_usd * cost_usd), count(cost_usd) FROM _message_facts WHERE sent_at >= {_ts(BASE_START)} "
         f"AND sent_at < {hi} GROUP BY ALL"),
    ]


# --------------------------------------------------------------------------- pandas equivalents


def load_frames(con) -> dict[str, pd.DataFrame]:
    """The facts as in-memory DataFrames (strings as categoricals), as an analyst's notebook would hold them."""
    m = con.execute("""SELECT sent_at, sent_day, country_iso2, carrier, template_id, purpose, error_code, status,
                              is_delivered, is_failed, is_pending, cost_usd, delivery_latency_s, sid
                       FROM _message_facts""").df()
    a = con.execute("""SELECT sent_at, country_iso2, channel, template_id, variant, is_delivered, provider_status,
                              converted, fallback_event_id IS NOT NULL AS fell_back, is_fallback, cost_usd,
                              num_segments, encoding
                       FROM _attempt_facts""").df()
    k = con.execute("SELECT started_at, country_iso2, status, is_machine, duration_s, cost_usd FROM _call_facts").df()
    for df in (m, a, k):
        for c in df.columns:
            if df[c].dtype == object or str(df[c].dtype) in ("str", "string"):
                if c != "sid":
                    df[c] = df[c].astype("category")
    return {"m": m, "a": a, "k": k}


def pandas_cases(f: dict[str, pd.DataFrame]) -> dict[str, Callable[[], object]]:
    m, a, k = f["m"], f["a"], f["k"]
    lo = pd.Timestamp(START, tz="UTC")
    hi = pd.Timestamp(END + timedelta(days=1), tz="UTC")
    prev_lo = lo - pd.Timedelta(days=DAYS)

    def counts(df: pd.DataFrame, by) -> pd.DataFrame:
        g = df.assign(undelivered=df["status"] == "undelivered", failed=df["status"] == "failed").groupby(
            by, observed=True, dropna=False)
        out = g.agg(sent=("is_delivered", "size"), delivered=("is_delivered", "sum"),
                    undelivered=("undelivered", "sum"), failed=("failed", "sum"), pending=("is_pending", "sum"),
                    cost_usd=("cost_usd", "sum"))
        final = out["delivered"] + out["undelivered"] + out["failed"]
        out["delivery_rate"] = out["delivered"] / final
        return out

    def period(df: pd.DataFrame, col: str = "sent_at", start=lo) -> pd.DataFrame:
        return df[(df[col] >= start) & (df[col] < hi)]

    def summary() -> object:
        p = period(m)
        return counts(p.assign(_k=0), "_k")

    def with_change() -> object:
        p = period(m, start=prev_lo)
        return counts(p.assign(_k=p["sent_at"] >= lo), "_k")

    def top_errors() -> object:
        p = period(m, start=prev_lo)
        p = p.assign(cur=p["sent_at"] >= lo)
        return p.groupby(["error_code", "cur"], dropna=False).agg(sent=("sid", "size"), failed=("is_failed", "sum"))

    def rising() -> object:
        p = period(m, start=prev_lo)
        return p.assign(cur=p["sent_at"] >= lo).groupby(["error_code", "cur"], dropna=False).agg(
            sent=("sid", "size"), failed=("is_failed", "sum"))

    def trend() -> object:
        return period(m).groupby(["sent_day", "error_code"], dropna=False).agg(sent=("sid", "size"),
                                                                               failed=("is_failed", "sum"))

    def latency() -> object:
        p = period(m)
        return p[p["is_delivered"]].groupby("country_iso2", observed=True)["delivery_latency_s"].quantile([0.5, 0.9])

    def overview() -> object:
        s = counts(period(m), "country_iso2")
        v = period(k, "started_at").groupby("country_iso2", observed=True).agg(
            calls=("status", "size"), cost=("cost_usd", "sum"))
        return s.join(v, how="outer")

    def recommendation() -> object:
        p = period(a)
        return p.assign(credit=p["converted"] & ~p["fell_back"]).groupby(
            ["country_iso2", "channel"], observed=True).agg(attempts=("credit", "size"), converted=("credit", "sum"),
                                                            delivered=("is_delivered", "sum"))

    def channel() -> object:
        p = period(a)
        return p.groupby("channel", observed=True).agg(sent=("is_delivered", "size"),
                                                       delivered=("is_delivered", "sum"), cost=("cost_usd", "sum"))

    def voice_c() -> object:
        p = period(k, "started_at")
        done = p[p["status"] == "completed"]
        out = p.groupby(["country_iso2", "status"], observed=True).size().unstack(fill_value=0)
        return out.join(done.groupby("country_iso2", observed=True)["duration_s"].quantile(0.5))

    def fallback_c() -> object:
        p = period(a)
        p = p[(p["channel"] == "sms") & ~p["is_fallback"]]
        return p.groupby("country_iso2", observed=True).agg(n=("fell_back", "size"), fb=("fell_back", "sum"),
                                                            delivered=("is_delivered", "sum"))

    def template_c() -> object:
        p = period(a)
        p = p[p["channel"] == "sms"]
        return p.groupby(["template_id", "variant"], observed=True, dropna=False).agg(
            n=("num_segments", "size"), seg=("num_segments", "mean"), delivered=("is_delivered", "sum"),
            converted=("converted", "sum"), cost=("cost_usd", "sum"))

    def samples() -> object:
        p = period(m)
        return p[p["error_code"] == 30007].nlargest(5, "sent_at")["sid"]

    def what_changed() -> object:
        p = period(m, start=pd.Timestamp(BASE_START, tz="UTC"))
        p = p.assign(recent=p["sent_at"] >= pd.Timestamp(RECENT_START, tz="UTC"))
        return p.groupby(["country_iso2", "carrier", "template_id", "error_code", "recent"], observed=True,
                         dropna=False).agg(n=("is_delivered", "size"), delivered=("is_delivered", "sum"),
                                           failed=("is_failed", "sum"), cost=("cost_usd", "sum"))

    def filtered() -> object:
        keep = (m["country_iso2"].isin(["BR", "MX"])) & (m["purpose"] == "password_reset")
        return counts(period(m[keep]), "template_id")

    return {
        "delivery.summary": summary,
        "delivery.summary_with_change": with_change,
        "delivery.delivery_by(day)": lambda: counts(period(m), "sent_day"),
        "delivery.delivery_by(country)": lambda: counts(period(m), "country_iso2"),
        "delivery.delivery_by(carrier)": lambda: counts(period(m), "carrier"),
        "delivery.delivery_by(channel)": channel,
        "delivery.delivery_by(filtered)": filtered,
        "delivery.latency_by_country": latency,
        "errors.top_errors": top_errors,
        "errors.new_or_rising_errors": rising,
        "errors.error_samples": samples,
        "errors.error_trend": trend,
        "countries.country_overview": overview,
        "countries.channel_recommendation": recommendation,
        "voice.voice_by_country": voice_c,
        "fallback.fallback_by_country": fallback_c,
        "templates.template_stats": template_c,
        "insights.what_changed": what_changed,
    }


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm-up (caches, lazy imports)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    runs.sort()
    p95 = runs[min(len(runs) - 1, int(round(0.95 * (len(runs) - 1))))]
    return statistics.median(runs), p95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--db", type=Path, default=None, help="warehouse file (default data/bench_<N>.duckdb)")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas comparison")
    ap.add_argument("--only", default="", help="comma-separated substrings of case names to run")
    args = ap.parse_args(argv)
    db = args.db or Path("data") / f"bench_{args.messages}.duckdb"
    if args.rebuild or not db.exists():
        t = time.perf_counter()
        db.parent.mkdir(parents=True, exist_ok=True)
        build(db, args.messages)
        print(f"built {db} ({args.messages:,} messages) in {time.perf_counter() - t:.1f} s", flush=True)
    con = warehouse.connect(db, read_only=True)
    rows = con.execute("SELECT count(*) FROM _message_facts").fetchone()[0]
    selected = [c for c in cases(con) if not args.only or any(s in c[0] for s in args.only.split(","))]
    frames = pandas = None
    if not args.no_pandas:
        frames = load_frames(con)
        pandas = pandas_cases(frames)
    print(f"{rows:,} messages; median/p95 over {args.repeats} runs (ms)")
    header = f"{'function':36} {'median':>8} {'p95':>8} {'bare':>8} {'x bare':>7} {'pandas':>8} {'x faster':>8}  ok"
    print(header)
    print("-" * len(header))
    failures = 0
    for name, fn, bare_sql in selected:
        med, p95 = timed(fn, args.repeats)
        bare, _ = timed(lambda sql=bare_sql: con.execute(sql).fetchall(), args.repeats)
        pd_med = timed(pandas[name], max(3, args.repeats // 3))[0] if pandas else float("nan")
        ok = med < 150 and med <= 3 * bare and (not pandas or pd_med >= 5 * med)
        failures += not ok
        print(f"{name:36} {med:8.1f} {p95:8.1f} {bare:8.1f} {med / bare:7.2f} {pd_med:8.1f} {pd_med / med:8.1f}  "
              f"{'yes' if ok else 'NO'}", flush=True)
    print(f"targets: median < 150 ms, <= 3x bare, >= 5x faster than pandas; {failures} case(s) miss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
