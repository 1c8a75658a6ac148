"""Building an immutable dataset `<name>-v<N>` from the collect stage's shards."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from icrl import __version__
from icrl.atomic import fsync_dir, sha256_file
from icrl.datasets.card import write_card
from icrl.datasets.dataset import HISTORIES_FILE, IPC_DIR, TASKS_FILE
from icrl.datasets.manifest import DatasetError, write_manifest
from icrl.datasets.schema import SCHEMA_VERSION
from icrl.datasets.shards import FileInfo, read_ipc, write_ipc
from icrl.envs.tasks import Task, canonical_json


def task_table(tasks: list[Task]) -> pa.Table:
    """Returns the task table: id, environment, full parameters (JSON), split and spec hash."""
    return pa.table(
        {
            "task_id": [t.task_id for t in tasks],
            "env_id": [t.env_id for t in tasks],
            "params": [canonical_json(t.params) for t in tasks],
            "split": [t.split for t in tasks],
            "spec_hash": [t.spec_hash for t in tasks],
        }
    )


def summarize_histories(shards: list[pa.Table], split_of: dict[str, str]) -> pa.Table:
    """Returns one row per history: task, split, steps, episodes, the return of each episode."""
    rows: dict[str, list] = {k: [] for k in ("history_id", "task_id", "split", "steps", "episodes", "episode_returns", "final_return")}
    for table in shards:
        history = table["history_id"].to_numpy()
        episode = table["episode"].to_numpy()
        reward = table["reward"].to_numpy()
        task = table["task_id"].combine_chunks()
        task_ids = task.dictionary.to_pylist()
        task_index = task.indices.to_numpy()
        starts = np.flatnonzero(np.r_[True, history[1:] != history[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(history)]):
            returns = np.bincount(episode[lo:hi], weights=reward[lo:hi]).astype(np.float32)
            task_id = task_ids[task_index[lo]]
            rows["history_id"].append(int(history[lo]))
            rows["task_id"].append(task_id)
            rows["split"].append(split_of[task_id])
            rows["steps"].append(int(hi - lo))
            rows["episodes"].append(len(returns))
            rows["episode_returns"].append(returns)
            rows["final_return"].append(float(returns[-1]))
    return pa.table(
        {
            "history_id": pa.array(rows["history_id"], pa.int64()),
            "task_id": pa.array(rows["task_id"], pa.string()),
            "split": pa.array(rows["split"], pa.string()),
            "steps": pa.array(rows["steps"], pa.int64()),
            "episodes": pa.array(rows["episodes"], pa.int32()),
            "episode_returns": pa.array(rows["episode_returns"], pa.list_(pa.float32())),
            "final_return": pa.array(rows["final_return"], pa.float32()),
        }
    )


def _place(src: Path, dst: Path) -> None:
    """Puts the immutable file `src` at `dst`: a hard link where possible, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_dataset(
    out: Path,
    *,
    shard_paths: list[Path],
    tasks: list[Task],
    name: str,
    version: int,
    fingerprint: str,
    source: dict[str, Any],
    env: dict[str, Any],
    license: str,
) -> dict[str, Any]:
    """Builds the dataset at `out` (named `<name>-v<version>`) and returns its manifest.

    Everything is written to a hidden sibling folder first and renamed into place, so the
    dataset appears whole or not at all. An existing `out` is never overwritten.
    """
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out}: dataset {out.name} already exists; datasets are immutable, bump the version")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / IPC_DIR).mkdir(parents=True)
    files: list[FileInfo] = []
    shards = []
    for src in shard_paths:
        dst = tmp / IPC_DIR / src.name
        _place(src, dst)
        table = read_ipc(dst)
        shards.append(table)
        files.append(FileInfo(f"{IPC_DIR}/{src.name}", dst.stat().st_size, table.num_rows, sha256_file(dst)))
    split_of = {t.task_id: t.split for t in tasks}
    files.append(write_ipc(tmp / TASKS_FILE, task_table(tasks), root=tmp))
    summaries = summarize_histories(shards, split_of)
    files.append(write_ipc(tmp / HISTORIES_FILE, summaries, root=tmp))
    dataset_id = f"{name}-v{version}"
    stats = {
        "rows": int(sum(t.num_rows for t in shards)),
        "histories": summaries.num_rows,
        "tasks": {split: sum(t.split == split for t in tasks) for split in ("train", "heldout")},
        "final_return_mean": float(np.mean(summaries["final_return"].to_numpy())) if summaries.num_rows else None,
    }
    fields = {
        "dataset_id": dataset_id,
        "name": name,
        "version": version,
        "schema_version": SCHEMA_VERSION,
        "icrl_version": __version__,
        "fingerprint": fingerprint,
        "env": env,
        "source": source,
        "license": license,
        "stats": stats,
        "schema": [f"{field.name}: {field.type}" for field in shards[0].schema] if shards else [],
    }
    card = write_card(tmp, fields, tasks)
    files.append(FileInfo(card.name, card.stat().st_size, 0, sha256_file(card)))
    manifest = write_manifest(tmp, files, **fields)
    os.replace(tmp, out)
    fsync_dir(out.parent)
    return manifest
