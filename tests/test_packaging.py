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
