"""Throughput of the default pipeline: collection and training, in transitions per second.

    python bench/pipeline.py [pipeline.yaml] [--train-steps N]

Collection runs the collect stage of the config on its executor (a local Ray by default),
shard writing included, Ray start-up excluded: a first pass, in which each worker compiles
the unit program (or loads it from the persistent compilation cache), then a warm pass;
`collect_tps` is the warm figure. Training times the real train step on
windows of the resulting dataset, after compilation. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "pipeline.yaml"))
    parser.add_argument("--train-steps", type=int, default=40)
    args = parser.parse_args()

    from icrl.config import load_config

    base = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = base.model_copy(update={"run": base.run.model_copy(update={"root": tmp, "name": "bench"})})
        from icrl.collect.executors import make_executor
        from icrl.fingerprint import stage_fingerprints

        fps = stage_fingerprints(cfg)
        executor = make_executor(
            cfg.collect.executor, address=cfg.ray.address, num_cpus=cfg.ray.num_cpus, max_retries=cfg.ray.max_retries
        )  # Ray starts here, before the clock and before any JAX work
        from icrl.collect.stage import run_collect

        # The first pass compiles (or loads) the unit program in each worker; the second runs warm.
        for attempt in ("first", "warm"):
            collect_dir = cfg.run_dir / f"collect-{attempt}"
            collect_dir.mkdir(parents=True)
            summary = run_collect(cfg, collect_dir, fps["collect"], executor=executor)
            collect_tps = summary["rows"] / summary["seconds"]
            print(
                f"collect ({attempt}): {summary['rows']} transitions in {summary['seconds']:.2f}s on {summary['executor']} "
                f"({summary['units']} units, shards written) = {collect_tps:,.0f} transitions/s",
                flush=True,
            )  # the datasets below are built from the warm pass's shards

        from icrl.jax_runtime import enable_compilation_cache

        enable_compilation_cache()
        import jax

        from icrl.datasets.dataset import Dataset
        from icrl.datasets.stage import run_datasets
        from icrl.distill.model import build_model, model_spec
        from icrl.distill.trainer import init_state, make_optimizer, make_train_step
        from icrl.envs import make_env

        run_datasets(cfg, collect_dir, fps["collect"], summary["units"], cfg.run_dir / "datasets", fps["datasets"])
        dataset = Dataset(cfg.run_dir / "datasets" / cfg.datasets.dataset_id)
        env = make_env(cfg.env)[0]
        space = env.observation_space(env.default_params)
        spec = model_spec(cfg.distill, num_actions=env.num_actions, num_obs=getattr(space, "n", None))
        model = build_model(spec)
        d = cfg.distill
        sampler = dataset.sampler(context_length=d.context_length, num_actions=env.num_actions, seed=0)
        optimizer = make_optimizer(d)
        step = make_train_step(model, optimizer, seed=0)
        state = init_state(model, optimizer, sampler.example_obs, seed=0)
        state, metrics = step(state, sampler.batch(d.batch_size, 0))  # compile
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for i in range(1, args.train_steps + 1):
            state, metrics = step(state, sampler.batch(d.batch_size, i))
        jax.block_until_ready(metrics)
        seconds = time.perf_counter() - start
        train_tps = args.train_steps * d.batch_size * d.context_length / seconds
        print(
            f"train: {args.train_steps} steps of {d.batch_size}x{d.context_length} transitions in {seconds:.2f}s "
            f"= {train_tps:,.0f} transitions/s ({seconds / args.train_steps * 1000:.0f} ms/step, sampling included)",
            flush=True,
        )
        executor.close()
    print(json.dumps({"collect_tps": round(collect_tps, 1), "train_tps": round(train_tps, 1)}))


if __name__ == "__main__":
    sys.exit(main())
