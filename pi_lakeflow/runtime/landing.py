"""What every time-series table adds to pi_client's values when they land: the exact instant,
the batch, the ingestion time and the date; and the hash that says whether a value landed before.
Shared by the batch reads (timeseries.py), the real-time reads (realtime.py, channels.py) and the
derived tables (derived.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow.tables.schemas import TIMESERIES, for_spark

#: The columns whose values make a PI value what it is (its identity and its content).
_HASHED = ("web_id", "timestamp_ns", "ordinal", "value_double", "value_string", "value_bool", "value_timestamp",
           "state_name", "state_code", "is_system", "error", "good", "questionable", "substituted", "annotated")


def landing_columns(values: pa.Table, batch: int, ingested_ns: int, schema: pa.Schema = TIMESERIES) -> pa.Table:
    """pi_client's values with the columns of pi_timeseries (or ``schema``, a table with them):
    exact ns, batch, ingestion time, date."""
    exact = values["timestamp"].cast(pa.int64())
    rows = len(values)
    extended = values.append_column("timestamp_ns", exact) \
        .append_column("batch", pa.array(np.full(rows, batch, dtype=np.int64))) \
        .append_column("ingested_at", pa.array(np.full(rows, ingested_ns // 1000, dtype=np.int64)).cast(
            TIMESERIES.field("ingested_at").type)) \
        .append_column("date", pc.cast(pc.cast(values["timestamp"], pa.timestamp("s", tz="UTC"), safe=False),
                                       pa.date32()))
    return for_spark(extended, schema)


def value_hashes(values: pa.Table) -> np.ndarray:
    """A 64-bit hash per value of what it is (tag, time, ordinal, value, state, flags): equal
    values hash equal in any process."""
    if not len(values):
        return np.empty(0, dtype=np.uint64)
    frame = values.select(list(_HASHED)).to_pandas(timestamp_as_object=False)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
