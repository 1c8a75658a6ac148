"""Units of work: blocks of (task, seed) histories, each run as one jitted program into one shard."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from icrl.collect.ledger import UnitResult
from icrl.envs.tasks import Task


@dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs to produce shard `index`; small and picklable."""

    index: int
    history_ids: tuple[int, ...]
    tasks: tuple[Task, ...]  # the task of each history
    env_id: str
    env_settings: str  # canonical JSON
    source: str
    source_settings: str  # canonical JSON
    batch_size: int  # histories per program run; short units are padded to it
    seed: int
    shard_path: str


def plan_units(
    tasks: list[Task],
    *,
    histories_per_task: int,
    histories_per_unit: int,
    shard_dir: Path,
    env_id: str,
    env_settings: str,
    source: str,
    source_settings: str,
    seed: int,
) -> list[UnitJob]:
    """Returns the units covering `histories_per_task` histories of each task, task-major.

    History `i * histories_per_task + s` is seed `s` of task `i`; units are consecutive blocks.
    """
    from icrl.datasets.shards import shard_name

    pairs = [(i * histories_per_task + s, task) for i, task in enumerate(tasks) for s in range(histories_per_task)]
    jobs = []
    for index, lo in enumerate(range(0, len(pairs), histories_per_unit)):
        block = pairs[lo : lo + histories_per_unit]
        jobs.append(
            UnitJob(
                index=index,
                history_ids=tuple(h for h, _ in block),
                tasks=tuple(t for _, t in block),
                env_id=env_id,
                env_settings=env_settings,
                source=source,
                source_settings=source_settings,
                batch_size=histories_per_unit,
                seed=seed,
                shard_path=str(shard_dir / shard_name(index)),
            )
        )
    return jobs


@functools.lru_cache(maxsize=8)
def _program(env_id: str, env_settings: str, source: str, source_settings: str):
    """Returns (env family, jitted vmapped collect) for one configuration, built once per process."""
    import jax

    from icrl.collect.sources import make_source
    from icrl.envs import make_family

    family = make_family(env_id, json.loads(env_settings), heldout=0, split_seed=0)
    collect = make_source(family.env, source, json.loads(source_settings))
    return family, jax.jit(jax.vmap(collect))


def collect_unit(job: UnitJob) -> dict[str, np.ndarray]:
    """Runs unit `job` and returns its rows as flat numpy columns (task_id: index into unit_task_ids)."""
    import jax
    import jax.numpy as jnp

    family, program = _program(job.env_id, job.env_settings, job.source, job.source_settings)
    n = len(job.tasks)
    padded = list(job.tasks) + [job.tasks[-1]] * (job.batch_size - n)  # one compiled shape for every unit
    unit_key = jax.random.fold_in(jax.random.key(job.seed), job.index)
    keys = jax.vmap(lambda i: jax.random.fold_in(unit_key, i))(jnp.arange(job.batch_size))
    history = jax.tree.map(lambda x: np.asarray(x)[:n], program(keys, family.params_for(padded)))
    steps = history.action.shape[1]
    columns = {name: value.reshape((n * steps,) + value.shape[2:]) for name, value in history._asdict().items()}
    columns["history_id"] = np.repeat(np.asarray(job.history_ids, np.int64), steps)
    columns["step"] = np.tile(np.arange(steps, dtype=np.int32), n)
    task_ids = unit_task_ids(job)
    columns["task_id"] = np.repeat(np.asarray([task_ids.index(t.task_id) for t in job.tasks], np.int32), steps)
    return columns


def unit_task_ids(job: UnitJob) -> list[str]:
    """Returns the distinct task ids of `job`, in order of first appearance."""
    return list(dict.fromkeys(t.task_id for t in job.tasks))


def run_unit(job: UnitJob) -> UnitResult:
    """Runs unit `job`, writes its shard atomically and returns only the shard's metadata."""
    from icrl.jax_runtime import enable_compilation_cache

    enable_compilation_cache()
    from icrl.collect.sources import SOURCE_COLUMNS
    from icrl.datasets.schema import history_schema, history_table
    from icrl.datasets.shards import write_ipc

    family, _ = _program(job.env_id, job.env_settings, job.source, job.source_settings)
    columns = collect_unit(job)
    space = family.env.observation_space(family.env.default_params)
    schema = history_schema(tuple(space.shape), columns["obs"].dtype, SOURCE_COLUMNS[job.source])
    table = history_table(columns, unit_task_ids(job), schema)
    info = write_ipc(job.shard_path, table)
    return UnitResult(job.index, info.path, info.bytes, info.rows, info.sha256, len(job.history_ids))
