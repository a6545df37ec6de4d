"""Run by test_runtime_sparks.py with the python of a runtime's environment (its pyspark, the
wheel installed from its own requirements), never imported by pytest: optionally the catalog
source into Parquet, then one run of a stream source (``pi_timeseries`` or ``pi_updates``) with
plain Structured Streaming (trigger availableNow, as a triggered pipeline update runs it) into
Parquet. Prints one JSON line: the Spark version and the batches that landed rows.

Usage: python run_sources.py SOURCE OPTIONS_JSON CHECKPOINT OUTPUT [CATALOG_OUTPUT]
"""

from __future__ import annotations

import json
import sys

from pyspark.sql import SparkSession

from pi_lakeflow.spark.sources import SOURCES


def main(source: str, options_file: str, checkpoint: str, output: str, catalog_output: str | None = None) -> None:
    with open(options_file) as handle:
        options = json.load(handle)
    spark = (SparkSession.builder.master("local[2]").appName("pi-lakeflow-runtime-spark")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .getOrCreate())
    for registered in SOURCES:
        spark.dataSource.register(registered)
    if catalog_output:
        points = spark.read.format("pi_catalog").options(**options).option("table", "pi_points").load()
        points.write.mode("overwrite").parquet(catalog_output)
    query = (spark.readStream.format(source).options(**options).load()
             .writeStream.format("parquet").option("checkpointLocation", checkpoint).option("path", output)
             .trigger(availableNow=True).start())
    query.awaitTermination()
    batches = [progress["batchId"] for progress in query.recentProgress if progress["numInputRows"] > 0]
    print(json.dumps({"spark": spark.version, "batches": batches}))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
