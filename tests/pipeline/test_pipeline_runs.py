"""The pipeline end to end: ``pi-lakeflow run`` (the spark-pipelines engine, local Spark) against a
simulator on loopback, compared with the simulator's ground truth, over the three runs of
tests/pipeline/shared_runs.py (which says what each does; test_derived_tables reads them too).
Tables are read from their parquet folders with a separate Spark session (the runs' metastore is
an embedded Derby that one process at a time may open); run 1's tables are copied before run 2
replaces its materialized views.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pi_lakeflow.local.config import load_config
from pi_lakeflow.local.runner import run_pipeline
from pi_lakeflow.spark import quality
from pi_lakeflow.tables import registry
from tests.oracle import current_rows, landed_changes, truth_changes, value_row
from tests.pipeline.conformance import check_tables, needing_a_setting, realtime_tables
from tests.pipeline.shared_runs import ADVANCE_HOURS, HOUR_NS, HOUR_TICKS, LATER_NS, MISSING, NOW_NS, TICK
from tests.simulators import NOW

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1200)]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of a timestamp Spark returned (naive, in UTC here)."""
    return (moment.replace(tzinfo=timezone.utc) - EPOCH) // timedelta(microseconds=1)


def landed_rows(frame) -> list[tuple]:
    return [value_row(row.asDict()) for row in frame.collect()]


def test_first_run_lands_exactly_the_ground_truth(runs, spark):
    landed = spark.read.parquet(str(runs["config"].warehouse / "pi_timeseries")).where("batch = 1")
    actual = Counter(landed_rows(landed))
    expected = Counter(runs["truth_first"])
    assert not actual - expected, f"landed but not in the ground truth: {sorted(actual - expected)[:5]}"
    assert not expected - actual, f"in the ground truth but not landed: {sorted(expected - actual)[:5]}"
    assert sum(actual.values()) > 50_000


def test_a_quiet_run_prints_its_summary_line_only_and_the_json_summary_says_what_the_tables_hold(runs):
    """Run 1, --quiet and --summary-json (the default output: test_cli's demo)."""
    quiet = runs["outputs"]["quiet"]
    lines = quiet["stdout"].splitlines()
    points = len(runs["points"])
    assert len(lines) == 1 and re.match(rf"^\d\d:\d\d:\d\d  run completed in [\d.]+ s: [\d,]+ values landed; "
                                        rf"{points} tags complete, 0 failed$", lines[0]), quiet
    assert "incubator" not in quiet["stderr"] and "Importing" not in quiet["stdout"]
    found = json.loads(runs["summary"].read_text())
    landed = pq.read_table(runs["snapshot"] / "pi_timeseries").num_rows
    assert found["status"] == 0 and found["values_landed"] == landed > 0 and found["error"] is None
    assert found["tags_complete"] == points and found["tags_failed"] == 0 and found["failures"] == []
    assert found["tables"]["pi_timeseries"] == {"rows": landed, "added": landed}
    assert found["tables"]["pi_points"]["rows"] == points


def test_a_verbose_run_prints_every_flow_event_and_removes_what_a_killed_run_left(runs):
    """Run 2, --verbose, after files a killed run left uncommitted were put in pi_timeseries'
    folder (shared_runs.kill_leftovers): they are removed first, and a plain parquet reader then
    counts what the run says the table holds."""
    verbose = runs["outputs"]["verbose"]
    out = verbose["stdout"]
    assert "pi_timeseries is RUNNING." in out and "Importing" in out
    assert "Using incubator modules" in verbose["stderr"]
    assert re.search(r"^removed 2 files \([\d.]+ MB\) that a killed run left uncommitted in pi_timeseries$",
                     out, re.M), out[-3000:]
    first = pq.read_table(runs["snapshot"] / "pi_timeseries").num_rows
    counted = re.search(r"pi_timeseries\s+([\d,]+)\s", out.split("tables (rows now")[1]).group(1)
    landed = re.search(r"run completed in [\d.]+ s: ([\d,]+) values landed", out).group(1)
    assert runs["plain_rows"] == int(counted.replace(",", "")) == first + int(landed.replace(",", ""))


def test_later_runs_land_exactly_what_changed_once_each(runs, spark):
    rows = [r.asDict() for r in spark.read.parquet(str(runs["config"].warehouse / "pi_timeseries")).collect()]
    keys = Counter((r["name"], r["timestamp_ns"], r["ordinal"], r["batch"]) for r in rows)
    assert not [key for key, count in keys.items() if count > 1], "a key landed twice in one run"
    # Runs 2 and 3 (the tag that failed in run 2) land what changed between the two clocks.
    changes = landed_changes(r for r in rows if r["batch"] > 1)
    assert changes == truth_changes(runs["truth_first"], runs["truth_all"])
    before_now = Counter(action for action, row in changes.elements() if row[1] < NOW_NS)
    assert before_now["Add"] and before_now["Update"] and before_now["Delete"], \
        "the simulator back-filled, edited or deleted nothing before NOW between the runs"
    assert current_rows(rows) == Counter(runs["truth_all"])


def test_a_failing_tag_keeps_its_cursor_and_the_others_go_on(runs, spark):
    """With markers (the default) a tag's cursor is one tick past its newest value: within the
    hours before the server's now at its last read (hourly tags, outages back-filled late)."""
    failing = runs["failing"]
    state = {r["web_id"]: r for r in runs["state_after_second"].to_pylist()}
    assert NOW_NS - 3 * HOUR_NS < state[failing.web_id]["cursor_ns"] <= NOW_NS + TICK
    assert "HTTP 500" in state[failing.web_id]["last_error"] and state[failing.web_id]["marker"] is None
    others = [s for w, s in state.items() if w != failing.web_id]
    assert others and all(LATER_NS - 3 * HOUR_NS < s["cursor_ns"] <= LATER_NS + TICK and s["last_error"] is None
                          and s["marker"] for s in others)

    log = spark.read.parquet(str(runs["config"].warehouse / "pi_ingestion_log"))
    second = [r.asDict() for r in log.where("batch = 2").collect()]
    failures = {name: message for r in second for name, message in (r["failed_tags"] or {}).items()}
    assert list(failures) == [failing.name] and failing.name in failures[failing.name]
    assert sum(r["tags"] for r in second) == len(runs["points"]) and {r["partition"] for r in second} == {0, 1, 2}
    third = sorted((r.asDict() for r in log.where("batch = 3").collect()), key=lambda r: r["partition"])
    assert [(r["partition"], r["tags"], r["tags_failed"]) for r in third] == [(-1, 1, 1), (0, 1, 0)]
    assert list(third[0]["failed_tags"]) == [MISSING]
    assert MISSING in runs["outputs"]["third"]["stderr"]

    cursors = spark.read.parquet(str(runs["config"].warehouse / "pi_tag_cursors")).collect()
    assert all((LATER_NS - 3 * HOUR_NS) // 1000 < micros(r["cursor"]) <= LATER_NS // 1000 + 1 for r in cursors)
    assert len(cursors) == len(runs["points"])  # tags not selected in run 3 keep their cursors


def test_af_tables_equal_the_simulated_model(runs, spark):
    plant = runs["api"].plant
    warehouse = runs["config"].warehouse
    elements = spark.read.parquet(str(warehouse / "pi_af_elements")).collect()
    assert sorted(r["path"] for r in elements) == sorted(e.path for e in plant.elements)
    attributes = spark.read.parquet(str(warehouse / "pi_af_attributes")).collect()
    expected = {(a.web_id, a.point.web_id if a.point else None) for e in plant.elements for a in e.attributes}
    assert {(r["web_id"], r["point_web_id"]) for r in attributes} == expected
    templates = {r["name"] for r in spark.read.parquet(str(warehouse / "pi_af_templates")).collect()}
    assert {e.template for e in plant.elements if e.template} <= templates
    points = spark.read.parquet(str(runs["snapshot"] / "pi_points")).collect()
    assert sorted(r["web_id"] for r in points) == sorted(p.web_id for p in plant.points)


def test_event_frames_close_in_the_table_after_they_close_on_the_server(runs, spark):
    plant = runs["api"].plant
    before = {r["web_id"]: r for r in spark.read.parquet(str(runs["snapshot"] / "pi_event_frames")).collect()}
    after = {r["web_id"]: r for r in spark.read.parquet(str(runs["config"].warehouse / "pi_event_frames")).collect()}
    closing = [f for f in plant.event_frames if f.start_ticks <= NOW < f.planned_end_ticks <= NOW + ADVANCE_HOURS * HOUR_TICKS]
    assert closing, "the test plant has no frame that closes between the runs"
    for frame in closing:
        assert before[frame.web_id]["in_progress"] and before[frame.web_id]["end_time"] is None
        assert not after[frame.web_id]["in_progress"]
        assert micros(after[frame.web_id]["end_time"]) == frame.planned_end_ticks // 10
    attributes = spark.read.parquet(str(runs["config"].warehouse / "pi_event_frame_attributes"))
    assert attributes.select("owner_web_id").distinct().count() == len(after)


def test_every_table_the_runs_made_conforms(runs, spark):
    """The conformance suite (tests/pipeline/conformance.py) over every table a pipeline with
    pi.tables all makes; test_derived_tables runs it over the tables that need a setting,
    test_realtime over the real-time tables: every registered table passes it."""
    made = [t.name for t in registry.made_by(runs["config"].settings)]
    assert check_tables(spark, runs["config"].warehouse, runs["snapshot"], made) == made
    others = {t.name for t in registry.TABLES} - set(made)
    assert others == {*needing_a_setting(), *realtime_tables()}


def test_query_prints_the_tables_through_the_local_catalog(runs):
    config = runs["config"]
    command = [sys.executable, "-m", "pi_lakeflow.cli", "query", "--config", str(config.path), "--format", "csv",
               "SELECT count(*) AS n, count(DISTINCT web_id) AS tags FROM pi_timeseries"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.strip().splitlines()[-2:]
    assert header == "n,tags" and int(row.split(",")[1]) == len(runs["points"])


def rules_failed(row: tuple, point) -> list[str]:
    """The quality rules a landed value fails, worked out here in Python from the value and its
    point (None: a point pi_points does not hold, whose type and span are unknown), apart from the
    SQL of pi_lakeflow.spark.quality (the times are years from 1970 and 9999, and before the
    tests' wall clock, so the time rules pass)."""
    _, _, _, value_text, good, questionable, substituted, _ = row
    value = json.loads(value_text)
    number = isinstance(value, float)
    checks = {"good_quality": good, "not_system_state": not (isinstance(value, dict) and value.get("IsSystem")),
              "numeric_value_present": number or point is None or not point.is_numeric,
              "not_questionable": not questionable, "not_substituted": not substituted,
              "within_span": not number or point is None or point.span <= 0
              or point.zero <= value <= point.zero + point.span}
    return [rule for rule, passed in checks.items() if not passed]


@pytest.fixture(scope="module")
def judged(runs, spark):
    """PI's current values (the ground truth after the last run) with the rules each fails, as
    of the points pi_points holds after the last run (run 3 selects one tag: the others' values
    stay, with no point to judge them by)."""
    held = {r["name"] for r in spark.read.parquet(str(runs["config"].warehouse / "pi_points")).collect()}
    points = {p.name: p for p in runs["points"] if p.name in held}
    assert points, "pi_points holds none of the plant's points"
    return {row: rules_failed(row, points.get(row[0])) for row in runs["truth_all"]}


def test_quality_metrics_count_exactly_the_current_values_each_rule_fails(runs, spark, judged):
    metrics = spark.read.parquet(str(runs["config"].warehouse / "pi_quality_metrics"))
    series = [r.asDict() for r in metrics.where("table_name = 'pi_timeseries_silver'").collect()]
    rules = {r.name: r.action for r in quality.timeseries_rules(0)}
    assert {r["batch"] for r in series} == {3}  # the latest run the current values come from
    values = list(judged.values())
    found = {r["rule"]: (r["action"], r["passed"], r["failed"]) for r in series}
    expected = {rule: (action, len(values) - sum(rule in f for f in values), sum(rule in f for f in values))
                for rule, action in rules.items()}
    assert found == expected
    assert all(found[rule][2] > 0 for rule in rules if rule not in ("identified", "valid_timestamp", "not_in_future",
                                                                     "within_span")), \
        "the simulator made no value for some rule to fail"
    frames = metrics.where("table_name = 'pi_event_frames_silver'").collect()
    count = spark.read.parquet(str(runs["config"].warehouse / "pi_event_frames")).count()
    assert [(r["rule"], r["passed"], r["failed"]) for r in frames] == [("frame_ends_after_start", count, 0)]


def test_quarantine_holds_the_current_values_that_fail_a_drop_rule_and_silver_the_rest(runs, spark, judged):
    warehouse = runs["config"].warehouse
    drop = {r.name for r in quality.timeseries_rules(0) if r.action == quality.DROP}
    quarantine = spark.read.parquet(str(warehouse / "pi_timeseries_quarantine")).collect()
    assert sorted((value_row(r.asDict()), r["failed_rules"] + r["warnings"]) for r in quarantine) == sorted(
        (value, failed) for value, failed in judged.items() if drop & set(failed))
    assert all(set(r["failed_rules"]) <= drop and not set(r["warnings"]) & drop for r in quarantine)
    silver = spark.read.parquet(str(warehouse / "pi_timeseries_silver")).collect()
    assert sorted((value_row(r.asDict()), r["warnings"]) for r in silver) == sorted(
        (value, failed) for value, failed in judged.items() if not drop & set(failed))
    assert len(quarantine) > 1000 and len(silver) > 400_000
    # An edited value is there once, as edited (the plant's edits flag the value substituted).
    assert any(r["substituted"] for r in silver)


def test_silver_carries_each_values_point_and_af_context(runs, spark):
    """After run 1, which selected every tag (run 3 selects one: silver then knows one point)."""
    plant = runs["api"].plant
    readers = {}
    for element in plant.elements:
        for attribute in element.attributes:
            if attribute.point:
                readers.setdefault(attribute.point.web_id, []).append((element.path, attribute.name))
    silver = spark.read.parquet(str(runs["snapshot"] / "pi_timeseries_silver"))
    context = silver.select("web_id", "point_type", "engineering_units", "element_path", "attribute_name",
                            "af_references").distinct().collect()
    points = {p.web_id: p for p in plant.points}
    assert len(context) == len(points)
    for r in context:
        point, found = points[r["web_id"]], readers.get(r["web_id"], [])
        assert (r["point_type"], r["engineering_units"]) == (point.point_type, point.units)
        assert (r["element_path"], r["attribute_name"]) == (min(found) if found else (None, None))
        assert (r["af_references"] or 0) == len(found)


def test_event_frames_silver_has_duration_elements_and_attribute_values(runs, spark):
    warehouse = runs["config"].warehouse
    frames = {r["web_id"]: r for r in spark.read.parquet(str(warehouse / "pi_event_frames_silver")).collect()}
    bronze = spark.read.parquet(str(warehouse / "pi_event_frames")).collect()
    assert set(frames) == {r["web_id"] for r in bronze}
    paths = {r["web_id"]: r["path"] for r in spark.read.parquet(str(warehouse / "pi_af_elements")).collect()}
    values = spark.read.parquet(str(warehouse / "pi_event_frame_attributes")).collect()
    for r in bronze:
        frame = frames[r["web_id"]]
        expected = None if r["end_time"] is None else (r["end_time"] - r["start_time"]).total_seconds()
        assert frame["duration_seconds"] == pytest.approx(expected)
        assert frame["element_paths"] == [paths[w] for w in r["ref_element_web_ids"]]
        assert frame["primary_element_path"] == paths[r["primary_element_web_id"]]
        assert set(frame["attribute_values"] or {}) == {v["attribute_name"] for v in values
                                                         if v["owner_web_id"] == r["web_id"]}


CHROMIUM = Path("/usr/bin/chromium")


def zoned(moment: datetime) -> str:
    """A timestamp as the report shows it: this machine's zone (the report's Spark session's), with
    its offset."""
    local = moment.astimezone()
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S ") + offset[:3] + ":" + offset[3:]


def behind_bounds(text: str) -> tuple[int, int]:
    """The seconds a freshness text ("42 s", "7 min", "3 h 5 min", "400 d 2 h") can stand for."""
    units = {"d": 86_400, "h": 3_600, "min": 60, "s": 1}
    parts = re.findall(r"(\d+) (d|h|min|s)\b", text)
    assert parts and " ".join(f"{n} {u}" for n, u in parts) == text, text
    low = sum(int(n) * units[u] for n, u in parts)
    return low, low + units[parts[-1][1]]


def report_oracle(spark, warehouse: Path) -> dict:
    """What each panel must show, computed here from the tables' parquet files (not the
    dashboard's SQL)."""
    def rows(name):
        return [r.asDict() for r in spark.read.parquet(str(warehouse / name)).collect()]

    def utc(moment: datetime) -> datetime:
        return moment.replace(tzinfo=timezone.utc)  # this module's session reads in UTC

    log, silver, quarantine = rows("pi_ingestion_log"), rows("pi_timeseries_silver"), rows("pi_timeseries_quarantine")
    latest: dict[str, datetime] = {}
    latest_by_name: dict[str, datetime] = {}
    for r in silver:
        latest[r["web_id"]] = max(latest.get(r["web_id"], utc(r["timestamp"])), utc(r["timestamp"]))
        latest_by_name[r["name"]] = max(latest_by_name.get(r["name"], utc(r["timestamp"])), utc(r["timestamp"]))
    window_end = utc(max(r["read_to"] for r in log if r["read_to"] is not None))
    last_batch = max(r["batch"] for r in log)
    per_batch = Counter()
    for r in log:
        per_batch[r["batch"]] += r["values_landed"]
    by_tag = Counter(r["name"] for r in quarantine)
    top = sorted(by_tag, key=lambda tag: (-by_tag[tag], tag))[:20]
    metrics: dict[str, dict[datetime, list[float]]] = {}  # rule -> run -> the pass rates of its rows
    for r in rows("pi_quality_metrics"):
        judged = metrics.setdefault(r["rule"], {}).setdefault(r["landed_at"], [])
        if r["passed"] + r["failed"]:
            judged.append(r["passed"] / (r["passed"] + r["failed"]))
    return {
        "headline": {
            "values_landed": sum(r["values_landed"] for r in log), "silver_values": len(silver),
            "quarantined_values": len(quarantine),
            "pass_rate": round(100 * len(silver) / (len(silver) + len(quarantine)), 2),
            "stale_tags": sum(1 for r in rows("pi_points") if r["web_id"] not in latest
                              or latest[r["web_id"]] < window_end - timedelta(hours=1)),
            # tags whose last read failed (a back-fill's later steps leave them aside), and the
            # names the latest batch did not find
            "failed_tags": sum(1 for r in rows("pi_tag_cursors") if r["last_error"] is not None)
            + sum(r["tags_failed"] for r in log if r["batch"] == last_batch and r["partition"] == -1)},
        "ingestion": dict(sorted(per_batch.items())),
        "quarantine_reasons": Counter(rule for r in quarantine for rule in r["failed_rules"]),
        "quarantine_tags": {tag: Counter(" + ".join(sorted(r["failed_rules"])) for r in quarantine if r["name"] == tag)
                            for tag in top},
        # the oldest latest value first (whole seconds, as unix_timestamp counts them), then by name
        "freshness": sorted(latest_by_name.items(), key=lambda item: (int(item[1].timestamp()), item[0]))[:200],
        "failed_tags": sorted(((r["batch"], zoned(utc(r["started_at"])) if r["started_at"] else "", tag, error) for r in log
                               for tag, error in (r["failed_tags"] or {}).items()),
                              key=lambda row: (-row[0], row[2])),
        "pass_rate": {rule: [sum(v) / len(v) if v else None for _, v in sorted(runs.items())]
                      for rule, runs in metrics.items()},
    }


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it")
def test_the_report_shows_in_each_panel_the_numbers_the_tables_hold(runs, spark, tmp_path):
    """``pi-lakeflow report`` drawn in headless chromium; each panel's numbers, as drawn, against
    the tables; a screenshot is saved beside the report."""
    from playwright.sync_api import sync_playwright

    from pi_lakeflow.local.report import load_dashboard, local_widgets

    out = tmp_path / "report.html"
    command = [sys.executable, "-m", "pi_lakeflow.cli", "report", "--config", str(runs["config"].path), "--out", str(out)]
    before = datetime.now(timezone.utc)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    after = datetime.now(timezone.utc)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # Spark's own lines go to state_dir/spark-output.log
    local, workspace_only = local_widgets(load_dashboard())
    assert [item["widget"]["name"] for item in workspace_only] == ["pipeline_updates"]  # the event log's
    assert "Only on the deployed dashboard" in out.read_text()
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(out.as_uri(), wait_until="load")
        drawn = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('section.panel')].map(s => {
            const chart = s.querySelector('.js-plotly-plot');
            const counter = s.querySelector('.counter');
            return [s.dataset.panel, {
                title: s.querySelector('h2').textContent, description: s.querySelector('.description').textContent,
                counter: counter ? counter.dataset.value : null, svg: !!(chart && chart.querySelector('svg.main-svg')),
                traces: chart ? chart.data.map(t => t.type === 'table' ? {cells: t.cells.values}
                                                                       : {name: t.name, x: t.x, y: t.y}) : [],
                yaxis: chart ? (chart.layout.yaxis || {}).type : null,
                order: chart ? (chart.layout.xaxis || {}).categoryarray : null}];
        }))""")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert list(drawn) == [item["widget"]["name"] for item in local]
    for item in local:  # every panel titled and explained, as on the dashboard
        frame = item["widget"]["spec"]["frame"]
        assert drawn[item["widget"]["name"]]["title"] == frame["title"] and frame["description"]
        assert drawn[item["widget"]["name"]]["description"] == frame["description"]
    truth = report_oracle(spark, runs["config"].warehouse)

    for name, expected in truth["headline"].items():
        shown = drawn[f"headline_{name}"]["counter"]
        assert float(shown) == pytest.approx(expected), (name, shown, expected)
    assert truth["headline"]["failed_tags"] == 1  # run 3's name the server does not have
    assert truth["headline"]["quarantined_values"] > 0

    ingestion = drawn["ingestion"]
    assert len(ingestion["traces"]) == 1 and ingestion["svg"]
    assert dict(zip(ingestion["traces"][0]["x"], ingestion["traces"][0]["y"])) == truth["ingestion"]
    landed = list(truth["ingestion"].values())
    assert (ingestion["yaxis"] == "log") == (max(landed) >= 100 * min(v for v in landed if v > 0))
    assert ingestion["yaxis"] == "log"  # these runs: a 6 h back-fill, then far smaller runs

    reasons = drawn["quarantine_reasons"]
    assert dict(zip(reasons["traces"][0]["x"], reasons["traces"][0]["y"])) == truth["quarantine_reasons"]
    assert reasons["order"] == sorted(truth["quarantine_reasons"], key=lambda r: (-truth["quarantine_reasons"][r], r))

    tags = drawn["quarantine_tags"]
    expected = truth["quarantine_tags"]
    assert tags["order"] == list(expected)  # ranked by quarantined values, most first
    shown: dict[str, Counter] = {}
    for trace in tags["traces"]:  # one trace per combination of rules; a value counted once
        for tag, count in zip(trace["x"], trace["y"]):
            shown.setdefault(tag, Counter())[trace["name"]] += count
    assert shown == expected

    table = drawn["freshness"]["traces"][0]["cells"]
    assert table[0] == [tag for tag, _ in truth["freshness"]]
    assert table[1] == [zoned(moment) for _, moment in truth["freshness"]]
    for (tag, moment), text in zip(truth["freshness"], table[2]):
        low, high = behind_bounds(text)
        assert low <= (after - moment).total_seconds() and (before - moment).total_seconds() < high + 1, (tag, text)

    failed = drawn["failed_tags"]["traces"][0]["cells"]
    assert list(zip(*failed)) == [(str(b), started, tag, error) for b, started, tag, error in truth["failed_tags"]]
    assert any(runs["failing"].name == tag for _, _, tag, _ in truth["failed_tags"])

    rates = {trace["name"]: trace["y"] for trace in drawn["pass_rate"]["traces"]}
    assert set(rates) == set(truth["pass_rate"])
    for rule, values in truth["pass_rate"].items():
        assert rates[rule] == pytest.approx(values), rule


def test_full_refresh_starts_every_table_and_cursor_over(runs, spark, tmp_path):
    """On a copy of the runs' folder (the session's runs stay as the tests above read them)."""
    shutil.copytree(runs["config"].path.parent, tmp_path / "copy")
    config = load_config(tmp_path / "copy" / runs["config"].path.name)  # run 3's: the failed tag, a missing name
    assert run_pipeline(config, full_refresh=True) == 3  # completed; the missing name is reported
    warehouse = config.warehouse
    landed = landed_rows(spark.read.parquet(str(warehouse / "pi_timeseries")))
    failing = runs["failing"]
    assert sorted(landed) == sorted(r for r in runs["truth_all"] if r[0] == failing.name)
    log = spark.read.parquet(str(warehouse / "pi_ingestion_log")).collect()
    assert {r["batch"] for r in log} == {1}
    cursors = spark.read.parquet(str(warehouse / "pi_tag_cursors")).collect()
    newest = max(r[1] for r in runs["truth_all"] if r[0] == failing.name)
    assert [(r["name"], micros(r["cursor"])) for r in cursors] == [(failing.name, (newest + TICK) // 1000)]
