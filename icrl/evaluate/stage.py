"""The evaluate stage: frozen model, in-context rollouts on held-out and training tasks, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from icrl.atomic import write_json
from icrl.console import say
from icrl.datasets.dataset import Dataset
from icrl.datasets.manifest import DatasetError
from icrl.distill.headless import fixed_action_set
from icrl.distill.model import BASELINE_DIR, build_model, build_policy, load_spec, model_label
from icrl.distill.trainer import load_params
from icrl.envs import make_family
from icrl.envs.tasks import HELDOUT, TRAIN, Task
from icrl.evaluate.references import data_policy_return, reference_returns
from icrl.evaluate.compare import compared_run
from icrl.evaluate.report import split_summary, write_report
from icrl.evaluate.rollout import make_rollout
from icrl.evaluate.sets import EvalModel, evaluate_sets, finished_result

RESULTS_DIR = "results"


def eval_tasks(tasks: list[Task], *, train_tasks: int, seed: int) -> dict[str, list[Task]]:
    """Returns the tasks to evaluate per split: every held-out task, a seeded sample of training ones."""
    heldout = [t for t in tasks if t.split == HELDOUT]
    train = [t for t in tasks if t.split == TRAIN]
    pick = np.random.default_rng(seed).choice(len(train), size=min(train_tasks, len(train)), replace=False)
    chosen = {HELDOUT: heldout, TRAIN: [train[i] for i in sorted(pick)]}
    return {split: ts for split, ts in chosen.items() if ts}


def source_curve(dataset: Dataset) -> list[float]:
    """Returns the source's mean return per episode index over the training histories."""
    returns = dataset.histories["episode_returns"].to_pylist()
    if not returns:
        return []
    width = min(len(r) for r in returns)
    return [round(float(x), 4) for x in np.mean([r[:width] for r in returns], axis=0)]


def _load_model(folder: Path, role: str, cfg: Any, obs: np.ndarray) -> EvalModel:
    """Returns the newest checkpoint of the model trained in `folder`, ready to roll out."""
    spec = load_spec(folder)
    step, params = load_params(folder, build_model(spec), cfg.distill, obs)
    action_set = None
    if spec.get("head") == "headless":  # embeddings fixed for a rollout, drawn from its seeded key
        dim = spec["action_embed_dim"]
        action_set = lambda mask, key: fixed_action_set(mask, dim, key=key)
    return EvalModel(role, model_label(spec), spec, build_policy(spec), params, action_set, step)


def run_evaluate(cfg: Any, dataset: Dataset, distill_dir: Path, stage_dir: Path, fingerprint: str) -> dict[str, Any]:
    """Evaluates the distilled model; skips splits whose result file is already written."""
    ev = cfg.evaluate
    family = make_family(cfg.env, cfg.tasks)
    if [t.task_id for t in family.heldout] != [t.task_id for t in dataset.tasks if t.split == HELDOUT]:
        raise DatasetError(f"{dataset.root}: its held-out tasks differ from those of this config's tasks section")
    obs, _ = family.env.reset(jax.random.key(0), family.env.default_params)
    main = _load_model(distill_dir, "main", cfg, np.asarray(obs))
    models = [main]
    if cfg.distill.baseline:
        models.append(_load_model(distill_dir / BASELINE_DIR, "baseline", cfg, np.asarray(obs)))
    spec, step, params = main.spec, main.step, main.params
    rollout = make_rollout(
        main.policy, family.env, episodes=ev.episodes, policy=ev.policy, temperature=ev.temperature,
        action_set=main.action_set,
    )
    run_batch = jax.jit(jax.vmap(rollout, in_axes=(None, 0, 0)))
    results_dir = stage_dir / RESULTS_DIR
    summary: dict[str, Any] = {}
    for index, (split, tasks) in enumerate(eval_tasks(dataset.tasks, train_tasks=ev.train_tasks, seed=ev.seed).items()):
        path = results_dir / f"{split}.json"
        result = finished_result(path, fingerprint)
        if result is not None:
            say(f"evaluate: {split} already done ({path})")
        else:
            batch = [t for t in tasks for _ in range(ev.rollouts_per_task)]
            keys = jax.random.split(jax.random.fold_in(jax.random.key(ev.seed), index), len(batch))
            say(f"evaluate: {split}: {len(tasks)} tasks x {ev.rollouts_per_task} rollouts x {ev.episodes} episodes")
            returns = np.asarray(run_batch(params, family.params_for(batch), keys))
            result = {
                "fingerprint": fingerprint,
                "task_ids": [t.task_id for t in batch],
                "returns": returns.round(4).tolist(),
            }
            write_json(path, result)
        returns = np.asarray(result["returns"], np.float64)
        summary[split] = {"tasks": len(tasks), **split_summary(returns)}
    reference_split = HELDOUT if family.heldout else TRAIN
    source = cfg.collect.source
    scripted = source.algorithm == "noise_curriculum" and source.demonstrator.algorithm == "oracle"
    references = reference_returns(
        family.env, family.params_for(family.by_split(reference_split)), episodes=ev.reference_episodes,
        seed=ev.seed, demonstrator_epsilon=source.epsilon_floor if scripted else None,
    )
    if scripted:
        pi_data_from = f"the oracle acting ε-greedily at the curriculum's floor ε = {source.epsilon_floor}, on the same tasks"
    else:
        references["pi_data"] = data_policy_return(dataset.histories["episode_returns"].to_pylist())
        pi_data_from = (
            "the last 10% of the episodes of every training history, on the training tasks: "
            "the source's final policies"
        )
    summary["references"] = {
        **references, "tasks": reference_split, "pi_data_from": pi_data_from,
        "source": source.algorithm, "source_curve": source_curve(dataset),
    }
    summary["policy"] = {"rule": ev.policy, "temperature": ev.temperature if ev.policy == "sample" else None}
    summary["compare"] = [compared_run(Path(run)) for run in ev.compare_with]
    if ev.sets:
        summary["sets"] = evaluate_sets(cfg, models, results_dir, fingerprint)
        summary["set_models"] = [m.label for m in models]
        summary["set_order"] = [s.name for s in ev.sets]  # summary.json sorts its keys
    summary.update(
        {"dataset": dataset.id, "model": spec["kind"], "checkpoint_step": step, "episodes": ev.episodes}
    )
    write_json(stage_dir / "summary.json", summary)
    write_report(stage_dir, summary)
    return {
        split: {"episode_1": summary[split]["episode_1"], "last5_mean": summary[split]["last5_mean"]}
        for split in (HELDOUT, TRAIN) if split in summary
    } | {"pi_data": references["pi_data"]}
