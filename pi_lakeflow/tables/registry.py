"""Every table the pipeline makes, declared once: what it is, which pipeline makes it, its key,
what makes it, and in which order.

The pipeline files (``pipelines/bronze.py``, ``silver.py``) are a loop over this list; the local
engine runs its layers in order; the Spark data sources find a table's schema and reader here;
the bundle, the docs check and the conformance suite (tests/pipeline/conformance.py) read it.

Adding a table is one declaration here and one reader:

* a table read whole on each run (a materialized view): ``source="pi_catalog"`` and ``reader``,
  a function ``(ReadContext) -> pa.Table`` (pi_lakeflow.runtime.views; no Spark);
* an incremental table over time windows: ``source="pi_windows"`` and ``reader``, a
  :class:`pi_lakeflow.runtime.derived.WindowReader` (see runtime/derived.py for two);
* a silver table: ``build``, a function ``(SilverContext) -> DataFrame`` in pi_lakeflow.spark.silver
  (``(SilverContext, stream) -> DataFrame`` of change rows for a ``current`` table).

Readers are named as ``module:attribute`` and imported where they run (a Spark task imports
only what it reads).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pi_client import schemas as client_schemas

from pi_lakeflow.errors import UsageError

from . import schemas

BRONZE, SILVER = "bronze", "silver"
#: streaming: a streaming table, read incrementally (append only); view: a materialized view, made
#: whole each run; current: the current values of a change log (AUTO CDC where the engine has it,
#: else a materialized view of each key's latest change; pi_lakeflow.spark.definitions).
STREAMING, VIEW, CURRENT = "streaming", "view", "current"
#: The values of pi.tables, each a set of tables; ``all`` is timeseries and catalog.
TABLE_SETS = ("all", "timeseries", "catalog", "updates")


@dataclass(frozen=True)
class Table:
    """One table: its declaration.

    Attributes
    ----------
    name : the table's name in the pipeline's schema.
    layer : ``bronze`` (read from PI) or ``silver`` (made from other tables).
    kind : ``streaming`` (incremental, append only), ``view`` (materialized view, made whole) or
        ``current`` (the current values of a change log, one row per key).
    table_set : the pi.tables value whose pipeline makes it (``all`` makes timeseries and catalog).
    primary_key : columns that identify a row (no two rows share them); empty: none declared.
    comment : the table's comment in the catalog.
    schema : the Arrow schema its source yields (bronze); None for silver (Spark derives it).
    source : the Spark data source format that reads it (bronze).
    reader : ``module:attribute`` of what reads it for the generic sources (pi_catalog, pi_windows).
    build : the function of pi_lakeflow.spark.silver that makes it (silver).
    after : tables whose flows of the same run come first.
    partition_cols : partition columns of a streaming table.
    needs : the Settings field that turns the table on (empty or zero: the table is not made).
    rules : the quality rule set it is declared with (pi_lakeflow.spark.quality.rule_set).
    """

    name: str
    layer: str
    kind: str
    table_set: str
    primary_key: tuple[str, ...]
    comment: str
    schema: pa.Schema | None = None
    source: str | None = None
    reader: str | None = None
    build: str | None = None
    after: tuple[str, ...] = ()
    partition_cols: tuple[str, ...] = ()
    needs: str | None = None
    rules: str | None = None

    def made_by(self, settings: Any) -> bool:
        """Whether a pipeline with these settings (pi_lakeflow.config.settings.Settings) makes it."""
        in_set = self.table_set == settings.tables or (settings.tables == "all"
                                                       and self.table_set in ("timeseries", "catalog"))
        return in_set and (self.needs is None or bool(getattr(settings, self.needs)))

    def load_reader(self) -> Any:
        """The object ``reader`` names, imported."""
        if self.reader is None:
            raise ValueError(f"{self.name} has no reader")
        module, attribute = self.reader.split(":")
        return getattr(importlib.import_module(module), attribute)


_VALUES_KEY = ("web_id", "timestamp_ns", "ordinal", "batch")
_CURRENT_KEY = ("web_id", "timestamp_ns", "ordinal")
_VIEWS = "pi_lakeflow.runtime.views"
_AFTER_VALUES = ("pi_timeseries",)
_CATALOG_TABLES = ("pi_points", "pi_af_elements", "pi_af_attributes", "pi_af_templates", "pi_event_frames",
                   "pi_event_frame_attributes")


def _catalog(name: str, schema: pa.Schema, key: tuple[str, ...], reader: str) -> Table:
    return Table(name, BRONZE, VIEW, "catalog", key, f"{name}: read whole from the PI Web API on each run.",
                 schemas.spark_schema(schema), "pi_catalog", f"{_VIEWS}:{reader}")


TABLES: tuple[Table, ...] = (
    # Time series, incremental.
    Table("pi_timeseries", BRONZE, STREAMING, "timeseries", _VALUES_KEY,
          "PI's changes to values (action Add, Update, Delete): typed value, quality flags, tag, exact timestamp, "
          "batch and ingestion time.",
          schemas.TIMESERIES, "pi_timeseries", partition_cols=("date",)),
    Table("pi_timeseries_interpolated", BRONZE, STREAMING, "timeseries", ("web_id", "timestamp_ns"),
          "Each selected tag's value at every pi.interpolated.interval, for aligned analytics.",
          schemas.INTERPOLATED, "pi_windows", "pi_lakeflow.runtime.derived:Interpolated", partition_cols=("date",),
          needs="interpolated_interval_ns"),
    Table("pi_timeseries_summaries", BRONZE, STREAMING, "timeseries", ("web_id", "interval_start"),
          "Per numeric tag and pi.summaries.interval: time-weighted average, minimum, maximum, count, percent good.",
          schemas.SUMMARIES, "pi_windows", "pi_lakeflow.runtime.derived:Summaries", partition_cols=("date",),
          needs="summaries_interval_ns"),
    Table("pi_ingestion_log", BRONZE, VIEW, "timeseries", ("batch", "partition"),
          "pi_ingestion_log: per batch and tag partition, what was read, from the time-series source's state.",
          schemas.INGESTION_LOG, "pi_catalog", f"{_VIEWS}:ingestion_log", after=_AFTER_VALUES),
    Table("pi_tag_cursors", BRONZE, VIEW, "timeseries", ("web_id",),
          "pi_tag_cursors: where each tag's next read starts, from the time-series source's state.",
          schemas.TAG_CURSORS, "pi_catalog", f"{_VIEWS}:tag_cursors", after=_AFTER_VALUES),
    # Real time.
    Table("pi_timeseries_updates", BRONZE, STREAMING, "updates", (*_VALUES_KEY, "action"),
          "Real time: one row per PI stream-update event (action Add, Update or Delete), per poll.",
          schemas.TIMESERIES, "pi_updates", partition_cols=("date",)),
    # The catalog, read whole.
    _catalog("pi_points", client_schemas.POINTS, ("web_id",), "read_points"),
    _catalog("pi_af_elements", client_schemas.ELEMENTS, ("web_id",), "read_elements"),
    _catalog("pi_af_attributes", client_schemas.ATTRIBUTES, ("web_id",), "read_attributes"),
    _catalog("pi_af_templates", client_schemas.TEMPLATES, ("web_id",), "read_templates"),
    _catalog("pi_event_frames", client_schemas.EVENT_FRAMES, ("web_id",), "read_event_frames"),
    _catalog("pi_event_frame_attributes", client_schemas.OWNER_VALUES, ("owner_web_id", "attribute_web_id"),
             "read_event_frame_attributes"),
    Table("pi_catalog_log", BRONZE, VIEW, "catalog", ("table", "item"),
          "The items the catalog tables' latest reads could not read, with the server's message.",
          schemas.CATALOG_LOG, "pi_catalog", f"{_VIEWS}:catalog_log", after=_CATALOG_TABLES),
    # Silver and quality (pi_lakeflow.spark.silver; rules: pi_lakeflow.spark.quality).
    Table("pi_timeseries_silver", SILVER, CURRENT, "timeseries", _CURRENT_KEY,
          "PI's current values (edits applied, deletes removed) that pass the drop rules, with their point and "
          "AF context.", build="timeseries_silver", partition_cols=("date",), rules="timeseries"),
    Table("pi_timeseries_quarantine", SILVER, CURRENT, "timeseries", _CURRENT_KEY,
          "PI's current values that fail a drop rule: failed_rules, the drop rules; warnings, the warn rules.",
          build="timeseries_quarantine"),
    Table("pi_quality_metrics", SILVER, VIEW, "timeseries", ("table_name", "rule"),
          "Per table and rule: current values (and event frames) passed and failed, and the rule's action.",
          build="quality_metrics"),
    Table("pi_event_frames_silver", SILVER, VIEW, "catalog", ("web_id",),
          "Event frames that pass the rules, with duration, element paths and attribute values.",
          build="event_frames_silver", rules="event_frames"),
)

BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: The time-series pipeline's event log, which Databricks writes as a table of the schema (the
#: bundle's ``event_log`` setting); the dashboard reads it, local runs have none.
EVENT_LOG_NAME = "pi_lakeflow_timeseries_event_log"
PLATFORM_TABLES = (EVENT_LOG_NAME,)


def table(name: str) -> Table:
    """The declaration of ``name``; a UsageError naming the tables there are."""
    if name not in BY_NAME:
        raise UsageError(f"there is no table '{name}'; the tables are: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def made_by(settings: Any, layer: str | None = None) -> tuple[Table, ...]:
    """The tables a pipeline with these settings makes (of ``layer``), in order."""
    return tuple(t for t in TABLES if t.made_by(settings) and (layer is None or t.layer == layer))


def layers(settings: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of the (bronze, silver) tables a pipeline with these settings makes: the local
    engine runs them as two phases."""
    return (tuple(t.name for t in made_by(settings, BRONZE)), tuple(t.name for t in made_by(settings, SILVER)))
