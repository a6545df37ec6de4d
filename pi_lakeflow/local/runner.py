"""Local runs on open-source Spark: the config file, the pipeline spec, the run, queries.

A local config file (YAML)::

    state_dir: ./pi-state          # catalog, tables, checkpoints and cursors live here
    cores: 2                       # Spark's local master: how many tag partitions run at once
    master: spark://host:7077      # optional: a Spark cluster's master instead (cores then unused)
    spark_conf:                    # optional: Spark settings of the run (a cluster's, e.g. YARN's)
      spark.executor.memory: 4g
    configuration:                 # the pipeline configuration: the same keys as in the bundle
      pi.url: https://pi.example.com/piwebapi
      pi.auth: basic
      pi.user: svc-lakeflow
      pi.password: env:PI_PASSWORD

Tables persist in an embedded Hive metastore (Derby) and a warehouse folder under ``state_dir``,
so that the next run is incremental. Locally they are Spark's default format (parquet); on
Databricks the same definitions make Delta tables in Unity Catalog.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, TextIO

import yaml

from pi_client import RetryPolicy, data_servers

from pi_lakeflow.config import settings as settings_module
from pi_lakeflow.config.connection import connect
from pi_lakeflow.local.uncommitted import Removed, remove_uncommitted
from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.config.settings import REFERENCES_VARIABLE, Settings, SettingsError, references

CONFIG_KEYS = ("state_dir", "cores", "master", "spark_conf", "configuration")
#: Before Spark starts, a server that does not answer is reported after seconds, not minutes.
PREFLIGHT_RETRY = RetryPolicy(attempts=3, backoff=0.5, max_backoff=2.0)
#: Seconds the first request before Spark starts (the data servers: a small reply) may take.
REACH_TIMEOUT = 3.0
PIPELINE_NAME = "pi_lakeflow"


class ConfigError(ValueError):
    """The local config file is unreadable or wrong; the message says where and what is accepted."""


@dataclass(frozen=True)
class LocalConfig:
    path: Path
    state_dir: Path
    cores: int
    configuration: dict[str, str]
    settings: Settings
    #: The Spark master a run's driver uses: ``local[cores]``, or a cluster's (``spark://...``).
    master: str = ""
    #: Spark settings from the config file, over the run's own (spark_confs).
    spark_conf: dict[str, str] = field(default_factory=dict)

    @property
    def spark_master(self) -> str:
        return self.master or f"local[{self.cores}]"

    @property
    def warehouse(self) -> Path:
        return self.state_dir / "warehouse"

    @property
    def metastore(self) -> Path:
        return self.state_dir / "metastore"


def load_config(path: str | os.PathLike) -> LocalConfig:
    """Read and check a local config file; nothing starts before it passes."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the config file {file}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{file} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must be a mapping with the keys {', '.join(CONFIG_KEYS)}")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{file}: unknown key {', '.join(map(str, unknown))}; accepted: {', '.join(CONFIG_KEYS)}")
    if not data.get("state_dir"):
        raise ConfigError(f"{file}: state_dir is missing: the folder for the local catalog, tables and cursors")
    state_dir = (file.parent / str(data["state_dir"])).resolve()
    cores = data.get("cores", 2)
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise ConfigError(f"{file}: cores must be a whole number of 1 or more, not {cores!r}")
    master = data.get("master") or ""
    if master and not (isinstance(master, str) and re.match(r"^(spark|yarn|k8s)(://\S+)?$", master.strip())):
        raise ConfigError(f"{file}: master must be a Spark cluster's master URL (spark://HOST:PORT, yarn or "
                          f"k8s://https://HOST:PORT), not {master!r}; leave it out for a local run on cores")
    spark_conf = data.get("spark_conf") or {}
    if not isinstance(spark_conf, dict) or not all(str(k).startswith("spark.") for k in spark_conf):
        raise ConfigError(f"{file}: spark_conf must be a mapping of Spark settings (keys that start with spark.)")
    configuration = data.get("configuration") or {}
    if not isinstance(configuration, dict):
        raise ConfigError(f"{file}: configuration must be a mapping of setting keys to values")
    configuration = {str(k): _text(v) for k, v in configuration.items()}
    # Relative to the config file, like state_dir (Spark's processes run in another folder).
    state_path = configuration.get("pi.state_path", "").strip() or str(state_dir / "source")
    configuration["pi.state_path"] = str((file.parent / state_path).resolve())
    try:
        parsed = settings_module.parse(configuration, literal_secrets=False)
    except SettingsError as error:
        raise ConfigError(f"{file}: {error}") from None
    return LocalConfig(file, state_dir, cores, configuration, parsed, master.strip(),
                       {str(k): _text(v) for k, v in spark_conf.items()})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


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


def spark_confs(config: LocalConfig) -> dict[str, str]:
    """Static Spark settings of a local run or query: the persistent catalog, no console noise."""
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(config.warehouse),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={config.metastore}",
        # The current-value views read the whole change log each run (silver.current_values); with
        # Spark's 1 GB default, their earlier sort of the README's pi.yml (90 M values) ran out of
        # heap. A ceiling, not an allocation.
        "spark.driver.memory": "6g",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        # The driver's ports (RPC, block manager) on the loopback address only: nothing of a local
        # run listens where the network reaches it.
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        **config.spark_conf,
    }


#: Every process a local run starts resolves its own address as the loopback one.
LOOPBACK_ENVIRONMENT = {"SPARK_LOCAL_IP": "127.0.0.1"}


class StateInUse(ConfigError):
    """Another pi-lakeflow process works on the same state_dir."""


@contextmanager
def state_lock(config: LocalConfig, command: str) -> Iterator[None]:
    """Hold ``state_dir`` for one process: a second run, stream, query, report or demo on the same
    folder is refused (StateInUse) before it reads or changes anything (the CLI takes it first).
    The lock is the operating system's (``flock``): it ends with the process, however it ends."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    path = config.state_dir / ".pi-lakeflow.lock"
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StateInUse(f"{config.state_dir} is in use by {holder}; wait for it to end, or give this "
                             f"config a state_dir of its own") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pi-lakeflow {command} (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def write_spark_conf_dir(config: LocalConfig) -> Path:
    """A SPARK_CONF_DIR for the run: spark-defaults.conf reaches every JVM the launcher starts
    (``--conf`` does not reach its Spark Connect server), and Spark logs errors only."""
    folder = config.state_dir / "pipeline" / "spark-conf"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spark-defaults.conf").write_text(
        "".join(f"{key} {value}\n" for key, value in spark_confs(config).items()), encoding="utf-8")
    shutil.copy2(Path(__file__).parent / "log4j2.properties", folder / "log4j2.properties")
    return folder


def spark_home() -> Path:
    import pyspark
    return Path(pyspark.__file__).parent


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


#: Lines of the JVM, Spark and its pipelines launcher that a run shows only when verbose.
SPARK_NOISE = re.compile(r"^(WARNING: Using incubator modules|Using Spark's default log4j profile|Setting default "
                         r"log level|To adjust logging level|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: (Loading definitions|"
                         r"Found \d+ files? matching|Importing ))")


#: The start of the engine's progress-bar lines (engine.show_progress).
PROGRESS_MARK = "::pi-lakeflow-progress:: "
#: Back to the start of the terminal's line, and erase it.
_ERASE_LINE = "\r\x1b[K"


@dataclass
class DrawnBar:
    """Whether a progress bar is drawn on the terminal: the stdout and stderr relays share it, so
    that a line on either erases the bar first."""

    shown: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def relay(source: IO[str], target: TextIO, verbose: bool, drawn: DrawnBar | None = None) -> None:
    """Copy the driver's lines to ``target`` as they come, without SPARK_NOISE unless ``verbose``.
    A progress-bar line is drawn over the previous one (no newline) when ``target`` is a terminal,
    cut to its width, and dropped otherwise; the next line, on this relay or another sharing
    ``drawn``, replaces the bar."""
    drawn = drawn or DrawnBar()
    for line in source:
        with drawn.lock:
            if line.startswith(PROGRESS_MARK):
                if target.isatty():
                    width = shutil.get_terminal_size().columns - 1
                    target.write(_ERASE_LINE + line[len(PROGRESS_MARK):].rstrip("\n")[:width])
                    target.flush()
                    drawn.shown = True
            elif verbose or not SPARK_NOISE.match(line):
                erase = drawn.shown and target.isatty()
                target.write((_ERASE_LINE if erase else "") + line)
                target.flush()
                drawn.shown = drawn.shown and not erase


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


def local_session(config: LocalConfig, catalog: bool = True, verbose: bool = False):
    """A classic SparkSession over the local catalog (streaming), as quiet as a run; without
    ``catalog`` an empty in-memory one, which needs neither the metastore nor its lock (queries
    and the report: query.folder_session). Unless ``verbose``, what the JVM writes on its own
    (its incubator-modules warning, Spark's log-level notice, any later log line) goes to
    :func:`spark_output` instead of the terminal."""
    import logging

    from pyspark.sql import SparkSession

    os.environ.update(LOOPBACK_ENVIRONMENT)
    os.environ["SPARK_CONF_DIR"] = str(write_spark_conf_dir(config))
    os.environ["PYSPARK_PYTHON"] = sys.executable  # Python workers (data sources) with this environment
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # the error is reported once, by us
    builder = SparkSession.builder.appName("pi-lakeflow query").master(f"local[{config.cores}]")
    for key, value in spark_confs(config).items():
        builder = builder.config(key, value)
    if not catalog:
        builder = builder.config("spark.sql.catalogImplementation", "in-memory")
    if verbose:
        return builder.getOrCreate()
    log = spark_output(config)
    try:
        with _stderr_to(log):  # the JVM starts here and keeps this stderr
            return builder.getOrCreate()
    except Exception:
        print(f"(Spark's own output is in {log})", file=sys.stderr)
        raise


def spark_output(config: LocalConfig) -> Path:
    """The file where the JVM of a query, report or stream writes its own lines."""
    return config.state_dir / "spark-output.log"


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's standard error (file descriptor 2, which child processes inherit) to
    ``path`` (appended) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def spark_error(error: BaseException) -> str:
    """A Spark error as one line: its error class and the first line that says something (Spark's
    messages may start with a blank line, and carry the query plan after the first line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    condition = getattr(error, "getCondition", lambda: None)()
    return text if not condition or condition in text else f"[{condition}] {text}"
