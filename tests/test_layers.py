"""The layers a newcomer sees in the folder tree hold: each imports only from the layers below it.

pi_client < pi_lakeflow.tables, config, runtime (no Spark) < pi_lakeflow.spark (the glue) <
pi_lakeflow.local, cli (tooling). The deployed pipeline (pipelines/*.py) uses config, tables and
spark only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Where each folder's modules may not import from (a prefix of the imported module's name).
FORBIDDEN = {
    "pi_client": ("pi_lakeflow", "pyspark", "pi_simulator"),
    "pi_lakeflow/tables": ("pyspark", "pi_simulator", "pi_lakeflow.spark", "pi_lakeflow.local", "pi_lakeflow.cli"),
    "pi_lakeflow/config": ("pyspark", "pi_simulator", "pi_lakeflow.spark", "pi_lakeflow.local", "pi_lakeflow.cli"),
    "pi_lakeflow/runtime": ("pyspark", "pi_simulator", "pi_lakeflow.spark", "pi_lakeflow.local", "pi_lakeflow.cli"),
    "pi_lakeflow/spark": ("pi_simulator", "pi_lakeflow.local", "pi_lakeflow.cli"),
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


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_from_the_layers_above_it(folder):
    files = sorted((ROOT / folder).glob("*.py"))
    assert files
    for file in files:
        wrong = sorted(n for n in imported(file) if n.startswith(FORBIDDEN[folder]))
        assert not wrong, f"{file.relative_to(ROOT)} imports {wrong}"
