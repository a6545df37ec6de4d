"""What every time-series table adds to pi_client's values when they land: the exact instant,
the batch, the ingestion time and the date, and for the change logs (pi_timeseries,
pi_timeseries_updates) the action; the hash that says whether a value changed; the rows that say a
value is gone. Shared by the batch reads (timeseries.py), the real-time reads (realtime.py,
channels.py) and the derived tables (derived.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import schemas

from pi_lakeflow.tables.schemas import TIMESERIES, for_spark

#: The columns whose values make a PI value what it is (its identity and its content).
_HASHED = ("web_id", "timestamp", "ordinal", "value_double", "value_string", "value_bool", "value_timestamp",
           "state_name", "state_code", "is_system", "error", "good", "questionable", "substituted", "annotated")


#: The actions of a change log: a value PI added, one whose content PI changed, one PI removed.
ADD, UPDATE, DELETE = "Add", "Update", "Delete"


def landing_columns(values: pa.Table, batch: int, ingested_ns: int, schema: pa.Schema = TIMESERIES) -> pa.Table:
    """pi_client's values with the columns of pi_timeseries (or ``schema``, a table with them):
    exact ns, batch, ingestion time, date; ``action`` Add where ``schema`` has one and the
    values do not."""
    exact = values["timestamp"].cast(pa.int64())
    rows = len(values)
    if "action" in schema.names and "action" not in values.column_names:
        values = values.append_column("action", pa.array([ADD] * rows, pa.string()))
    extended = values.append_column("timestamp_ns", exact) \
        .append_column("batch", pa.array(np.full(rows, batch, dtype=np.int64))) \
        .append_column("ingested_at", pa.array(np.full(rows, ingested_ns // 1000, dtype=np.int64)).cast(
            TIMESERIES.field("ingested_at").type)) \
        .append_column("date", pc.cast(pc.cast(values["timestamp"], pa.timestamp("s", tz="UTC"), safe=False),
                                       pa.date32()))
    return for_spark(extended, schema)


def value_hashes(values: pa.Table) -> np.ndarray:
    """A 64-bit hash per pi_client value (schemas.VALUES) of what it is (tag, exact time,
    ordinal, value, state, flags): equal values hash equal in any process."""
    if not len(values):
        return np.empty(0, dtype=np.uint64)
    columns = values.select(list(_HASHED))
    frame = columns.set_column(1, "timestamp", columns["timestamp"].cast(pa.int64())).to_pandas()
    # One dtype per column whatever the rows hold: pandas makes an integer column with nulls
    # float64 and a boolean one with nulls object, and hashes each dtype its own way, so rows
    # of digital states alone would hash apart from the same rows among numbers.
    frame["state_code"] = frame["state_code"].astype(np.float64)
    frame["value_bool"] = frame["value_bool"].astype(object)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def deleted_rows(web_ids: pa.Array, names: pa.Array, stamps_ns: np.ndarray, ordinals: np.ndarray) -> pa.Table:
    """Values PI no longer holds, as pi_client values with the action Delete: the key (tag,
    timestamp, ordinal) and no content (the flags false)."""
    rows = len(stamps_ns)
    false = pa.array(np.zeros(rows, dtype=bool))
    columns = {"web_id": web_ids, "name": names, "timestamp": pa.array(stamps_ns, pa.int64()).cast(schemas.TIMESTAMP),
               "ordinal": pa.array(ordinals, pa.int32()), "is_system": false, "good": false, "questionable": false,
               "substituted": false, "annotated": false, "action": pa.array([DELETE] * rows, pa.string())}
    return pa.table([columns.get(f.name, pa.nulls(rows, f.type)) for f in schemas.UPDATES], schema=schemas.UPDATES)
