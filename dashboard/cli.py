"""``switchboard dashboard``: run the Streamlit app on the published warehouse."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from switchboard.core.resources import package_dir
from switchboard.core.settings import Settings

APP = package_dir("switchboard.dashboard") / "app.py"  # installed as files: streamlit runs a script path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8501, help="port to serve the dashboard on")
    parser.add_argument("--host", default="localhost", help="address to bind (0.0.0.0 to share on the network)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding warehouse.duckdb (default: data/)")


def streamlit_command(port: int, host: str = "localhost") -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", host,
        "--server.enableStaticServing", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",  # no "Deploy" button: an internal tool
    ]


def launch(port: int, host: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the Streamlit server in the working directory (its .streamlit/secrets.toml, if any, is the user's).

    Every option the dashboard needs is on the command line, so an installed wheel needs no config file.
    """
    return subprocess.Popen(streamlit_command(port, host), env=env)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    env = dict(os.environ, SWITCHBOARD_DATA_DIR=str(settings.data_dir))
    if not settings.warehouse_path.exists():
        print(f"No warehouse at {settings.warehouse_path} yet: the dashboard will say so. "
              "Run 'switchboard ingest' (or 'make demo') to load data.")
    print(f"Dashboard: http://{host_for_url(args.host)}:{args.port}   (Ctrl-C to stop)")
    proc = launch(args.port, args.host, env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return 0


def host_for_url(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "") else host
