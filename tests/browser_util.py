"""Helpers for the dashboard tests (AppTest and browser).

* ``build_demo_warehouse(path)``: a small, deterministic warehouse written through the
  real ``ingest.warehouse`` schema/facts/views, with SMS to ~200 countries (so the
  world map has >100 shapes to draw), calls, voice fallbacks, conversions, ingest
  runs, ingest state and rejects. Seconds to build; used until/unless a richer
  ``small_warehouse`` fixture is preferred.
* ``build_empty_warehouse(path)``: schema and views, no rows.
* ``StreamlitServer``: ``streamlit run dashboard/app.py`` on a free port against a
  data dir, waiting for ``/_stcore/health``.
* ``launch_chromium(playwright)``: Debian's /usr/bin/chromium, no download.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd
import phonenumbers

from switchboard.ingest import warehouse

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# A few countries get most traffic and distinct behaviour; the rest a trickle.
BIG = {"US": (0.97, 0.0079), "GB": (0.95, 0.04), "BR": (0.88, 0.06), "IN": (0.82, 0.003), "ID": (0.74, 0.41),
       "DE": (0.96, 0.08), "NG": (0.68, 0.27), "MX": (0.9, 0.05), "FR": (0.95, 0.075), "PH": (0.8, 0.18)}
ERRORS = [30003, 30005, 30006, 30007, 30008, 21211, 21610, 21614]
TEMPLATES = {"otp_v1": "verification", "otp_v2": "verification", "reset_pw": "password_reset", "alert_login": "account_alert"}
CARRIERS = ["Vodafone", "Orange", "Telkomsel", "Claro", "Airtel", "MTN", "T-Mobile"]


def _mobile_numbers(region: str) -> str | None:
    ex = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if ex is None:
        return None
    return phonenumbers.format_number(ex, phonenumbers.PhoneNumberFormat.E164)


def _regions() -> list[str]:
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        if _mobile_numbers(region):
            out.append(region)
    return out


def _write(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    df = pd.DataFrame(rows)
    con.register("_rows", df)
    cols = ", ".join(df.columns)
    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
    con.unregister("_rows")


def build_empty_warehouse(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = warehouse.connect(path)
    warehouse.create_schema(con)
    con.execute("CHECKPOINT")
    con.close()
    return path


def build_demo_warehouse(path: Path, *, days: int = 42, end: date = date(2026, 11, 20), seed: int = 7) -> Path:
    """A deterministic small warehouse with every table the dashboard reads."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    regions = _regions()
    messages: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    sends: list[dict[str, Any]] = []
    conversions: list[dict[str, Any]] = []
    n = 0

    def nid(prefix: str) -> str:
        nonlocal n
        n += 1
        return f"{prefix}{n:032x}"

    start = end - timedelta(days=days - 1)
    for d in range(days):
        day = start + timedelta(days=d)
        for region in regions:
            base_rate, price = BIG.get(region, (0.9, 0.05))
            volume = 14 if region in BIG else (1 if rng.random() < 0.35 else 0)
            # A visible incident: Indonesia collapses over the last week (for "what changed").
            if region == "ID" and d >= days - 7:
                base_rate = 0.45
            example = _mobile_numbers(region)
            assert example
            for _ in range(volume):
                template = rng.choice(list(TEMPLATES))
                sent = datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60),
                                tzinfo=UTC)
                roll = rng.random()
                if roll < base_rate:
                    status, error = "delivered", None
                elif roll < base_rate + (1 - base_rate) * 0.8:
                    status, error = "undelivered", rng.choice(ERRORS[:5])
                elif d == days - 1 and rng.random() < 0.5:
                    status, error = "sent", None
                else:
                    status, error = "failed", rng.choice(ERRORS[5:])
                segments = 2 if template == "alert_login" else 1
                to = example[:-3] + f"{rng.randrange(1000):03d}"
                sid = nid("SM")
                user = f"U{rng.randrange(5000):05d}"
                messages.append({
                    "sid": sid, "account_sid": "AC" + "0" * 32, "messaging_service_sid": "MG" + "1" * 32,
                    "direction": "outbound-api", "from_number": "+15005550006", "to_number": to, "status": status,
                    "error_code": error, "num_segments": segments, "num_media": 0,
                    "body_encoding": "UCS-2" if template == "alert_login" else "GSM-7", "body_length": 60,
                    "price": -price * segments, "price_unit": "USD", "price_usd": price * segments, "date_created": sent,
                    "date_sent": sent, "date_updated": sent + timedelta(seconds=rng.uniform(2, 40)),
                    "to_country": region, "to_carrier": rng.choice(CARRIERS), "source": "api", "ingest_run_id": 1})
                event = nid("EV")
                variant = rng.choice(["control", "short_copy"]) if template.startswith("otp") else None
                sends.append({
                    "event_id": event, "sent_at": sent, "channel": "sms", "purpose": TEMPLATES[template], "template_id": template,
                    "experiment_id": "otp_copy_test" if variant else None, "variant": variant, "campaign_id": None,
                    "user_id": user, "country": region, "locale": None, "provider_sid": sid, "fallback_of": None,
                    "source_file": "send_logs/demo.jsonl", "ingest_run_id": 2})
                if status == "delivered" and rng.random() < 0.7:
                    conversions.append({"event_id": nid("CV"), "user_id": user, "conversion_type": "verified",
                                            "occurred_at": sent + timedelta(minutes=rng.uniform(0.5, 20)),
                                            "source_file": "send_logs/conv.jsonl", "ingest_run_id": 2})
                # Voice fallback for some failed verification SMS.
                if status != "delivered" and TEMPLATES[template] == "verification" and rng.random() < 0.6:
                    csid = nid("CA")
                    cstart = sent + timedelta(minutes=2)
                    answered = rng.random() < 0.7
                    cstatus = "completed" if answered else rng.choice(["busy", "no-answer", "failed"])
                    duration = rng.randrange(15, 60) if answered else 0
                    calls.append({
                        "sid": csid, "account_sid": "AC" + "0" * 32, "parent_call_sid": None, "direction": "outbound-api",
                        "from_number": "+15005550006", "to_number": to, "status": cstatus,
                        "answered_by": (rng.choice(["human", "human", "machine_start"]) if answered else None),
                        "duration_s": duration, "price": -0.013 * max(1, duration // 60 + 1), "price_unit": "USD",
                        "price_usd": 0.013 * max(1, duration // 60 + 1), "start_time": cstart,
                        "end_time": cstart + timedelta(seconds=duration), "date_created": cstart,
                        "date_updated": cstart + timedelta(seconds=duration), "to_country": region,
                        "to_carrier": rng.choice(CARRIERS), "source": "api", "ingest_run_id": 1})
                    sends.append({
                        "event_id": nid("EV"), "sent_at": cstart, "channel": "voice", "purpose": "verification",
                        "template_id": "otp_voice", "experiment_id": None, "variant": None, "campaign_id": None, "user_id": user,
                        "country": region, "locale": None, "provider_sid": csid, "fallback_of": event,
                        "source_file": "send_logs/demo.jsonl", "ingest_run_id": 2})
        # A little push traffic (no provider outcome).
        for _ in range(5):
            sent = datetime(day.year, day.month, day.day, rng.randrange(24), tzinfo=UTC)
            sends.append({
                "event_id": nid("EV"), "sent_at": sent, "channel": "push", "purpose": "account_alert", "template_id": "alert_push",
                "experiment_id": None, "variant": None, "campaign_id": None, "user_id": f"U{rng.randrange(5000):05d}",
                "country": "US", "locale": "en-US", "provider_sid": None, "fallback_of": None,
                "source_file": "send_logs/demo.jsonl", "ingest_run_id": 2})

    finished = datetime(end.year, end.month, end.day, 23, 50, tzinfo=UTC)
    runs = [
        {"run_id": 1, "source": "messages:AC" + "0" * 32, "started_at": finished - timedelta(minutes=5),
             "finished_at": finished - timedelta(minutes=3), "status": "ok", "rows_read": len(messages),
             "rows_loaded": len(messages), "rows_rejected": 0, "cursor_before": None, "cursor_after": str(end), "error": None},
        {"run_id": 2, "source": "send_logs", "started_at": finished - timedelta(minutes=3),
             "finished_at": finished - timedelta(minutes=2), "status": "ok", "rows_read": len(sends) + 2,
             "rows_loaded": len(sends), "rows_rejected": 2, "cursor_before": None, "cursor_after": "demo.jsonl", "error": None},
        {"run_id": 3, "source": "calls:AC" + "0" * 32, "started_at": finished - timedelta(minutes=2),
             "finished_at": finished - timedelta(minutes=1), "status": "failed", "rows_read": 0, "rows_loaded": 0,
             "rows_rejected": 0, "cursor_before": str(end), "cursor_after": None, "error": "HTTP 503 from the API; will retry"},
    ]
    state = [
        {"source": "messages:AC" + "0" * 32, "cursor": str(end), "updated_at": finished - timedelta(minutes=3)},
        {"source": "send_logs", "cursor": "demo.jsonl", "updated_at": finished - timedelta(minutes=2)},
        {"source": "calls:AC" + "0" * 32, "cursor": str(end - timedelta(days=1)), "updated_at": finished - timedelta(days=1)},
    ]
    rejects = [
        {"reject_id": 1, "run_id": 2, "source": "send_logs", "location": "send_logs/demo.jsonl", "line": 17,
             "raw": '{"event_id": "E17", "to": "+447700900123", "channel": "carrier-pigeon"}',
             "reason": "unknown channel 'carrier-pigeon'", "rejected_at": finished - timedelta(minutes=2)},
        {"reject_id": 2, "run_id": 2, "source": "send_logs", "location": "send_logs/demo.jsonl", "line": 42,
             "raw": '{"event_id": "E42", "sent_at": "yesterday"}', "reason": "sent_at is not a timestamp",
             "rejected_at": finished - timedelta(minutes=2)},
    ]

    if path.exists():
        path.unlink()
    con = warehouse.connect(path)
    warehouse.create_schema(con)
    for table, rows in (("twilio_messages", messages), ("twilio_calls", calls), ("send_log", sends),
                        ("conversions", conversions), ("ingest_runs", runs), ("ingest_state", state),
                        ("rejects", rejects)):
        _write(con, table, rows)
    warehouse.refresh_facts(con)
    con.execute("CHECKPOINT")
    con.close()
    return path


# Values a warehouse may hold that no sane ingest loads, but an analyst may write (issue 13):
# timestamps in year 20261, year 1 and infinite, the largest prices and durations, NULL-only rows.
ABSURD_TIMES = ("20261-11-15 10:00:00+00", "0001-01-01 00:00:00+00", "infinity", "-infinity")


def build_absurd_warehouse(path: Path, *, end: date = date(2026, 11, 20), demo: bool = True) -> Path:
    """The demo warehouse (or an empty one) plus rows with absurd timestamps, extreme numbers and NULLs
    in every table the pages read."""
    if demo:
        build_demo_warehouse(path, end=end)
    else:
        build_empty_warehouse(path)
    con = warehouse.connect(path)
    try:
        for i, when in enumerate(ABSURD_TIMES):
            sid, call, event = f"SMabsurd{i:024d}", f"CAabsurd{i:024d}", f"EVabsurd{i}"
            con.execute(
                "INSERT INTO twilio_messages (sid, account_sid, direction, to_number, status, price_usd, "
                "date_created, date_sent, date_updated, to_country, source, ingest_run_id) VALUES "
                "(?, ?, 'outbound-api', '+15005550006', 'delivered', 9999999.99999, ?::TIMESTAMPTZ, "
                "?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 'US', 'api', 1)", [sid, "AC" + "0" * 32, when, when, when])
            con.execute(
                "INSERT INTO twilio_calls (sid, account_sid, direction, to_number, status, duration_s, price_usd, "
                "start_time, end_time, date_created, date_updated, to_country, source, ingest_run_id) VALUES "
                "(?, ?, 'outbound-api', '+15005550006', 'completed', 2147483647, -9999999.99999, ?::TIMESTAMPTZ, "
                "?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 'US', 'api', 1)",
                [call, "AC" + "0" * 32, when, when, when, when])
            con.execute(
                "INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, user_id, country, "
                "provider_sid, source_file, ingest_run_id) VALUES (?, ?::TIMESTAMPTZ, 'sms', 'verification', "
                "'otp_v1', 'U1', 'US', ?, 'send_logs/absurd.jsonl', 2)", [event, when, sid])
            con.execute("INSERT INTO ingest_runs (run_id, source, started_at, finished_at, status) "
                        "VALUES (?, 'send_logs', ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 'ok')", [100 + i, when, when])
        # Rows with nothing but what the schema requires: every other column NULL (the send-log
        # record needs a sent_at: on the demo's last day, so a warehouse of absurd rows only stays so).
        con.execute("INSERT INTO twilio_messages (sid, account_sid, status, source) "
                    "VALUES ('SMnulls0000000000000000000000000', 'AC', 'delivered', 'api')")
        if demo:
            con.execute("INSERT INTO send_log (event_id, sent_at, channel, user_id) VALUES ('EVnulls', ?, 'sms', 'U2')",
                        [datetime(end.year, end.month, end.day, 10, tzinfo=UTC)])
        warehouse.refresh_facts(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


def build_null_columns_warehouse(path: Path, *, end: date = date(2026, 11, 20)) -> Path:
    """The demo warehouse with every column the schema lets be NULL emptied: prices, countries, carriers,
    segments, durations, purposes, templates (an analyst's import may hold only SIDs and statuses)."""
    build_demo_warehouse(path, end=end)
    con = warehouse.connect(path)
    try:
        con.execute("UPDATE twilio_messages SET price_usd = NULL, to_country = NULL, to_carrier = NULL, "
                    "num_segments = NULL, date_updated = NULL, error_code = NULL")
        con.execute("UPDATE twilio_calls SET price_usd = NULL, to_country = NULL, duration_s = NULL, answered_by = NULL")
        con.execute("UPDATE send_log SET purpose = NULL, template_id = NULL, country = NULL, experiment_id = NULL")
        warehouse.refresh_facts(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


# --- the real server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run dashboard/app.py`` on a free port, with ``SWITCHBOARD_DATA_DIR=data_dir``."""

    def __init__(self, data_dir: Path, *, port: int | None = None, log: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or data_dir / "streamlit.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        env = dict(os.environ, SWITCHBOARD_DATA_DIR=str(self.data_dir), PYTHONPATH=str(REPO))
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
             "--server.headless", "true", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.enableStaticServing", "true", "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"streamlit did not become healthy: {self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
