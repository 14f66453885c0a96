"""Shape rules of the code base (issue 9): short functions, no algorithm names outside
``algorithms/``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "specbench"
MAX_LINES = 80


def test_no_function_is_over_80_lines_without_a_stated_reason():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if lines > MAX_LINES and "long:" not in doc:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines})")
    assert not long, ("functions over 80 lines (split them, or say why in the docstring with "
                      f"'long: <reason>'): {long}")


def test_algorithm_names_appear_only_inside_algorithms():
    from specbench.algorithms import REGISTRY

    pattern = re.compile("|".join(f'"{re.escape(name)}"' for name in REGISTRY))
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "algorithms":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, found
