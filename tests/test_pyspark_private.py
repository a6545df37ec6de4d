"""The private parts of pyspark that the local engine uses are where they were checked to be."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_every_private_pyspark_part_the_engine_uses_is_there():
    from pi_lakeflow.local.pyspark_private import check

    moved = check()
    assert not moved, "\n".join(moved)


def test_a_moved_part_is_named_in_one_line(monkeypatch):
    from pi_lakeflow.local import pyspark_private

    monkeypatch.setattr(pyspark_private, "USED", (("pyspark.pipelines.cli", "no_such_function"),))
    [line] = pyspark_private.check()
    assert "moved pyspark.pipelines.cli.no_such_function" in line and "checked against pyspark 4.3.0" in line
