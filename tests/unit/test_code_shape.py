"""The shape rules of docs/interfaces.md, enforced: short functions, small classes, and no
pointer to material that is not in this repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 400
# Paths of the team's reference folder, which a reader of the repository cannot open.
OUTSIDE = re.compile(r"\.\./shared|shared/docs|shared/data|perf-baseline\.md|glance-store\.md")


def _python_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "egg-info" not in p.parts)


def _lengths(kind: type | tuple[type, ...]) -> list[tuple[int, str]]:
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, kind):
                assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return found


def test_the_checker_sees_the_sources() -> None:
    assert len(_python_files()) > 10
    assert any("Store" in name for _, name in _lengths(ast.ClassDef))


def test_no_function_over_60_lines() -> None:
    long = [(n, name) for n, name in _lengths((ast.FunctionDef, ast.AsyncFunctionDef))]
    assert [x for x in long if x[0] > MAX_FUNCTION_LINES] == []


def test_no_class_over_400_lines() -> None:
    assert [x for x in _lengths(ast.ClassDef) if x[0] > MAX_CLASS_LINES] == []


@pytest.mark.parametrize("top", ["src", "tests", "benchmarks", "docs", "README.md"])
def test_nothing_points_outside_the_repository(top: str) -> None:
    base = ROOT / top
    files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
    hits = []
    for path in files:
        if path.suffix not in (".py", ".md", ".rst", ".pyx", ".pyi", ".txt", ".cfg", ".ini"):
            continue
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert hits == []
