"""Issue 14: every value in ingest SQL is bound. Only identifiers and SQL fragments that are constants of the
code may be formatted into the text; run ids, paths, source names, accounts, windows and settings are
parameters. This reads the ingest modules' source: an f-string SQL statement that formats a value-like name,
or a quoting helper (the old ``_quote(path)``), fails it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INGEST = Path(__file__).resolve().parents[1] / "ingest"
VALUE_NAMES = {"run_id", "path", "paths", "files", "source", "location", "account", "account_sid", "sid", "since",
               "until", "lo", "hi", "lag", "limit", "MEMORY_LIMIT", "directory", "folder", "target", "glob",
               "raw", "reason", "struct", "conversion_window_minutes"}
QUOTERS = {"_quote", "_q", "_list_literal"}
# export.views_sql writes CREATE VIEW text for other engines: a view definition cannot hold a parameter
ALLOWED = {("export.py", "views_sql")}


def _names(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or (path.name, func.name) in ALLOWED:
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in QUOTERS:
                found.append(f"{path.name}:{node.lineno} {func.name}: quotes a value into SQL ({node.func.id})")
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if not any(k in text for k in ("SELECT", "INSERT", "DELETE", "UPDATE", "CREATE", "COPY", "SET ")):  # SQL here is upper case
                continue
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    bad = _names(value.value) & VALUE_NAMES
                    if bad:
                        found.append(f"{path.name}:{node.lineno} {func.name}: formats {sorted(bad)} into SQL")
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in INGEST.glob("*.py")))
def test_ingest_sql_binds_every_value(module: str) -> None:
    assert _violations(INGEST / module) == []


def test_the_check_sees_a_formatted_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('def f(con, run_id, path):\n'
                   '    con.execute(f"DELETE FROM t WHERE run = {int(run_id)}")\n'
                   '    con.execute(f"SELECT * FROM read_json({_quote(path)})")\n')
    assert len(_violations(bad)) == 3  # the run id, the quoted path, and the quoting helper itself
