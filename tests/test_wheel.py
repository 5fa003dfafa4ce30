"""Installable as a package, not only from a checkout.

The fast tests check that ``pyproject.toml`` ships every package folder under the one ``switchboard.``
namespace. The slow test builds the wheel from the working tree, installs it (``--no-deps``) into a
fresh venv that borrows only the third-party dependencies of the project's ``.venv`` (a ``.pth`` file,
so the editable install's finder never runs), and runs the demo's ingest from another folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import duckdb
import pytest

from tests.browser_util import free_port

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
PACKAGES: list[str] = PYPROJECT["tool"]["setuptools"]["packages"]


def _tracked_and_new_files() -> list[str]:
    """What a clone of this working tree holds (tracked, plus new files not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return [p for p in out if p and (REPO / p).is_file()]


def _shipped_source_files() -> dict[str, str]:
    """wheel path -> repository path, for every file under a mapped package folder."""
    folders = {folder: name for name, folder in PACKAGE_DIR.items()}
    shipped = {}
    for path in _tracked_and_new_files():
        top, _, rest = path.partition("/")
        if top in folders and rest and "__pycache__" not in rest:
            shipped[f"{folders[top].replace('.', '/')}/{rest}"] = path
    return shipped


def test_every_package_folder_is_listed_under_the_switchboard_namespace() -> None:
    listed = set(PACKAGES)
    for name, folder in PACKAGE_DIR.items():
        assert name == "switchboard" or name.startswith("switchboard."), name
        for init in sorted((REPO / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(REPO / folder).parts
            dotted = ".".join([name, *relative])
            assert dotted in listed, (
                f"{dotted} ({init.parent}) is missing from pyproject [tool.setuptools] packages"
            )


def _build_wheel(out: Path) -> Path:
    src = out / "src"
    for repo_path in _shipped_source_files().values():
        target = src / repo_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / repo_path).read_bytes())
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((REPO / name).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out / "dist"), str(src)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return next((out / "dist").glob("switchboard-*.whl"))


def _fresh_venv(root: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Third-party dependencies from the project's venv, appended AFTER the fresh site-packages; .pth
    # files in that folder (the editable install's finder) are not processed for an appended path.
    (site / "_project_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return root


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_demo_from_another_folder(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "build")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(set(_shipped_source_files()) - names)
    assert not missing, f"files the package needs are not in the wheel: {missing[:20]}"
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"switchboard"}, f"the wheel installs generic top-level names: {sorted(tops)}"

    venv = _fresh_venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_", "PYTHON"))}
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import switchboard.ingest, switchboard.data; print(switchboard.ingest.__file__)",
        ],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(venv)), f"imported from {where}, not from the installed wheel"

    data = tmp_path / "warehouse-here"
    out = subprocess.run(
        [
            str(venv / "bin" / "switchboard"),
            "demo",
            "--still",
            "--no-dashboard",
            "--messages",
            "3000",
            "--calls",
            "300",
            "--days",
            "10",
            "--sandbox-port",
            "0",
            "--data-dir",
            str(data),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    messages = con.execute("SELECT count(*) FROM message_facts").fetchone()[0]
    regions = con.execute("SELECT count(*) FROM message_facts WHERE region IS NOT NULL").fetchone()[0]
    codes = con.execute("SELECT count(*) FROM error_codes").fetchone()[0]
    assert messages >= 3000 * 0.95 and regions > 0 and codes > 0  # packaged CSVs were read
    assert not (elsewhere / "data").exists()  # --data-dir was honoured: nothing written to ./data
    assert "site-packages/data" not in out.stderr

    _dashboard_serves_from_the_wheel(venv, elsewhere, data, env)


def _dashboard_serves_from_the_wheel(venv: Path, cwd: Path, data: Path, env: dict[str, str]) -> None:
    """``switchboard dashboard`` finds app.py and its static files inside the installed package."""
    port, log = free_port(), cwd / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "switchboard"), "dashboard", "--port", str(port),
                                 "--host", "127.0.0.1", "--data-dir", str(data)],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # polls the server's own health endpoint: progress, not a guessed delay
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                time.sleep(0.2)
        with urllib.request.urlopen(base + "/app/static/world_110m.json", timeout=10) as r:
            assert r.status == 200 and r.read(1) == b"{"  # static files served from site-packages
    finally:  # the command and the streamlit server it started share this session: stop both
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
