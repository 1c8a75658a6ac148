"""Collection throughput of every learning-history source, against the environment-only ceiling.

    python bench/collect.py [--quick]

The ceiling is random actions on the same environment, jitted and vmapped, timed warm in
every Ray worker at once (so it uses the whole machine, as the collect stage does), with
nothing written. Each source then runs the real collect stage on the Ray executor, shard
writing included, Ray start-up excluded: a first pass, in which every worker compiles the
unit program (or loads it from the persistent compilation cache), then a warm pass whose
figure is reported, with its ratio to the ceiling of the source's environment. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Each source on the environment it is meant for; sizes keep every source's pass at a few seconds.
SOURCES: dict[str, dict[str, Any]] = {
    "noise_curriculum": {
        "env": {"id": "DarkRoom-v0"},
        "collect": {
            "source": {"algorithm": "noise_curriculum", "episodes": 10}, "histories_per_task": 64, "histories_per_unit": 512,
        },
    },
    "ppo": {
        "env": {"id": "DarkRoom-v0"},
        "collect": {"source": {"algorithm": "ppo"}, "histories_per_task": 4, "histories_per_unit": 65},
    },
    "q_learning": {
        "env": {"id": "DarkRoom-v0"},
        "collect": {"source": {"algorithm": "q_learning"}, "histories_per_task": 4, "histories_per_unit": 64},
    },
    "thompson": {
        "env": {"id": "BernoulliBandit-v0", "num_tasks": 200},
        "collect": {"source": {"algorithm": "thompson"}, "histories_per_task": 8, "histories_per_unit": 256},
    },
    "ucb": {
        "env": {"id": "BernoulliBandit-v0", "num_tasks": 200},
        "collect": {"source": {"algorithm": "ucb"}, "histories_per_task": 8, "histories_per_unit": 256},
    },
    "linucb": {
        "env": {"id": "ContextualBandit-v0", "num_tasks": 200},
        "collect": {"source": {"algorithm": "linucb"}, "histories_per_task": 8, "histories_per_unit": 256},
    },
}
CEILING_STEPS = 2000
CEILING_BATCH = 64


def _config(name: str, root: str, quick: bool):
    from icrl.config import parse_config

    spec = SOURCES[name]
    collect = dict(spec["collect"], executor="ray")
    if quick:
        collect["histories_per_task"] = 1
    data = {
        "run": {"name": name, "root": root, "until": "datasets"},
        "env": spec["env"],
        "tasks": {"heldout": 16},
        "collect": collect,
    }
    return parse_config(data, source=f"bench:{name}")


def ceiling_tps(env_config: str, batch: int, steps: int) -> float:
    """Returns the warm transitions/s of random actions on the environment, in this process."""
    from icrl.jax_runtime import enable_compilation_cache

    enable_compilation_cache()
    import jax

    from icrl.collect.random_policy import make_random
    from icrl.config import RandomConfig, TasksConfig, env_section
    from icrl.envs import make_family

    family = make_family(env_section(json.loads(env_config)), TasksConfig(heldout=0))
    learner = make_random(family.env, RandomConfig(steps=steps))
    tasks = [family.tasks[i % len(family.tasks)] for i in range(batch)]
    params = family.params_for(tasks)
    program = jax.jit(jax.vmap(lambda k, p: learner.train(k, p)[0]))
    keys = jax.random.split(jax.random.key(0), batch)
    jax.block_until_ready(program(keys, params))
    start = time.perf_counter()
    jax.block_until_ready(program(keys, params))
    return batch * steps / (time.perf_counter() - start)


def machine_ceiling(env_config: str, workers: int) -> float:
    """Returns the summed random-action rate of `workers` Ray workers running at once."""
    import ray

    from icrl.collect.executors import worker_runtime_env

    remote = ray.remote(num_cpus=1, runtime_env=worker_runtime_env())(ceiling_tps)
    return float(sum(ray.get([remote.remote(env_config, CEILING_BATCH, CEILING_STEPS) for _ in range(workers)])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one history per task: a smoke run, not a measurement")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=list(SOURCES), help="which sources")
    args = parser.parse_args()

    from icrl.collect.executors import RayExecutor

    workers = args.num_cpus or os.cpu_count() or 1
    executor = RayExecutor(num_cpus=args.num_cpus)  # Ray starts before any JAX work in this process
    from icrl.collect.stage import run_collect
    from icrl.envs.tasks import canonical_json
    from icrl.fingerprint import stage_fingerprints

    ceilings: dict[str, float] = {}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, executor:
        for name in args.sources:
            cfg = _config(name, tmp, args.quick)
            env_key = canonical_json(cfg.env.model_dump())
            if env_key not in ceilings:
                ceilings[env_key] = machine_ceiling(env_key, workers)
                print(f"ceiling {cfg.env.id}: {ceilings[env_key]:,.0f} transitions/s (random actions, {workers} workers)")
            fingerprint = stage_fingerprints(cfg)["collect"]
            for attempt in ("first", "warm"):
                folder = Path(tmp) / name / attempt
                folder.mkdir(parents=True)
                summary = run_collect(cfg, folder, fingerprint, executor=executor)
            tps = summary["rows"] / summary["seconds"]
            ratio = tps / ceilings[env_key]
            results[name] = {"tps": round(tps, 1), "ratio": round(ratio, 4), "env": cfg.env.id}
            print(
                f"{name:>16} on {cfg.env.id:<20} {summary['rows']:>9} transitions in {summary['seconds']:6.2f}s "
                f"({summary['units']} units) = {tps:>12,.0f} transitions/s, {ratio:6.1%} of the ceiling",
                flush=True,
            )
    first = canonical_json(_config(args.sources[0], "unused", args.quick).env.model_dump())
    print(json.dumps({"env_ceiling_tps": round(ceilings[first], 1), "sources": results}))


if __name__ == "__main__":
    sys.exit(main())
