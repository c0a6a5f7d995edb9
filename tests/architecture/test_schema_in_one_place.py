"""The column schema lives in polyinv/schema.py: no other package module quotes a column name."""

from __future__ import annotations

import ast
from pathlib import Path

from polyinv.schema import COMPOSITE_COLUMNS

PACKAGE = Path(__file__).resolve().parents[2] / "polyinv"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.add(id(first.value))
    return found


def quoted_columns(path: Path) -> list[str]:
    """``line name`` of every string constant (f-string parts included) equal to a column name."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    names = set(COMPOSITE_COLUMNS)
    return [
        f"{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in skip and node.value in names
    ]


def test_no_module_but_the_schema_quotes_a_column_name():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "schema.py"
        for hit in quoted_columns(path)
    ]
    assert not offenders, "column names belong in polyinv/schema.py:\n" + "\n".join(offenders)


def test_the_check_finds_quoted_columns_but_not_docstrings(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        '"""Mn in a docstring is fine."""\nx = frame["Mn"]\ny = f"{row[\'cBA_0\']:.2f}"\nz = "MMD7"\n'
    )
    assert sorted(quoted_columns(module)) == ["2 'Mn'", "3 'cBA_0'", "4 'MMD7'"]
