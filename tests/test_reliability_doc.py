"""docs/reliability.md names the test that holds each case: every name it gives is a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_the_reliability_table_names_exists():
    text = (REPO / "docs" / "reliability.md").read_text()
    named = 0
    for cell in re.findall(r"\| ([^|]*`test_[^|]*) \|\s*$", text, flags=re.M):
        module = None
        for ref in re.findall(r"`([^`]+)`", cell):
            file, _, name = ref.rpartition("::")
            module = file or module  # `::name` continues the file named before it in the cell
            assert module and (REPO / "tests" / module).is_file(), ref
            assert name in defined_tests(REPO / "tests" / module), f"{ref}: no such test in tests/{module}"
            named += 1
    assert named >= 40
