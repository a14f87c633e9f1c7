"""Layering rules (docs/design.md, "Layers and rooms"): hw/ never imports torch; the sw
reference never imports hardware code; no import cycles among the project's modules."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lqer_hw", "sw", "hw", "sim", "sweep")
# The reference: number formats and datapaths, defined once (NumPy), and its PyTorch twins.
REFERENCE = ["sw.mxint", "sw.blockmath", "sw.mxint_torch", "sw.lqer_reference", "sw.bittrue"]


def modules(package: str) -> list[str]:
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        found.append(info.name)
    return found


def imported_after(module: str) -> set[str]:
    code = f"import sys, importlib; importlib.import_module({module!r}); print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("module", modules("hw"))
def test_hw_never_imports_torch(module):
    assert "torch" not in imported_after(module)


@pytest.mark.parametrize("module", REFERENCE)
def test_reference_never_imports_hardware(module):
    loaded = imported_after(module)
    assert not {m for m in loaded if m == "amaranth" or m.startswith(("hw.", "sim.", "amaranth."))}


def _module_imports() -> dict[str, set[str]]:
    """Project module -> the project modules it imports at module level (not inside
    functions: a lazy import cannot form an import-time cycle)."""
    names = {m for p in PACKAGES for m in modules(p)}
    graph = {}
    for name in names:
        path = ROOT / Path(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text())
        found = set()
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            else:
                continue
            for target in targets:
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: every component of two or more is a cycle."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = _module_imports()
    assert len(graph) > 40
    assert _cycles(graph) == []


def test_nothing_imports_the_sweep():
    """sweep sits on top: it imports sw, hw and the cost model; none of them imports it, not even
    inside a function (lqer_hw.cli names it as a string)."""
    found = []
    for package in ("lqer_hw", "sw", "hw", "sim"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n == "sweep" or n.startswith("sweep.")]
    assert found == []


@pytest.mark.parametrize("module", ["lqer_hw.args", "lqer_hw.files", "sw.factor_files", "sw.datapath",
                                    "sw.qconfig", "sw.options", "sw.cli"])
def test_kit_file_format_and_options_never_import_torch(module):
    """Reading factors (sim --factors), the datapath rule and the CLI parsers need no torch."""
    assert "torch" not in imported_after(module)


@pytest.mark.parametrize("module", ["lqer_hw.args", "lqer_hw.files"])
def test_the_kit_imports_no_project_package(module):
    loaded = imported_after(module)
    assert not {m for m in loaded if m.split(".")[0] in ("hw", "sw", "sim", "amaranth")}
