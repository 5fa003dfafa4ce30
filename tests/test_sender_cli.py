"""``switchboard send`` as a user runs it: safety gates, summary, and credentials never shown."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate
from switchboard.sender import cli
from tests.test_sender_sandbox import MAGIC_ERRORS, read_send_log, sandbox_number, write_campaign

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(generate(Scenario(messages=200, calls=20, days=2)), port=0) as sb:
        yield sb


def _env(server: SandboxServer, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}
    env.update(
        TWILIO_ACCOUNT_SID=server.account_sid,
        TWILIO_AUTH_TOKEN=token or server.auth_token,
        SWITCHBOARD_TWILIO_BASE_URL=server.base_url,
    )
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.sender.cli", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def _files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def _run_in_process(argv: list[str], stdin: io.StringIO | None = None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(parser.parse_args(argv), stdin=stdin or io.StringIO(), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_send_prints_a_summary_and_never_the_token(server: SandboxServer, tmp_path: Path) -> None:
    numbers = [sandbox_number(300 + i) for i in range(4)] + list(MAGIC_ERRORS)
    campaign = write_campaign(tmp_path / "c", campaign_id="cli-send", numbers=numbers, fallback_seconds=0)
    data_dir = tmp_path / "data"
    token = server.auth_token
    dry = _cli(str(campaign), "--data-dir", str(data_dir), env=_env(server))
    out = _cli(str(campaign), "--send", "--data-dir", str(data_dir), env=_env(server))
    assert out.returncode == 0, out.stderr
    assert "Campaign cli-send: 4 SMS sent, 3 failed, 5 fallback call(s)." in out.stdout
    assert "Attempt to send to unsubscribed recipient (21610)" in out.stdout
    assert "run `switchboard ingest`" in out.stdout and "campaign_id=cli-send" in out.stdout
    assert len(read_send_log(data_dir, "cli-send")) >= len(numbers)
    # The token is nowhere: not on screen, not in the ledger, the send log or any other file.
    for text in (dry.stdout, dry.stderr, out.stdout, out.stderr):
        assert token not in text
    assert _files_containing(tmp_path, token) == []
    assert server.account_sid not in out.stdout + out.stderr  # not even the account SID


def test_wrong_credentials_stop_the_run_cleanly_without_echoing_them(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = write_campaign(tmp_path / "c", campaign_id="cli-auth", numbers=[sandbox_number(320)])
    wrong = "f" * 31 + "0"
    out = _cli(str(campaign), "--send", "--data-dir", str(tmp_path / "data"), env=_env(server, token=wrong))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "Twilio refused the request for the whole account" in out.stderr and "HTTP 401" in out.stderr
    assert wrong not in out.stdout + out.stderr and _files_containing(tmp_path, wrong) == []
    # Nothing was recorded as a per-recipient failure: a run with the right token sends to everyone.
    for key, value in _env(server).items():
        monkeypatch.setenv(key, value)
    rc, out, err = _run_in_process([str(campaign), "--send", "--data-dir", str(tmp_path / "data")])
    assert rc == 0, err
    assert "1 SMS sent, 0 failed" in out


def test_missing_credentials_name_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = write_campaign(tmp_path / "c", campaign_id="cli-nocreds", numbers=[sandbox_number(321)])
    for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml in the working directory either
    rc, _, err = _run_in_process([str(campaign), "--send", "--data-dir", str(tmp_path / "data")])
    assert rc == 2 and "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in err


def test_numbers_outside_the_allow_list_need_the_flag_and_a_confirmation(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = [sandbox_number(330), sandbox_number(331)]
    campaign = write_campaign(tmp_path / "c", campaign_id="cli-allow", numbers=numbers)
    (tmp_path / "c" / "allow.txt").write_text(numbers[0] + "\n")  # the second is not a test phone
    for key, value in _env(server).items():
        monkeypatch.setenv(key, value)
    base = [str(campaign), "--send", "--data-dir", str(tmp_path / "data")]

    rc, _, err = _run_in_process(base)
    assert rc == 2 and "not in the allow-list: line 3" in err
    rc, _, err = _run_in_process([*base, "--allow-any-number"])  # no terminal to confirm on
    assert rc == 2 and "pass --yes" in err
    assert not (tmp_path / "data").exists()  # nothing sent, nothing written
    rc, out, err = _run_in_process([*base, "--allow-any-number", "--yes"])
    assert rc == 0, err
    assert "2 SMS sent" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _args(campaign: Path, data_dir: Path, **kw: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    argv = [str(campaign), "--send", "--allow-any-number", "--data-dir", str(data_dir)]
    return parser.parse_args(argv + [f"--{k.replace('_', '-')}" for k, v in kw.items() if v])


@pytest.mark.parametrize(("answer", "code", "sent"), [("cli-confirm\n", 0, 2), ("yes\n", 1, 0)])
def test_interactive_confirmation_asks_for_the_campaign_id(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, sent: int
) -> None:
    numbers = [sandbox_number(340 + 2 * code), sandbox_number(341 + 2 * code)]  # fresh phones per case
    campaign = write_campaign(tmp_path / "c", campaign_id="cli-confirm", numbers=numbers)
    (tmp_path / "c" / "allow.txt").write_text("")
    for key, value in _env(server).items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(_args(campaign, tmp_path / "data"), stdin=_Terminal(answer), stdout=out, stderr=err)
    assert rc == code, err.getvalue()
    assert "Type the campaign id (cli-confirm)" in out.getvalue()
    created = [m for m in server.messages.live if m["to"] in numbers]
    assert len(created) == sent


def test_a_base_url_with_credentials_in_it_is_printed_redacted(server: SandboxServer, tmp_path: Path) -> None:
    """``SWITCHBOARD_TWILIO_BASE_URL=http://AC…:TOKEN@host``: the "via …" line shows ``http://***@host``."""
    numbers = [sandbox_number(340 + i) for i in range(2)]
    campaign = write_campaign(tmp_path / "c", campaign_id="cli-redact", numbers=numbers)
    host = server.base_url.split("://", 1)[1]
    env = _env(server)
    env["SWITCHBOARD_TWILIO_BASE_URL"] = f"http://{server.account_sid}:{server.auth_token}@{host}"
    out = _cli(str(campaign), "--send", "--data-dir", str(tmp_path / "data"), env=env)
    assert out.returncode == 0, out.stderr
    assert f"via http://***@{host}" in out.stdout
    for secret in (server.auth_token, server.account_sid):
        assert secret not in out.stdout + out.stderr
        assert _files_containing(tmp_path / "data", secret) == []
