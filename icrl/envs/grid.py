"""What Dark Room and Dark Key-to-Door share: a dark square grid, five moves, the cell as the observation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

NOOP, UP, RIGHT, DOWN, LEFT = range(5)
ACTION_NAMES = ("noop", "up", "right", "down", "left")
# (row, col) displacement of each action.
MOVES = np.array([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int32)  # numpy: no JAX work at import


def toward(pos: jax.Array, target: jax.Array) -> jax.Array:
    """Returns the scripted move from `pos` to `target`: close the larger gap first, NOOP on it."""
    d_row, d_col = target[0] - pos[0], target[1] - pos[1]
    vertical = jnp.where(d_row < 0, UP, DOWN)
    horizontal = jnp.where(d_col < 0, LEFT, RIGHT)
    move = jnp.where(jnp.abs(d_row) >= jnp.abs(d_col), vertical, horizontal)
    return jnp.where((d_row == 0) & (d_col == 0), NOOP, move).astype(jnp.int32)


class DarkGrid:
    """A mixin for gymnax environments on a dark `size` x `size` grid: moves, cells, spaces."""

    size: int

    def move(self, pos: jax.Array, action: int | jax.Array) -> jax.Array:
        """Returns the position after `action` from `pos` (walls stop the agent)."""
        return jnp.clip(pos + jnp.asarray(MOVES)[action], 0, self.size - 1)

    def cell(self, pos: jax.Array) -> jax.Array:
        """Returns the observation of position `pos`: its row-major cell index."""
        return (pos[0] * self.size + pos[1]).astype(jnp.int32)

    @property
    def num_actions(self) -> int:
        return 5

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(5)

    def observation_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.size * self.size)
