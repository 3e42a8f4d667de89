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


# Data flows one way, as a graph: a core chain, then a presentation branch and an orchestration branch on top.
CORE = ["version", "types", "errors", "disk", "encoders", "datasets", "activations", "sae", "emojiclip", "analysis",
        "toy"]
ALLOWED = {name: set(CORE[:i]) for i, name in enumerate(CORE)}      # a core layer reads only lower core layers
ALLOWED["__init__"] = set(CORE)                                     # the public facade
ABOVE = set(CORE) | {"__init__"}
ALLOWED.update({"plotting": ABOVE, "dashboards": ABOVE, "neuronpedia": ABOVE,          # presentation and export
                "widgets": ABOVE | {"plotting", "dashboards"}, "pipeline": ABOVE | {"plotting", "dashboards", "neuronpedia"}})
ALLOWED["report"] = ALLOWED["pipeline"] | {"pipeline"}
ALLOWED["demo"] = ALLOWED["report"] | {"report"}
ALLOWED["cli"] = ALLOWED["demo"] | {"demo"}
ALLOWED["__main__"] = {"cli"}
TOP = set(ALLOWED)                                                  # scripts and notebooks may use all of it


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str) -> str:
    """The mmfeatures module a dotted name refers to (a submodule if one exists, else its package)."""
    parts = name.split(".")
    while parts:
        base = ROOT.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def _imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every mmfeatures import, at any depth (functions included)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mmfeatures":
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "mmfeatures"]
    return out


def _targets(module: str, names: list[str]) -> list[str]:
    """Modules an import statement reaches: ``from mmfeatures import plotting`` is the module plotting, while
    ``from mmfeatures import extract`` reaches the facade (mmfeatures/__init__)."""
    found = [_resolve(f"{module}.{n}") for n in names if _resolve(f"{module}.{n}") == f"{module}.{n}"]
    rest = [n for n in names if _resolve(f"{module}.{n}") != f"{module}.{n}"]
    return found + ([_resolve(module)] if rest or not names else [])


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "mmfeatures").rglob("*.py"):
        me = _module_of(path)
        edges = graph.setdefault(me, set())
        for module, names in _imports(path.read_text()):
            edges.update(t for t in _targets(module, names) if t != me)
    cli = (ROOT / "mmfeatures" / "cli.py").read_text()                 # the command table names modules in strings
    graph["mmfeatures.cli"].update(_resolve(ref) for ref in re.findall(r'"(mmfeatures[.\w]*):\w+"', cli))
    return graph


def _private_names(source: str, me: str) -> list[str]:
    bad = []
    for module, names in _imports(source):
        for name in names:
            if name.startswith("_") and not name.startswith("__") and _unit(_resolve(module)) != _unit(me):
                bad.append(f"{me} imports {module}.{name}")
    return bad


def test_imports_flow_one_way():
    """Each unit imports only the units it may (see ALLOWED), following ``from mmfeatures import ...``, the
    command table's module strings, scripts/ and the notebook sources."""
    bad = []
    for me, targets in _graph().items():
        for t in targets:
            if _unit(t) != _unit(me) and _unit(t) not in ALLOWED[_unit(me)]:
                bad.append(f"{me} imports {t}")
    for path in [*(ROOT / "scripts").glob("*.py"), *(ROOT / "notebooks").glob("[0-9]*.py"),
                 *(ROOT / "benchmarks").glob("*.py")]:
        for module, names in _imports(path.read_text()):
            bad += [f"{path.name} imports {t}" for t in _targets(module, names) if _unit(t) not in TOP]
    assert not bad, bad
    assert set(ALLOWED) >= {_unit(m) for m in _graph()}, "a new top-level module needs a place in ALLOWED"


def test_no_import_cycles():
    """No module reaches itself through imports (function-level imports included)."""
    graph = _graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):                                                     # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_no_private_name_crosses_a_package_and_disk_does_not_import_the_package():
    bad = []
    for path in [*(ROOT / "mmfeatures").rglob("*.py"), *(ROOT / "scripts").glob("*.py"),
                 *(ROOT / "notebooks").glob("[0-9]*.py")]:
        me = _module_of(path) if path.is_relative_to(ROOT / "mmfeatures") else f"script.{path.stem}"
        bad += _private_names(path.read_text(), me)
    assert not bad, bad
    assert "mmfeatures" not in _graph()["mmfeatures.disk"], "disk.py must not import the package's __init__"


def test_the_readme_is_short_and_starts_with_the_two_commands():
    """Issue 33: a newcomer reads it in two minutes; the history is in CHANGELOG.md, the details in docs/."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 150, len(lines)
    head = "\n".join(lines[:40])
    assert "make demo" in head and "make test" in head


def test_every_relative_link_in_the_docs_resolves():
    import re

    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages
              for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
              if not target.startswith(("http://", "https://", "mailto:")) and not (page.parent / target).exists()]
    assert not broken, broken


SKIP = {"version", "types", "errors", "disk"}
"""Units every unit may import, left out of docs/architecture.md's import table."""


def test_the_import_table_in_the_architecture_doc_is_the_code():
    """docs/architecture.md's table of what each unit imports (besides version, types, errors and disk) lists
    exactly the edges the code has. Issue 33: 4 of its rows had drifted."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("| unit | imports (besides", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    units = set(ALLOWED)
    documented = {}
    for row in table:
        who, what = row.strip("|").split("|", 1)
        for unit in re.findall(r"`([\w.]+)`", who):
            documented[unit] = {u for u in re.findall(r"(?<!`)`([\w.]+)`(?!`)", what) if u in units} - SKIP
    actual: dict[str, set[str]] = {}
    for me, targets in _graph().items():
        actual.setdefault(_unit(me), set()).update(_unit(t) for t in targets)
    wrong = {u: (sorted(documented.get(u, set())), sorted(actual.get(u, set()) - SKIP - {u}))
             for u in units if documented.get(u, set()) != actual.get(u, set()) - SKIP - {u}}
    assert not wrong, f"unit: (documented, actual) {wrong}"


def test_the_code_passes_the_linter():
    """`make lint` in the suite, so CI runs it (ruff with the project's rules; line length is not enforced yet)."""
    import subprocess
    import sys

    paths = ["mmfeatures", "tests", "benchmarks", "scripts", "data", *sorted(map(str, ROOT.glob("notebooks/*.py")))]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
