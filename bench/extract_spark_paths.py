"""Tag partitions on Spark executors two ways, side by side: applyInPandas vs a Python data source.

Run by hand (not a test):  .venv/bin/python bench/extract_spark_paths.py [--tags 4000] [--partition 1000]

Both read the same tags x 1 day of 1-minute data from the simulator (its own process) with
pi_client.read_recorded, one call per tag partition, and write the rows to parquet with local
Spark on 2 cores:

* applyInPandas: a DataFrame of (partition, web_id, name, point_type) grouped by partition; each
  group calls read_recorded and returns a pandas DataFrame (Arrow -> pandas -> Arrow);
* data source: a Python DataSource whose partitions are the tag groups; each yields Arrow
  record batches (what the pipeline's pi_timeseries source does).

Each path runs twice (the first warms the Python workers); the second is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.pandas.types import from_arrow_schema

from pi_client import PiClient, Tag, find_points, read_recorded, schemas
from pi_lakeflow.tables.schemas import for_spark, spark_schema

START, END = "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"
SCHEMA = spark_schema(schemas.VALUES)


def read_group(url: str, rows: list[dict]) -> pa.Table:
    with PiClient(url) as client:
        tags = [Tag(r["web_id"], r["name"], r["point_type"]) for r in rows]
        return for_spark(read_recorded(client, tags, START, END).values, SCHEMA)


class Groups(InputPartition):
    def __init__(self, rows: list[dict]):
        self.rows = rows


class GroupReader(DataSourceReader):
    def __init__(self, options):
        import json
        self.url, self.groups = options["url"], json.loads(options["groups"])

    def partitions(self):
        return [Groups(rows) for rows in self.groups]

    def read(self, partition):
        yield from read_group(self.url, partition.rows).to_batches(max_chunksize=100_000)


class GroupSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return "bench_tag_groups"

    def schema(self):
        return from_arrow_schema(SCHEMA)

    def reader(self, schema):
        return GroupReader(self.options)


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=4_000)
    parser.add_argument("--partition", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the executors' Python: this one
    simulator = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "simulate", "--port", "0", "--tags",
                                  str(args.tags), "--elements", "100", "--event-frames", "10", "--sampling", "60s",
                                  "--clock", END], stdout=subprocess.PIPE, text=True)
    out = tempfile.mkdtemp(prefix="pi-bench-paths-")
    try:
        url = simulator.stdout.readline().split()[-1]
        time.sleep(1)
        with PiClient(url) as client:
            points = find_points(client).select(["web_id", "name", "point_type"]).to_pylist()
        groups = [points[i:i + args.partition] for i in range(0, len(points), args.partition)]
        spark = SparkSession.builder.master("local[2]").appName("bench").config("spark.ui.enabled", "false") \
            .config("spark.sql.shuffle.partitions", str(len(groups))).getOrCreate()
        spark.dataSource.register(GroupSource)
        tags = spark.createDataFrame([{**p, "part": i // args.partition} for i, p in enumerate(points)])

        def apply_in_pandas() -> None:
            def fetch(frame):
                return read_group(url, frame.to_dict("records")).to_pandas()
            tags.groupBy("part").applyInPandas(fetch, from_arrow_schema(SCHEMA)) \
                .write.mode("overwrite").parquet(f"{out}/apply")

        def data_source() -> None:
            spark.read.format("bench_tag_groups").option("url", url).option("groups", json.dumps(groups)).load() \
                .write.mode("overwrite").parquet(f"{out}/source")

        results = {}
        for label, job in (("applyInPandas", apply_in_pandas), ("Python data source", data_source)):
            for _ in range(2):
                started = time.perf_counter()
                job()
                results[label] = time.perf_counter() - started
        rows = {label: spark.read.parquet(f"{out}/{path}").count()
                for label, path in (("applyInPandas", "apply"), ("Python data source", "source"))}
        spark.stop()
    finally:
        simulator.terminate()
        shutil.rmtree(out, ignore_errors=True)
    assert len(set(rows.values())) == 1, rows
    values = next(iter(rows.values()))
    print(f"{args.tags:,} tags x 1 day of 1-minute data ({values:,} values), {len(groups)} partitions, local[2]")
    for label, seconds in results.items():
        print(f"  {label:20} {seconds:6.1f} s  {values / seconds:>10,.0f} values/s")
    print(f"  data source / applyInPandas: {results['applyInPandas'] / results['Python data source']:.2f}x")


if __name__ == "__main__":
    main()
