"""The `switchboard` command as a user runs it: a real subprocess, real parts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from switchboard.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent


def switchboard(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ),
    )


def test_help_lists_every_subcommand() -> None:
    out = switchboard("--help")
    assert out.returncode == 0, out.stderr
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_its_own_help(name: str) -> None:
    out = switchboard(name, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: switchboard {name}" in out.stdout
    assert "unavailable" not in out.stdout + out.stderr


def test_settings_lists_environment_variables() -> None:
    out = switchboard("--settings")
    assert out.returncode == 0
    assert "SWITCHBOARD_LAG_HOURS" in out.stdout and "72" in out.stdout


def test_demo_without_dashboard_builds_a_warehouse(tmp_path: Path) -> None:
    """The README's first command, minus the long-running dashboard, on a small world."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}
    out = switchboard(
        "demo", "--still", "--no-dashboard", "--messages", "3000", "--calls", "300", "--days", "10",
        "--sandbox-port", "0", "--data-dir", str(tmp_path), env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    warehouse = tmp_path / "warehouse.duckdb"
    assert warehouse.exists()
    con = duckdb.connect(str(warehouse), read_only=True)
    messages = con.execute("SELECT count(*) FROM message_facts").fetchone()[0]
    calls = con.execute("SELECT count(*) FROM call_facts").fetchone()[0]
    sends = con.execute("SELECT count(*) FROM attempt_facts").fetchone()[0]
    assert messages >= 3000 * 0.95  # the whole world (a few may be inbound/other directions)
    assert calls > 0 and sends > 0
    # credentials never reach the terminal
    token_free = out.stdout + out.stderr
    assert "AUTH_TOKEN=" not in token_free


def test_unexpected_errors_are_one_clear_line(tmp_path: Path) -> None:
    out = switchboard("ingest", "--data-dir", str(tmp_path / "x"), env={
        **{k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}, "SWITCHBOARD_DATA_DIR": str(tmp_path)})
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "TWILIO_ACCOUNT_SID" in out.stdout + out.stderr  # names the fix


def test_user_errors_are_handled_once_with_exit_code_and_debug_switch(tmp_path: Path) -> None:
    """A SwitchboardError (here: no credentials) is one line and exit 2; SWITCHBOARD_DEBUG=1 shows the traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}
    out = switchboard("ingest", "--source", "twilio", "--data-dir", str(tmp_path), env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchboard ingest: ") and "TWILIO_ACCOUNT_SID" in lines[0]
    debug = switchboard("ingest", "--source", "twilio", "--data-dir", str(tmp_path),
                        env={**env, "SWITCHBOARD_DEBUG": "1"})
    assert "Traceback" in debug.stderr and "CredentialsMissing" in debug.stderr


def test_cli_defines_no_error_class_of_its_own() -> None:
    import switchboard.cli as cli

    assert not hasattr(cli, "UserError")  # the base user error lives in switchboard.core.errors
