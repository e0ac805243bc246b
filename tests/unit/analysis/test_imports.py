"""harness.analysis reads Parquet files only: it never imports Ray, torch or the run-time stages.

It may use harness.results (the file contract) and harness.errors. Checked twice: statically, every
import statement in the package (including imports inside functions); and dynamically, the modules
actually loaded when every analysis module is imported in a fresh interpreter (which also catches
a forbidden import reached through harness.results).
"""
import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import harness.analysis

FORBIDDEN = ("ray", "torch", "harness.engine", "harness.plan", "harness.backends", "harness.cli")
PACKAGE_DIR = Path(harness.analysis.__file__).parent


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _analysis_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="harness.analysis."))


def test_no_forbidden_import_statement():
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found += [f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} {n}" for n in names if _forbidden(n)]
    assert not found


def test_importing_the_package_loads_no_forbidden_module():
    modules = _analysis_modules()
    assert "harness.analysis.analyze" in modules and "harness.analysis.fit.chinchilla" in modules
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE_DIR.parent.parent)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if _forbidden(m)]
