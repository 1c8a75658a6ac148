"""Reading a built dataset `<name>-v<N>`: manifest, task table, history summaries, rows, windows."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from icrl.datasets.hdf5_format import read_tables
from icrl.datasets.layout import FORMATS, HDF5_FILE, HISTORIES_FILE, PREFERENCE, TASKS_FILE, Format, format_of
from icrl.datasets.manifest import DatasetError, read_manifest
from icrl.datasets.parquet_format import read_parquet
from icrl.datasets.sampler import WindowSampler
from icrl.datasets.shards import read_ipc
from icrl.datasets.stores import ArrowStore, Hdf5Store, HistoryStore
from icrl.datasets.verify import verify
from icrl.envs.tasks import Task

_READERS = {"ipc": read_ipc, "parquet": read_parquet}


class Dataset:
    """A dataset folder; with `check=True` (the default) every file's sha256 and schema are verified first."""

    def __init__(self, root: str | Path, *, check: bool = True):
        self.root = Path(root)
        self.manifest: dict[str, Any] = verify(self.root) if check else read_manifest(self.root)

    @property
    def id(self) -> str:
        return self.manifest["dataset_id"]

    @property
    def formats(self) -> list[Format]:
        """Returns the formats whose files this folder holds, in FORMATS order."""
        present = {format_of(f["path"]) for f in self.manifest["files"]}
        return [fmt for fmt in FORMATS if fmt in present]

    def files(self, fmt: Format) -> list[str]:
        """Returns the files of format `fmt`, relative to the root, in shard order."""
        return sorted(f["path"] for f in self.manifest["files"] if format_of(f["path"]) == fmt)

    def _table(self, rel: str) -> pa.Table:
        path = self.root / rel
        if not path.is_file():
            raise DatasetError(f"{path}: missing (listed in {self.root / 'manifest.json'})")
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as err:
            raise DatasetError(f"{path}: not a readable Parquet file: {err}") from None

    @cached_property
    def tasks(self) -> list[Task]:
        """Returns every task of the dataset's family, each with its split."""
        rows = self._table(TASKS_FILE).to_pylist()
        return [Task(row["env_id"], json.loads(row["params"]), row["split"]) for row in rows]

    @cached_property
    def histories(self) -> pa.Table:
        """Returns the per-history summaries, in dataset order (episode returns, final return, ...)."""
        return self._table(HISTORIES_FILE)

    def _format(self, fmt: Format | None) -> Format:
        available = self.formats
        if fmt is None:
            for candidate in PREFERENCE:
                if candidate in available:
                    return candidate
            raise DatasetError(f"{self.root}: holds no rows in any format ({', '.join(FORMATS)})")
        if fmt not in available:
            raise DatasetError(f"{self.root}: has no {fmt} files (it holds: {', '.join(available) or 'none'})")
        return fmt

    def store(self, fmt: Format | None = None) -> HistoryStore:
        """Returns random access to the histories in `fmt` (default: the fastest format present)."""
        fmt = self._format(fmt)
        if fmt == "hdf5":
            store = Hdf5Store(self.root / HDF5_FILE)
            if not np.array_equal(store.history_id, self.histories["history_id"].to_numpy()):
                raise DatasetError(f"{self.root / HDF5_FILE}: its histories differ from {HISTORIES_FILE}")
            return store
        files = self.files(fmt)
        summaries = self.histories
        shard = summaries["shard"].to_numpy()
        if len(files) != len(np.unique(shard)):
            raise DatasetError(f"{self.root / fmt}: {len(files)} shards, {HISTORIES_FILE} names {len(np.unique(shard))}")

        def load(i: int) -> pa.Table:
            return self._read_shard(fmt, files[i])

        schema = load(0).schema
        return ArrowStore(
            fmt, load, history_id=summaries["history_id"].to_numpy(),
            task_id=np.asarray(summaries["task_id"].to_pylist(), object), length=summaries["steps"].to_numpy(),
            shard=shard, schema=schema,
        )

    def select(self, *, split: str | None = "train", tasks: Sequence[str] | None = None) -> np.ndarray:
        """Returns the numbers (dataset order) of the histories of `split` (None: any) and of `tasks` (None: any)."""
        summaries = self.histories
        keep = np.ones(summaries.num_rows, bool)
        if split is not None:
            keep &= np.asarray(summaries["split"].to_pylist()) == split
        if tasks is not None:
            unknown = sorted(set(tasks) - {t.task_id for t in self.tasks})
            if unknown:
                raise DatasetError(f"{self.root}: no task {unknown[0]!r} in this dataset")
            keep &= np.isin(np.asarray(summaries["task_id"].to_pylist(), object), list(tasks))
        return np.flatnonzero(keep)

    def sampler(
        self, *, context_length: int, seed: int, fmt: Format | None = None, split: str | None = "train",
        tasks: Sequence[str] | None = None, every: int = 1, num_actions: int | None = None,
        action_masks: Mapping[str, np.ndarray] | None = None,
    ) -> WindowSampler:
        """Returns a WindowSampler over the histories of `split` and `tasks` in format `fmt`.

        `num_actions` (the start-of-history action token) defaults to the dataset's action count.
        With `action_masks` (task id -> which actions the task offers), batches carry `available`.
        """
        return WindowSampler(
            self.store(fmt), context_length=context_length, seed=seed,
            num_actions=self.manifest.get("num_actions") if num_actions is None else num_actions,
            histories=self.select(split=split, tasks=tasks), every=every, action_masks=action_masks,
        )

    def shards(self, fmt: Format | None = None) -> Iterator[tuple[int, pa.Table]]:
        """Yields (shard index, rows) in shard order, every row with the dataset's schema."""
        fmt = self._format(fmt)
        if fmt == "hdf5":
            try:
                yield from read_tables(self.root / HDF5_FILE)
            except (OSError, KeyError, ValueError) as err:
                raise DatasetError(f"{self.root / HDF5_FILE}: not a readable icrl HDF5 file: {err}") from None
            return
        for i, rel in enumerate(self.files(fmt)):
            yield i, self._read_shard(fmt, rel)

    def _read_shard(self, fmt: Format, rel: str) -> pa.Table:
        """Returns the rows of the Arrow IPC or Parquet shard `rel`; a damaged file is named."""
        path = self.root / rel
        try:
            return _READERS[fmt](path)
        except (OSError, pa.ArrowInvalid) as err:
            raise DatasetError(f"{path}: not a readable {fmt} file: {err}") from None

    def table(self, fmt: Format | None = None) -> pa.Table:
        """Returns all rows as one table (in memory for Parquet and HDF5)."""
        return pa.concat_tables(table for _, table in self.shards(fmt))
