"""``pi-lakeflow query``: a SQL query over the local tables, printed as a table, CSV or JSON."""

from __future__ import annotations

import sys

from pi_lakeflow import exits
from pi_lakeflow.local.runner import ConfigError, LocalConfig, local_session, spark_error


def run_query(config: LocalConfig, sql: str, output: str) -> int:
    """Prints the result of ``sql``; the exit status (pi_lakeflow.exits): a query Spark refuses is
    one line and USAGE."""
    if not config.metastore.is_dir():
        raise ConfigError(f"no tables under {config.state_dir} yet; run: pi-lakeflow run --config {config.path}")
    from pyspark.errors import PySparkException

    spark = local_session(config)
    try:
        frame = spark.sql(sql).toPandas()
    except PySparkException as error:
        print(f"pi-lakeflow query: {spark_error(error)}", file=sys.stderr)
        return exits.USAGE
    finally:
        spark.stop()
    if output == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif output == "json":
        frame.to_json(sys.stdout, orient="records", lines=True, date_format="iso")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            print(frame.to_string(index=False) if len(frame) else "(no rows)")
    return 0
