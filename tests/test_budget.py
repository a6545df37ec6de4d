"""The suite's time budget (tests/budget.py) holds together: the modules it names exist, and the
shares of every module add up to the whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import budget

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def test_the_shares_of_every_module_add_up_to_at_most_the_whole():
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    assert set(budget.MODULE_SECONDS) <= modules, set(budget.MODULE_SECONDS) - modules
    shares = sum(budget.MODULE_SECONDS.get(m, budget.UNIT_SECONDS) for m in modules)
    assert shares <= budget.TOTAL_SECONDS, shares


def test_the_table_names_each_module_over_its_share():
    lines = budget.lines({"tests/test_cli.py": 500.0, "tests/test_layers.py": 0.1})
    assert lines[0].startswith("   500.0 s  of   180 s  OVER  tests/test_cli.py")
    assert "OVER" not in lines[1] and lines[2].endswith("the whole suite (2 modules)")
