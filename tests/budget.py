"""The suite's time budget: ``./scripts/test`` alone on the project's machine (2 cores) stays
under 35 minutes (CI stops at 90). Each module has its share; the end of every run prints each
module's time against it (tests/conftest.py), so that a module that grows past its share is seen
in the run that made it grow. A budget, not an assertion: a loaded machine runs slower.

A new end-to-end test shares a scenario (tests/pipeline/shared_runs.py, a module fixture) rather
than adding pipeline runs; a module that needs more takes it from another's share here.
"""

from __future__ import annotations

#: The whole suite, in seconds.
TOTAL_SECONDS = 35 * 60
#: Seconds per module (setup, call and teardown of its tests); a module not named here: UNIT.
MODULE_SECONDS = {
    "tests/pipeline/test_real_conditions.py": 420,  # three runs and three streams at once, faults
    "tests/pipeline/test_derived_tables.py": 250,   # three runs (shared_runs.derived_runs)
    "tests/test_cli.py": 180,                       # the demo, as a new user runs it
    "tests/deploy/test_runtime_sparks.py": 180,     # the first run on a machine also builds two environments
    "tests/pipeline/test_backfill.py": 170,
    "tests/pipeline/test_pipeline_runs.py": 300,    # three runs (shared_runs.three_runs), a full refresh
    "tests/pipeline/test_realtime.py": 140,
    "tests/pipeline/test_cluster.py": 75,
    "tests/test_query.py": 65,
    "tests/test_check.py": 55,
    "tests/client/test_timeseries.py": 40,
    "tests/client/test_server_limits_and_faults.py": 30,
    "tests/client/test_catalog_frames_updates.py": 25,
    "tests/deploy/test_bundle_cli.py": 20,          # the first run on a machine builds the Databricks CLI
    "tests/pipeline/test_markers.py": 20,
    "tests/client/test_auth_and_transport.py": 15,
    "tests/pipeline/test_settings.py": 15,
    "tests/pipeline/test_extract.py": 10,
    "tests/simulator/test_security_limits_faults.py": 10,
}
#: The share of a module not named above (a unit module: seconds).
UNIT_SECONDS = 5


def lines(spent: dict[str, float]) -> list[str]:
    """The table printed at the end of a run: each module's seconds against its budget, the
    largest first, and the total."""
    rows = []
    for module, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        budget = MODULE_SECONDS.get(module, UNIT_SECONDS)
        rows.append(f"{seconds:8.1f} s  of {budget:5d} s  {'OVER  ' if seconds > budget else '      '}{module}")
    total = sum(spent.values())
    rows.append(f"{total:8.1f} s  of {TOTAL_SECONDS:5d} s  {'OVER  ' if total > TOTAL_SECONDS else '      '}"
                f"the whole suite ({len(spent)} module{'' if len(spent) == 1 else 's'})")
    return rows
