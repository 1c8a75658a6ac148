"""HDF5: one file of `(n_histories, T, ...)` arrays, readable with nothing but h5py.

Every row column becomes a dataset indexed `[history, step]`, chunked `(1, chunk_length)`
(the training context length) and LZF-compressed, so a training window is one hyperslab
`f["obs"][h, s:s + L]` touching one or two chunks. Per-history datasets: `history_id`,
`task_id` (UTF-8), `length` (steps; rows past it are padding) and `shard` (the Arrow shard
the history came from, so a conversion back gives the same shards). The Arrow schema is kept
in the `arrow_schema` attribute (an Arrow IPC schema message, never a pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np
import pyarrow as pa

from icrl.atomic import atomic_path, sha256_file
from icrl.datasets.schema import history_bounds, history_table, numpy_column
from icrl.datasets.shards import FileInfo

COMPRESSION = "lzf"
PER_HISTORY = ("history_id", "task_id", "length", "shard")


def row_columns(schema: pa.Schema) -> list[str]:
    """Returns the columns stored as `[history, step, ...]` arrays: all but history_id and task_id."""
    return [name for name in schema.names if name not in ("history_id", "task_id")]


def write_hdf5(
    path: Path, shards: Iterable[tuple[int, pa.Table]], *, schema: pa.Schema, histories: int, max_length: int,
    chunk_length: int, root: Path,
) -> FileInfo:
    """Writes the rows of `shards` ((shard index, table) in order) as one HDF5 file at `path`.

    `histories` and `max_length` size the arrays; returns the FileInfo relative to `root`.
    """
    chunk = max(1, min(chunk_length, max_length))
    rows = 0
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=("earliest", "v110")) as f:
        f.attrs["icrl.schema_version"] = schema.metadata[b"icrl.schema_version"].decode()
        f.attrs["arrow_schema"] = np.void(schema.serialize().to_pybytes())
        f.attrs["chunk_length"] = chunk
        f.attrs["columns"] = row_columns(schema)
        per_history = {
            "history_id": f.create_dataset("history_id", (histories,), np.int64),
            "task_id": f.create_dataset("task_id", (histories,), h5py.string_dtype()),
            "length": f.create_dataset("length", (histories,), np.int64),
            "shard": f.create_dataset("shard", (histories,), np.int32),
        }
        arrays = {}
        h = 0
        for shard, table in shards:
            if not arrays:
                for name in row_columns(schema):
                    inner = numpy_column(table[name].slice(0, 1))
                    arrays[name] = f.create_dataset(
                        name, (histories, max_length, *inner.shape[1:]), inner.dtype,
                        chunks=(1, chunk, *inner.shape[1:]), compression=COMPRESSION, fillvalue=0,
                    )
            columns = {name: numpy_column(table[name]) for name in row_columns(schema)}
            history_id = table["history_id"].to_numpy()
            task_id = numpy_column(table["task_id"].cast(pa.string()))
            for lo, hi in history_bounds(history_id):
                for name, values in columns.items():
                    arrays[name][h, : hi - lo] = values[lo:hi]
                per_history["history_id"][h] = history_id[lo]
                per_history["task_id"][h] = task_id[lo]
                per_history["length"][h] = hi - lo
                per_history["shard"][h] = shard
                h += 1
            rows += table.num_rows
        if h != histories:
            raise ValueError(f"{path}: expected {histories} histories, the shards hold {h}")
    return FileInfo(Path(path).relative_to(root).as_posix(), Path(path).stat().st_size, rows, sha256_file(path))


def read_schema(f: h5py.File) -> pa.Schema:
    """Returns the Arrow schema stored in an icrl HDF5 file."""
    return pa.ipc.read_schema(pa.py_buffer(f.attrs["arrow_schema"].tobytes()))


def read_tables(path: Path) -> Iterator[tuple[int, pa.Table]]:
    """Yields (shard index, table of rows) from an icrl HDF5 file, with the Arrow schema it was written from."""
    with h5py.File(path, "r") as f:
        schema = read_schema(f)
        shard = f["shard"][:]
        lengths = f["length"][:]
        history_id = f["history_id"][:]
        task_id = f["task_id"].asstr()[:]
        for s in np.unique(shard):
            members = np.flatnonzero(shard == s)
            columns = {
                name: np.concatenate([f[name][h, : lengths[h]] for h in members]) for name in row_columns(schema)
            }
            tasks = [task_id[h] for h in members]
            dictionary = list(dict.fromkeys(tasks))
            columns["history_id"] = np.repeat(history_id[members], lengths[members])
            columns["task_id"] = np.repeat([dictionary.index(t) for t in tasks], lengths[members]).astype(np.int32)
            yield int(s), history_table(columns, dictionary, schema)
