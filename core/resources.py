"""Paths to the data shipped inside the package, through ``importlib.resources``.

Code never builds paths from ``__file__`` up into the source tree: an installed wheel has no
source tree, and its data lives wherever the package was installed (or inside a zip).
``read_text`` / ``open_binary`` work in both cases; ``as_path`` gives a real file path for the
few callers (DuckDB, ``streamlit run``) that need one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

DATA_PACKAGE = "switchboard.data"  # country_regions.csv, error_codes.csv


def resource(package: str, name: str) -> Traversable:
    """The shipped file ``name`` of ``package`` (e.g. ``resource("switchboard.data", "error_codes.csv")``)."""
    return resources.files(package).joinpath(name)


def data_file(name: str) -> Traversable:
    """A file of the packaged ``switchboard.data`` folder."""
    return resource(DATA_PACKAGE, name)


def read_text(package: str, name: str) -> str:
    return resource(package, name).read_text(encoding="utf-8")


@contextlib.contextmanager
def as_path(package: str, name: str) -> Iterator[Path]:
    """A real filesystem path to a shipped file for as long as the ``with`` block runs."""
    with resources.as_file(resource(package, name)) as path:
        yield Path(path)


def package_dir(package: str) -> Path:
    """The folder of an installed (not zipped) package: ``streamlit run`` needs a real script path."""
    root = resources.files(package)
    if not isinstance(root, Path):  # pragma: no cover - zip imports are not supported for the dashboard
        raise RuntimeError(f"{package} is not installed as files on disk; reinstall without zip")
    return root
