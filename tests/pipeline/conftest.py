"""Fixtures of the pipeline tests that several modules share."""

from __future__ import annotations

import pytest

from tests.pipeline import shared_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """shared_runs.three_runs, once per session: test_pipeline_runs reads them (a few minutes;
    pytest-timeout counts them against the first test that asks)."""
    yield from shared_runs.three_runs(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="session")
def derived_runs(tmp_path_factory):
    """shared_runs.derived_runs, once per session: test_derived_tables reads them."""
    yield from shared_runs.derived_runs(tmp_path_factory.mktemp("derived"))
