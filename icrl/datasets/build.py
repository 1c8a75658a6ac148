"""Writing an immutable dataset `<name>-v<N>`: from the collect stage's shards, or from another dataset."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from icrl import __version__
from icrl.atomic import fsync_dir, sha256_file
from icrl.datasets.card import write_card
from icrl.datasets.hdf5_format import write_hdf5
from icrl.datasets.layout import FORMATS, HDF5_FILE, LAYOUT_VERSION, HISTORIES_FILE, TASKS_FILE, Format, shard_file
from icrl.datasets.manifest import DatasetError, write_manifest
from icrl.datasets.parquet_format import write_parquet, write_table
from icrl.datasets.schema import SCHEMA_VERSION, history_bounds
from icrl.datasets.shards import FileInfo, read_ipc, write_ipc
from icrl.envs.tasks import HELDOUT, TRAIN, Task, canonical_json

Shards = Callable[[], Iterable[tuple[int, pa.Table]]]


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
    "shard": pa.int32(),
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


def summarize_histories(shards: Iterable[tuple[int, pa.Table]], split_of: dict[str, str]) -> pa.Table:
    """Returns one row per history, in dataset order: task, split, shard, steps, finished episodes
    and their returns, the final return, and for learners that record `update` the mean return
    of the episodes that ended during each update."""
    rows: dict[str, list] = {k: [] for k in _SUMMARY_TYPES}
    for shard, table in shards:
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
        for lo, hi in history_bounds(history):
            task_id = task_ids[task_index[lo]]
            summary = {"history_id": int(history[lo]), "task_id": task_id, "split": split_of[task_id], "shard": shard}
            summary |= _history_summary({name: values[lo:hi] for name, values in columns.items()})
            for key in _SUMMARY_TYPES:
                rows[key].append(summary[key])
    return pa.table({key: pa.array(rows[key], kind) for key, kind in _SUMMARY_TYPES.items()})


def _describe(values: np.ndarray) -> dict[str, float] | None:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    return {k: round(float(f(finite)), 4) for k, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))}


def split_stats(summaries: pa.Table, tasks: list[Task]) -> dict[str, Any]:
    """Returns per split: tasks, histories, rows, and the first-, final- and all-episode return statistics."""
    split = np.asarray(summaries["split"].to_pylist(), object)
    steps = summaries["steps"].to_numpy()
    returns = summaries["episode_returns"].to_pylist()
    stats = {}
    for name in (TRAIN, HELDOUT):
        mine = np.flatnonzero(split == name)
        episodes = [np.asarray(returns[i], np.float32) for i in mine]
        stats[name] = {
            "tasks": sum(t.split == name for t in tasks),
            "histories": len(mine),
            "rows": int(steps[mine].sum()),
            "first_episode_return": _describe(np.array([r[0] for r in episodes if len(r)], np.float32)),
            "final_episode_return": _describe(np.array([r[-1] for r in episodes if len(r)], np.float32)),
            "episode_return": _describe(np.concatenate(episodes) if episodes else np.zeros(0, np.float32)),
        }
    return stats


def write_rows(
    root: Path, shards: Shards, formats: Sequence[Format], *, schema: pa.Schema, summaries: pa.Table,
    chunk_length: int, ipc_sources: Sequence[Path] | None = None,
) -> list[FileInfo]:
    """Writes the rows that `shards()` yields in each of `formats` under `root`; returns their FileInfos.

    `ipc_sources`, where given, are IPC shards already in the dataset's schema: they are copied
    into place instead of rewritten.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise DatasetError(f"unknown or no formats {unknown or list(formats)}; choose from {', '.join(FORMATS)}")
    files: list[FileInfo] = []
    if "ipc" in formats:
        if ipc_sources is not None:
            for i, src in enumerate(ipc_sources):
                dst = root / shard_file("ipc", i)
                dst.parent.mkdir(parents=True, exist_ok=True)
                _place(src, dst)
                files.append(FileInfo(shard_file("ipc", i), dst.stat().st_size, read_ipc(dst).num_rows, sha256_file(dst)))
        else:
            files += [write_ipc(root / shard_file("ipc", i), table, root=root) for i, table in shards()]
    if "parquet" in formats:
        files += [write_parquet(root / shard_file("parquet", i), table, root=root) for i, table in shards()]
    if "hdf5" in formats:
        files.append(
            write_hdf5(
                root / HDF5_FILE, shards(), schema=schema, histories=summaries.num_rows,
                max_length=int(summaries["steps"].to_numpy().max(initial=0)), chunk_length=chunk_length, root=root,
            )
        )
    return files


def _place(src: Path, dst: Path) -> None:
    """Copies `src` to `dst`. Not a hard link: the dataset must not change when a collect
    shard is damaged in place (or repaired) later."""
    shutil.copyfile(src, dst)


def _ipc_shards(paths: Sequence[Path]) -> Iterator[tuple[int, pa.Table]]:
    for i, path in enumerate(paths):
        yield i, read_ipc(path)


def write_dataset(
    out: Path, *, shards: Shards, formats: Sequence[Format], tasks: list[Task], fields: dict[str, Any],
    chunk_length: int, summaries: pa.Table | None = None, ipc_sources: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """Writes the dataset folder `out` (rows, task table, summaries, card, manifest); returns the manifest.

    Everything is written to a hidden sibling folder first and renamed into place, so the
    dataset appears whole or not at all. An existing `out` is never overwritten.
    """
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out}: dataset {out.name} already exists; datasets are immutable, bump the version")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        schema = next(iter(shards()))[1].schema
        if summaries is None:
            summaries = summarize_histories(shards(), {t.task_id: t.split for t in tasks})
        files = write_rows(
            tmp, shards, formats, schema=schema, summaries=summaries, chunk_length=chunk_length, ipc_sources=ipc_sources,
        )
        files.append(write_table(tmp / TASKS_FILE, task_table(tasks), root=tmp))
        files.append(write_table(tmp / HISTORIES_FILE, summaries, root=tmp))
        longest = int(summaries["steps"].to_numpy().max(initial=1))
        fields = {
            **fields,
            "layout_version": LAYOUT_VERSION,
            "schema_version": SCHEMA_VERSION,
            "formats": [fmt for fmt in FORMATS if fmt in formats],
            "hdf5_chunk_length": max(1, min(chunk_length, longest)) if "hdf5" in formats else None,
            "stats": {
                "rows": int(summaries["steps"].to_numpy().sum()),
                "histories": summaries.num_rows,
                "bytes": {fmt: sum(f.bytes for f in files if f.path.startswith(fmt + "/")) for fmt in formats},
                "splits": split_stats(summaries, tasks),
            },
            "schema": [f"{field.name}: {field.type}" for field in schema],
        }
        card = write_card(tmp, fields, tasks)
        files.append(FileInfo(card.name, card.stat().st_size, 0, sha256_file(card)))
        manifest = write_manifest(tmp, files, **fields)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(out.parent)
    return manifest


def build_dataset(
    out: Path, *, shard_paths: list[Path], tasks: list[Task], name: str, version: int, fingerprint: str,
    source: dict[str, Any], env: dict[str, Any], license: str, formats: Sequence[Format] = FORMATS,
    chunk_length: int = 100, num_actions: int | None = None,
) -> dict[str, Any]:
    """Builds the dataset `<name>-v<version>` at `out` from collect shards; returns its manifest.

    `num_actions`: the size of a discrete action space (None for continuous actions).
    """
    if not shard_paths:
        raise DatasetError(f"{out}: no shards to build the dataset from")
    fields = {
        "dataset_id": f"{name}-v{version}", "name": name, "version": version, "icrl_version": __version__,
        "fingerprint": fingerprint, "env": env, "source": source, "license": license, "num_actions": num_actions,
    }
    return write_dataset(
        out, shards=lambda: _ipc_shards(shard_paths), formats=formats, tasks=tasks, fields=fields,
        chunk_length=chunk_length, ipc_sources=shard_paths,
    )
