"""The distill stage: a model trained on the training split of the pipeline's dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icrl.config import ConfigError
from icrl.console import say
from icrl.datasets.dataset import Dataset
from icrl.datasets.manifest import DatasetError
from icrl.distill.model import build_model, model_spec, save_spec
from icrl.distill.trainer import train
from icrl.envs import make_family
from icrl.envs.tasks import TRAIN


def run_distill(cfg: Any, dataset: Dataset, stage_dir: Path) -> dict[str, Any]:
    """Trains (or resumes training) the configured model; returns the stage summary."""
    family = make_family(cfg.env, cfg.tasks)
    env = family.env
    space = env.observation_space(env.default_params)
    num_obs = int(space.n) if hasattr(space, "n") else None
    spec = model_spec(cfg.distill, num_actions=env.num_actions, num_obs=num_obs)
    save_spec(stage_dir, spec)
    try:
        sampler = dataset.sampler(
            context_length=cfg.distill.context_length, seed=cfg.distill.seed, split=TRAIN,
            fmt=None if cfg.distill.data_format == "auto" else cfg.distill.data_format,
            every=cfg.distill.every_kth_episode, num_actions=env.num_actions,
        )
    except DatasetError:
        raise
    except ValueError as err:
        where = "distill.context_length" if "no history holds" in str(err) else f"distill ({dataset.root})"
        raise ConfigError(f"{where}: {err}") from None
    say(f"distill: {sampler.num_windows} windows from the {sampler.store.format} files of {dataset.id}")
    return {"dataset": dataset.id, "format": sampler.store.format, "windows": sampler.num_windows, **train(build_model(spec), sampler, cfg.distill, stage_dir)}
