"""The notebooks' sources are plain Python files (jupytext percent format) that ruff sees: each committed
.ipynb is what its source builds (``python notebooks/build.py``), and every notebook is driven by a widget."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
by_name = pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)


def _read(source: Path):
    return jupytext.read(source, fmt="py:percent")


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def _code(source: Path) -> list[ast.Module]:
    return [ast.parse(c.source) for c in _read(source).cells if c.cell_type == "code"]


def test_every_notebook_has_a_source():
    notebooks = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert len(SOURCES) >= 9 and notebooks == {p.stem for p in SOURCES}, \
        f"notebooks without a source: {notebooks - {p.stem for p in SOURCES}}; " \
        f"sources without a notebook: {({p.stem for p in SOURCES} - notebooks)}"


@by_name
def test_committed_notebook_is_built_from_its_source(source):
    committed = source.with_suffix(".ipynb")
    fix = f"run `python notebooks/build.py notebooks/{source.name}` (then `make notebooks` to store outputs)"
    assert committed.is_file(), f"{committed.name} is missing; {fix}"
    want, have = _cells(_read(source)), _cells(nbformat.read(committed, as_version=4))
    for i, (w, h) in enumerate(zip(want, have, strict=False)):
        assert h == w, f"{committed.name} cell {i} differs from {source.name}; {fix}\nnotebook: {h}\nsource:   {w}"
    assert len(have) == len(want), f"{committed.name} has {len(have)} cells, {source.name} {len(want)}; {fix}"


@by_name
def test_every_notebook_is_driven_by_a_widget(source):
    calls = [node for tree in _code(source) for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
             and node.func.value.id == "widgets"]
    assert calls, f"{source.name} calls no mmfeatures.widgets builder in a code cell"


@by_name
def test_one_parameters_cell_and_one_import_cell(source):
    cells = _read(source).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{source.name} has {len(tagged)} cells tagged 'parameters'; give it one"
    names = [t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)
             for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name)]
    assert names and all(n == n.lower() for n in names), f"{source.name}: parameters are lowercase config names: {names}"
    trees = _code(source)
    imports = [i for i, tree in enumerate(trees) for node in ast.walk(tree)
               if isinstance(node, ast.Import | ast.ImportFrom)]
    assert set(imports) == {0}, f"{source.name}: imports belong in its first code cell (found in code cells {imports})"


def test_sources_pass_ruff():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *map(str, SOURCES), str(NOTEBOOKS / "build.py")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
