"""Small functions (house rule, issue 14): nothing in sender/ or the Send page is over ~60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60


def test_sender_and_send_page_functions_stay_small() -> None:
    files = sorted((ROOT / "sender").glob("*.py")) + [ROOT / "dashboard" / "app_pages" / "send_campaign.py"]
    long = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > LIMIT:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
