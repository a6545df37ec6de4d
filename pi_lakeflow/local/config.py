"""The local config file (YAML) of ``pi-lakeflow run``, ``stream``, ``query``, ``report`` and
``check``, and the lock that gives its ``state_dir`` to one process at a time.

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from pi_lakeflow.config import settings as settings_module
from pi_lakeflow.config.settings import Settings
from pi_lakeflow.errors import ConfigError, SettingsError, StateInUse

CONFIG_KEYS = ("state_dir", "cores", "master", "spark_conf", "configuration")


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
