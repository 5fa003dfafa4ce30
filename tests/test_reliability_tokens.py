"""Reliability: no token in logs, errors, files or pages (issue 8, security).

One end-to-end session as a user runs it, every program a real process:

1. ``switchboard sandbox`` serves a small world (its banner prints the sandbox-only
   credentials on purpose: that is how a user gets them; nothing after the banner may).
2. ``switchboard ingest`` and ``switchboard send --send`` with a *wrong*, recognisable
   token: both fail with a message naming the variables, and never echo the token.
3. The same with the right token: the campaign is sent and ingested.
4. Every byte they printed, every file under the data folder (warehouse, snapshots, send
   logs, ledger) and every text column of every warehouse table is searched for either
   token (plain, and base64 inside a Basic auth header); so is the sandbox's own output
   after its banner.
5. The real dashboard (streamlit + headless Chromium): every page, and the Data page's
   SQL box over ``ingest_runs`` (which holds the failed run's error), must not show them.

The owners' tests check their own paths (``tests/test_sender_cli.py`` for the sender,
``tests/test_ingest_api.py::test_wrong_token_stops_with_a_clear_message`` for ingest).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
WRONG_TOKEN = "sbxTOKEN" + "Qv7" * 8 + "DoNotLog"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}


def _forms(sid: str, token: str) -> list[str]:
    basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
    return [token, basic]


def _campaign(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    numbers = [f"+1500555{700 + i:04d}" for i in range(4)]
    (directory / "recipients.csv").write_text("number,user_id,locale\n" + "".join(
        f"{n},tok-user-{i},en-US\n" for i, n in enumerate(numbers)))
    (directory / "allow.txt").write_text("\n".join(numbers) + "\n")
    path = directory / "campaign.toml"
    path.write_text('''
id = "tokens"
name = "Token check"
purpose = "verification"
recipients = "recipients.csv"
allow_list = "allow.txt"
from = "+15005550006"
rate_limit = 50
max_size = 10

[[variants]]
name = "only"
weight = 1
template_id = "tok"
bodies = { en = "Code 424242" }
''')
    return path


class _Sandbox:
    """``switchboard sandbox`` in a child process; reads its banner for the URL and credentials."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "sandbox", "--port", "0", "--messages", "3000", "--calls", "300",
             "--days", "5", "--end", "2026-11-01", "--send-logs-dir", str(data_dir / "send_logs")],
            cwd=ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner: list[str] = []
        self.after: list[str] = []
        self.stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("sandbox exited: " + "".join(self.stderr)[-2000:])
            self.banner.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(self.banner)
        self.base_url = re.search(r"SWITCHBOARD_TWILIO_BASE_URL=(\S+)", text).group(1)  # type: ignore[union-attr]
        self.sid = re.search(r"TWILIO_ACCOUNT_SID=(\S+)", text).group(1)  # type: ignore[union-attr]
        self.token = re.search(r"TWILIO_AUTH_TOKEN=(\S+)", text).group(1)  # type: ignore[union-attr]
        threading.Thread(target=lambda: self.after.extend(self.proc.stdout), daemon=True).start()  # type: ignore[arg-type]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.2)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchboard.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _text_columns_containing(db: Path, needles: list[str]) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    hits = []
    try:
        cols = con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                           "WHERE data_type = 'VARCHAR' AND NOT internal").fetchall()
        for table, column in cols:
            for needle in needles:
                n = con.execute(f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?)', [needle]).fetchone()[0]
                if n:
                    hits.append(f"{table}.{column}")
    finally:
        con.close()
    return hits


@pytest.mark.slow
@pytest.mark.browser
def test_no_token_in_output_files_warehouse_or_pages(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    sandbox = _Sandbox(data_dir)
    outputs: dict[str, str] = {}
    try:
        campaign = _campaign(tmp_path / "campaign")
        env = _clean_env() | {"TWILIO_ACCOUNT_SID": sandbox.sid, "SWITCHBOARD_TWILIO_BASE_URL": sandbox.base_url,
                              "SWITCHBOARD_DATA_DIR": str(data_dir)}
        wrong = env | {"TWILIO_AUTH_TOKEN": WRONG_TOKEN}
        right = env | {"TWILIO_AUTH_TOKEN": sandbox.token}

        bad_ingest = _run(["ingest", "--source", "twilio", "--data-dir", str(data_dir)], wrong)
        bad_send = _run(["send", str(campaign), "--send", "--data-dir", str(data_dir)], wrong)
        assert bad_ingest.returncode != 0 and bad_send.returncode != 0
        assert "TWILIO_AUTH_TOKEN" in bad_ingest.stderr, "the error should name the variable to set"
        assert re.search(r"401|credential", bad_send.stdout + bad_send.stderr, re.IGNORECASE), bad_send.stderr[-500:]
        for proc in (bad_ingest, bad_send):
            assert "Traceback" not in proc.stderr
        ingest = _run(["ingest", "--data-dir", str(data_dir)], right)
        assert ingest.returncode == 0, ingest.stderr[-2000:]
        send = _run(["send", str(campaign), "--send", "--data-dir", str(data_dir)], right)
        assert send.returncode == 0, send.stderr[-2000:]
        again = _run(["ingest", "--data-dir", str(data_dir)], right)
        assert again.returncode == 0, again.stderr[-2000:]
        for name, proc in {"ingest (wrong token)": bad_ingest, "send (wrong token)": bad_send, "ingest": ingest,
                           "send": send, "ingest again": again}.items():
            outputs[name] = proc.stdout + proc.stderr
    finally:
        sandbox.stop()

    secrets = _forms(sandbox.sid, sandbox.token) + _forms(sandbox.sid, WRONG_TOKEN)
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"a token appears in the output of {name}"
    sandbox_after_banner = "".join(sandbox.after) + "".join(sandbox.stderr)
    for secret in secrets:
        assert secret not in sandbox_after_banner, "the sandbox logged a credential after its banner"
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "warehouse.duckdb" for p in files) and any("ledger" in str(p) for p in files)
    for p in files:
        blob = p.read_bytes()
        for secret in secrets:
            assert secret.encode() not in blob, f"a token is written in {p.relative_to(tmp_path)}"
    warehouse = data_dir / "warehouse.duckdb"
    assert _text_columns_containing(warehouse, secrets) == []
    con = duckdb.connect(str(warehouse), read_only=True)
    failed = con.execute("SELECT count(*) FROM ingest_runs WHERE status = 'failed' AND error IS NOT NULL").fetchone()[0]
    campaign_rows = con.execute("SELECT count(*) FROM send_log WHERE campaign_id = 'tokens'").fetchone()[0]
    con.close()
    assert failed >= 1, "the wrong-token run should be in the audit with its error"
    assert campaign_rows == 4

    _pages_show_no_token(data_dir, secrets)


def _pages_show_no_token(data_dir: Path, secrets: list[str]) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    from tests.browser_util import StreamlitServer, launch_chromium

    with StreamlitServer(data_dir) as server, playwright.sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stSidebarNav"] a', timeout=60_000)
        links = page.eval_on_selector_all('[data-testid="stSidebarNav"] a', "els => els.map(e => e.href)")
        assert len(links) >= 6
        for href in links:
            page.goto(href, wait_until="domcontentloaded")
            page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
            page.wait_for_timeout(2500)
            html = page.content()
            for secret in secrets:
                assert secret not in html, f"a token is shown on {href}"
        # The Data page's SQL box over the audit table that holds the failed run's error.
        data_link = next((h for h in links if h.rstrip("/").endswith("/data")), None)
        if data_link:
            page.goto(data_link, wait_until="domcontentloaded")
            page.get_by_role("tab", name="SQL").click(timeout=60_000)
            box = page.locator("textarea").first
            box.fill("SELECT source, status, error FROM ingest_runs ORDER BY ALL")
            page.get_by_role("button", name="Run").click()
            page.get_by_role("button", name="Download Parquet").wait_for(timeout=30_000)
            html = page.content()
            for secret in secrets:
                assert secret not in html, "a token is shown by the SQL box"
        browser.close()
