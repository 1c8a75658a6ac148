"""Dark Room (Laskin et al., 2022): a square grid with a hidden goal cell.

The agent starts in the centre and sees only the index of its own cell. Every step that
ends on the goal pays 1. There is no terminal state; an episode is truncated after
`episode_length` steps. A task is a goal cell.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment

from icrl.envs.grid import ACTION_NAMES, DOWN, LEFT, NOOP, RIGHT, UP, DarkGrid, toward

__all__ = ["ACTION_NAMES", "DOWN", "DarkRoom", "EnvParams", "EnvState", "LEFT", "NOOP", "RIGHT", "UP"]


@struct.dataclass
class EnvState(environment.EnvState):
    pos: jax.Array  # (row, col), int32
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    goal: jax.Array = struct.field(default_factory=lambda: jnp.array([0, 0], jnp.int32))
    max_steps_in_episode: int = 20


class DarkRoom(DarkGrid, environment.Environment[EnvState, EnvParams]):
    """Dark Room with the gymnax API; `size` and `episode_length` fix the layout."""

    def __init__(self, size: int = 9, episode_length: int = 20):
        super().__init__()
        self.size = size
        self.episode_length = episode_length
        self.start = jnp.array([size // 2, size // 2], jnp.int32)

    @property
    def name(self) -> str:
        return "DarkRoom-v0"

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(goal=jnp.zeros(2, jnp.int32), max_steps_in_episode=self.episode_length)

    def params_for_goal(self, goal: jax.Array) -> EnvParams:
        """Returns the parameters of the task whose hidden goal is `goal` = (row, col)."""
        return EnvParams(goal=jnp.asarray(goal, jnp.int32), max_steps_in_episode=self.episode_length)

    def step_env(
        self, key: jax.Array, state: EnvState, action: int | jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[Any, Any]]:
        pos = self.move(state.pos, action)
        reward = jnp.all(pos == params.goal).astype(jnp.float32)
        state = EnvState(pos=pos, time=state.time + 1)
        return self.cell(pos), state, reward, jnp.array(False), {}

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        state = EnvState(pos=self.start, time=0)
        return self.cell(self.start), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.array(False)

    def oracle_action(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Returns the scripted optimal action: close the larger gap to the goal, then stay."""
        return toward(state.pos, params.goal)

    def optimal_return(self, params: EnvParams) -> jax.Array:
        """Returns the best achievable return of one episode on the task `params`."""
        dist = jnp.abs(params.goal - self.start).sum()
        # The goal is reached on step `dist` and every later step pays 1.
        steps_on_goal = params.max_steps_in_episode - jnp.maximum(dist, 1) + 1
        return jnp.clip(steps_on_goal, 0, params.max_steps_in_episode).astype(jnp.float32)
