"""``pi-lakeflow query`` and ``pi-lakeflow tables``: the local tables, read with Spark.

The tables are read from their folders (:func:`folder_session`), not through the run's catalog:
the embedded metastore (Derby) serves one process at a time, so a query through it would have to
wait for a run to end; from the folders it works while a run writes (a streaming table shows its
committed batches; a materialized view being rewritten at that moment can fail the query: run it
again).

A result is printed as a table, CSV or JSON lines, typed as Spark typed it: integers stay
integers (a null is empty, not ``NaN``), timestamps carry their zone (the session's). A result
longer than ``--limit`` rows is cut there, with a note on stderr saying so.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Iterator, TextIO

import pyarrow as pa

from pi_lakeflow import exits
from pi_lakeflow.errors import ConfigError
from pi_lakeflow.local.config import LocalConfig
from pi_lakeflow.local.spark_env import local_session, spark_error


def run_query(config: LocalConfig, sql: str, output: str, limit: int, out: Path | None = None) -> int:
    """Prints the result of ``sql``, at most ``limit`` rows (0: all), to ``out`` when given; the
    exit status (pi_lakeflow.exits): a query Spark refuses is one line and USAGE."""
    from pyspark.errors import PySparkException

    spark = folder_session(config)
    try:
        frame = spark.sql(sql)
        result = (frame.limit(limit + 1) if limit else frame).toArrow()
    except PySparkException as error:
        print(f"pi-lakeflow query: {spark_error(error)}", file=sys.stderr)
        return exits.USAGE
    finally:
        spark.stop()
    cut = bool(limit) and result.num_rows > limit
    with _target(out) as stream:
        write_result(result.slice(0, limit) if cut else result, output, stream)
    if cut:
        print(f"pi-lakeflow query: the first {limit:,} rows; --limit N shows more, --limit 0 all", file=sys.stderr)
    return exits.OK


def list_tables(config: LocalConfig) -> int:
    """Prints each local table with its row count."""
    spark = folder_session(config)
    try:
        names = sorted(t.name for t in spark.catalog.listTables())
        counts = pa.table({"table": names, "rows": pa.array([spark.read.table(n).count() for n in names], pa.int64())})
    finally:
        spark.stop()
    write_result(counts, "table", sys.stdout)
    return exits.OK


def folder_session(config: LocalConfig):
    """A Spark session whose tables are the folders of ``config``'s warehouse, each a temporary
    view of its parquet files (a streaming table's through its commit log). ConfigError when
    there is none yet, or when a folder cannot be read."""
    folders = [f for f in sorted(config.warehouse.iterdir()) if f.is_dir() and not f.name.startswith((".", "_"))
               and any(f.rglob("*.parquet"))] if config.warehouse.is_dir() else []
    if not folders:
        raise ConfigError(f"no tables under {config.state_dir} yet; run: pi-lakeflow run --config {config.path}")
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    spark = local_session(config, catalog=False)
    for folder in folders:
        try:
            spark.read.parquet(str(folder)).createOrReplaceTempView(folder.name)
        except (PySparkException, Py4JJavaError) as error:  # a footer that cannot be read comes from the JVM
            spark.stop()
            detail = spark_error(error) if isinstance(error, PySparkException) else \
                str(error.java_exception.getMessage()).splitlines()[0]
            raise ConfigError(f"the table folder {folder} cannot be read ({detail}); if a run is rewriting it, "
                              f"try again when it has finished") from None
    return spark


@contextmanager
def _target(out: Path | None) -> Iterator[TextIO]:
    if out is None:
        yield sys.stdout
    else:
        with open(out, "w", encoding="utf-8", newline="") as stream:
            yield stream


def write_result(result: pa.Table, output: str, stream: TextIO) -> None:
    """``result`` as ``output`` (table, csv or json: one object per line) on ``stream``."""
    rows = result.to_pylist()
    if output == "json":
        for row in rows:
            stream.write(json.dumps(row, default=_json_value, ensure_ascii=False) + "\n")
        return
    if output == "csv":
        import csv

        writer = csv.writer(stream)
        writer.writerow(result.column_names)
        writer.writerows([[_text(v) for v in row.values()] for row in rows])
        return
    if not rows:
        stream.write("(no rows)\n")
        return
    cells = [list(result.column_names), *(["null" if v is None else _text(v) for v in row.values()] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in result.schema.types]
    for row in cells:
        stream.write("  ".join(c.rjust(w) if right else c.ljust(w) for c, w, right in zip(row, widths, numeric))
                     .rstrip() + "\n")


def _text(value: object) -> str:
    """A cell as text: empty for null, ISO 8601 (with the zone) for times, JSON for nested values."""
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=_json_value, ensure_ascii=False)
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
