"""The layout is the architecture: checks that keep it so.

Data flows one way (cli -> plan -> engine [scheduling beneath] -> results -> analysis; backends and
zoo beside), so no package imports one that imports it back; Ray lives in `engine/` only, torch in
`backends/` and `zoo/` only; modules and functions stay small enough to read.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harness"
# Numerical kernels may run long where splitting them would hide the algorithm (none needs it now).
KERNELS: set[str] = set()
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _unit(path: Path) -> str:
    """The package a module belongs to (`engine`), or its own name for a top-level module."""
    rel = path.relative_to(PACKAGE).parts
    return rel[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file, including inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _modules():
        me = _unit(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "harness" and len(parts) > 1 and (PACKAGE / parts[1]).exists() | (PACKAGE / f"{parts[1]}.py").exists():
                if parts[1] != me:
                    graph[me].add(parts[1])
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_packages_form_a_one_way_graph():
    assert _cycle(_package_graph()) is None, f"package circle: {' -> '.join(_cycle(_package_graph()))}"


def test_cycle_finder_finds_a_circle():
    assert _cycle({"plan": {"results"}, "results": {"plan"}}) == ["plan", "results", "plan"]
    assert _cycle({"cli": {"plan"}, "plan": {"errors"}}) is None


def test_the_flow_goes_downstream():
    graph = _package_graph()
    # Later stages never import earlier ones' drivers: nothing after the engine imports it, and
    # the analysis reads Parquet only (no plan, no engine, no model code).
    for later in ("results", "analysis", "plan", "scheduling", "backends"):
        assert "engine" not in graph[later], later
        assert "cli" not in graph[later], later
    assert not graph["analysis"] & {"plan", "engine", "backends", "scheduling", "zoo"}, graph["analysis"]
    assert not graph["scheduling"] - {"errors", "checkpoint"}, graph["scheduling"]


@pytest.mark.parametrize("library, allowed", [("ray", {"engine"}), ("torch", {"backends", "zoo"})])
def test_heavy_libraries_stay_in_their_packages(library, allowed):
    offenders = [str(p.relative_to(PACKAGE.parent)) for p in _modules()
                 if _unit(p) not in allowed and any(n == library or n.startswith(library + ".") for n in _imports(p))]
    assert not offenders, f"`import {library}` outside {sorted(allowed)}: {offenders}"


def test_modules_and_functions_stay_small():
    long = []
    for path in _modules():
        source = path.read_text()
        rel = str(path.relative_to(PACKAGE.parent))
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{rel}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in KERNELS:
                    long.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long


def test_the_package_map_names_every_package():
    import harness

    doc = harness.__doc__ or ""
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    missing = {p for p in packages if f"{p}/" not in doc}
    assert not missing, f"harness/__init__.py's map does not mention {sorted(missing)}"


def test_every_cost_constant_has_one_source():
    # B10: the driver's layout imported the simulator for a constant while placement hard-coded it.
    from harness.scheduling import costs

    constants = {costs.GPU_FLOPS, costs.CPU_FLOPS, costs.LOAD_BYTES_PER_S}
    copies = []
    for path in _modules():
        if path.name == "costs.py" and _unit(path) == "scheduling":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                    and not isinstance(node.value, bool) and float(node.value) in constants:
                copies.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value}")
    assert not copies, copies
    simulator_users = [str(p.relative_to(PACKAGE.parent)) for p in _modules()
                       if "harness.scheduling.simulator" in _imports(p) and _unit(p) != "cli"]
    assert not simulator_users, f"production code imports the simulator: {simulator_users}"
