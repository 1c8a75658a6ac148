"""Random access to the rows of learning histories, the same in every format.

A store numbers its histories 0..n-1 in dataset order and reads any contiguous run of
steps of one history: a slice of a memory-mapped Arrow IPC shard, of a Parquet shard
decompressed on first use, or one HDF5 hyperslab `d[h, start:stop]`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Mapping, Sequence

import h5py
import numpy as np
import pyarrow as pa

from icrl.datasets.hdf5_format import read_schema, row_columns
from icrl.datasets.manifest import DatasetError
from icrl.datasets.schema import history_bounds, numpy_column

# HDF5's chunk cache, per dataset: large enough that a small dataset is read from disk once.
_HDF5_CACHE_BYTES = 64 << 20
_HDF5_CACHE_SLOTS = 1_000_003


class HistoryStore:
    """The histories of one dataset in one format.

    Attributes (one entry per history, in dataset order): `history_id`, `task_id` (str),
    `length` (steps). `columns` names the row columns a `read` can return.
    """

    format: str
    history_id: np.ndarray
    task_id: np.ndarray
    length: np.ndarray
    columns: tuple[str, ...]
    schema: pa.Schema

    def read(self, h: int, start: int, stop: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Returns steps [start, stop) of history `h`, one numpy array per column in `names`."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases open files."""

    def __len__(self) -> int:
        return len(self.length)


class ArrowStore(HistoryStore):
    """Histories held in Arrow tables (IPC or Parquet shards, or in-memory columns).

    `load(i)` returns shard i's table; shards are loaded on first use and kept. `shard` and
    `offset` place each history inside its shard.
    """

    def __init__(
        self, fmt: str, load: Callable[[int], pa.Table], *, history_id: np.ndarray, task_id: np.ndarray,
        length: np.ndarray, shard: np.ndarray, schema: pa.Schema,
    ):
        self.format = fmt
        self._load = load
        self.history_id, self.task_id, self.length = history_id, task_id, length
        self.shard = shard
        self.offset = np.zeros(len(length), np.int64)
        for s in np.unique(shard):
            members = np.flatnonzero(shard == s)
            self.offset[members] = np.concatenate(([0], np.cumsum(length[members])[:-1]))
        self.schema = schema
        self.columns = tuple(n for n in schema.names if n not in ("history_id", "task_id"))
        self._shards: dict[int, pa.Table] = {}
        self._arrays: dict[tuple[int, str], np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> ArrowStore:
        """Returns a one-shard store over in-memory columns (histories contiguous by `history_id`)."""
        arrays = {name: np.asarray(values) for name, values in columns.items()}
        history_id = arrays["history_id"]
        bounds = np.asarray(history_bounds(history_id)).reshape(-1, 2)
        starts, length = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
        if len(np.unique(history_id[starts])) != len(starts):
            raise ValueError("histories are not contiguous: a history_id appears in two runs of rows")
        fields = []
        for name, values in arrays.items():
            kind = pa.from_numpy_dtype(values.dtype)
            fields.append(pa.field(name, kind if values.ndim == 1 else pa.list_(kind, int(np.prod(values.shape[1:])))))
        schema = pa.schema(fields)
        store = cls(
            "memory", lambda i: None, history_id=history_id[starts], task_id=np.array([""] * len(starts), object),
            length=length, shard=np.zeros(len(starts), np.int32), schema=schema,
        )
        store._arrays = {(0, name): values for name, values in arrays.items()}
        return store

    def _array(self, shard: int, name: str) -> np.ndarray:
        key = (shard, name)
        if key not in self._arrays:
            with self._lock:
                if shard not in self._shards:
                    self._shards[shard] = self._load(shard)
                self._arrays[key] = numpy_column(self._shards[shard][name])
        return self._arrays[key]

    def read(self, h: int, start: int, stop: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        shard, base = int(self.shard[h]), int(self.offset[h])
        return {name: self._array(shard, name)[base + start : base + stop] for name in names}


class Hdf5Store(HistoryStore):
    """Histories in an icrl HDF5 file; each read is one hyperslab per column."""

    def __init__(self, path: Path):
        self.format = "hdf5"
        self.path = Path(path)
        try:
            self._file = h5py.File(path, "r", rdcc_nbytes=_HDF5_CACHE_BYTES, rdcc_nslots=_HDF5_CACHE_SLOTS)
            self.schema = read_schema(self._file)
            self.history_id = self._file["history_id"][:]
            self.task_id = np.asarray(self._file["task_id"].asstr()[:], object)
            self.length = self._file["length"][:]
            self.columns = tuple(row_columns(self.schema))
            self._datasets = {name: self._file[name] for name in self.columns}
        except (OSError, KeyError, ValueError, pa.ArrowInvalid) as err:
            raise DatasetError(f"{path}: not a readable icrl HDF5 file: {err}") from None

    def read(self, h: int, start: int, stop: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        return {name: self._datasets[name][h, start:stop] for name in names}

    def close(self) -> None:
        self._file.close()
