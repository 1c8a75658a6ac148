"""Units of work: blocks of (task, seed) histories, each run as one jitted program into one shard."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from icrl.collect.ledger import UnitResult
from icrl.envs.tasks import Task


@dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs to produce shard `index`; small and picklable."""

    index: int
    history_ids: tuple[int, ...]
    tasks: tuple[Task, ...]  # the task of each history
    env_config: str  # canonical JSON of the env config section
    source_config: str  # canonical JSON of the collect source section
    batch_size: int  # histories per program run; short units are padded to it
    seed: int
    shard_path: str


def plan_units(
    tasks: list[Task],
    *,
    histories_per_task: int,
    histories_per_unit: int,
    shard_dir: Path,
    env_config: str,
    source_config: str,
    seed: int,
) -> list[UnitJob]:
    """Returns the units covering `histories_per_task` histories of each task, task-major.

    History `i * histories_per_task + s` is seed `s` of task `i`; units are consecutive blocks.
    """
    from icrl.datasets.shards import shard_name

    pairs = [(i * histories_per_task + s, task) for i, task in enumerate(tasks) for s in range(histories_per_task)]
    batch_size = min(histories_per_unit, len(pairs))  # a small plan runs no padding it does not need
    jobs = []
    for index, lo in enumerate(range(0, len(pairs), histories_per_unit)):
        block = pairs[lo : lo + histories_per_unit]
        jobs.append(
            UnitJob(
                index=index,
                history_ids=tuple(h for h, _ in block),
                tasks=tuple(t for _, t in block),
                env_config=env_config,
                source_config=source_config,
                batch_size=batch_size,
                seed=seed,
                shard_path=str(shard_dir / shard_name(index)),
            )
        )
    return jobs


@functools.lru_cache(maxsize=8)
def _program(env_config: str, source_config: str):
    """Returns (env, params_for, learner, jitted vmapped train) for one configuration, built once per process."""
    import jax

    from icrl.collect.sources import make_source
    from icrl.config import env_section, source_section
    from icrl.envs import make_env

    env, params_for = make_env(env_section(json.loads(env_config)))
    learner = make_source(env, source_section(json.loads(source_config)))
    # Only the history leaves the program: the final agents are not recorded.
    return env, params_for, learner, jax.jit(jax.vmap(lambda key, params: learner.train(key, params)[0]))


def collect_unit(job: UnitJob) -> dict[str, np.ndarray]:
    """Runs unit `job` and returns its rows as flat numpy columns (task_id: index into unit_task_ids)."""
    import jax
    import jax.numpy as jnp

    _, params_for, _, program = _program(job.env_config, job.source_config)
    n = len(job.tasks)
    padded = list(job.tasks) + [job.tasks[-1]] * (job.batch_size - n)  # one compiled shape for every unit
    unit_key = jax.random.fold_in(jax.random.key(job.seed), job.index)
    keys = jax.vmap(lambda i: jax.random.fold_in(unit_key, i))(jnp.arange(job.batch_size))
    history = jax.tree.map(lambda x: np.asarray(x)[:n], program(keys, params_for(padded)))
    steps = history.action.shape[1]
    fields = {name: value for name, value in history._asdict().items() if name != "extra"} | history.extra
    columns = {name: value.reshape((n * steps,) + value.shape[2:]) for name, value in fields.items()}
    columns["history_id"] = np.repeat(np.asarray(job.history_ids, np.int64), steps)
    columns["step"] = np.tile(np.arange(steps, dtype=np.int32), n)
    position = {task_id: i for i, task_id in enumerate(unit_task_ids(job))}
    columns["task_id"] = np.repeat(np.asarray([position[t.task_id] for t in job.tasks], np.int32), steps)
    return columns


def unit_task_ids(job: UnitJob) -> list[str]:
    """Returns the distinct task ids of `job`, in order of first appearance."""
    return list(dict.fromkeys(t.task_id for t in job.tasks))


def run_unit(job: UnitJob) -> UnitResult:
    """Runs unit `job`, writes its shard atomically and returns only the shard's metadata."""
    from icrl.jax_runtime import enable_compilation_cache

    enable_compilation_cache()
    from icrl.datasets.schema import history_schema, history_table
    from icrl.datasets.shards import write_ipc

    columns = collect_unit(job)
    _, _, learner, _ = _program(job.env_config, job.source_config)
    obs, action = columns["obs"], columns["action"]
    schema = history_schema(obs.shape[1:], obs.dtype, learner.columns, action_shape=action.shape[1:])
    table = history_table(columns, unit_task_ids(job), schema)
    info = write_ipc(job.shard_path, table)
    return UnitResult(job.index, info.path, info.bytes, info.rows, info.sha256, len(job.history_ids))
