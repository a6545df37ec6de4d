"""The conformance suite every registered table passes (pi_lakeflow.tables.registry): called by
the end-to-end tests with the tables their runs made.

* schema: a bronze table has exactly the columns and types of its declared Arrow schema;
* key: no two rows share the declared primary key (and its columns exist);
* incremental: a streaming table keeps every row of the first run unchanged, and its key stays
  unique across runs (the second run added, never repeated); a view is made whole each run;
* terminates: the runs that made it returned (the callers' fixtures assert their exit status),
  and it is not empty.

Which run checks which table is derived from the registry: the run of pi.tables all
(test_pipeline_runs) every table its settings make, and it asserts that the others are
exactly :func:`needing_a_setting` (test_derived_tables turns each such setting on) and
:func:`realtime_tables` (test_realtime); so a new table is checked by one of the three, or fails
there.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from pi_lakeflow.tables import registry


def needing_a_setting() -> list[str]:
    """The tables a pipeline makes only when a setting is given (an interval): test_derived_tables."""
    return [t.name for t in registry.TABLES if t.needs is not None]


def realtime_tables() -> list[str]:
    """The tables of the real-time pipeline (pi.tables updates): test_realtime."""
    return [t.name for t in registry.TABLES if t.table_set == "updates"]


def check_tables(spark: SparkSession, warehouse: Path, first_run: Path, names) -> list[str]:
    """Check ``names`` in ``warehouse`` (after the last run) against the copy of the warehouse
    after the first run (``first_run``); returns the names checked."""
    for name in names:
        table = registry.table(name)
        final = spark.read.parquet(str(warehouse / name))
        assert final.count() > 0, f"{name} is empty"
        if table.schema is not None:
            declared = {f.name: f.dataType for f in from_arrow_schema(table.schema).fields}
            landed = {f.name: f.dataType for f in final.schema.fields}
            assert landed == declared, f"{name}: columns {landed} are not the declared {declared}"
        key = list(table.primary_key)
        assert key and set(key) <= set(final.columns), f"{name}: key {key} is not among {final.columns}"
        repeated = final.groupBy(*key).count().where("count > 1")
        assert repeated.count() == 0, f"{name}: rows share the key {key}: {repeated.limit(3).collect()}"
        if table.kind == registry.STREAMING and (first_run / name).exists():
            # The copy's files, not its sink log (which names the files where the run wrote them).
            before = spark.read.parquet(*(str(f) for f in sorted((first_run / name).rglob("*.parquet"))))
            changed = before.exceptAll(final.select(*before.columns))
            assert changed.count() == 0, f"{name}: rows of the first run changed or went: {changed.limit(3).collect()}"
    return list(names)
