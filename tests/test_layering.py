"""The import graph points one way, down (see docs/ARCHITECTURE.md and tests/import_graph.py).

``core`` imports no other part; sandbox, ingest, sender and analytics import only ``core``; the
dashboard imports analytics, ``sender.api`` and core; ``switchboard/`` (cli, demo, docs) is the top
and nothing imports it. Every import counts, including those inside functions. Nothing, not even a
test or a benchmark, imports a part by its bare old name (``ingest``, ``analytics`` …).
"""

from __future__ import annotations

import ast

import pytest

from tests import import_graph as ig


@pytest.fixture(scope="module")
def edges() -> list[ig.Edge]:
    return ig.graph()


def test_no_module_imports_a_layer_above_or_beside_it(edges: list[ig.Edge]) -> None:
    broken = [e for e in edges if ig.violation(e) and (e.path, e.target) not in ig.WHITELIST]
    assert not broken, "imports that break the layering:\n" + "\n".join(
        f"  {e.path}:{e.line} imports {e.target}: {ig.violation(e)}" for e in broken
    )


def test_every_whitelisted_exception_is_still_needed(edges: list[ig.Edge]) -> None:
    present = {(e.path, e.target) for e in edges if ig.violation(e)}
    stale = set(ig.WHITELIST) - present
    assert not stale, f"remove these from tests/import_graph.WHITELIST, they are fixed: {sorted(stale)}"


def test_nothing_imports_the_top(edges: list[ig.Edge]) -> None:
    upward = [e for e in edges if e.target_layer == ig.TOP and e.source_layer != ig.TOP]
    assert not upward, [f"{e.path}:{e.line} {e.target}" for e in upward]


def test_analytics_takes_parameters_not_settings(edges: list[ig.Edge]) -> None:
    """Analysis gets the plan and the minimum sample size from its caller, so it reads no settings."""
    reading = [
        e for e in edges if e.source_layer == "analytics" and e.target.startswith("switchboard.core.settings")
    ]
    assert not reading, [f"{e.path}:{e.line}" for e in reading]


def test_no_bare_old_names_anywhere() -> None:
    """Packaged modules, tests and benchmarks all import ``switchboard.<part>``."""
    bare = []
    for folder in (*ig.LAYERS, "tests", "bench"):
        for file in sorted((ig.REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                bare += [
                    f"{file.relative_to(ig.REPO)}:{node.lineno} {n}"
                    for n in names
                    if n.split(".")[0] in ig.PARTS
                ]
    assert not bare, bare


@pytest.mark.parametrize(
    ("path", "source", "why"),
    [
        (
            "core/phones.py",
            "def f():\n    from switchboard.ingest import pipeline\n",
            "core may not import ingest",
        ),
        ("ingest/x.py", "import switchboard.sender.runner\n", "ingest may not import sender"),
        (
            "sandbox/x.py",
            "from switchboard.analytics.filters import Filters\n",
            "sandbox may not import analytics",
        ),
        ("analytics/x.py", "from switchboard import cli\n", "analytics may not import switchboard"),
        ("dashboard/x.py", "from switchboard.sender import runner\n", "only through switchboard.sender.api"),
        ("dashboard/x.py", "from switchboard.ingest import warehouse\n", "dashboard may not import ingest"),
        ("sender/x.py", "from ..analytics import filters\n", "sender may not import analytics"),
    ],
)
def test_the_rule_catches_upward_and_sideways_imports(path: str, source: str, why: str) -> None:
    found = [ig.violation(e) for e in ig.edges_of(path, source)]
    assert any(v and why in v for v in found), found


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("dashboard/x.py", "from switchboard.sender import api\n"),
        ("dashboard/x.py", "from switchboard.sender.api import USER_ERRORS\n"),
        ("switchboard/demo.py", "def run():\n    from switchboard.dashboard.cli import launch\n"),
        ("ingest/x.py", "from switchboard.core import phones\nfrom . import runs\n"),
    ],
)
def test_the_rule_allows_downward_imports(path: str, source: str) -> None:
    assert not [ig.violation(e) for e in ig.edges_of(path, source) if ig.violation(e)]


def test_the_graph_is_read_from_every_layer(edges: list[ig.Edge]) -> None:
    """A guard against a vacuous pass: each part is scanned and imports something."""
    assert {e.source_layer for e in edges} >= {
        "core",
        "sandbox",
        "ingest",
        "sender",
        "analytics",
        "dashboard",
        ig.TOP,
    }
