"""The registry's declarations hold together (the fast half of the conformance suite; the other
half, tests/pipeline/conformance.py, checks the tables the end-to-end runs make)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pi_lakeflow.config.settings import Settings
from pi_lakeflow.spark import quality, silver
from pi_lakeflow.tables import registry
from pi_lakeflow.tables.registry import BRONZE, CURRENT, SILVER, STREAMING, TABLES, VIEW

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_each_declaration_names_what_makes_it(table):
    assert table.layer in (BRONZE, SILVER) and table.kind in (STREAMING, VIEW, CURRENT)
    assert table.table_set in registry.TABLE_SETS and table.primary_key and table.comment
    if table.layer == BRONZE:
        assert table.schema is not None and table.source in ("pi_timeseries", "pi_updates", "pi_catalog", "pi_windows")
        assert set(table.primary_key) <= set(table.schema.names)
        assert (table.reader is not None) == (table.source in ("pi_catalog", "pi_windows"))
        if table.reader:
            assert callable(table.load_reader())
    else:
        assert table.schema is None and callable(getattr(silver, table.build))
    if table.rules:
        assert quality.rule_set(table.rules, 0)
    assert set(table.after) <= set(registry.BY_NAME)
    assert table.needs is None or table.needs in {f.name for f in dataclasses.fields(Settings)}


def test_each_table_is_made_by_one_table_set_and_all_makes_timeseries_and_catalog():
    class Made:  # the two settings made_by reads
        def __init__(self, tables):
            self.tables, self.interpolated_interval_ns, self.summaries_interval_ns = tables, 1, 1

    sets = {name: {t.name for t in registry.made_by(Made(name))} for name in registry.TABLE_SETS}
    assert sets["all"] == sets["timeseries"] | sets["catalog"] and not sets["timeseries"] & sets["catalog"]
    assert sets["updates"] == {"pi_timeseries_updates"}
    assert set().union(*sets.values()) == set(registry.BY_NAME)


def test_the_readme_describes_every_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `pi_")]
    assert [t.name for t in TABLES if not any(f"`{t.name}`" in row.split(" | ")[0] for row in rows)] == []
