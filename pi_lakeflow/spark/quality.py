"""Data quality rules, declared once, applied the same way on both engines.

A rule is a SQL boolean constraint over the rows of one silver table, with an action:

* ``warn``: the row stays; the failure is counted;
* ``drop``: the row leaves silver (time series: it goes to ``pi_timeseries_quarantine``);
* ``fail``: the update stops (a row no rule can place means the connector itself is wrong).

On Databricks, :func:`expect` hands the rules to the native decorators (``dp.expect_all``,
``dp.expect_all_or_drop``, ``dp.expect_all_or_fail``), so the event log and the Lakeflow UI show
them. Open-source Spark has no expectations: there :func:`expect` applies the same SQL itself.
The quarantine and ``pi_quality_metrics`` are computed from the same constraints on both engines
(:func:`failed_rules`, :func:`rule_counts`), so their figures are the same everywhere.

Every constraint is written so that it is never NULL: it says what a missing column means
(an unknown point is neither numeric nor has a span), so that no engine has to decide whether
NULL passes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pi_client.times import NS_PER_SECOND

#: The silver tables the rules are for (pi_lakeflow.tables.registry declares them).
TIMESERIES_SILVER, EVENT_FRAMES_SILVER = "pi_timeseries_silver", "pi_event_frames_silver"

WARN, DROP, FAIL = "warn", "drop", "fail"
ACTIONS = (WARN, DROP, FAIL)

#: PI point types whose values are numbers.
NUMERIC_POINT_TYPES = ("Float16", "Float32", "Float64", "Int16", "Int32")


@dataclass(frozen=True)
class Rule:
    name: str
    table: str
    constraint: str
    action: str
    doc: str


def timeseries_rules(future_tolerance_ns: int) -> tuple[Rule, ...]:
    """The rules of pi_timeseries_silver, over a bronze row joined with its point (point_type,
    span, zero, future: NULL when the point is unknown)."""
    seconds = future_tolerance_ns // NS_PER_SECOND
    numeric = ", ".join(f"'{t}'" for t in NUMERIC_POINT_TYPES)
    return (
        Rule("identified", TIMESERIES_SILVER, "web_id IS NOT NULL AND timestamp_ns IS NOT NULL", FAIL,
             "every row names its point and its exact time"),
        Rule("valid_timestamp", TIMESERIES_SILVER,
             "coalesce(timestamp >= TIMESTAMP'1970-01-01 00:00:00+00:00'"
             " AND timestamp < TIMESTAMP'9999-01-01 00:00:00+00:00', FALSE)", DROP,
             "the timestamp is inside PI's time range (1970 to 9999)"),
        Rule("not_in_future", TIMESERIES_SILVER,
             f"coalesce(future, FALSE) OR coalesce(timestamp <= ingested_at + INTERVAL '{seconds}' SECOND, FALSE)",
             DROP, "not later than its ingestion plus pi.quality.future_tolerance (Future points exempt)"),
        Rule("good_quality", TIMESERIES_SILVER, "good", DROP, "PI marks the value Good"),
        Rule("not_system_state", TIMESERIES_SILVER, "NOT is_system", DROP,
             "not a system digital state such as I/O Timeout or Shutdown"),
        Rule("numeric_value_present", TIMESERIES_SILVER,
             f"value_double IS NOT NULL OR coalesce(point_type NOT IN ({numeric}), TRUE)", DROP,
             "a numeric point's value is a number"),
        Rule("not_questionable", TIMESERIES_SILVER, "NOT questionable", WARN, "PI does not flag it Questionable"),
        Rule("not_substituted", TIMESERIES_SILVER, "NOT substituted", WARN,
             "PI does not flag it Substituted (edited after it was archived)"),
        Rule("within_span", TIMESERIES_SILVER,
             "coalesce(NOT (span > 0) OR value_double BETWEEN zero AND zero + span, TRUE)", WARN,
             "a number lies within the point's zero and zero + span"),
    )


EVENT_FRAME_RULES: tuple[Rule, ...] = (
    Rule("frame_ends_after_start", EVENT_FRAMES_SILVER, "end_time IS NULL OR end_time >= start_time", DROP,
         "a closed frame ends at or after its start (an open frame has no end)"),
)


def all_rules(future_tolerance_ns: int) -> tuple[Rule, ...]:
    return (*timeseries_rules(future_tolerance_ns), *EVENT_FRAME_RULES)


def rule_set(name: str, future_tolerance_ns: int) -> tuple[Rule, ...]:
    """The rules a registry table declares by name (``timeseries`` or ``event_frames``)."""
    sets = {"timeseries": lambda: timeseries_rules(future_tolerance_ns), "event_frames": lambda: EVENT_FRAME_RULES}
    if name not in sets:
        raise ValueError(f"there is no rule set '{name}'; there are: {', '.join(sets)}")
    return sets[name]()


def native(dp) -> bool:
    """Whether the engine has expectations (Databricks) or not (open-source Spark)."""
    return all(hasattr(dp, f) for f in ("expect_all", "expect_all_or_drop", "expect_all_or_fail"))


def expect(dp, rules: tuple[Rule, ...], routed: bool = False) -> Callable:
    """A decorator for a dataset's query function (below ``@dp.table`` / ``@dp.materialized_view``):
    Databricks' expectation decorators with the rules, or, on open-source Spark, the query with
    the rules applied by :func:`enforce`.

    ``routed``: the query routes the rows a drop rule fails itself (the current-value tables:
    a change whose value fails moves the key to the quarantine), so drop rules are expectations
    that warn (counted, nothing dropped) and only fail rules are enforced; a Delete, which
    carries no value, passes them."""
    def decorate(query: Callable[[], DataFrame]) -> Callable[[], DataFrame]:
        chosen_rules = rules
        if routed:
            chosen_rules = tuple(Rule(r.name, r.table, f"action = 'Delete' OR ({r.constraint})",
                                      WARN if r.action == DROP else r.action, r.doc) for r in rules)
        if native(dp):
            for action, decorator in ((WARN, dp.expect_all), (DROP, dp.expect_all_or_drop),
                                      (FAIL, dp.expect_all_or_fail)):
                chosen = {r.name: r.constraint for r in chosen_rules if r.action == action}
                if chosen:
                    query = decorator(chosen)(query)
            return query

        @functools.wraps(query)
        def enforced() -> DataFrame:
            return enforce(query(), chosen_rules)
        return enforced
    return decorate


def enforce(frame: DataFrame, rules: tuple[Rule, ...]) -> DataFrame:
    """``frame`` as an engine with expectations leaves it: rows failing a drop rule removed, and
    an error naming the rule raised by the first row that fails a fail rule."""
    kept = frame
    for rule in rules:
        if rule.action == FAIL:
            message = f"quality rule {rule.name} ({rule.action}) failed on {rule.table}: {rule.constraint}"
            kept = kept.where(F.when(F.expr(rule.constraint), F.lit(True)).otherwise(F.raise_error(F.lit(message))))
    return kept.where(passes(rules, DROP))


def passes(rules: tuple[Rule, ...], action: str) -> Column:
    """True where a row passes every rule with ``action``."""
    constraints = [F.expr(r.constraint) for r in rules if r.action == action]
    return functools.reduce(lambda a, b: a & b, constraints, F.lit(True))


def failed_rules(rules: tuple[Rule, ...], actions: tuple[str, ...] = ACTIONS) -> Column:
    """The names of the rules with ``actions`` that a row fails, in rule order (an empty array
    when it passes them all)."""
    names = F.array(*(F.when(~F.expr(r.constraint), F.lit(r.name)) for r in rules if r.action in actions))
    return F.filter(names, lambda name: name.isNotNull())


def rule_counts(rows: DataFrame, rules: tuple[Rule, ...], group: list[Column], batch: Column,
                landed_at: Column) -> DataFrame:
    """Per ``group`` (none: all rows) and rule: how many rows passed and failed, one row per rule.

    ``batch`` and ``landed_at`` are aggregates that say which run the rows come from and when it
    landed. One aggregation counts every rule, so the rows are read once, then unpivoted."""
    sums = [F.sum(F.when(F.expr(r.constraint), 1).otherwise(0)).alias(f"passed_{i}") for i, r in enumerate(rules)]
    counted = rows.groupBy(*group).agg(F.count(F.lit(1)).alias("rows"), batch.alias("batch"),
                                       landed_at.alias("landed_at"), *sums)
    per_rule = F.explode(F.array(*(
        F.struct(F.lit(r.table).alias("table_name"), F.lit(r.name).alias("rule"), F.lit(r.action).alias("action"),
                 F.col(f"passed_{i}").cast("long").alias("passed"),
                 (F.col("rows") - F.col(f"passed_{i}")).cast("long").alias("failed"))
        for i, r in enumerate(rules))))
    return counted.select("batch", "landed_at", per_rule.alias("r")).select("batch", "landed_at", "r.*")
