"""Settings: defaults from the working directory, and bad SWITCHBOARD_* values named, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings


def test_data_dir_defaults_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env().data_dir == tmp_path / "data"
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "env"))
    assert Settings.from_env().data_dir == tmp_path / "env"
    assert Settings.from_env(data_dir=tmp_path / "arg").data_dir == tmp_path / "arg"  # --data-dir wins


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SWITCHBOARD_LAG_HOURS", "abc"),
        ("SWITCHBOARD_LAG_HOURS", "nan"),
        ("SWITCHBOARD_ALPHA", "inf"),
        ("SWITCHBOARD_MIN_SAMPLE_SIZE", "1.5"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env()


def test_the_cli_says_which_variable_is_wrong_and_exits_2(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")},
        "SWITCHBOARD_LAG_HOURS": "abc",
    }
    out = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "ingest", "--source", "send-logs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "SWITCHBOARD_LAG_HOURS" in out.stderr and "unexpected" not in out.stderr
    assert "Traceback" not in out.stderr
