"""What the current-value tables cost on open-source Spark, where they are materialized views
computed whole each run: silver.current_values side by side with ranking every key's changes
(what it did before: a window over the whole change log, a shuffle and a sort of every row).

Run by hand (not a test):
    .venv/bin/python bench/current_values.py [--rows 30000000] [--changed 0.003]
    .venv/bin/python bench/current_values.py --table PATH   # a landed pi_timeseries folder

A synthetic change log (the columns silver reads, values of 10,000 tags every 60 s, one batch
of Adds, then ``--changed`` of the keys updated in batch 2 and half as many of those deleted
in batch 3) is written as parquet, then each way computes the current values and Spark writes
them nowhere (the ``noop`` format: the whole plan runs, nothing is stored). local[2], 6 GB heap
as pi-lakeflow's local runs. Prints the seconds of each, their ratio, and the rows they leave
(which must be equal).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pi_lakeflow.spark.silver import SEQUENCE, VALUE_KEY, Changes, current_values

COLUMNS = ("web_id", "timestamp_ns", "ordinal", "value_double", "good", "batch")


def rank_every_key(changes: Changes) -> DataFrame:
    """The baseline: every key's changes ranked by batch, the latest kept."""
    latest = Window.partitionBy(*VALUE_KEY).orderBy(F.col(SEQUENCE).desc())
    return (changes.frame.withColumn("change_rank", F.row_number().over(latest)).where("change_rank = 1")
            .where("action != 'Delete' AND in_table").select(*changes.columns))


def synthetic(spark: SparkSession, rows: int, changed: float, folder: str) -> DataFrame:
    """A change log of ``rows`` Adds, ``changed`` of them updated later, half of those deleted."""
    tags = 10_000
    adds = spark.range(rows).select(
        F.format_string("tag-%05d", F.col("id") % tags).alias("web_id"),
        (F.floor(F.col("id") / tags) * 60_000_000_000).alias("timestamp_ns"), F.lit(0).alias("ordinal"),
        F.rand(1).alias("value_double"), F.lit(True).alias("good"), F.lit(1).cast("long").alias("batch"),
        F.lit("Add").alias("action"))
    updates = (adds.where(F.rand(2) < changed).withColumn("batch", F.lit(2).cast("long"))
               .withColumn("action", F.lit("Update")).withColumn("value_double", F.col("value_double") + 1))
    deletes = (updates.where(F.rand(3) < 0.5).withColumn("batch", F.lit(3).cast("long"))
               .withColumn("action", F.lit("Delete")).withColumn("value_double", F.lit(None).cast("double")))
    adds.unionByName(updates).unionByName(deletes).write.mode("overwrite").parquet(folder)
    return spark.read.parquet(folder)


def timed(name: str, frame: DataFrame) -> float:
    started = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30_000_000)
    parser.add_argument("--changed", type=float, default=0.003)
    parser.add_argument("--table", help="a landed pi_timeseries folder instead of the synthetic change log")
    args = parser.parse_args()
    spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "6g")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory() as folder:
        log = spark.read.parquet(args.table) if args.table else synthetic(spark, args.rows, args.changed, folder)
        log = log.select(*COLUMNS, "action").withColumn("in_table", F.col("good"))
        counts = {r["action"]: r["count"] for r in log.groupBy("action").count().collect()}
        print(f"change log: {counts}", flush=True)
        changes = Changes(log, COLUMNS)
        split, ranked = current_values(changes), rank_every_key(changes)
        seconds = {"split": timed("current_values (changed keys broadcast)", split),
                   "ranked": timed("every key ranked (before)", ranked)}
        print(f"ratio: {seconds['ranked'] / seconds['split']:.1f}x", flush=True)
        rows = split.count(), ranked.count()
        print(f"current values: {rows[0]:,} and {rows[1]:,}", flush=True)
        assert rows[0] == rows[1], "the two ways disagree"


if __name__ == "__main__":
    main()
