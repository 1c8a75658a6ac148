"""Reading a built dataset `<name>-v<N>`: its manifest, task table, history summaries and rows."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from icrl.datasets.manifest import DatasetError, read_manifest, verify
from icrl.datasets.schema import REQUIRED
from icrl.datasets.shards import read_ipc
from icrl.envs.tasks import Task

TASKS_FILE = "tasks.arrow"
HISTORIES_FILE = "histories.arrow"
IPC_DIR = "ipc"


class Dataset:
    """A dataset folder; with `check=True` (the default) every file's sha256 is verified first."""

    def __init__(self, root: str | Path, *, check: bool = True):
        self.root = Path(root)
        self.manifest: dict[str, Any] = verify(self.root) if check else read_manifest(self.root)

    @property
    def id(self) -> str:
        return self.manifest["dataset_id"]

    def _read(self, rel: str) -> pa.Table:
        path = self.root / rel
        try:
            return read_ipc(path)
        except (OSError, pa.ArrowInvalid) as err:
            raise DatasetError(f"{path}: not a readable Arrow IPC file: {err}") from None

    @cached_property
    def tasks(self) -> list[Task]:
        """Returns every task of the dataset's family, each with its split."""
        table = self._read(TASKS_FILE).to_pylist()
        return [Task(row["env_id"], json.loads(row["params"]), row["split"]) for row in table]

    @cached_property
    def histories(self) -> pa.Table:
        """Returns the per-history summaries (episode returns, final return, ...)."""
        return self._read(HISTORIES_FILE)

    @property
    def shard_paths(self) -> list[str]:
        """Returns the Arrow IPC shards, relative to the root, in shard order."""
        return sorted(f["path"] for f in self.manifest["files"] if f["path"].startswith(IPC_DIR + "/"))

    def columns(self, *, split: str = "train", names: tuple[str, ...] = ("history_id", "episode", "obs", "action", "reward")) -> dict[str, np.ndarray]:
        """Returns the rows of the histories of `split` as flat numpy columns, in shard order."""
        keep = {t.task_id for t in self.tasks if t.split == split}
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for rel in self.shard_paths:
            table = self._read(rel)
            missing = [n for n in REQUIRED if n not in table.column_names]
            if missing:
                raise DatasetError(f"{self.root / rel}: missing columns {missing}")
            task_ids = pc.cast(table["task_id"], pa.string())
            mask = pc.is_in(task_ids, pa.array(sorted(keep), pa.string()))
            table = table.filter(mask)
            for n in names:
                column = table[n].combine_chunks()
                if pa.types.is_fixed_size_list(column.type):
                    values = column.flatten().to_numpy(zero_copy_only=False)
                    parts[n].append(values.reshape(len(column), column.type.list_size))
                else:
                    parts[n].append(column.to_numpy(zero_copy_only=False))
        if not parts[names[0]]:
            raise DatasetError(f"{self.root}: no shards")
        return {n: np.concatenate(v) for n, v in parts.items()}
