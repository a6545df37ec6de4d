"""``pi-lakeflow query`` and ``pi-lakeflow tables`` as a user runs them, over a local catalog that a
separate process made with the same session settings as a run (local_session)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

ROWS = 1_500  # more than query's default limit (1000)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_lakeflow.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("query")
    path = folder / "pi.yml"
    path.write_text(yaml.safe_dump({"state_dir": "./state", "configuration": {"pi.url": "http://127.0.0.1:1/piwebapi"}}))
    make = textwrap.dedent(f"""
        from pi_lakeflow.local.config import load_config
        from pi_lakeflow.local.spark_env import local_session
        spark = local_session(load_config({str(path)!r}))
        spark.sql("SELECT id, IF(id % 2 = 0, NULL, id * 10) AS maybe, TIMESTAMP '2024-05-01 23:30:00 UTC' AS at, "
                  "concat('tag-', id) AS name FROM range({ROWS})").write.saveAsTable("values_table")
        spark.sql("SELECT 1 AS one").write.saveAsTable("small_table")
        spark.stop()
    """)
    made = subprocess.run([sys.executable, "-c", make], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    return path


def test_a_long_result_is_cut_at_the_limit_with_a_note(config):
    result = cli("query", "--config", str(config), "--format", "csv", "SELECT * FROM values_table ORDER BY id")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1000 and result.stderr.rstrip().endswith(
        "pi-lakeflow query: the first 1,000 rows; --limit N shows more, --limit 0 all")
    everything = cli("query", "--config", str(config), "--format", "csv", "--limit", "0", "SELECT id FROM values_table")
    assert len(everything.stdout.splitlines()) == ROWS + 1 and "the first" not in everything.stderr
    bad = cli("query", "--config", str(config), "--limit", "-3", "SELECT 1")
    assert bad.returncode == 2 and "'-3' is not a whole number of 0 or more (0: no limit)" in bad.stderr


def test_values_keep_their_types_and_times_their_zone(config, tmp_path):
    out = tmp_path / "result.json"
    result = cli("query", "--config", str(config), "--format", "json", "--out", str(out),
                 "SELECT id, maybe, at, name FROM values_table WHERE id < 2 ORDER BY id")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"id": 0, "maybe": None, "at": "2024-05-01T23:30:00+00:00", "name": "tag-0"},
                    {"id": 1, "maybe": 10, "at": "2024-05-01T23:30:00+00:00", "name": "tag-1"}]
    table = cli("query", "--config", str(config), "SELECT id, maybe, at FROM values_table WHERE id < 2 ORDER BY id")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "maybe", "at"]
    assert lines[1].split() == ["0", "null", "2024-05-01T23:30:00+00:00"]
    assert lines[2].split() == ["1", "10", "2024-05-01T23:30:00+00:00"]


def test_tables_lists_each_table_with_its_row_count(config):
    result = cli("tables", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["table", "rows"], ["small_table", "1"], ["values_table", f"{ROWS}"]]


def test_a_table_folder_that_cannot_be_read_is_one_line(config):
    broken = config.parent / "state" / "warehouse" / "broken_table"
    broken.mkdir()
    (broken / "part-00000.parquet").write_text("not parquet")
    try:
        result = cli("query", "--config", str(config), "SELECT 1")
    finally:
        (broken / "part-00000.parquet").unlink()
        broken.rmdir()
    ours = [line for line in result.stderr.splitlines() if line.startswith("pi-lakeflow")]
    assert result.returncode == 2 and len(ours) == 1 and "Traceback" not in result.stderr
    assert ours[0].startswith(f"pi-lakeflow query: the table folder {broken} cannot be read ([FAILED_READ_FILE")
