"""Shared fixtures: strict JAX, one Ray cluster per session, tiny pipeline configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

from icrl.config import parse_config  # noqa: E402
from icrl.jax_runtime import enable_compilation_cache  # noqa: E402

enable_compilation_cache()

TINY = {
    "run": {"name": "tiny"},
    "env": {"size": 5, "episode_length": 8},
    "tasks": {"heldout": 5, "split_seed": 0},
    "collect": {
        "source": {"algorithm": "noise_curriculum", "episodes": 6}, "histories_per_task": 2, "histories_per_unit": 8,
        "executor": "serial",
    },
    "datasets": {"name": "tiny", "hdf5_chunk_length": 24},
    "distill": {
        "context_length": 24, "embed_dim": 16, "num_layers": 1, "num_heads": 2, "batch_size": 4,
        "steps": 12, "warmup_steps": 2, "checkpoint_every": 6, "log_every": 3,
    },
    "evaluate": {"episodes": 4, "rollouts_per_task": 1, "train_tasks": 3, "reference_episodes": 4},
}


def tiny_data(root: Path, **overrides) -> dict:
    """Returns a tiny pipeline config (as YAML data) under `root`; `overrides`: section -> {key: value}."""
    data = {section: dict(values) for section, values in TINY.items()}
    data["run"]["root"] = str(root)
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return data


@pytest.fixture
def tiny(tmp_path):
    """Returns a function making tiny validated configs under this test's tmp_path."""

    def make(**overrides):
        return parse_config(tiny_data(tmp_path / "runs", **overrides), source="test")

    return make


@pytest.fixture(scope="session")
def ray_cluster():
    """A local two-CPU Ray cluster shared by every test that needs one."""
    import ray

    from icrl.collect.executors import start_ray

    start_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Returns (cfg, folder, manifest, build) of a tiny real Dark Room dataset in all three formats;
    `build(out, formats)` builds it again elsewhere."""
    from icrl.collect.stage import plan
    from icrl.collect.units import run_unit
    from icrl.datasets import FORMATS
    from icrl.datasets.build import build_dataset
    from icrl.envs import make_family

    root = tmp_path_factory.mktemp("ds")
    cfg = parse_config(tiny_data(root), source="test")
    shard_dir = root / "shards"
    results = [run_unit(job) for job in plan(cfg, root)]
    family = make_family(cfg.env, cfg.tasks)

    def build(out: Path, formats=FORMATS):
        return build_dataset(
            out, shard_paths=[shard_dir / r.path for r in results], tasks=list(family.tasks), name="tiny", version=1,
            fingerprint="f" * 64, source=cfg.collect.fingerprint_fields(), env=cfg.env.model_dump(), license="CC0-1.0",
            formats=formats, chunk_length=24, num_actions=5,
        )

    out = root / "tiny-v1"
    return cfg, out, build(out), build
