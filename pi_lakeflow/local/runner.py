"""A local run on open-source Spark: check what can be checked before Spark starts, write the
``spark-pipelines`` spec, start the engine (engine.py) in a Spark driver process, relay its
terminal and return its exit status.

Tables persist in an embedded Hive metastore (Derby) and a warehouse folder under ``state_dir``,
so that the next run is incremental. Locally they are Spark's default format (parquet); on
Databricks the same definitions make Delta tables in Unity Catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pi_client import RetryPolicy, data_servers

from pi_lakeflow.config.connection import connect
from pi_lakeflow.config.settings import REFERENCES_VARIABLE, references
from pi_lakeflow.errors import ConfigError
from pi_lakeflow.local.config import LocalConfig
from pi_lakeflow.local.spark_env import LOOPBACK_ENVIRONMENT, spark_home, write_spark_conf_dir
from pi_lakeflow.local.terminal import DrawnBar, relay
from pi_lakeflow.local.uncommitted import Removed, remove_uncommitted
from pi_lakeflow.runtime.discovery import select_tags

#: Before Spark starts, a server that does not answer is reported after seconds, not minutes.
PREFLIGHT_RETRY = RetryPolicy(attempts=3, backoff=0.5, max_backoff=2.0)
#: Seconds the first request before Spark starts (the data servers: a small reply) may take.
REACH_TIMEOUT = 3.0
PIPELINE_NAME = "pi_lakeflow"


def preflight(config: LocalConfig) -> tuple[int, list[str]]:
    """Check what needs the clock, and reach the server with the configured identity, before
    Spark starts. Returns how many tags the settings select, and the selected names that the
    server does not have. Raises ConfigError, PiError or SettingsError (a secret reference that
    is not set), each with one clear message."""
    now = time.time_ns()
    if config.settings.tables == "timeseries" and not config.settings.catalog_schema \
            and not (config.warehouse / "pi_points").is_dir():
        raise ConfigError(f"{config.path}: pi.tables timeseries makes the silver tables from pi_points and "
                          f"pi_af_attributes, which a pi.tables catalog (or all) run makes: run one first with this "
                          f"state_dir, or use pi.tables all (the split is for two pipelines that share a catalog)")
    if config.settings.start_ns(now) >= config.settings.end_ns(now):
        raise ConfigError(f"{config.path}: pi.start ({config.settings.start}) is not before pi.end "
                          f"({config.settings.end}): no tag would ever be read")
    with connect(config.settings, retry=PREFLIGHT_RETRY, read_timeout=REACH_TIMEOUT) as client:
        data_servers(client)  # reachable, TLS, identity: a silent server is named within seconds
    with connect(config.settings, retry=PREFLIGHT_RETRY) as client:
        selected = select_tags(client, config.settings)
        return selected.table.num_rows, sorted(selected.errors)


def definitions_dir() -> Path:
    """The pipeline definitions: inside the installed wheel, or ``pipelines/`` of a source tree."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "pipelines"
    return packaged if packaged.is_dir() else package.parent / "pipelines"


def write_spec(config: LocalConfig) -> Path:
    """The spark-pipelines spec under state_dir, with a copy of the definitions beside it."""
    folder = config.state_dir / "pipeline"
    definitions = folder / "definitions"
    shutil.rmtree(definitions, ignore_errors=True)
    definitions.mkdir(parents=True)
    for file in definitions_dir().glob("*.py"):
        shutil.copy2(file, definitions / file.name)
    spec = {"name": PIPELINE_NAME, "storage": (config.state_dir / "checkpoints").as_uri(),
            "libraries": [{"glob": {"include": "definitions/**"}}], "configuration": config.configuration}
    path = folder / "spark-pipeline.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def reset(config: LocalConfig) -> None:
    """Forget every table and cursor of a local pipeline: catalog, tables, checkpoints, state.

    ``spark-pipelines``' own full refresh does not do this for local parquet streaming tables:
    the table keeps its rows and its file-sink log, which then skips the restarted stream's
    batches, while the cursors start over."""
    for folder in (config.metastore, config.warehouse, config.state_dir / "checkpoints",
                   Path(config.settings.state_path)):
        shutil.rmtree(folder, ignore_errors=True)


def run_pipeline(config: LocalConfig, full_refresh: bool = False, output: str = "normal",
                 summary_json: Path | None = None) -> int:
    """One run of the pipeline (the engine in a Spark driver process); its exit status
    (pi_lakeflow.exits). ``full_refresh`` first resets the local tables and cursors (see
    :func:`reset`). ``output``: quiet, normal or verbose (engine.py; Spark's start-up lines
    only when verbose); ``summary_json``: a file for the run's summary as JSON. The caller holds
    ``state_dir`` (:func:`state_lock`)."""
    if full_refresh:
        reset(config)
    say_removed(remove_uncommitted(config.warehouse), output)
    config.metastore.mkdir(parents=True, exist_ok=True)
    spec = write_spec(config)
    status = spec.parent / "exit-status"
    status.unlink(missing_ok=True)
    # The launcher's Spark Connect server runs on "local" (one core) unless told otherwise.
    command = [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.SparkPipelines",
               "--remote", config.spark_master, str(Path(__file__).parent / "engine.py"), "--spec", str(spec),
               "--state-path", config.settings.state_path, "--status-file", str(status), "--output", output,
               "--progress", "bar" if sys.stdout.isatty() else "lines",
               *(["--summary-json", str(summary_json.resolve())] if summary_json else [])]
    environment = {**os.environ, **LOOPBACK_ENVIRONMENT, "SPARK_HOME": str(spark_home()),
                   "SPARK_CONF_DIR": str(write_spark_conf_dir(config)),
                   "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                   REFERENCES_VARIABLE: references(config.configuration)}
    driver = subprocess.Popen(command, env=environment, cwd=str(config.state_dir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, encoding="utf-8", errors="replace", bufsize=1)
    drawn = DrawnBar()  # the terminal both relays write to
    relays = [threading.Thread(target=relay, args=(source, target, output == "verbose", drawn), daemon=True)
              for source, target in ((driver.stdout, sys.stdout), (driver.stderr, sys.stderr))]
    for thread in relays:
        thread.start()
    try:
        return await_driver(driver, status)
    finally:
        for thread in relays:
            thread.join(timeout=5)


def say_removed(removed: list[Removed], output: str) -> None:
    """One line per table from which uncommitted files were removed (not with ``output`` quiet)."""
    for table in removed if output != "quiet" else []:
        print(f"removed {table.files} file{'s' if table.files != 1 else ''} ({table.bytes / 1e6:,.1f} MB) that a "
              f"killed run left uncommitted in {table.table}", flush=True)


#: Seconds the Spark driver may take to stop once the engine has recorded how the run ended.
STOP_GRACE_SECONDS = 60.0


def await_driver(driver: subprocess.Popen, status: Path, grace: float = STOP_GRACE_SECONDS) -> int:
    """The exit status of a run's driver process. The engine writes the run's status to
    ``status`` before it stops Spark; a driver still there ``grace`` seconds later (a JVM that
    ran out of memory can hang in its shutdown) is killed, with a line saying so, and the
    recorded status returned. Interrupted (Ctrl-C), the driver is killed too."""
    try:
        while not status.is_file():
            try:
                return driver.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
        try:
            return driver.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
            print(f"pi-lakeflow: the Spark driver did not stop within {grace:.0f} s after the run ended; "
                  f"it was stopped", file=sys.stderr, flush=True)
            return int(status.read_text(encoding="utf-8"))
    except BaseException:
        driver.kill()
        driver.wait()
        raise
