"""The asset bundle, structurally: the files parse, load in databricks-bundles' typed models, name
paths that exist, carry exactly the pipeline's configuration keys and no secret in plain text.
tests/deploy/test_bundle_cli.py renders it with the Databricks CLI itself. Neither proves that a
workspace accepts the deployment (see DEPLOY.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from databricks.bundles.dashboards import Dashboard
from databricks.bundles.jobs import Job
from databricks.bundles.pipelines import Pipeline
from databricks.bundles.schemas import Schema
from databricks.bundles.volumes import Volume

from pi_lakeflow.local.report import DASHBOARD, dataset_queries, load_dashboard
from pi_lakeflow.config.settings import KEYS, KEY_NAMES
from pi_lakeflow.tables.registry import BY_NAME, EVENT_LOG_NAME, PLATFORM_TABLES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[1]
SECRET_REFERENCE = re.compile(r"^\{\{secrets/[^/{}]+/[^/{}]+\}\}$")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def resources() -> dict:
    merged: dict = {}
    for path in sorted((ROOT / "resources").glob("*.yml")):
        for kind, items in load(path)["resources"].items():
            merged.setdefault(kind, {}).update(items)
    return merged


def test_every_yaml_file_parses_and_the_bundle_includes_the_resources():
    bundle = load(ROOT / "databricks.yml")
    assert bundle["bundle"]["name"] == "pi_lakeflow" and bundle["include"] == ["resources/*.yml"]
    assert bundle["targets"]["dev"]["mode"] == "development" and bundle["targets"]["dev"]["default"] is True
    assert bundle["targets"]["prod"]["mode"] == "production" and "root_path" in bundle["targets"]["prod"]["workspace"]
    assert list((ROOT / "resources").glob("*.yml"))


PIPELINES = ("pi_lakeflow_timeseries", "pi_lakeflow_catalog")


def test_resources_load_in_the_typed_bundle_models(resources):
    pipelines = [Pipeline.from_dict(resources["pipelines"][name]) for name in PIPELINES]
    jobs = [Job.from_dict(job) for job in resources["jobs"].values()]
    Schema.from_dict(resources["schemas"]["pi_lakeflow"])
    Volume.from_dict(resources["volumes"]["pi_lakeflow_state"])
    assert all(p.serverless is True for p in pipelines)
    assert all(job.tasks[0].pipeline_task is not None for job in jobs)
    refreshed = {job["tasks"][0]["pipeline_task"]["pipeline_id"] for job in resources["jobs"].values()}
    assert refreshed == {f"${{resources.pipelines.{name}.id}}" for name in PIPELINES}
    classic = load(ROOT / "databricks.yml")["targets"]["prod-classic"]["resources"]["pipelines"]
    Pipeline.from_dict({**resources["pipelines"]["pi_lakeflow_timeseries"], **classic["pi_lakeflow_timeseries"]})


@pytest.mark.parametrize("name, tables", [("pi_lakeflow_timeseries", "timeseries"), ("pi_lakeflow_catalog", "catalog")])
def test_the_configuration_keys_are_exactly_the_keys_the_pipeline_reads(resources, name, tables):
    configuration = resources["pipelines"][name]["configuration"]
    assert sorted(configuration) == sorted(KEY_NAMES) and configuration["pi.tables"] == tables


@pytest.mark.parametrize("name", PIPELINES)
def test_no_secret_is_written_in_plain_text(resources, name):
    configuration = resources["pipelines"][name]["configuration"]
    for key in (k.name for k in KEYS if k.secret):
        assert configuration[key] == "" or SECRET_REFERENCE.match(configuration[key].replace("${var.secret_scope}",
                                                                                             "scope")), key
    assert configuration["pi.password"].startswith("{{secrets/")


def test_every_referenced_path_exists(resources):
    pipeline = resources["pipelines"]["pi_lakeflow_timeseries"]
    for library in pipeline["libraries"]:
        include = library["glob"]["include"]
        folder = (ROOT / "resources" / include.removesuffix("/**")).resolve()
        assert folder.is_dir() and list(folder.glob("*.py")), include
    bundle = load(ROOT / "databricks.yml")
    assert (ROOT / bundle["artifacts"]["pi_lakeflow_wheel"]["path"]).joinpath("pyproject.toml").is_file()
    assert pipeline["environment"]["dependencies"] == ["../dist/*.whl"]  # what the artifact build writes


def test_shards_spread_the_time_series_over_pipelines_from_one_variable(resources):
    from databricks.bundles.core import Bundle

    from resources import shards

    bundle = Bundle(target="prod", variables={"shards": 3, "catalog": "main", "schema": "pi"})
    added = shards.load_resources(bundle)
    assert sorted(added.pipelines) == ["pi_lakeflow_timeseries_shard1", "pi_lakeflow_timeseries_shard2"]
    for index, name in enumerate(sorted(added.pipelines), start=1):
        pipeline = added.pipelines[name]
        schema = f"${{resources.schemas.pi_lakeflow_shard{index}.name}}"  # the deployed (dev: prefixed) name
        assert pipeline.configuration["pi.shard"] == f"{index}/3" and pipeline.as_dict()["schema"] == schema
        assert sorted(pipeline.configuration) == sorted(KEY_NAMES)
        assert pipeline.configuration["pi.state_path"] == \
            f"/Volumes/main/{schema}/${{resources.volumes.pi_lakeflow_state_shard{index}.name}}"
        assert added.schemas[f"pi_lakeflow_shard{index}"].name == f"pi_shard{index}"
        assert (ROOT / pipeline.libraries[0].glob.include.removesuffix("/**")).is_dir()
    assert sorted(added.schemas) == ["pi_lakeflow_shard1", "pi_lakeflow_shard2"] and len(added.volumes) == 2
    first = shards.first_shard.function(bundle, Pipeline.from_dict(resources["pipelines"]["pi_lakeflow_timeseries"]))
    assert first.configuration["pi.shard"] == "0/3"
    job = shards.refresh_every_shard.function(bundle, Job.from_dict(resources["jobs"]["pi_lakeflow_timeseries_refresh"]))
    assert [t.task_key for t in job.tasks] == ["refresh_timeseries", "refresh_timeseries_shard1",
                                               "refresh_timeseries_shard2"]
    one = Bundle(target="prod", variables={"shards": 1, "catalog": "main", "schema": "pi"})
    assert not shards.load_resources(one).pipelines


def test_the_realtime_target_adds_the_updates_pipeline_run_by_a_continuous_job():
    from databricks.bundles.core import Bundle

    from resources import realtime

    bundle = load(ROOT / "databricks.yml")
    target = bundle["targets"]["realtime"]
    assert target["mode"] == "production" and target["variables"] == {"realtime": "true"}
    # prod's deployment, with the real-time pipeline added (deploying -t prod again removes it)
    prod_root = bundle["targets"]["prod"]["workspace"]["root_path"].replace("${bundle.target}", "prod")
    assert target["workspace"]["root_path"] == prod_root
    assert "resources.realtime:load_resources" in bundle["python"]["resources"]
    added = realtime.load_resources(Bundle(target="realtime", variables={"realtime": "true",
                                                                          "realtime_transport": "channels"}))
    pipeline, job = added.pipelines[realtime.REALTIME], added.jobs[realtime.REALTIME_JOB]
    assert sorted(pipeline.configuration) == sorted(KEY_NAMES) and pipeline.configuration["pi.tables"] == "updates"
    assert pipeline.configuration["pi.updates.transport"] == "channels"
    assert pipeline.serverless is True and not pipeline.continuous  # the job runs it continuously
    assert job.continuous.pause_status.value == "UNPAUSED" and job.schedule is None
    assert job.as_dict()["tasks"][0]["pipeline_task"]["pipeline_id"] == f"${{resources.pipelines.{realtime.REALTIME}.id}}"
    assert not realtime.load_resources(Bundle(target="prod", variables={"realtime": "false"})).pipelines
    with pytest.raises(ValueError, match="realtime must be true or false"):
        realtime.load_resources(Bundle(target="prod", variables={"realtime": "yes"}))
    with pytest.raises(ValueError, match="realtime_transport must be markers or channels"):
        realtime.load_resources(Bundle(target="prod", variables={"realtime": "true", "realtime_transport": "ws"}))


def test_the_dashboard_loads_and_queries_only_the_pipelines_tables(resources):
    """Which columns exist is proven by running every query on the tables a real run made
    (tests/pipeline/test_pipeline_runs.py, the report test); here: the resource, the file and
    the table names."""
    resource = resources["dashboards"]["pi_lakeflow_quality"]
    Dashboard.from_dict(resource)
    assert (ROOT / "resources" / resource["file_path"]).resolve() == DASHBOARD.resolve()
    assert resource["dataset_catalog"] == "${var.catalog}"
    assert resource["dataset_schema"] == "${resources.schemas.pi_lakeflow.name}"  # dev mode prefixes it
    dashboard = load_dashboard()
    queries = dataset_queries(dashboard)
    used = {item["widget"]["queries"][0]["query"]["datasetName"] for page in dashboard["pages"]
            for item in page["layout"]}
    assert used == set(queries), "a dataset no panel shows, or a panel without its dataset"
    for name, sql in queries.items():
        named = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", sql, re.IGNORECASE))
        local = set(re.findall(r"\b([A-Za-z_]\w*)\s+AS\s*\(", sql, re.IGNORECASE))  # WITH name AS (...)
        assert named - local and named - local <= {*BY_NAME, *PLATFORM_TABLES}, (name, named - local)
    # the event log table the dashboard reads is the one the time-series pipeline publishes
    assert resources["pipelines"]["pi_lakeflow_timeseries"]["event_log"]["name"] == EVENT_LOG_NAME


def test_every_panel_is_titled_and_explained_and_encodes_only_its_fields():
    """The dashboard file as Lakeview reads it: each widget's encodings name fields of its query,
    each frame shows a title and a description (what the panel shows, what empty means); the
    report draws an empty panel with both and says it has no rows."""
    import pandas as pd

    from pi_lakeflow.local.report import Panel, render

    dashboard = load_dashboard()
    for item in (i for page in dashboard["pages"] for i in page["layout"]):
        widget = item["widget"]
        spec, fields = widget["spec"], {f["name"] for f in widget["queries"][0]["query"]["fields"]}
        encodings = spec["encodings"]
        named = ([c["fieldName"] for c in encodings["columns"]] if "columns" in encodings else
                 [e["fieldName"] for e in encodings.values() if isinstance(e, dict) and "fieldName" in e])
        assert named and set(named) <= fields, widget["name"]
        assert spec["frame"]["showTitle"] and spec["frame"]["title"], widget["name"]
        assert spec["frame"]["showDescription"] and len(spec["frame"]["description"]) > 20, widget["name"]
        assert spec["version"] == (3 if spec["widgetType"] in ("bar", "line") else 2), widget["name"]
    headline = [i for i in dashboard["pages"][0]["layout"] if i["widget"]["spec"]["widgetType"] == "counter"]
    assert [i["position"]["y"] for i in headline] == [0] * 6 and sum(i["position"]["width"] for i in headline) == 6
    empty = Panel("failed_tags", "Failed tags per run", "Empty when every tag was read.", "table",
                  {"columns": []}, {"x": 0, "y": 0, "width": 3, "height": 4}, pd.DataFrame())
    page = render([empty], "pi.yml", [])
    assert "<h2>Failed tags per run</h2>" in page and "Empty when every tag was read." in page
    assert "No rows yet" in page
