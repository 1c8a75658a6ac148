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


_SUMMARY_TYPES = {
    "history_id": pa.int64(),
    "task_id": pa.string(),
    "split": pa.string(),
    "steps": pa.int64(),
    "episodes": pa.int32(),
    "episode_returns": pa.list_(pa.float32()),
    "final_return": pa.float32(),
    "update_returns": pa.list_(pa.float32()),
}


def _history_summary(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Returns the summary of one history from its rows' `episode`, `reward`, `ended` (and `update`) columns."""
    episode, reward, ended = columns["episode"], columns["reward"], columns["ended"]
    # Only finished episodes count: a learner's history may stop in the middle of one.
    finished = episode[ended]
    returns = np.bincount(episode, weights=reward, minlength=int(episode.max()) + 1)[finished].astype(np.float32)
    update_returns: list[float] = []
    if "update" in columns:
        update = columns["update"]
        ended_in = update[ended]  # the update during which each finished episode ended
        sums = np.bincount(ended_in, weights=returns, minlength=int(update.max()) + 1)
        counts = np.bincount(ended_in, minlength=int(update.max()) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            update_returns = (sums / counts).astype(np.float32).tolist()  # NaN: no episode ended in that update
    return {
        "steps": len(episode),
        "episodes": len(returns),
        "episode_returns": returns,
        "final_return": float(returns[-1]) if len(returns) else float("nan"),
        "update_returns": update_returns,
    }


def summarize_histories(shards: list[pa.Table], split_of: dict[str, str]) -> pa.Table:
    """Returns one row per history: task, split, steps, finished episodes and their returns,
    the final return, and for learners that record `update` the mean return of the episodes
    that ended during each update."""
    rows: dict[str, list] = {k: [] for k in _SUMMARY_TYPES}
    for table in shards:
        history = table["history_id"].to_numpy()
        task = table["task_id"].combine_chunks()
        task_ids = task.dictionary.to_pylist()
        task_index = task.indices.to_numpy()
        columns = {
            "episode": table["episode"].to_numpy(),
            "reward": table["reward"].to_numpy(),
            "ended": np.logical_or(table["terminated"].to_numpy(), table["truncated"].to_numpy()),
        }
        if "update" in table.column_names:
            columns["update"] = table["update"].to_numpy()
        starts = np.flatnonzero(np.r_[True, history[1:] != history[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(history)]):
            task_id = task_ids[task_index[lo]]
            summary = {"history_id": int(history[lo]), "task_id": task_id, "split": split_of[task_id]}
            summary |= _history_summary({name: values[lo:hi] for name, values in columns.items()})
            for key in _SUMMARY_TYPES:
                rows[key].append(summary[key])
    return pa.table({key: pa.array(rows[key], kind) for key, kind in _SUMMARY_TYPES.items()})


def _place(src: Path, dst: Path) -> None:
    """Puts the immutable file `src` at `dst`: a hard link where possible, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


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
        "final_return_mean": _finite_mean(summaries["final_return"].to_numpy()),
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
