"""The layers a newcomer sees in the folder tree hold: each imports only from the layers below it.

pi_client < pi_lakeflow's bottom (errors.py, exits.py) < tables < state (the files under
pi.state_path) < config < runtime (no Spark) < spark (the glue) < local, cli and workspace.py
(tooling). The deployed pipeline (pipelines/*.py) uses config, tables and spark only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
_TOOLING = ("pi_lakeflow.local", "pi_lakeflow.cli", "pi_lakeflow.workspace")
_ABOVE_RUNTIME = ("pyspark", "pi_simulator", "pi_lakeflow.spark", *_TOOLING)
#: Where each folder's (or file's) modules may not import from (a prefix of the imported module's name).
FORBIDDEN = {
    "pi_client": ("pi_lakeflow", "pyspark", "pi_simulator"),
    "pi_lakeflow/errors.py": ("pyspark", "pi_simulator", "pi_client", "pi_lakeflow.tables", "pi_lakeflow.state",
                              "pi_lakeflow.config", "pi_lakeflow.runtime", "pi_lakeflow.spark", *_TOOLING),
    "pi_lakeflow/exits.py": ("pyspark", "pi_simulator", "pi_client", "pi_lakeflow."),
    "pi_lakeflow/tables": (*_ABOVE_RUNTIME, "pi_lakeflow.state", "pi_lakeflow.config", "pi_lakeflow.runtime"),
    "pi_lakeflow/state": (*_ABOVE_RUNTIME, "pi_lakeflow.config", "pi_lakeflow.runtime"),
    "pi_lakeflow/config": (*_ABOVE_RUNTIME, "pi_lakeflow.runtime"),
    "pi_lakeflow/runtime": _ABOVE_RUNTIME,
    "pi_lakeflow/spark": ("pi_simulator", *_TOOLING),
    "pi_lakeflow/local": ("pi_lakeflow.cli", "pi_lakeflow.workspace"),
    "pi_lakeflow/cli": (),
    "pi_lakeflow/workspace.py": ("pyspark", "pi_simulator", "pi_lakeflow.local", "pi_lakeflow.cli",
                                 "pi_lakeflow.runtime", "pi_lakeflow.spark"),
    "pipelines": ("pi_simulator", "pi_lakeflow.local", "pi_lakeflow.cli", "pi_lakeflow.runtime"),
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def modules(place: str) -> list[Path]:
    path = ROOT / place
    return [path] if path.is_file() else sorted(path.glob("*.py"))


@pytest.mark.parametrize("place", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_from_the_layers_above_it(place):
    files = modules(place)
    assert files
    for file in files:
        wrong = sorted(n for n in imported(file) if n.startswith(FORBIDDEN[place]))
        assert not wrong, f"{file.relative_to(ROOT)} imports {wrong}"


def test_every_module_belongs_to_a_layer():
    """A new module or folder is placed in a layer here, so that the rule above covers it."""
    covered = {file for place in FORBIDDEN for file in modules(place)}
    found = {f for package in ("pi_client", "pi_lakeflow", "pipelines") for f in (ROOT / package).rglob("*.py")}
    left = sorted(str(f.relative_to(ROOT)) for f in found - covered if f.name != "__init__.py")
    assert not left, f"modules in no layer of tests/test_layers.py: {left}"
