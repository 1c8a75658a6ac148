"""Dark Key-to-Door (Laskin et al., 2022): a dark grid with a hidden key and a hidden door.

The agent sees only the index of its own cell: neither the key, the door nor whether it
holds the key. A step that ends on the key cell while the key is not yet held picks it up
and pays 1 (once per episode). A step that ends on the door cell while holding the key pays
1 and terminates the episode; the door without the key does nothing. Otherwise an episode is
truncated after `episode_length` steps. A task is a (key, door) pair of distinct cells.

Starting on the key cell does not pick it up: the reward comes with the first step that
*ends* there (NOOP does), so every reward is the result of an action.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment

from icrl.envs.grid import ACTION_NAMES, DOWN, LEFT, NOOP, RIGHT, UP, DarkGrid, toward

__all__ = ["ACTION_NAMES", "DOWN", "DarkKeyToDoor", "EnvParams", "EnvState", "LEFT", "NOOP", "RIGHT", "UP"]


@struct.dataclass
class EnvState(environment.EnvState):
    pos: jax.Array  # (row, col), int32
    has_key: jax.Array  # bool: the key was picked up in this episode
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    key: jax.Array = struct.field(default_factory=lambda: jnp.array([0, 0], jnp.int32))
    door: jax.Array = struct.field(default_factory=lambda: jnp.array([1, 1], jnp.int32))
    max_steps_in_episode: int = 50


class DarkKeyToDoor(DarkGrid, environment.Environment[EnvState, EnvParams]):
    """Dark Key-to-Door with the gymnax API; `size`, `episode_length` and the start rule fix the layout.

    With `random_start` every episode starts on a uniformly random cell (drawn from the reset
    key, so gymnax's auto-reset draws a new one); otherwise it starts in the centre.
    """

    def __init__(self, size: int = 9, episode_length: int = 50, random_start: bool = True):
        super().__init__()
        self.size = size
        self.episode_length = episode_length
        self.random_start = random_start
        self.centre = jnp.array([size // 2, size // 2], jnp.int32)

    @property
    def name(self) -> str:
        return "DarkKeyToDoor-v0"

    @property
    def default_params(self) -> EnvParams:
        return self.params_for_task([0, 0], [self.size - 1, self.size - 1])

    def params_for_task(self, key: jax.Array, door: jax.Array) -> EnvParams:
        """Returns the parameters of the task with the hidden `key` and `door` cells, each (row, col).

        They must differ; this is not checked, so that the function stays jittable.
        """
        return EnvParams(
            key=jnp.asarray(key, jnp.int32),
            door=jnp.asarray(door, jnp.int32),
            max_steps_in_episode=self.episode_length,
        )

    def step_env(
        self, key: jax.Array, state: EnvState, action: int | jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[Any, Any]]:
        pos = self.move(state.pos, action)
        picks_key = jnp.logical_and(~state.has_key, jnp.all(pos == params.key))
        # Only a key held before this step opens the door (key and door are distinct cells).
        opens_door = jnp.logical_and(state.has_key, jnp.all(pos == params.door))
        reward = jnp.logical_or(picks_key, opens_door).astype(jnp.float32)
        state = EnvState(pos=pos, has_key=jnp.logical_or(state.has_key, picks_key), time=state.time + 1)
        return self.cell(pos), state, reward, opens_door, {}

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        if self.random_start:
            pos = jax.random.randint(key, (2,), 0, self.size, jnp.int32)
        else:
            pos = self.centre
        state = EnvState(pos=pos, has_key=jnp.array(False), time=0)
        return self.cell(pos), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.logical_and(state.has_key, jnp.all(state.pos == params.door))

    def oracle_action(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Returns the scripted optimal action: to the key (NOOP on it picks it up), then to the door."""
        return toward(state.pos, jnp.where(state.has_key, params.door, params.key))

    def optimal_return(self, params: EnvParams) -> jax.Array:
        """Returns the best expected return of one episode on the task `params`, over the start cells.

        2.0 whenever the episode is long enough from every start (always on 9×9 with 40 or 50
        steps); otherwise the mean over starts of what the oracle collects in time.
        """
        if self.random_start:
            rows, cols = jnp.divmod(jnp.arange(self.size * self.size, dtype=jnp.int32), self.size)
            starts = jnp.stack([rows, cols], axis=-1)
        else:
            starts = self.centre[None, :]
        # Shortest paths on an open grid are Manhattan; a start on the key still costs one step.
        to_key = jnp.maximum(jnp.abs(starts - params.key[None, :]).sum(axis=-1), 1)
        to_door = to_key + jnp.abs(params.door - params.key).sum()
        limit = params.max_steps_in_episode
        returns = (to_key <= limit).astype(jnp.float32) + (to_door <= limit).astype(jnp.float32)
        return returns.mean()
