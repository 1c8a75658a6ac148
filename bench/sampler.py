"""The window sampler against the trainer: windows/s and MB/s per format, bytes per transition.

    python bench/sampler.py [pipeline.yaml] [--seconds S] [--train-steps N]

Builds the config's dataset (the default Dark Room one unless told otherwise) in all three
formats: the collect stage on the serial executor, then the datasets stage. For each format it
times `WindowSampler.batch` on the training split (batch size and context length of the
config's distill section), single-threaded, after a warm-up that loads the shards and fills
HDF5's chunk cache; MB/s counts the bytes of the batches it returns. In the same run it times
the real jitted train step of the config's model (after compilation) on pre-drawn batches:
the rate at which the trainer consumes windows. The goal: every format's sampler at least
10x faster than the trainer. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time_sampler(sampler, batch_size: int, seconds: float) -> tuple[float, float]:
    """Returns (windows/s, MB/s) of `sampler.batch` over about `seconds`."""
    for index in range(20):  # warm-up: shards loaded, chunk cache filled
        sampler.batch(batch_size, index)
    batches, nbytes, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = sampler.batch(batch_size, 1000 + batches)
        nbytes += sum(values.nbytes for values in batch.values())
        batches += 1
    elapsed = time.perf_counter() - start
    return batches * batch_size / elapsed, nbytes / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "pipeline.yaml"))
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to time each format's sampler")
    parser.add_argument("--train-steps", type=int, default=30)
    args = parser.parse_args()

    from icrl.config import load_config
    from icrl.jax_runtime import enable_compilation_cache

    enable_compilation_cache()
    base = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = base.model_copy(
            update={
                "run": base.run.model_copy(update={"root": tmp, "name": "bench"}),
                "collect": base.collect.model_copy(update={"executor": "serial"}),
                "datasets": base.datasets.model_copy(update={"formats": ["ipc", "parquet", "hdf5"]}),
            }
        )
        import jax

        from icrl.collect.executors import make_executor
        from icrl.collect.stage import run_collect
        from icrl.datasets import Dataset
        from icrl.datasets.stage import run_datasets
        from icrl.distill.model import build_model, model_spec
        from icrl.distill.trainer import init_state, make_optimizer, make_train_step
        from icrl.envs import make_env
        from icrl.fingerprint import stage_fingerprints

        fps = stage_fingerprints(cfg)
        collect_dir = cfg.run_dir / "collect"
        collect_dir.mkdir(parents=True)
        summary = run_collect(cfg, collect_dir, fps["collect"], executor=make_executor("serial"))
        run_datasets(cfg, collect_dir, fps["collect"], summary["units"], cfg.run_dir / "datasets", fps["datasets"])
        dataset = Dataset(cfg.run_dir / "datasets" / cfg.datasets.dataset_id)
        stats = dataset.manifest["stats"]
        d = cfg.distill
        env = make_env(cfg.env)[0]
        print(
            f"dataset {dataset.id}: {stats['rows']:,} transitions in {stats['histories']:,} histories; "
            f"windows of {d.context_length}, batches of {d.batch_size}, episodes kept: every {d.every_kth_episode}",
            flush=True,
        )

        backends = {}
        for fmt in ("ipc", "parquet", "hdf5"):
            sampler = dataset.sampler(
                context_length=d.context_length, seed=0, fmt=fmt, every=d.every_kth_episode, num_actions=env.num_actions,
            )
            windows_per_s, mb_per_s = _time_sampler(sampler, d.batch_size, args.seconds)
            sampler.store.close()
            backends[fmt] = {
                "windows_per_s": round(windows_per_s, 1),
                "mb_per_s": round(mb_per_s, 2),
                "bytes_per_transition": round(stats["bytes"][fmt] / stats["rows"], 2),
            }
            print(f"{fmt:8s} sampler: {windows_per_s:,.0f} windows/s, {mb_per_s:,.1f} MB/s; "
                  f"{backends[fmt]['bytes_per_transition']} bytes per transition on disk", flush=True)

        space = env.observation_space(env.default_params)
        model = build_model(model_spec(d, num_actions=env.num_actions, num_obs=getattr(space, "n", None)))
        sampler = dataset.sampler(context_length=d.context_length, seed=0, num_actions=env.num_actions)
        batches = [sampler.batch(d.batch_size, i) for i in range(args.train_steps + 1)]
        optimizer = make_optimizer(d)
        step = make_train_step(model, optimizer, seed=0)
        state = init_state(model, optimizer, sampler.example_obs, seed=0)
        state, metrics = step(state, batches[0])  # compile
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for batch in batches[1:]:
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        trainer = args.train_steps * d.batch_size / (time.perf_counter() - start)
        print(f"trainer consumes {trainer:,.0f} windows/s ({d.model}, {args.train_steps} steps, batches pre-drawn)")
        for fmt, figures in backends.items():
            ratio = figures["windows_per_s"] / trainer
            print(f"{fmt:8s} sampler / trainer = {ratio:.1f}x {'(>= 10x: ok)' if ratio >= 10 else '(below the 10x goal)'}")
        print(json.dumps({"trainer_windows_per_s": round(trainer, 1), "backends": backends}))


if __name__ == "__main__":
    main()
