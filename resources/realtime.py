"""The real-time table on Databricks: a pipeline of ``pi_timeseries_updates`` (pi.tables updates)
run by a continuous job, added when the variable ``realtime`` is true (the ``realtime`` target
sets it; ``--var realtime=true`` adds it to another target).

Loaded by the Databricks CLI through the ``python:`` section of databricks.yml (databricks-bundles).
Databricks recommends a continuous job over the pipeline's own ``continuous`` flag (deprecated in
the bundle schema): the job restarts the pipeline when it fails, and the pipeline stays triggered
for a one-off refresh. Its configuration is the time-series pipeline's, so it reads the same tags
with the same credentials; its stream-update markers are in ``<pi.state_path>/updates``. The
variable ``realtime_transport`` sets its ``pi.updates.transport`` (markers or channels).
"""

from __future__ import annotations

from databricks.bundles.core import Bundle, Resources, Variable, variables

from resources.shards import yaml_pipeline

REALTIME = "pi_lakeflow_realtime"
REALTIME_JOB = "pi_lakeflow_realtime_stream"


@variables
class Variables:
    realtime: Variable[str]
    realtime_transport: Variable[str]


def enabled(bundle: Bundle) -> bool:
    value = str(bundle.resolve_variable(Variables.realtime)).lower()
    if value not in ("true", "false"):
        raise ValueError(f"variable realtime must be true or false, not {value!r}")
    return value == "true"


def transport(bundle: Bundle) -> str:
    value = str(bundle.resolve_variable(Variables.realtime_transport)).lower()
    if value not in ("markers", "channels"):
        raise ValueError(f"variable realtime_transport must be markers or channels, not {value!r}")
    return value


def load_resources(bundle: Bundle) -> Resources:
    resources = Resources()
    if not enabled(bundle):
        return resources
    base = yaml_pipeline()
    configuration = {**base["configuration"], "pi.tables": "updates", "pi.updates.transport": transport(bundle)}
    event_log = {**base["event_log"], "name": f"{REALTIME}_event_log"}
    resources.add_pipeline(REALTIME, {**base, "name": REALTIME, "configuration": configuration, "event_log": event_log})
    resources.add_job(REALTIME_JOB, {
        "name": "pi_lakeflow real-time stream",
        "continuous": {"pause_status": "UNPAUSED"},
        "max_concurrent_runs": 1,
        "tasks": [{"task_key": "stream_updates", "pipeline_task": {"pipeline_id": f"${{resources.pipelines.{REALTIME}.id}}"}}],
    })
    return resources
