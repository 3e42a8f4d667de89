"""Layout, packaging and the one-way flow of imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for _extra, reqs in project["optional-dependencies"].items():
        declared |= {_name(r) for r in reqs if not r.startswith("mmfeatures")}
    conda_names = {"torch": "pytorch"}  # conda's name for the same package
    env = (ROOT / "environment.yml").read_text()
    pip_section = env.split("- pip:", 1)[1]
    pip_names = {_name(line.split("- ", 1)[1]) for line in pip_section.splitlines()
                 if line.strip().startswith("- ") and not line.strip().startswith("- -e")}
    conda_section = env.split("- pip:", 1)[0]
    conda = {_name(line.split("- ", 1)[1]) for line in conda_section.splitlines() if line.strip().startswith("- ")}
    env_names = pip_names | {k for k, v in conda_names.items() if v in conda} | (conda & declared)
    assert declared - env_names == set(), f"in pyproject but not environment.yml: {declared - env_names}"
    assert pip_names - declared == set(), f"in environment.yml but not pyproject: {pip_names - declared}"


def test_extras_and_layout():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"notebooks", "offline-models", "test", "dev", "openclip"} <= set(project["optional-dependencies"])
    for path in ["mmfeatures", "notebooks", "data", "tests", "benchmarks", "docs", "environment.yml",
                 "Makefile", "README.md", ".ci/run"]:
        assert (ROOT / path).exists(), path
    assert "make test" in (ROOT / ".ci/run").read_text()


# Data flows one way; a module may import only from its own layer or lower ones.
LAYERS = ["types", "errors", "disk", "encoders", "datasets", "activations", "sae", "emojiclip", "analysis", "recipes", "toy",
          "plotting", "widgets", "jobs", "report", "demo", "cli", "__main__"]


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.startswith("mmfeatures.") else module
    return LAYERS.index(top) if top in LAYERS else -1


def test_imports_flow_one_way():
    bad = []
    for path in (ROOT / "mmfeatures").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts
        if parts[-1] == "__init__" and len(parts) == 2:
            continue  # the top-level facade re-exports from every layer
        me = _layer(".".join(parts[:2]) if len(parts) > 1 else parts[0])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("mmfeatures.") and _layer(name) > me:
                    bad.append(f"{rel} imports {name}")
    assert not bad, bad
