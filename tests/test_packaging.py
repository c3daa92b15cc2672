"""The package's shape: every folder installed under ``gmg``, imports flowing one way, no circles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("training", "interp", "probes", "experiments")
# what each top folder may import (DESIGN.md section 6: data flows one way)
ALLOWED = {"training": {"training"}, "interp": {"training", "interp"}, "probes": {"training", "interp", "probes"},  # activations are read through interp.hooks
           "experiments": set(LAYERS)}


def modules() -> dict[str, Path]:
    out = {}
    for top in LAYERS:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("gmg", *parts)).removesuffix(".__init__")
            out[name] = path
    return out


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The gmg modules ``path`` imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gmg."):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gmg.")}
    return {m for m in found if m in known}


def test_every_package_folder_is_installed_under_gmg():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(("gmg", *p.parent.relative_to(ROOT).parts)) for top in LAYERS for p in (ROOT / top).rglob("__init__.py")}
    assert folders == listed


def test_no_module_imports_a_top_level_name_that_is_not_under_gmg():
    bad = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            bad += [f"{name}: {m}" for m in mods if m.split(".")[0] in LAYERS]
    assert not bad


def test_imports_flow_one_way_between_the_four_packages():
    mods = modules()
    wrong = [f"{a} -> {b}" for a, path in mods.items() for b in imports_of(path, set(mods))
             if b.split(".")[1] not in ALLOWED[a.split(".")[1]]]
    assert not wrong


def test_no_import_circles():
    mods = modules()
    graph = {m: imports_of(p, set(mods)) - {m} for m, p in mods.items()}
    # a package's __init__ is imported with each of its modules: not an edge of the design
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d] if d in stack else [m, d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


@pytest.mark.parametrize("name", ["training/ppo.py"])
def test_ppo_holds_ppo_only(name):
    assert len((ROOT / name).read_text().splitlines()) <= 450


def test_readme_is_a_readme():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.slow
def test_the_built_wheel_installs_only_gmg(tmp_path):
    """Built and installed (without dependencies) into a fresh venv: ``gmg.*`` imports from
    any folder, and nothing named ``training`` or ``experiments`` lands at the top level."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("gmg_toolkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"gmg", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "gmg/experiments/report/template.html" in names
    assert any(n.startswith("gmg/experiments/zoo/yellow-line/") and n.endswith(".safetensors") for n in names)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    py = tmp_path / "venv" / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    ok = subprocess.run([py, "-c", "import gmg.training, gmg.interp, gmg.probes, gmg.experiments"], cwd=tmp_path)
    assert ok.returncode == 0
    for top in LAYERS:
        gone = subprocess.run([py, "-c", f"import {top}"], cwd=tmp_path, capture_output=True, text=True)
        assert gone.returncode == 1 and "No module named" in gone.stderr


def _sources() -> dict[str, Path]:
    """The package's modules and the scripts that use it."""
    return {**modules(), **{f"scripts.{p.stem}": p for p in (ROOT / "scripts").glob("*.py")}}


def private_imports(name: str, tree: ast.AST) -> list[str]:
    """``from gmg.X import _name`` (and ``M._name`` on an imported gmg module ``M``) where X is
    another module than ``name``: a private name read across modules."""
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gmg."):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__") and node.module != name:
                    found.append(f"{name}: from {node.module} import {a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            aliases |= {a.asname: a.name for a in node.names if a.name.startswith("gmg.") and a.asname}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and aliases[node.value.id] != name and aliases[node.value.id] in modules()):
            found.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_is_imported_across_modules():
    bad = [f for name, path in _sources().items() for f in private_imports(name, ast.parse(path.read_text()))]
    assert not bad, bad


def maze_env_reaches(name: str, tree: ast.AST) -> list[str]:
    """Attribute assignments (``env.x = ...``, ``setattr(env, ...)``, ``env.x[...] = ...``) and
    private calls (``env._f()``) on a MazeEnv: a name bound to ``MazeEnv(...)``, annotated
    ``MazeEnv`` or named ``env`` / ``*_env``. A static approximation: enough to keep
    evaluation, vector fields and the rest on MazeEnv's public methods."""
    found = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module))]:
        envs = {"env"} | {a.arg for a in getattr(getattr(fn, "args", None), "args", [])
                          if a.arg.endswith("_env") or (a.annotation is not None and "MazeEnv" in ast.unparse(a.annotation))}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and "MazeEnv" in ast.unparse(node.value.func):
                envs |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                while isinstance(t, ast.Subscript):
                    t = t.value
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in envs:
                    found.append(f"{name}:{node.lineno}: {ast.unparse(t)} = ...")
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id == "setattr" and node.args and isinstance(node.args[0], ast.Name) \
                        and node.args[0].id in envs:
                    found.append(f"{name}:{node.lineno}: setattr({node.args[0].id}, ...)")
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in envs \
                        and f.attr.startswith("_") and not f.attr.startswith("__"):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(f)}()")
    return sorted(set(found))


def test_no_code_outside_training_assigns_a_maze_env_attribute():
    bad = [f for name, path in _sources().items() if not name.startswith("gmg.training")
           for f in maze_env_reaches(name, ast.parse(path.read_text()))]
    assert not bad, bad


def test_the_static_checks_catch_what_they_are_for():
    """Each check flags the pattern it forbids, so an empty list above means something."""
    code = ("from gmg.training.levels import _hidden\nimport gmg.training.env as E\nE._x\n"
            "def f(env):\n    env.bank = 1\n    env._render(2)\n"
            "def g():\n    e = MazeEnv(1)\n    setattr(e, 'row', 0)\n    e.static[0] = 1\n")
    tree = ast.parse(code)
    assert len(private_imports("gmg.experiments.x", tree)) == 2
    assert len(maze_env_reaches("gmg.experiments.x", tree)) == 4
    assert private_imports("gmg.training.levels", ast.parse("from gmg.training.levels import _own")) == []


def long_functions(tree: ast.AST, limit: int = 100) -> list[str]:
    """Functions (methods included) longer than ``limit`` lines, decorators and docstring counted."""
    return [f"{n.name}: {n.end_lineno - n.lineno + 1} lines" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


@pytest.mark.parametrize("folder", ["experiments/report", "experiments/analysis", "experiments/stages"])
def test_no_function_over_100_lines_where_the_study_reads_and_renders(folder):
    long = {str(p.relative_to(ROOT)): found for p in sorted((ROOT / folder).rglob("*.py"))
            if (found := long_functions(ast.parse(p.read_text())))}
    assert not long, long
    assert long_functions(ast.parse("def f():\n" + "    x = 1\n" * 100)) == ["f: 101 lines"]
