"""The import graph between Switchboard's layers, read with ``ast`` (function-level imports included).

Print it for the working tree, or for any commit (``--rev``), from the repository root:

    .venv/bin/python -m tests.import_graph              # the house as it is
    .venv/bin/python -m tests.import_graph --rev aed4e16  # before issue 14 (bare top-level names)

A *layer* is a top-level folder of the repository (``core/`` is ``switchboard.core``, ``ingest/`` is
``switchboard.ingest``, ``switchboard/`` is the top: cli, demo, docs). The rule, checked by
tests/test_layering.py:

* ``core`` imports no other layer;
* ``sandbox``, ``ingest``, ``sender`` and ``analytics`` import only ``core``;
* ``alerts`` imports ``core`` and ``analytics``;
* ``dashboard`` imports ``core``, ``analytics``, ``alerts`` and the sender's public API ``switchboard.sender.api``;
* ``switchboard`` (cli, demo, docs) is the top: it may import anything, and nothing imports it.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("core", "sandbox", "ingest", "sender", "analytics", "alerts", "dashboard", "data", "examples")
TOP = "switchboard"
LAYERS = (*PARTS, TOP)
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "data": frozenset(),
    "examples": frozenset(),
    "sandbox": frozenset({"core"}),
    "ingest": frozenset({"core"}),
    "sender": frozenset({"core"}),
    "analytics": frozenset({"core"}),
    "alerts": frozenset({"core", "analytics"}),  # issue 17: rules over the analytics, state in the ingest DB
    "dashboard": frozenset({"core", "analytics", "alerts", "sender"}),  # sender: only switchboard.sender.api
    TOP: frozenset(LAYERS),
}
SENDER_PUBLIC = "switchboard.sender.api"
# Temporary exceptions, each with the reason; the test fails when one is no longer needed.
WHITELIST: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    module: str  # importing module, e.g. switchboard.ingest.pipeline
    path: str  # its file, relative to the repository
    line: int
    target: str  # the imported module as written (absolute), e.g. switchboard.core.settings
    source_layer: str
    target_layer: str | None  # None: not a Switchboard module (stdlib, third party)
    bare: bool  # imported by a bare old name (``ingest.x``, ``analytics``) instead of switchboard.*


def layer_of_path(path: str) -> str | None:
    first = path.split("/", 1)[0]
    return first if first in LAYERS else None


def module_of_path(path: str) -> str:
    parts = path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts if parts[0] == TOP else [TOP, *parts])


def layer_of_module(name: str) -> tuple[str | None, bool]:
    """(layer, bare) of an imported module name; layer None for anything outside Switchboard."""
    parts = name.split(".")
    if parts[0] == TOP:
        if len(parts) > 1 and parts[1] in PARTS:
            return parts[1], False
        return TOP, False
    if parts[0] in PARTS:
        return parts[0], True
    return None, False


def _targets(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Absolute module names a node imports (``from a import b`` may import the module ``a.b``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join([*base, node.module] if node.module else base)
        else:
            stem = node.module or ""
        for alias in node.names:
            yield f"{stem}.{alias.name}" if stem in (TOP, f"{TOP}.sender") or stem in PARTS else stem


def edges_of(path: str, source: str) -> list[Edge]:
    layer = layer_of_path(path)
    if layer is None:
        return []
    module, is_package = module_of_path(path), path.endswith("__init__.py")
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for target in _targets(node, module, is_package):
            target_layer, bare = layer_of_module(target)
            found.append(Edge(module, path, node.lineno, target, layer, target_layer, bare))
    return found


def violation(edge: Edge) -> str | None:
    """Why an edge breaks the layering (whatever name it was imported by), or None."""
    if edge.target_layer is None or edge.target_layer == edge.source_layer:
        return None
    if edge.target_layer not in ALLOWED[edge.source_layer]:
        return f"{edge.source_layer} may not import {edge.target_layer}"
    target = edge.target if not edge.bare else f"{TOP}.{edge.target}"
    if (
        edge.source_layer == "dashboard"
        and edge.target_layer == "sender"
        and not target.startswith(SENDER_PUBLIC)
    ):
        return f"the dashboard uses the sender only through {SENDER_PUBLIC}"
    return None


def _files(rev: str | None) -> Iterator[tuple[str, str]]:
    if rev is None:
        for layer in LAYERS:
            for file in sorted((REPO / layer).rglob("*.py")):
                yield file.relative_to(REPO).as_posix(), file.read_text(encoding="utf-8")
        return
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    for path in listing:
        if path.endswith(".py") and layer_of_path(path):
            text = subprocess.run(
                ["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
            ).stdout
            yield path, text


def graph(rev: str | None = None) -> list[Edge]:
    """Every import of every packaged module, at ``rev`` or in the working tree."""
    return [edge for path, text in _files(rev) for edge in edges_of(path, text)]


def render(edges: list[Edge], title: str, *, verbose: bool = False) -> str:
    """Layer -> layer edges with how many modules import that way, then each import that breaks the rule."""
    counts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in edges:
        if e.target_layer and e.target_layer != e.source_layer:
            counts[(e.source_layer, e.target_layer)].add(e.module)
    lines = [title, "layer -> layer (number of importing modules)"]
    for (src, dst), modules in sorted(counts.items(), key=lambda kv: (LAYERS.index(kv[0][0]), kv[0][1])):
        bad = any(violation(e) for e in edges if (e.source_layer, e.target_layer) == (src, dst))
        lines.append(f"  {src:<11} -> {dst:<11} {len(modules):>3}{'   BREAKS THE LAYERING' if bad else ''}")
    broken = sorted({(e.path, e.line, e.target, violation(e)) for e in edges if violation(e)})
    bare = sorted({(e.path, e.line, e.target) for e in edges if e.bare})
    lines.append(f"{len(broken)} import(s) break the layering" + (":" if broken else "."))
    lines += [f"  {path}:{line}  {target}  ({why})" for path, line, target, why in broken]
    lines.append(
        f"{len(bare)} import(s) use a bare old name (ingest, analytics, …)"
        + (":" if bare and verbose else "." if not bare else " (--verbose lists them).")
    )
    if verbose:
        lines += [f"  {path}:{line}  {target}" for path, line, target in bare]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the import graph between Switchboard's layers.")
    parser.add_argument("--rev", default=None, help="a git commit (default: the working tree)")
    parser.add_argument("--verbose", action="store_true", help="also list every import by a bare old name")
    args = parser.parse_args(argv)
    edges = graph(args.rev)
    print(render(edges, f"Import graph at {args.rev or 'the working tree'}", verbose=args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
