"""The quality rules (pi_lakeflow.spark.quality) on real Spark, row by row, and the two ways they reach
an engine: Databricks' expectation decorators (which cannot exist here: a recording stand-in
for ``dp`` takes their place) and the project's own application on open-source Spark."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyspark import pipelines as open_source_dp
from pyspark.sql import functions as F

from pi_lakeflow.spark import quality

pytestmark = pytest.mark.spark

RULES = quality.timeseries_rules(600 * 10**9)
NOW = datetime(2024, 5, 2)
COLUMNS = ("label string, web_id string, timestamp_ns long, timestamp timestamp, ingested_at timestamp, "
           "future boolean, good boolean, is_system boolean, questionable boolean, substituted boolean, "
           "value_double double, point_type string, span double, zero double")


def row(label: str, **changes) -> tuple:
    """A value that passes every rule, with ``changes``."""
    values = dict(web_id="W", timestamp_ns=1, timestamp=NOW - timedelta(hours=1), ingested_at=NOW, future=False,
                  good=True, is_system=False, questionable=False, substituted=False, value_double=50.0,
                  point_type="Float32", span=100.0, zero=0.0)
    values.update(changes)
    return (label, *values.values())


#: label -> (row, the rules it fails)
CASES = {
    "clean": (row("clean"), []),
    "before 1970": (row("before 1970", timestamp=datetime(1969, 12, 31)), ["valid_timestamp"]),
    "an hour ahead": (row("an hour ahead", timestamp=NOW + timedelta(hours=1)), ["not_in_future"]),
    "5 minutes ahead": (row("5 minutes ahead", timestamp=NOW + timedelta(minutes=5)), []),
    "ahead on a Future point": (row("ahead on a Future point", timestamp=NOW + timedelta(days=1), future=True), []),
    "bad": (row("bad", good=False), ["good_quality"]),
    "system state": (row("system state", is_system=True, value_double=None, good=False),
                     ["good_quality", "not_system_state", "numeric_value_present"]),
    "numeric without number": (row("numeric without number", value_double=None), ["numeric_value_present"]),
    "string point": (row("string point", value_double=None, point_type="String"), []),
    "unknown point": (row("unknown point", value_double=None, point_type=None, span=None, zero=None), []),
    "questionable": (row("questionable", questionable=True), ["not_questionable"]),
    "substituted": (row("substituted", substituted=True), ["not_substituted"]),
    "above span": (row("above span", value_double=100.5), ["within_span"]),
    "below zero": (row("below zero", value_double=-0.5), ["within_span"]),
    "no span": (row("no span", value_double=1e9, span=0.0), []),
}


@pytest.fixture(scope="module")
def rows(spark):
    return spark.createDataFrame([case for case, _ in CASES.values()], COLUMNS)


def test_each_rule_fails_exactly_the_rows_it_describes(rows):
    found = {r["label"]: r["failed"] for r in rows.select("label", quality.failed_rules(RULES).alias("failed")).collect()}
    assert found == {label: failed for label, (_, failed) in CASES.items()}


def test_counts_per_rule_equal_the_rows_failed(rows):
    counts = quality.rule_counts(rows, RULES, [], F.max("timestamp_ns"), F.max("ingested_at")).collect()
    assert [r["rule"] for r in counts] == [r.name for r in RULES]
    for count in counts:
        failing = sum(count["rule"] in failed for _, failed in CASES.values())
        assert (count["failed"], count["passed"]) == (failing, len(CASES) - failing), count["rule"]


def test_enforce_keeps_what_passes_the_drop_rules(rows):
    kept = {r["label"] for r in quality.enforce(rows, RULES).collect()}
    drop = {r.name for r in RULES if r.action == quality.DROP}
    assert kept == {label for label, (_, failed) in CASES.items() if not drop & set(failed)}
    assert "questionable" in kept and "bad" not in kept  # warn keeps, drop removes


def test_a_fail_rule_stops_with_its_name(spark):
    broken = spark.createDataFrame([row("no web id", web_id=None)], COLUMNS)
    with pytest.raises(Exception, match="quality rule identified"):
        quality.enforce(broken, RULES).collect()


def recording_dp() -> tuple[SimpleNamespace, dict]:
    """A stand-in for Databricks' ``dp`` that records what each expectation decorator gets."""
    seen: dict[str, dict] = {}

    def decorator(action):
        def expect_all(constraints):
            seen[action] = dict(constraints)
            return lambda function: function
        return expect_all
    return SimpleNamespace(expect_all=decorator(quality.WARN), expect_all_or_drop=decorator(quality.DROP),
                           expect_all_or_fail=decorator(quality.FAIL)), seen


@pytest.mark.parametrize("rules", [RULES, quality.EVENT_FRAME_RULES], ids=["timeseries", "event frames"])
def test_databricks_gets_every_rule_as_a_native_expectation(rules):
    dp, seen = recording_dp()
    assert quality.native(dp) and not quality.native(open_source_dp)
    query = quality.expect(dp, rules)(lambda: "plan")
    assert query() == "plan"  # Databricks applies the expectations; the query itself is unchanged
    assert seen == {action: {r.name: r.constraint for r in rules if r.action == action}
                    for action in quality.ACTIONS if any(r.action == action for r in rules)}


def test_rules_are_named_once_with_a_known_action():
    rules = quality.all_rules(0)
    assert len({r.name for r in rules}) == len(rules)
    assert {r.action for r in rules} <= set(quality.ACTIONS)


def test_definitions_declare_no_expectation_of_their_own():
    """A rule written into a definition would reach Databricks only; every rule goes through
    pi_lakeflow.spark.quality, which both engines use."""
    for file in Path(__file__).resolve().parents[2].joinpath("pipelines").glob("*.py"):
        tree = ast.parse(file.read_text())
        calls = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and node.attr.startswith("expect") and getattr(node.value, "id", "") == "dp"]
        assert not calls, f"{file.name} calls dp.{calls[0]}; declare the rule in pi_lakeflow/spark/quality.py"


def test_the_readme_lists_every_rule_with_its_action():
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    for rule in quality.all_rules(0):
        assert f"| `{rule.name}` | {rule.action} | {rule.doc} |" in readme, rule.name


def test_current_values_are_each_keys_latest_change_unless_a_delete_or_elsewhere(spark):
    """silver.current_values (open-source Spark) against the SCD type 1 semantics written out by hand."""
    from pi_lakeflow.spark.silver import Changes, current_values

    changes = [  # web_id, timestamp_ns, ordinal, batch, action, value, in_table
        ("A", 1, 0, 1, "Add", 1.0, True), ("A", 1, 0, 2, "Update", 2.0, True),   # edited: the new value
        ("A", 2, 0, 1, "Add", 3.0, True), ("A", 2, 0, 3, "Delete", None, True),  # deleted: gone
        ("A", 2, 1, 1, "Add", 4.0, True),                                        # same time, another value: stays
        ("B", 1, 0, 1, "Add", 5.0, True), ("B", 1, 0, 2, "Update", 6.0, False),  # edited into the other table
        ("B", 2, 0, 1, "Add", 7.0, False), ("B", 2, 0, 2, "Update", 8.0, True),  # edited into this one
        ("C", 1, 0, 1, "Add", 9.0, True), ("C", 1, 0, 2, "Delete", None, True),  # deleted, written again
        ("C", 1, 0, 3, "Add", 10.0, True),
    ]
    frame = spark.createDataFrame(changes, "web_id string, timestamp_ns long, ordinal int, batch long, action string, "
                                           "value double, in_table boolean")
    found = {tuple(r) for r in current_values(Changes(frame, ("web_id", "timestamp_ns", "ordinal", "value"))).collect()}
    assert found == {("A", 1, 0, 2.0), ("A", 2, 1, 4.0), ("B", 2, 0, 8.0), ("C", 1, 0, 10.0)}


def test_databricks_makes_the_current_value_tables_with_auto_cdc():
    """On Databricks (a recording stand-in for ``dp``), silver and the quarantine are streaming
    tables fed by AUTO CDC from a view of the changes, keyed by the value, sequenced by batch."""
    from pi_lakeflow.config.settings import parse
    from pi_lakeflow.spark import definitions
    from pi_lakeflow.tables import registry

    dp, seen = recording_dp()
    calls = []
    dp.temporary_view = lambda query, **kwargs: calls.append(("view", kwargs["name"]))
    dp.create_streaming_table = lambda **kwargs: calls.append(("table", kwargs["name"]))
    dp.create_auto_cdc_flow = lambda **kwargs: calls.append(("cdc", kwargs))
    settings = parse({"pi.url": "https://pi.example/piwebapi", "pi.state_path": "/Volumes/main/pi/state"})
    for name in ("pi_timeseries_silver", "pi_timeseries_quarantine"):
        definitions.define(dp, None, registry.table(name), {}, settings)
    views = [c[1] for c in calls if c[0] == "view"]
    assert views == ["pi_timeseries_silver_changes", "pi_timeseries_quarantine_changes"]
    assert [c[1] for c in calls if c[0] == "table"] == ["pi_timeseries_silver", "pi_timeseries_quarantine"]
    flows = [c[1] for c in calls if c[0] == "cdc"]
    assert [(f["target"], f["source"]) for f in flows] == list(zip(
        ["pi_timeseries_silver", "pi_timeseries_quarantine"], views))
    for flow in flows:
        assert flow["keys"] == ["web_id", "timestamp_ns", "ordinal"] and flow["sequence_by"] == "batch"
        assert flow["apply_as_deletes"] == "action = 'Delete' OR NOT in_table" and flow["stored_as_scd_type"] == 1
    # Silver's rules reach the event log as expectations on its view; drop rules warn there (the flow routes).
    assert set(seen) == {quality.WARN, quality.FAIL}
    assert set(seen[quality.WARN]) == {r.name for r in RULES if r.action in (quality.WARN, quality.DROP)}
