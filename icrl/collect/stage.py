"""The collect stage: plan units, run the missing ones on an executor, keep a ledger of finished shards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from icrl.collect.ledger import read_ledger, write_ledger
from icrl.collect.units import UnitJob, plan_units, run_unit
from icrl.collect.sources import make_source
from icrl.config import ConfigError
from icrl.console import progress, say
from icrl.envs import make_family
from icrl.envs.tasks import canonical_json


def plan(cfg: Any, stage_dir: Path) -> list[UnitJob]:
    """Returns every unit of the collect stage of pipeline config `cfg`, in index order.

    Raises ConfigError when the source cannot run on the environment (found only once both are built).
    """
    family = make_family(cfg.env, cfg.tasks)
    try:
        make_source(family.env, cfg.collect.source)
    except ValueError as err:
        raise ConfigError(f"collect.source: {err}") from None
    return plan_units(
        family.train,  # held-out tasks never enter the training data
        histories_per_task=cfg.collect.histories_per_task,
        histories_per_unit=cfg.collect.histories_per_unit,
        shard_dir=stage_dir.resolve() / "shards",  # workers may run in another directory
        env_config=canonical_json(cfg.env.model_dump()),
        source_config=canonical_json(cfg.collect.source.model_dump()),
        seed=cfg.collect.seed,
    )


def run_collect(cfg: Any, stage_dir: Path, fingerprint: str, *, executor: Any) -> dict[str, Any]:
    """Runs the units not yet in the ledger on `executor`; returns the stage summary."""
    jobs = plan(cfg, stage_dir)
    finished = read_ledger(stage_dir, fingerprint)
    todo = [job for job in jobs if job.index not in finished]
    if finished:
        say(f"collect: resuming, {len(finished)} of {len(jobs)} units already done")
    start = time.monotonic()
    results = executor.map_unordered(run_unit, todo)
    for result in progress(results, total=len(jobs), initial=len(finished), desc="collect", unit="unit"):
        finished[result.index] = result
        write_ledger(stage_dir, fingerprint, finished)
    seconds = time.monotonic() - start
    rows = sum(r.rows for r in finished.values())
    new_rows = sum(finished[j.index].rows for j in todo)
    return {
        "units": len(jobs),
        "histories": sum(r.histories for r in finished.values()),
        "rows": rows,
        "bytes": sum(r.bytes for r in finished.values()),
        "seconds": round(seconds, 3),
        "transitions_per_s": round(new_rows / seconds, 1) if todo and seconds > 0 else None,
        "executor": executor.name,
    }
