"""Task families: an environment together with every task it offers and their split.

`make_env` builds an environment and the function that turns tasks into its params (what a
worker needs); `make_family` adds the tasks themselves, each marked train or held out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from icrl.envs.tasks import HELDOUT, TRAIN, Task, split_tasks

ParamsFor = Callable[[Sequence[Task]], Any]


@dataclass(frozen=True)
class TaskFamily:
    """An environment, all its tasks (each with a split) and how tasks become env params."""

    env: Any
    tasks: tuple[Task, ...]
    _params_for: ParamsFor

    def params_for(self, tasks: Sequence[Task]) -> Any:
        """Returns the env params of `tasks`, stacked along a leading axis."""
        return self._params_for(tasks)

    def by_split(self, split: str) -> list[Task]:
        """Returns the tasks of `split` (`train` or `heldout`), in family order."""
        return [t for t in self.tasks if t.split == split]

    @property
    def train(self) -> list[Task]:
        return self.by_split(TRAIN)

    @property
    def heldout(self) -> list[Task]:
        return self.by_split(HELDOUT)


def _stack(params: list[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def _gymnax_env(env_id: str) -> tuple[Any, Any]:
    import gymnax

    return gymnax.make(env_id)


def _base_env(env_id: str) -> tuple[Any, Any]:
    """Returns (env, default params) of a base environment: Dark Room or a gymnax id."""
    if env_id == "DarkRoom-v0":
        from icrl.envs.dark_room import DarkRoom

        env = DarkRoom()
        return env, env.default_params
    return _gymnax_env(env_id)


def _grid_params(params: dict[str, Any]) -> dict[str, Any]:
    return {"goal": params["goal"], "codes": params["codes"], "num_actions": params["num_actions"]}


def _grid_specs(cfg: Any, seed: int, goals: list[list[int]], *, permute: bool, task_seed: int) -> list[dict[str, Any]]:
    """Returns compound-grid task dicts: each goal with a sample of the config's action pool."""
    from icrl.envs.compound_grid import compound_grid_tasks, split_codes

    train, heldout = split_codes(moves=cfg.moves, train=cfg.train_actions, seed=seed)
    pool = {"train": train, "heldout": heldout, "all": sorted(train + heldout)}[cfg.action_pool]
    k = cfg.max_actions()
    return compound_grid_tasks(goals, codes=pool, num_actions=k, permute=permute, seed=task_seed, max_actions=k)


def make_env(cfg: Any) -> tuple[Any, ParamsFor]:
    """Returns (env, params_for) for the env config section `cfg`; `params_for(tasks)` stacks their params."""
    settings = cfg.settings()
    if cfg.id == "DarkRoom-v0":
        from icrl.envs.dark_room import DarkRoom

        env = DarkRoom(size=cfg.size, episode_length=cfg.episode_length)
        return env, lambda tasks: jax.vmap(env.params_for_goal)(jnp.asarray([t.params["goal"] for t in tasks], jnp.int32))
    if cfg.id == "DarkKeyToDoor-v0":
        from icrl.envs.key_to_door import DarkKeyToDoor

        env = DarkKeyToDoor(size=cfg.size, episode_length=cfg.episode_length, random_start=cfg.random_start)
        return env, lambda tasks: _stack([env.params_for_task(t.params["key"], t.params["door"]) for t in tasks])
    if cfg.id == "BernoulliBandit-v0":
        from icrl.envs.bandits import BernoulliBandit

        env = BernoulliBandit(max_arms=cfg.max_arms)
        return env, lambda tasks: _stack([env.params_for(t.params["means"], t.params["num_arms"]) for t in tasks])
    if cfg.id == "ContextualBandit-v0":
        from icrl.envs.bandits import ContextualBandit

        env = ContextualBandit(max_arms=cfg.max_arms, context_dim=cfg.context_dim, noise=cfg.noise)
        return env, lambda tasks: _stack([env.params_for(t.params["theta"], t.params["num_arms"]) for t in tasks])
    if cfg.id == "CompoundGrid-v0":
        from icrl.envs.compound_grid import CompoundGrid

        env = CompoundGrid(size=cfg.size, episode_length=cfg.episode_length, moves=cfg.moves, max_actions=cfg.max_actions())
        return env, lambda tasks: _stack([env.params_for(**_grid_params(t.params)) for t in tasks])
    if cfg.id == "Projected-v0":
        from icrl.envs.projected import Projected

        base, base_params = _base_env(settings["base"])
        env = Projected(base, obs_dim=cfg.obs_dim)
        seeds = lambda tasks: jnp.asarray([t.params["projection_seed"] for t in tasks], jnp.int32)  # noqa: E731
        return env, lambda tasks: jax.vmap(lambda s: env.params_for_seed(s, base_params=base_params))(seeds(tasks))
    env, default = _gymnax_env(cfg.id)
    return env, lambda tasks: _stack([default for _ in tasks])


def _task_params(cfg: Any, tasks_cfg: Any) -> list[tuple[dict[str, Any], bool | None]]:
    """Returns each task's own parameters and whether it must be held out (None: the seeded split decides)."""
    seed = tasks_cfg.split_seed
    if cfg.id == "DarkRoom-v0":
        return [({"goal": [r, c]}, None) for r in range(cfg.size) for c in range(cfg.size)]
    if cfg.id == "DarkKeyToDoor-v0":
        cells = cfg.size * cfg.size
        count = cells * (cells - 1)  # ordered (key, door) pairs of distinct cells
        chosen = np.arange(count)
        if cfg.num_tasks and cfg.num_tasks < count:  # draw indices first: never build every pair
            chosen = np.sort(np.random.default_rng((seed, 1)).choice(count, cfg.num_tasks, replace=False))
        specs = []
        for index in chosen.tolist():
            key, door = divmod(index, cells - 1)
            door += door >= key  # skip the key's own cell
            specs.append(({"key": list(divmod(key, cfg.size)), "door": list(divmod(door, cfg.size))}, None))
        return specs
    if cfg.id in ("BernoulliBandit-v0", "ContextualBandit-v0"):
        # Held-out bandits come from the test distribution (for `adversarial`, even arms high).
        n_held = tasks_cfg.heldout
        n_train = cfg.num_tasks - n_held
        if cfg.id == "BernoulliBandit-v0":
            from icrl.envs.bandits import bernoulli_tasks as draw

            kw = {"min_arms": cfg.min_arms, "max_arms": cfg.max_arms, "distribution": cfg.distribution}
            train = draw(n_train, heldout=False, seed=2 * seed, **kw)
            held = draw(n_held, heldout=True, seed=2 * seed + 1, **kw) if n_held else []
        else:
            from icrl.envs.bandits import contextual_tasks as draw

            kw = {"min_arms": cfg.min_arms, "max_arms": cfg.max_arms, "context_dim": cfg.context_dim}
            train = draw(n_train, seed=2 * seed, **kw)
            held = draw(n_held, seed=2 * seed + 1, **kw) if n_held else []
        return [(p, False) for p in train] + [(p, True) for p in held]
    if cfg.id == "CompoundGrid-v0":
        goals = [[r, c] for r in range(cfg.size) for c in range(cfg.size)]
        return [(spec, None) for spec in _grid_specs(cfg, seed, goals, permute=False, task_seed=seed)]
    if cfg.id == "Projected-v0":
        return [({"projection_seed": s}, None) for s in range(cfg.num_tasks)]
    return [({}, None)]


def set_seed(split_seed: int, name: str) -> int:
    """Returns the seed of evaluation set `name`'s tasks: apart from the training and held-out draws."""
    digest = hashlib.sha256(f"icrl evaluation set {split_seed} {name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def set_tasks(cfg: Any, tasks_cfg: Any, eval_set: Any) -> list[Task]:
    """Returns the tasks of the evaluation set `eval_set` on the env config `cfg` (the set's env section).

    Drawn from the training or held-out distribution as the set says, with a seed of their
    own, so none is a task of the dataset; arms permuted per task if the set asks.
    """
    from icrl.envs.bandits import bernoulli_tasks, contextual_tasks, permute_arms

    seed = set_seed(tasks_cfg.split_seed, eval_set.task_seed_name)
    if cfg.id == "BernoulliBandit-v0":
        specs = bernoulli_tasks(
            eval_set.tasks, min_arms=cfg.min_arms, max_arms=cfg.max_arms, distribution=cfg.distribution,
            heldout=eval_set.draw == "heldout", seed=seed,
        )
    elif cfg.id == "ContextualBandit-v0":
        specs = contextual_tasks(
            eval_set.tasks, min_arms=cfg.min_arms, max_arms=cfg.max_arms, context_dim=cfg.context_dim, seed=seed
        )
    elif cfg.id == "CompoundGrid-v0":  # the family's goals of the set's split, with the set's actions
        goals = [t.params["goal"] for t in make_family(cfg, tasks_cfg).by_split(eval_set.draw)]
        goals = [goals[i % len(goals)] for i in range(eval_set.tasks)]
        specs = _grid_specs(cfg, tasks_cfg.split_seed, goals, permute=eval_set.permute_actions, task_seed=seed)
        return [Task(cfg.id, {**cfg.settings(), **spec}, HELDOUT) for spec in specs]
    else:
        raise ValueError(f"{cfg.id} has no task generator for evaluation sets")
    if eval_set.permute_actions:
        specs = [permute_arms(spec, seed=seed + 1, index=i) for i, spec in enumerate(specs)]
    settings = cfg.settings()
    return [Task(cfg.id, {**settings, **spec}, HELDOUT) for spec in specs]


def make_family(cfg: Any, tasks_cfg: Any) -> TaskFamily:
    """Returns the task family of the env config `cfg`, split as the tasks config `tasks_cfg` says."""
    env, params_for = make_env(cfg)
    settings = cfg.settings()
    specs = _task_params(cfg, tasks_cfg)
    tasks = [Task(cfg.id, {**settings, **own}) for own, _ in specs]
    fixed = [held for _, held in specs]
    if all(held is None for held in fixed):
        tasks = split_tasks(tasks, heldout=tasks_cfg.heldout, seed=tasks_cfg.split_seed)
    else:
        tasks = [Task(t.env_id, t.params, HELDOUT if held else TRAIN) for t, held in zip(tasks, fixed)]
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{cfg.id}: two tasks share a specification; draw them with another split_seed")
    return TaskFamily(env, tuple(tasks), params_for)
