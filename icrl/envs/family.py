"""Task families: an environment together with every task it offers and their split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from gymnax.environments import environment

from icrl.envs.dark_room import DarkRoom
from icrl.envs.tasks import HELDOUT, TRAIN, Task, split_tasks


@dataclass(frozen=True)
class TaskFamily:
    """An environment, all its tasks (each with a split) and how tasks become env params."""

    env: environment.Environment
    tasks: tuple[Task, ...]
    _params_for: Callable[[Sequence[Task]], Any]

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


def _dark_room(settings: dict[str, Any]) -> tuple[DarkRoom, list[Task], Callable]:
    size, length = settings["size"], settings["episode_length"]
    env = DarkRoom(size=size, episode_length=length)
    tasks = [
        Task("DarkRoom-v0", {"size": size, "episode_length": length, "goal": [r, c]})
        for r in range(size)
        for c in range(size)
    ]

    def params_for(batch: Sequence[Task]) -> Any:
        goals = jnp.asarray([t.params["goal"] for t in batch], jnp.int32)
        return jax.vmap(env.params_for_goal)(goals)

    return env, tasks, params_for


ENVIRONMENTS: dict[str, Callable[[dict[str, Any]], tuple[Any, list[Task], Callable]]] = {
    "DarkRoom-v0": _dark_room,
}


def make_family(env_id: str, settings: dict[str, Any], *, heldout: int, split_seed: int) -> TaskFamily:
    """Returns the task family of `env_id` built with `settings`, `heldout` tasks held out."""
    if env_id not in ENVIRONMENTS:
        raise KeyError(f"unknown environment {env_id!r}; known: {', '.join(sorted(ENVIRONMENTS))}")
    env, tasks, params_for = ENVIRONMENTS[env_id](settings)
    return TaskFamily(env, tuple(split_tasks(tasks, heldout=heldout, seed=split_seed)), params_for)
