"""``pi-lakeflow workspace``: what a user would otherwise click through in the workspace, with
databricks-sdk. The workspace comes from databricks-sdk's usual configuration (the
``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN`` environment, or a profile of ``~/.databrickscfg``).

* :func:`store_secrets`: create the secret scope if needed and store the PI credential under
  the key the bundle's configuration references. The value comes from the environment or a
  prompt, never from the command line, and is never printed.
* :func:`pipeline_status`: the deployed pipeline's latest update, and its expectation pass/fail
  counts from the pipeline's event log, which the bundle publishes as a table (the pipeline's
  ``event_log`` setting) so that anyone granted SELECT can read it, not only the pipeline's
  owner as with the ``event_log()`` function (a SQL query on a warehouse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from databricks.sdk import WorkspaceClient

from pi_lakeflow.errors import WorkspaceError

#: Per authentication scheme: the secret key the bundle references, and the environment
#: variable the value is read from (before prompting).
SECRET_KEYS = {"basic": ("pi-password", "PI_PASSWORD"), "bearer": ("pi-token", "PI_TOKEN"),
               "oidc": ("pi-oidc-secret", "PI_OIDC_SECRET")}
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,255}$")

EXPECTATIONS_SQL = """
SELECT e.dataset, e.name, SUM(e.passed_records) AS passed, SUM(e.failed_records) AS failed
FROM (
  SELECT explode(from_json(details:flow_progress:data_quality:expectations,
         'array<struct<name:string,dataset:string,passed_records:bigint,failed_records:bigint>>')) AS e
  FROM {event_log}
  WHERE event_type = 'flow_progress' AND origin.update_id = :update_id
)
GROUP BY e.dataset, e.name
ORDER BY e.dataset, e.name
"""


def store_secrets(client: WorkspaceClient, scope: str, auth: str, read_secret: Callable[[str, str], str]) -> list[str]:
    """Create ``scope`` if it does not exist and store the credential of ``auth`` in it.
    ``read_secret(variable, prompt)`` returns the value. Returns what was done, for the terminal."""
    if auth not in SECRET_KEYS:
        raise WorkspaceError(f"authentication '{auth}' has no secret to store; accepted: {', '.join(SECRET_KEYS)}")
    done = []
    if scope not in {s.name for s in client.secrets.list_scopes()}:
        client.secrets.create_scope(scope)
        done.append(f"created secret scope {scope}")
    key, variable = SECRET_KEYS[auth]
    value = read_secret(variable, f"{key} for the PI Web API (input hidden): ")
    if not value:
        raise WorkspaceError(f"no value for {key}: set {variable} or type it at the prompt")
    client.secrets.put_secret(scope, key, string_value=value)
    done.append(f"stored {key} in secret scope {scope} (the bundle references {{{{secrets/{scope}/{key}}}}})")
    return done


@dataclass
class PipelineStatus:
    name: str
    pipeline_id: str
    state: str
    update_id: str | None
    update_state: str | None
    update_created: str | None
    expectations: list[tuple[str, str, int, int]] = field(default_factory=list)  # dataset, rule, passed, failed

    def lines(self) -> list[str]:
        out = [f"pipeline {self.name} ({self.pipeline_id}): {self.state}"]
        if self.update_id is None:
            return out + ["  no update yet"]
        out.append(f"  latest update {self.update_id}: {self.update_state}, started {self.update_created}")
        if not self.expectations:
            out.append("  no expectation results in the event log for this update")
        for dataset, rule, passed, failed in self.expectations:
            total = passed + failed
            rate = f"{passed / total:.1%}" if total else "-"
            out.append(f"  {dataset:32} {rule:28} passed {passed:>12,}  failed {failed:>10,}  ({rate})")
        return out


def pipeline_status(client: WorkspaceClient, name: str, warehouse_id: str | None) -> PipelineStatus:
    """The pipeline named ``name``: its state, its latest update and, with a warehouse, that
    update's expectation counts from the event log."""
    found = [p for p in client.pipelines.list_pipelines(filter=f"name LIKE '{name.replace(chr(39), '')}'")
             if p.name == name]
    if not found:
        raise WorkspaceError(f"no pipeline named {name} in the workspace; deploy it with databricks bundle deploy")
    pipeline = client.pipelines.get(found[0].pipeline_id)
    state = pipeline.state.value if pipeline.state else "UNKNOWN"
    latest = pipeline.latest_updates[0] if pipeline.latest_updates else None
    status = PipelineStatus(name, pipeline.pipeline_id, state, latest and latest.update_id,
                            latest and latest.state and latest.state.value, latest and latest.creation_time)
    if latest is not None and warehouse_id:
        status.expectations = _expectations(client, warehouse_id, event_log_table(pipeline), latest.update_id)
    return status


def event_log_table(pipeline) -> str:
    """The quoted three-part name of the table a pipeline (pipelines.GetPipelineResponse)
    publishes its event log to, from its ``event_log`` setting."""
    spec = pipeline.spec and pipeline.spec.event_log
    if spec is None or not (spec.catalog and spec.schema and spec.name):
        raise WorkspaceError(f"pipeline {pipeline.name} publishes no event log table; deploy the bundle again "
                             f"(its pipelines set event_log)")
    parts = (spec.catalog, spec.schema, spec.name)
    if not all(_IDENTIFIER.match(part) for part in parts):  # written into the SQL text: names only
        raise WorkspaceError(f"unexpected event log table name {'.'.join(parts)!r}")
    return ".".join(f"`{part}`" for part in parts)


def _expectations(client: WorkspaceClient, warehouse_id: str, event_log: str, update_id: str
                  ) -> list[tuple[str, str, int, int]]:
    from databricks.sdk.service.sql import StatementParameterListItem, StatementState

    response = client.statement_execution.execute_statement(
        statement=EXPECTATIONS_SQL.format(event_log=event_log), warehouse_id=warehouse_id, wait_timeout="50s",
        parameters=[StatementParameterListItem(name="update_id", value=update_id)])
    if response.status is None or response.status.state != StatementState.SUCCEEDED:
        error = response.status and response.status.error and response.status.error.message
        raise WorkspaceError(f"the event log query on warehouse {warehouse_id} did not succeed: "
                             f"{error or (response.status and response.status.state)}")
    rows = (response.result and response.result.data_array) or []
    return [(dataset, rule, int(passed or 0), int(failed or 0)) for dataset, rule, passed, failed in rows]
