"""The conformance suite every registered table passes (pi_lakeflow.tables.registry): called by
the end-to-end tests with the tables their runs made.

* schema: a bronze table has exactly the columns and types of its declared Arrow schema;
* key: no two rows share the declared primary key (and its columns exist);
* incremental: a streaming table keeps every row of the first run unchanged, and its key stays
  unique across runs (the second run added, never repeated); a view is made whole each run;
* terminates: the runs that made it returned (the callers' fixtures assert their exit status),
  and it is not empty.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from pi_lakeflow.tables import registry


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
