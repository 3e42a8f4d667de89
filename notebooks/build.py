"""Writes each notebook ``NN_name.ipynb`` from its source ``NN_name.py`` (jupytext percent format).

The ``.py`` files are the sources: edit them, not the ``.ipynb``. The notebooks come out without outputs;
``make notebooks`` runs this and then executes them in place, so that GitHub shows their outputs.

    python notebooks/build.py                                  # every notebook
    python notebooks/build.py notebooks/03_multilingual_features.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def sources() -> list[Path]:
    """Every notebook source: the ``NN_name.py`` files beside this one."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def notebook(source: Path) -> nbformat.NotebookNode:
    """``source`` as a notebook: its cells with their tags only (no jupytext layout hints), ids by position so a
    rebuild changes no ids, and no outputs."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {"kernelspec": dict(KERNELSPEC)}
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": list(tags)} if tags else {}
        cell.id = f"cell-{i:02d}"
    return nb


def build(source: Path) -> Path:
    target = Path(source).with_suffix(".ipynb")
    nbformat.write(notebook(Path(source)), target)
    return target


if __name__ == "__main__":
    for path in [Path(arg) for arg in sys.argv[1:]] or sources():
        print(f"wrote {build(path)}")
