"""Evaluation sets: new tasks drawn at evaluation, regret per model against the source algorithm and random.

Each set (`evaluate.sets`) is a batch of tasks the data never held: bandits with more arms,
other means or permuted arms; grid tasks with held-out goals and permuted or unseen compound
actions. Every model that can act on it (a headless model always; plain AD only where the
set offers exactly as many action slots as it was trained for) runs `rollouts_per_task`
in-context rollouts per task.

Bandits: the source algorithm (Thompson sampling, LinUCB, ...) also learns every task from
scratch; the figures are the expected cumulative regret at the horizon and the normalised
regret: 0 for a uniformly random policy, 1 for the source. Other environments: the success
rate per episode (an episode succeeds when its return is positive), beside the random
policy's and the oracle's.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from icrl.atomic import write_json
from icrl.collect.sources import make_source
from icrl.config import set_env
from icrl.console import say
from icrl.envs import spaces
from icrl.envs.family import make_env, set_seed, set_tasks
from icrl.evaluate.references import (
    epsilon_greedy_oracle,
    policy_returns,
    random_policy,
)
from icrl.evaluate.rollout import make_rollout


class EvalModel(NamedTuple):
    """A frozen model the evaluation runs: `role` (main or baseline) names its result files."""

    role: str
    label: str
    spec: dict[str, Any]
    policy: Any
    params: Any
    action_set: Callable[[jax.Array, jax.Array], Any] | None
    step: int


def normalised_regret(regret: float, random: float, source: float) -> float | None:
    """Returns (random − regret) / (random − source): 0 at the random policy, 1 at the source; None if they tie."""
    gap = random - source
    return None if abs(gap) < 1e-9 else (random - regret) / gap


def cannot_run(spec: dict[str, Any], env: Any) -> str | None:
    """Returns why the model of `spec` cannot act on `env`'s tasks, or None if it can."""
    if spec.get("head") == "headless" or spec["num_actions"] == env.num_actions:
        return None
    return f"trained for {spec['num_actions']} actions; this set offers {env.num_actions}"


def finished_result(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """Returns the result file at `path` if a run with this fingerprint wrote it."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("fingerprint") == fingerprint else None


def _curve(regret: np.ndarray) -> list[float]:
    """Returns the mean cumulative regret after each pull, over rollouts."""
    return [round(float(x), 3) for x in np.cumsum(regret, axis=1).mean(axis=0)]


def source_regret(cfg: Any, env: Any, params: Any, n: int, *, horizon: int, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Returns the per-pull expected regret [n, horizon] of the source algorithm, and of the random policy on the same contexts."""
    source = cfg.collect.source
    if "pulls" in type(source).model_fields:
        source = source.model_copy(update={"pulls": horizon})
    learner = make_source(env, source)
    num_actions = spaces.action_dim(env)

    def run(key: jax.Array, params: Any) -> tuple[jax.Array, jax.Array]:
        history, _ = learner.train(key, params)
        own = jax.vmap(lambda o, a: env.pull_regret(params, o, a))(history.obs, history.action)
        every = jax.vmap(lambda o: jax.vmap(lambda a: env.pull_regret(params, o, a))(jnp.arange(num_actions)))(history.obs)
        mask = spaces.action_mask(env, params)
        random = (every * mask[None, :]).sum(-1) / mask.sum()
        return own[:horizon], random[:horizon]

    own, random = jax.jit(jax.vmap(run))(jax.random.split(key, n), params)
    return np.asarray(own), np.asarray(random)


def _success_references(env: Any, params: Any, *, episodes: int, key: jax.Array) -> dict[str, float]:
    """Returns the success rate per episode of the random policy and of the oracle on the stacked tasks `params`."""
    random_key, optimal_key = jax.random.split(key)
    random = policy_returns(env, params, random_policy(env), episodes=episodes, key=random_key)
    optimal = policy_returns(env, params, epsilon_greedy_oracle(env, 0.0), episodes=episodes, key=optimal_key)
    return {"random_success": round(float((random > 0).mean()), 4), "optimal_success": round(float((optimal > 0).mean()), 4)}


def _model_figures(result: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """Returns one model's figures on a set from its result file."""
    if "regret" in result:
        curve = _curve(np.asarray(result["regret"]))
        norm = normalised_regret(curve[-1], refs["random_regret"], refs["source_regret"])
        return {
            "regret": curve[-1], "regret_std": round(float(np.asarray(result["regret"]).sum(axis=1).std()), 3),
            "normalised_regret": None if norm is None else round(norm, 4), "curve": curve,
        }
    success = np.asarray(result["returns"]) > 0
    per_episode = success.mean(axis=0)
    return {
        "success_first": round(float(per_episode[0]), 4),
        "success_last5": round(float(per_episode[-min(5, len(per_episode)):].mean()), 4),
        "curve": [round(float(x), 4) for x in per_episode],
    }


def evaluate_sets(cfg: Any, models: list[EvalModel], results_dir: Path, fingerprint: str) -> dict[str, Any]:
    """Runs every evaluation set of `cfg` for `models` (result files resume); returns the figures per set.

    Bandits are scored by regret (against the source algorithm and random), other
    environments by success rate per episode (against the oracle and random).
    """
    ev = cfg.evaluate
    out: dict[str, Any] = {}
    for index, eval_set in enumerate(ev.sets):
        env_cfg = set_env(cfg, index)
        env, params_for = make_env(env_cfg)
        tasks = set_tasks(env_cfg, cfg.tasks, eval_set)
        batch = [t for t in tasks for _ in range(ev.rollouts_per_task)]
        params = params_for(batch)
        # Streams follow the tasks: a set drawing another's tasks (to permute them) gets its streams too.
        root = jax.random.fold_in(jax.random.key(ev.seed), set_seed(cfg.tasks.split_seed, eval_set.task_seed_name))
        regret = hasattr(env, "pull_regret")
        offered = np.asarray(jax.vmap(partial(spaces.action_mask, env))(params)).sum(-1)
        figures: dict[str, Any] = {
            "metric": "regret" if regret else "success", "tasks": len(tasks), "rollouts": len(batch),
            "actions": [int(offered.min()), int(offered.max())], "slots": env.num_actions, "draw": eval_set.draw,
            "permuted": eval_set.permute_actions, "same_tasks_as": eval_set.same_tasks_as, "episodes": ev.episodes,
            "models": {},
        }
        path = results_dir / f"set-{eval_set.name}-references.json"
        refs = finished_result(path, fingerprint)
        if refs is None:
            if regret:
                horizon = ev.episodes * spaces.episode_steps(env)
                own, random = source_regret(cfg, env, params, len(batch), horizon=horizon, key=jax.random.fold_in(root, 0))
                source_curve, random_curve = _curve(own), _curve(random)
                refs = {
                    "source": cfg.collect.source.algorithm, "source_regret": source_curve[-1],
                    "random_regret": random_curve[-1], "source_curve": source_curve, "random_curve": random_curve,
                }
            else:
                refs = _success_references(env, params, episodes=ev.reference_episodes, key=jax.random.fold_in(root, 0))
            write_json(path, {"fingerprint": fingerprint, **refs})
        figures["references"] = {k: v for k, v in refs.items() if k != "fingerprint"}
        for model in models:
            why = cannot_run(model.spec, env)
            if why:
                figures["models"][model.label] = {"cannot_run": why}
                say(f"evaluate: set {eval_set.name}: {model.label} cannot run ({why})")
                continue
            path = results_dir / f"set-{eval_set.name}-{model.role}.json"
            result = finished_result(path, fingerprint)
            if result is None:
                say(f"evaluate: set {eval_set.name}: {model.label}, {len(tasks)} tasks x {ev.rollouts_per_task} rollouts x {ev.episodes} episodes")
                rollout = make_rollout(
                    model.policy, env, episodes=ev.episodes, policy=ev.policy, temperature=ev.temperature,
                    action_set=model.action_set, regret=regret,
                )
                keys = jax.random.split(jax.random.fold_in(root, 1), len(batch))  # the same streams for every model
                returns = jax.jit(jax.vmap(rollout, in_axes=(None, 0, 0)))(model.params, params, keys)
                result = {"fingerprint": fingerprint, "task_ids": [t.task_id for t in batch]}
                if regret:
                    result["regret"] = np.asarray(returns[1]).round(5).tolist()
                else:
                    result["returns"] = np.asarray(returns).round(4).tolist()
                write_json(path, result)
            figures["models"][model.label] = _model_figures(result, figures["references"])
        out[eval_set.name] = figures
    return out


__all__ = ["EvalModel", "cannot_run", "evaluate_sets", "finished_result", "normalised_regret", "source_regret"]
