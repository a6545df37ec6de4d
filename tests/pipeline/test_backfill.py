"""A back-fill in steps (``pi.step``) as a site runs one: ``pi-lakeflow run`` in its own process
group, killed with SIGKILL (the whole group: driver, JVM, Python workers) in the middle of a
step, then run again. The oracle is the simulator's ground truth (its clock stands still)."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from pi_client.times import to_pi_time
from pi_lakeflow.local.uncommitted import uncommitted_files
from pi_lakeflow.state.store import StateStore
from pi_simulator import GroundTruth, PlantConfig
from tests.oracle import truth_rows, value_row
from tests.simulators import NOW, make_server
from tests.pipeline.harness import finish, start, table_rows, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1200)]

HOUR = 3_600_000_000_000
NOW_NS = NOW * 100
START_NS = NOW_NS - 36 * HOUR
STEP = 6 * HOUR
#: 120 tags sampled every minute, 36 hours: 6 steps of 6 hours, 3 partitions each.
PLANT = PlantConfig(tags=120, elements=5, event_frames=2, origin_ticks=NOW, sampling_seconds=60)


def test_a_back_fill_killed_mid_step_resumes_after_its_last_committed_step_and_lands_exactly_the_truth(tmp_path, spark):
    """Killed in its fourth step of six: the three committed steps are in the table exactly; the
    next run reads the fourth again and the rest (with a tag the server refuses: left aside for
    the run's later steps); the run after it reads that tag's steps; then exactly the truth."""
    # Each request waits 0.4 s, so that a step lasts seconds and the kill lands inside one.
    with make_server(PLANT, latency=0.4) as server:
        truth, points = GroundTruth(server.api), server.api.plant.points
        config = write_config(tmp_path, server.url, **{"pi.start": to_pi_time(START_NS), "pi.step": "6h",
                                                       "pi.partition_size": "40", "pi.lookback": "1h"})
        state = tmp_path / "pi-state"
        store = StateStore(state / "source")
        first = start("run", config)
        try:
            while True:  # batch 4 (the fourth step) has read a partition, not all three
                assert first.poll() is None, finish(first)
                if 4 in store.batches() and 0 < len(store.finished_partitions(4)) < 3:
                    break
                time.sleep(0.02)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
        first_out = finish(first)
        assert first.returncode == -signal.SIGKILL
        assert "step 1 of 6 of a back-fill (pi.step), 120 tags, from " in first_out, first_out[-3000:]
        assert "batch 3: step 3 of 6 of a back-fill" in first_out and " left" in first_out, first_out[-3000:]

        # What the killed run committed: the first three steps, exactly (a plain parquet reader
        # would also see the files of the fourth step's finished tasks: they are removed below).
        committed = Counter(value_row(r) for r in table_rows(spark, state, "pi_timeseries"))
        assert not [r for r, n in committed.items() if n > 1]
        assert set(committed) == set(truth_rows(truth, points, START_NS, START_NS + 3 * STEP))
        strays = uncommitted_files(state / "warehouse" / "pi_timeseries")

        # Resumed while the server refuses one tag: it fails in the fourth step, the later steps
        # leave it aside (a run reading it again each step would not end while it fails), the
        # others go on to the end.
        victim = points[7]
        server.api.server_config = dataclasses.replace(server.api.server_config, failing_tags=(victim.name,))
        second = start("run", config)
        out = finish(second)
        assert second.returncode == 3 and "Traceback" not in out, out[-3000:]
        if strays:
            assert re.search(rf"removed {len(strays)} files? \(.*\) that a killed run left uncommitted in "
                             rf"pi_timeseries", out), out[-3000:]
        # The fourth step again (Spark runs the batch it had not committed), then the other two.
        assert "batch 4: step 1 of 3 of a back-fill" in out and "batch 6: step 3 of 3" in out, out[-3000:]
        rows = table_rows(spark, state, "pi_timeseries")
        second_run = sum(1 for r in rows if r["batch"] >= 4)
        assert re.search(rf"run completed in [\d.]+ s: {second_run:,} values landed; 119 tags complete, 1 failed",
                         out), out[-3000:]
        assert out.count(f"failed: {victim.name}: HTTP 500") == 1, out[-3000:]
        others = [p for p in points if p is not victim]
        landed = Counter(value_row(r) for r in rows)
        assert not [r for r, n in landed.items() if n > 1], "a value landed twice"
        assert set(landed) == set(truth_rows(truth, others, START_NS, NOW_NS)) | \
            set(truth_rows(truth, [victim], START_NS, START_NS + 3 * STEP))

        # The next run reads the tag's three steps left, and nothing else.
        server.api.server_config = dataclasses.replace(server.api.server_config, failing_tags=())
        third = start("run", config)
        out = finish(third)
        assert third.returncode == 0 and "1 tag complete, 0 failed" in out, out[-3000:]
        landed = Counter(value_row(r) for r in table_rows(spark, state, "pi_timeseries"))
        assert not [r for r, n in landed.items() if n > 1], "a value landed twice"
        assert set(landed) == set(truth_rows(truth, points, START_NS, NOW_NS))

        # The step is respected: each batch read each tag 6 hours past its cursor (1 hour of
        # look-back before it): 6 batches, then the failed tag's 3.
        log = table_rows(spark, state, "pi_ingestion_log")
        ends = sorted({(r["batch"], nanoseconds(r["read_to"])) for r in log})
        assert ends == [(k, START_NS + k * STEP) for k in range(1, 7)] + \
            [(k, START_NS + (k - 3) * STEP) for k in range(7, 10)]
        assert all(nanoseconds(r["read_to"]) - nanoseconds(r["read_from_min"]) <= STEP + HOUR for r in log)
        assert [r["batch"] for r in log if r["tags_failed"]] == [4]


def nanoseconds(stamp: datetime) -> int:
    """A timestamp Spark gave back (naive, in the session's zone: UTC) as nanoseconds since 1970."""
    return round(stamp.replace(tzinfo=timezone.utc).timestamp() * 1e6) * 1000
