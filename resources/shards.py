"""Sharding the time series over N pipelines by a hash of the tag, from one variable: ``shards``.

Loaded by the Databricks CLI through the ``python:`` section of databricks.yml (databricks-bundles).
With ``shards: 1`` (the default) nothing changes. With N > 1, the YAML pipeline
``pi_lakeflow_timeseries`` reads shard 0 of N (``pi.shard``), and ``load_resources`` adds
``pi_lakeflow_timeseries_shard1`` ... ``shard{N-1}``, each writing the time-series tables into its
own schema ``<schema>_shard<i>`` with its own state volume, and reading points and AF from
``<schema>`` (``pi.catalog_schema``); the time-series job refreshes them all. A tag belongs to the
shard its WebId hashes to (pi_lakeflow.runtime.plan.shard_of).

Schemas, volumes and paths are references to the deployed resources (``${resources.schemas.<key>
.name}``), which development mode prefixes; the mutators find the YAML pipeline and job by what
they do (configuration, task key), not by their names, which development mode prefixes too.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml
from databricks.bundles.core import Bundle, Resources, Variable, job_mutator, pipeline_mutator, variables
from databricks.bundles.jobs import Job, PipelineTask, Task
from databricks.bundles.pipelines import Pipeline

TIMESERIES = "pi_lakeflow_timeseries"
TIMESERIES_TASK = "refresh_timeseries"  # the time-series job's task (resources/jobs.yml)


@variables
class Variables:
    shards: Variable[int]
    catalog: Variable[str]
    schema: Variable[str]


def _shards(bundle: Bundle) -> int:
    count = int(bundle.resolve_variable(Variables.shards))
    if count < 1:
        raise ValueError(f"variable shards must be 1 or more, not {count}")
    return count


def yaml_pipeline() -> dict:
    """The time-series pipeline as resources/pipelines.yml declares it, with its
    paths made relative to the bundle root (where resources defined in Python resolve them)."""
    declared = yaml.safe_load(Path(__file__).with_name("pipelines.yml").read_text())
    pipeline = dict(declared["resources"]["pipelines"][TIMESERIES])
    pipeline["libraries"] = [{"glob": {"include": "pipelines/**"}}]
    pipeline["environment"] = {"dependencies": ["dist/*.whl"]}
    return pipeline


def schema_name(key: str) -> str:
    """The deployed name of the schema resource ``key`` (development mode prefixes it)."""
    return f"${{resources.schemas.{key}.name}}"


def shard_pipeline(base: dict, catalog: str, index: int, count: int) -> dict:
    """The pipeline of shard ``index`` of ``count``: its own name, schema, state volume, event
    log and shard, reading points and AF from the schema of the YAML pipelines."""
    schema = schema_name(f"pi_lakeflow_shard{index}")
    volume = f"${{resources.volumes.pi_lakeflow_state_shard{index}.name}}"
    configuration = {**base["configuration"], "pi.shard": f"{index}/{count}",
                     "pi.catalog_schema": f"{catalog}.{schema_name('pi_lakeflow')}",
                     "pi.state_path": f"/Volumes/{catalog}/{schema}/{volume}"}
    event_log = {"catalog": catalog, "schema": schema, "name": f"{TIMESERIES}_shard{index}_event_log"}
    return {**base, "name": f"{TIMESERIES}_shard{index}", "schema": schema, "configuration": configuration,
            "event_log": event_log}


def load_resources(bundle: Bundle) -> Resources:
    resources = Resources()
    count = _shards(bundle)
    catalog, schema = bundle.resolve_variable(Variables.catalog), bundle.resolve_variable(Variables.schema)
    base = yaml_pipeline()
    for index in range(1, count):
        resources.add_schema(f"pi_lakeflow_shard{index}", {"catalog_name": catalog, "name": f"{schema}_shard{index}"})
        resources.add_volume(f"pi_lakeflow_state_shard{index}", {
            "catalog_name": catalog, "schema_name": schema_name(f"pi_lakeflow_shard{index}"), "name": "pi_lakeflow_state"})
        resources.add_pipeline(f"{TIMESERIES}_shard{index}", shard_pipeline(base, catalog, index, count))
    return resources


def is_timeseries(pipeline: Pipeline) -> bool:
    """The YAML time-series pipeline: it reads the time series and has no shard of its own yet."""
    configuration = pipeline.configuration or {}
    return configuration.get("pi.tables") == "timeseries" and configuration.get("pi.shard") == "0/1"


@pipeline_mutator
def first_shard(bundle: Bundle, pipeline: Pipeline) -> Pipeline:
    """The YAML time-series pipeline reads shard 0 of N."""
    count = _shards(bundle)
    if count == 1 or not is_timeseries(pipeline):
        return pipeline
    return replace(pipeline, configuration={**pipeline.configuration, "pi.shard": f"0/{count}"})


@job_mutator
def refresh_every_shard(bundle: Bundle, job: Job) -> Job:
    """The time-series job (the one with task ``refresh_timeseries``) refreshes every shard."""
    count = _shards(bundle)
    if count == 1 or TIMESERIES_TASK not in [task.task_key for task in job.tasks]:
        return job
    extra = [Task(task_key=f"refresh_timeseries_shard{i}",
                  pipeline_task=PipelineTask(pipeline_id=f"${{resources.pipelines.{TIMESERIES}_shard{i}.id}}"))
             for i in range(1, count)]
    return replace(job, tasks=[*job.tasks, *extra])
