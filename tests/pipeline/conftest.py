"""Fixtures of the pipeline tests that several modules share."""

from __future__ import annotations

import pytest

from tests.pipeline.shared_runs import three_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """The three runs of tests/pipeline/shared_runs.py, once per session: test_pipeline_runs and
    test_derived_tables read them (a few minutes; pytest-timeout counts them against the first
    test that asks)."""
    yield from three_runs(tmp_path_factory.mktemp("pipeline"))
