"""The distill stage: a model trained on the training split of the pipeline's dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from icrl.config import ConfigError
from icrl.console import say
from icrl.datasets.dataset import Dataset
from icrl.datasets.manifest import DatasetError
from icrl.distill.model import (
    BASELINE_DIR,
    build_model,
    model_label,
    model_spec,
    save_spec,
)
from icrl.distill.trainer import train as train_model
from icrl.envs import make_family, spaces
from icrl.envs.tasks import TRAIN


def run_distill(cfg: Any, dataset: Dataset, stage_dir: Path) -> dict[str, Any]:
    """Trains (or resumes training) the configured model, and its plain-AD baseline if asked; returns the stage summary."""
    family = make_family(cfg.env, cfg.tasks)
    env = family.env
    space = env.observation_space(env.default_params)
    num_obs = int(space.n) if hasattr(space, "n") else None
    spec = model_spec(cfg.distill, num_actions=env.num_actions, num_obs=num_obs)
    save_spec(stage_dir, spec)
    masks = None
    if cfg.distill.head == "headless":  # which actions each task offers: the model scores those
        train = family.train
        offered = np.asarray(jax.vmap(lambda p: spaces.action_mask(env, p))(family.params_for(train)))
        masks = {t.task_id: m for t, m in zip(train, offered)}
    try:
        sampler = dataset.sampler(
            context_length=cfg.distill.context_length, seed=cfg.distill.seed, split=TRAIN,
            fmt=None if cfg.distill.data_format == "auto" else cfg.distill.data_format,
            every=cfg.distill.every_kth_episode, num_actions=env.num_actions, action_masks=masks,
        )
    except DatasetError:
        raise
    except ValueError as err:
        where = "distill.context_length" if "no history holds" in str(err) else f"distill ({dataset.root})"
        raise ConfigError(f"{where}: {err}") from None
    say(f"distill: {sampler.num_windows} windows from the {sampler.store.format} files of {dataset.id}")
    summary = {"dataset": dataset.id, "format": sampler.store.format, "windows": sampler.num_windows}
    summary |= train_model(build_model(spec), sampler, cfg.distill, stage_dir)
    if cfg.distill.baseline:
        folder = stage_dir / BASELINE_DIR
        folder.mkdir(exist_ok=True)
        baseline = model_spec(cfg.distill, num_actions=env.num_actions, num_obs=num_obs, head="linear")
        save_spec(folder, baseline)
        say(f"distill: the baseline, {model_label(baseline)}, on the same windows")
        summary["baseline"] = train_model(build_model(baseline), sampler, cfg.distill, folder)
    return summary
