"""Issue 13, CLI and secrets: ``switchboard ingest`` with bad arguments says what to fix in one line and exits 2
(never "unexpected error … report it", exit 1); contradictions are errors or warnings; a token in a URL's
userinfo is never printed nor stored in ``ingest_runs.error``."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.cli import main
from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _ingest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["ingest", "--quiet", "--source", "send-logs", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_exit_2(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchboard ingest: "), err
    assert "unexpected" not in err and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize(("args", "words"), [
    (["--since", "2026-13-45"], ["--since", "YYYY-MM-DD"]),
    (["--until", "garbage"], ["--until", "YYYY-MM-DD"]),
    (["--lag-hours", "nan"], ["--lag-hours"]),
    (["--lag-hours", "inf"], ["--lag-hours"]),
    (["--lag-hours", "-1"], ["--lag-hours", ">= 0"]),
    (["--since", "2026-11-02", "--until", "2026-11-01"], ["--since", "--until", "not before"]),
    (["--since", "2026-11-01", "--until", "2026-11-01"], ["not before"]),
])
def test_bad_ingest_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, words):
    code, _, err = _ingest(capsys, "--data-dir", str(tmp_path), *args)
    _one_line_exit_2(code, err, *words)
    assert not (tmp_path / "ingest.duckdb").exists()  # refused before anything ran


def test_a_data_dir_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = _ingest(capsys, "--data-dir", str(tmp_path / "afile"))
    _one_line_exit_2(code, err, "is a file", "--data-dir")


@pytest.mark.parametrize("value", ["abc", "nan", "1e999", ""])
def test_a_bad_lag_setting_in_the_environment_names_the_variable(tmp_path, capsys, monkeypatch, value):
    monkeypatch.setenv("SWITCHBOARD_LAG_HOURS", value)
    code, _, err = _ingest(capsys, "--data-dir", str(tmp_path))
    _one_line_exit_2(code, err, "SWITCHBOARD_LAG_HOURS")


def _not_a_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        return "\x00" not in text
    return False


@HYP
@given(since=st.one_of(st.text(max_size=30), st.from_regex(r"\d{4}-\d{2}-\d{2}", fullmatch=True)).filter(_not_a_date),
       lag=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not math.isfinite(x) or x < 0)))
def test_any_bad_since_or_lag_is_exit_2_never_a_crash(tmp_path_factory, capsys, since, lag):
    data = tmp_path_factory.mktemp("cli")
    code, _, err = _ingest(capsys, "--data-dir", str(data), f"--since={since}")
    _one_line_exit_2(code, err, "--since")
    code, _, err = _ingest(capsys, "--data-dir", str(data), f"--lag-hours={lag!r}")
    _one_line_exit_2(code, err)


def test_a_send_logs_glob_that_matches_nothing_warns_even_when_quiet(tmp_path, capsys):
    code, _, err = _ingest(capsys, "--data-dir", str(tmp_path), "--send-logs", str(tmp_path / "nope-*.jsonl"))
    assert code == 0
    assert "warning" in err and "matched no" in err and "nope-*.jsonl" in err


def test_a_token_in_the_base_urls_userinfo_is_never_printed_nor_stored(tmp_path, capsys, monkeypatch):
    world = generate(Scenario(seed=3, days=1, messages=40, calls=4))
    with SandboxServer(world) as server:
        secret = "S3cr3tT0ken" + "x" * 21
        host = server.base_url.split("://", 1)[1]
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", server.account_sid)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong-token")  # a 401: the error names the URL
        monkeypatch.delenv("TWILIO_API_KEY", raising=False)
        monkeypatch.delenv("TWILIO_API_SECRET", raising=False)
        monkeypatch.setenv("SWITCHBOARD_TWILIO_BASE_URL", f"http://{server.account_sid}:{secret}@{host}")
        code = main(["ingest", "--source", "twilio", "--quiet", "--data-dir", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 2
    assert secret not in out.out + out.err
    assert "***@" in out.err  # the URL is still shown, its credentials are not
    con = duckdb.connect(str(Path(tmp_path) / "warehouse.duckdb"), read_only=True)
    try:
        errors = [e for (e,) in con.execute("SELECT error FROM ingest_runs").fetchall()]
    finally:
        con.close()
    assert errors and all(secret not in (e or "") for e in errors)
