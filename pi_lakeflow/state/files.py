"""The state's files: plain file I/O that a Unity Catalog volume's FUSE mount (``/Volumes/...``
on Databricks) allows.

Each file is serialized in memory, written whole and sequentially under a temporary name and
renamed, so a reader sees whole files only; files are read whole into memory (no memory maps, no
appends, no writes in place). :func:`probe` checks those operations where a process starts using
the state, so a path a Spark task cannot write fails with one line naming ``pi.state_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pyarrow as pa

from pi_lakeflow.errors import StatePathError

#: How the Arrow files are compressed: zstd takes a digest to about half (bench/README.md) at
#: about 0.1 s per 28 MB written; reading decompresses whatever a file was written with.
_COMPRESSION = pa.ipc.IpcWriteOptions(compression="zstd")

#: The state paths this process has probed (Spark reuses its Python workers: once each is enough).
_PROBED: set[str] = set()


def write_whole(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` in one sequential pass under a temporary name, then rename
    it over ``path``: a reader sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def write_arrow(path: Path, table: pa.Table, meta: dict) -> None:
    """Write ``table`` with ``meta`` to ``path`` whole: serialized (zstd-compressed) in memory,
    written in one sequential pass under a temporary name, then renamed over ``path``."""
    schema = table.schema.with_metadata({"pi_lakeflow": json.dumps(meta)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema, options=_COMPRESSION) as writer:
        writer.write_table(table.replace_schema_metadata(schema.metadata))
    write_whole(path, sink.getvalue())


def read_arrow(path: Path) -> tuple[pa.Table, dict]:
    """The table and meta of a file written by :func:`write_arrow`, read whole (no memory map)."""
    table = pa.ipc.open_file(pa.py_buffer(path.read_bytes())).read_all()
    return table.replace_schema_metadata(None), read_meta(table.schema)


def read_meta(schema: pa.Schema) -> dict:
    """The meta :func:`write_arrow` keeps in a file's schema."""
    return json.loads(schema.metadata[b"pi_lakeflow"])


def read_arrow_meta(path: Path) -> dict:
    """The meta of a file written by :func:`write_arrow`, without decoding its rows."""
    return read_meta(pa.ipc.open_file(pa.py_buffer(path.read_bytes())).schema)


def read_arrows(paths: list[Path], schema: pa.Schema) -> pa.Table:
    """The rows of several files written by :func:`write_arrow`, in order (none: no rows)."""
    return pa.concat_tables([read_arrow(p)[0] for p in paths]) if paths else schema.empty_table()


def probe(root: str | os.PathLike) -> None:
    """Do once per process what the state does all the time under ``root``: make a folder,
    write a whole file under a temporary name, rename it, read it back, remove the folder.

    Raises
    ------
    StatePathError
        One line naming ``pi.state_path``, the step that failed, the host and the OS error.
    """
    if str(root) in _PROBED:
        return
    folder = Path(root) / ".probe" / f"{socket.gethostname()}-{os.getpid()}"
    step = "make a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        step = "write and rename a file"
        write_arrow(folder / "probe.arrow", pa.table({"probe": [1]}), {"host": socket.gethostname()})
        step = "read a file"
        read_arrow(folder / "probe.arrow")
        step = "remove a folder"
        shutil.rmtree(folder)
        _PROBED.add(str(root))
    except OSError as error:
        raise StatePathError(
            f"pi.state_path {root}: cannot {step} there from {socket.gethostname()} ({error.strerror or error}); "
            f"it must be a folder that the driver and every Spark task can write (on Databricks a Unity "
            f"Catalog volume, /Volumes/<catalog>/<schema>/<volume>)") from None
