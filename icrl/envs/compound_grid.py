"""Compound Grid: a dark gridworld whose actions are sequences of moves (for Headless-AD).

Like Dark Room, the agent starts in the centre of a `size` x `size` grid and sees only the
index of its own cell. The five base moves are noop, up, right, down, left (Dark Room's),
but one action is a *compound action*: `moves` base moves executed one after another in a
single env step, each stopped by the walls as in Dark Room. There are 5**moves compound
actions, numbered by their base-5 code, first move most significant: with moves=3, code
0 is noop-noop-noop and code 2*25 + 2*5 + 2 = 62 is right-right-right.

A task is a hidden goal cell plus an *action set*: action slot i executes the compound
action `codes[i]`. Slots `0..num_actions-1` are available, the rest (up to `max_actions`)
are padding; `action_mask(params)` says which. An unavailable slot acts as noop, so picking
one never helps, but learners must choose available slots only. Held-out tasks can offer
compound actions (codes) that no training task offered, which is what Headless-AD's
action-agnostic head is for.

The step that ends on the goal pays 1 and terminates the episode; every other step pays 0.
An episode is otherwise truncated after `episode_length` steps. So the return of an episode
is 0 or 1, and an episode *succeeds* when its return is > 0. Starting on the goal pays
nothing: the reward comes with a step that ends there.

Task generators are plain numpy: they return JSON-able task parameter dicts whose keys are
the keyword arguments of `CompoundGrid.params_for`, e.g. `env.params_for(**task.params)`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from icrl.envs.grid import ACTION_NAMES, DOWN, LEFT, MOVES, NOOP, RIGHT, UP

__all__ = [
    "ACTION_NAMES",
    "BASE_MOVES",
    "DOWN",
    "LEFT",
    "NOOP",
    "RIGHT",
    "UP",
    "CompoundGrid",
    "CompoundGridParams",
    "CompoundGridState",
    "compound_code",
    "compound_grid_tasks",
    "compound_moves",
    "split_codes",
]

BASE_MOVES = len(ACTION_NAMES)  # 5: the digits of a compound action code are base moves


def _num_codes(moves: int) -> int:
    if moves < 1:
        raise ValueError(f"a compound action needs at least one move, got moves={moves}")
    return BASE_MOVES**moves


# ---------------------------------------------------------------------------------------
# Codes (plain Python / numpy)


def compound_moves(code: int, moves: int) -> list[int]:
    """Returns the base moves (0..4, first executed first) of compound action `code`."""
    count = _num_codes(moves)
    if not 0 <= code < count:
        raise ValueError(f"a compound action code with moves={moves} lies in [0, {count}), got {code}")
    return [(code // BASE_MOVES ** (moves - 1 - j)) % BASE_MOVES for j in range(moves)]


def compound_code(base_moves: list[int]) -> int:
    """Returns the code of the compound action executing `base_moves` in order (inverse of `compound_moves`)."""
    if not base_moves:
        raise ValueError("a compound action needs at least one move")
    code = 0
    for move in base_moves:
        if not 0 <= move < BASE_MOVES:
            raise ValueError(f"a base move lies in [0, {BASE_MOVES}), got {move}")
        code = code * BASE_MOVES + move
    return code


def split_codes(*, moves: int, train: int, seed: int) -> tuple[list[int], list[int]]:
    """Returns (train codes, held-out codes): a seeded split of all 5**moves codes, each list sorted.

    `train` codes go to training, the rest are held out. The split depends only on
    (moves, train, seed); a larger `train` extends a smaller one's training codes.
    """
    count = _num_codes(moves)
    if not 0 <= train <= count:
        raise ValueError(f"train must lie in [0, {count}] for moves={moves}, got {train}")
    order = np.random.default_rng([seed, moves]).permutation(count)
    return sorted(int(c) for c in order[:train]), sorted(int(c) for c in order[train:])


def compound_grid_tasks(
    goals: list[tuple[int, int]], *, codes: list[int], num_actions: int, permute: bool, seed: int, max_actions: int
) -> list[dict[str, Any]]:
    """Returns one task parameter dict `{"goal": [r, c], "codes": [max_actions ints], "num_actions": k}` per goal.

    The k = `num_actions` available slots hold codes from `codes`: all of them when
    k == len(codes), else a seeded sample of k distinct entries. Without `permute` they keep
    the order of `codes`; with it, each task shuffles its slots with its own permutation, so
    a slot index means a different compound action in every task. Padding slots hold 0.
    Task i depends only on (seed, i) (and the arguments other than `goals`), so a longer
    goal list extends a shorter one.
    """
    codes = [int(c) for c in codes]
    if any(c < 0 for c in codes):
        raise ValueError(f"compound action codes must be >= 0, got {codes}")
    if len(set(codes)) != len(codes):
        raise ValueError(f"compound action codes must be distinct, got {codes}")
    if not 1 <= num_actions <= len(codes):
        raise ValueError(f"num_actions must lie in [1, len(codes)={len(codes)}], got {num_actions}")
    if num_actions > max_actions:
        raise ValueError(f"num_actions={num_actions} exceeds max_actions={max_actions}")
    tasks = []
    for i, goal in enumerate(goals):
        goal = [int(v) for v in goal]
        if len(goal) != 2 or min(goal) < 0:
            raise ValueError(f"goal {i} must be a (row, col) pair of cells >= 0, got {goal}")
        rng = np.random.default_rng([seed, i])
        chosen = np.arange(len(codes))
        if num_actions < len(codes):
            # Sorted indices: without `permute`, the sample keeps the order of `codes`.
            chosen = np.sort(rng.choice(len(codes), num_actions, replace=False))
        if permute:
            chosen = rng.permutation(chosen)
        slots = [codes[j] for j in chosen.tolist()] + [0] * (max_actions - num_actions)
        tasks.append({"goal": goal, "codes": slots, "num_actions": num_actions})
    return tasks


# ---------------------------------------------------------------------------------------
# Environment


@struct.dataclass
class CompoundGridState(environment.EnvState):
    pos: jax.Array  # (row, col), int32
    time: int


@struct.dataclass
class CompoundGridParams(environment.EnvParams):
    goal: jax.Array = struct.field(default_factory=lambda: jnp.array([0, 0], jnp.int32))
    codes: jax.Array = struct.field(default_factory=lambda: jnp.zeros((1,), jnp.int32))  # int32 [max_actions]
    num_actions: jax.Array = struct.field(default_factory=lambda: jnp.int32(1))
    max_steps_in_episode: int = 20


class CompoundGrid(environment.Environment[CompoundGridState, CompoundGridParams]):
    """Compound Grid with the gymnax API; `size`, `episode_length`, `moves` and `max_actions` fix the layout."""

    def __init__(self, size: int = 9, episode_length: int = 20, moves: int = 3, max_actions: int = 125):
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be at least 1, got {episode_length}")
        if max_actions < 1:
            raise ValueError(f"max_actions must be at least 1, got {max_actions}")
        self.num_codes = _num_codes(moves)
        self.size = size
        self.episode_length = episode_length
        self.moves = moves
        self.max_actions = max_actions
        self.start = jnp.array([size // 2, size // 2], jnp.int32)
        # More than any finite number of steps to the goal (at most size*size - 1).
        self.unreachable = size * size

    @property
    def name(self) -> str:
        return "CompoundGrid-v0"

    @property
    def default_params(self) -> CompoundGridParams:
        """Returns a task with the goal at (0, 0) and every slot available, slot i running code i mod 5**moves."""
        codes = np.arange(self.max_actions) % self.num_codes
        return self.params_for(goal=[0, 0], codes=codes, num_actions=self.max_actions)

    def params_for(self, goal: Any, codes: Any, num_actions: Any) -> CompoundGridParams:
        """Returns the parameters of the task with hidden `goal` (row, col), slot codes `codes` and `num_actions` slots.

        `codes` may be shorter than `max_actions`; it is padded with 0 (noop moves). Shapes are
        checked; values are not (except a Python int `num_actions`), so that the function stays
        jittable and vmappable over tasks. Codes are taken modulo 5**moves.
        """
        goal = jnp.asarray(goal, jnp.int32)
        codes = jnp.asarray(codes, jnp.int32)
        if goal.shape != (2,):
            raise ValueError(f"goal must be a (row, col) pair of shape (2,), got shape {goal.shape}")
        if codes.ndim != 1 or codes.shape[0] > self.max_actions:
            raise ValueError(
                f"codes must be a vector of at most max_actions={self.max_actions} codes, got shape {codes.shape}"
            )
        if isinstance(num_actions, (int, np.integer)) and not 1 <= num_actions <= codes.shape[0]:
            raise ValueError(f"num_actions must lie in [1, len(codes)={codes.shape[0]}], got {num_actions}")
        codes = jnp.pad(codes, (0, self.max_actions - codes.shape[0]))
        return CompoundGridParams(
            goal=goal,
            codes=codes,
            num_actions=jnp.asarray(num_actions, jnp.int32),
            max_steps_in_episode=self.episode_length,
        )

    def action_mask(self, params: CompoundGridParams) -> jax.Array:
        """Returns which slots the task offers: bool [max_actions], True for slots < num_actions."""
        return jnp.arange(self.max_actions, dtype=jnp.int32) < params.num_actions

    def slot_codes(self, params: CompoundGridParams) -> jax.Array:
        """Returns the code each slot executes (int32 [max_actions]): 0 (noop moves) for unavailable slots."""
        return jnp.where(self.action_mask(params), params.codes, 0)

    def land(self, pos: jax.Array, code: jax.Array) -> jax.Array:
        """Returns where compound action `code` takes the agent from `pos` (int32 [..., 2]).

        `pos` is int32 [..., 2] and `code` int32 of the same leading shape `[...]`.
        """
        code = jnp.asarray(code, jnp.int32)
        table = jnp.asarray(MOVES)
        for j in range(self.moves):
            digit = (code // BASE_MOVES ** (self.moves - 1 - j)) % BASE_MOVES
            # Clip after every base move: a wall stops that move, not the ones after it.
            pos = jnp.clip(pos + table[digit], 0, self.size - 1)
        return pos

    def cell(self, pos: jax.Array) -> jax.Array:
        """Returns the observation of position(s) `pos` [..., 2]: the row-major cell index (int32)."""
        return (pos[..., 0] * self.size + pos[..., 1]).astype(jnp.int32)

    def step_env(
        self, key: jax.Array, state: CompoundGridState, action: int | jax.Array, params: CompoundGridParams
    ) -> tuple[jax.Array, CompoundGridState, jax.Array, jax.Array, dict[Any, Any]]:
        code = self.slot_codes(params)[action]
        pos = self.land(state.pos, code)
        on_goal = jnp.all(pos == params.goal)
        state = CompoundGridState(pos=pos, time=state.time + 1)
        return self.cell(pos), state, on_goal.astype(jnp.float32), on_goal, {}

    def reset_env(self, key: jax.Array, params: CompoundGridParams) -> tuple[jax.Array, CompoundGridState]:
        return self.cell(self.start), CompoundGridState(pos=self.start, time=0)

    def is_terminated(self, state: CompoundGridState, params: CompoundGridParams) -> jax.Array:
        # A fresh episode that starts on the goal has not reached it: only a step does.
        return jnp.logical_and(state.time > 0, jnp.all(state.pos == params.goal))

    @property
    def num_actions(self) -> int:
        return self.max_actions

    def action_space(self, params: CompoundGridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.max_actions)

    def observation_space(self, params: CompoundGridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.size * self.size)

    def transitions(self, params: CompoundGridParams) -> jax.Array:
        """Returns the landing cell of every (slot, cell) pair: int32 [max_actions, size*size]."""
        cells = self.size * self.size
        rows, cols = jnp.divmod(jnp.arange(cells, dtype=jnp.int32), self.size)
        pos = jnp.broadcast_to(jnp.stack([rows, cols], axis=-1)[None, :, :], (self.max_actions, cells, 2))
        codes = jnp.broadcast_to(self.slot_codes(params)[:, None], (self.max_actions, cells))
        return self.cell(self.land(pos, codes))

    def distances(self, params: CompoundGridParams) -> jax.Array:
        """Returns every cell's number of steps to the goal under the available slots (int32 [size*size]).

        0 on the goal; `self.unreachable` (size*size) where no sequence of available actions
        reaches it.
        """
        landing = self.transitions(params)
        mask = self.action_mask(params)[:, None]
        goal = jnp.arange(self.size * self.size) == self.cell(params.goal)
        dist = jnp.where(goal, 0, self.unreachable).astype(jnp.int32)

        def backup(dist: jax.Array) -> jax.Array:
            best_next = jnp.min(jnp.where(mask, dist[landing], self.unreachable), axis=0)
            return jnp.where(goal, 0, jnp.minimum(dist, jnp.minimum(best_next + 1, self.unreachable)))

        def cond(carry: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
            _, changed, i = carry
            return jnp.logical_and(changed, i < self.size * self.size)

        def body(carry: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
            dist, _, i = carry
            new = backup(dist)
            return new, jnp.any(new != dist), i + 1

        # Each backup settles the cells one step further out; a shortest path visits at most
        # size*size cells, so that many backups reach the fixed point.
        return jax.lax.while_loop(cond, body, (dist, jnp.array(True), jnp.int32(0)))[0]

    def _landing_distances(self, pos: jax.Array, params: CompoundGridParams) -> tuple[jax.Array, jax.Array]:
        """Returns (landing cell, its distance to the goal) of every slot from `pos`, each int32 [max_actions]."""
        landing = self.cell(self.land(jnp.broadcast_to(pos[None, :], (self.max_actions, 2)), self.slot_codes(params)))
        return landing, self.distances(params)[landing]

    def oracle_action(self, state: CompoundGridState, params: CompoundGridParams) -> jax.Array:
        """Returns an available slot (int32) on a shortest path to the goal, the lowest among equals.

        On the goal it picks a slot that stays there (or returns soonest). Where the goal is
        unreachable it picks the slot landing closest to the goal in Manhattan distance.
        Each call recomputes the goal distances (a few Bellman backups over the grid).
        """
        mask = self.action_mask(params)
        landing, dist = self._landing_distances(state.pos, params)
        dist = jnp.where(mask, dist, self.unreachable + 1)
        rows, cols = jnp.divmod(landing, self.size)
        manhattan = jnp.abs(rows - params.goal[0]) + jnp.abs(cols - params.goal[1])
        manhattan = jnp.where(mask, manhattan, 2 * self.size + 1)
        reachable = jnp.min(dist) < self.unreachable
        return jnp.where(reachable, jnp.argmin(dist), jnp.argmin(manhattan)).astype(jnp.int32)

    def steps_to_goal(self, params: CompoundGridParams) -> jax.Array:
        """Returns the fewest steps from the start to a step that ends on the goal (int32; >= 1).

        -1 when no sequence of available actions gets there.
        """
        _, dist = self._landing_distances(self.start, params)
        best = jnp.min(jnp.where(self.action_mask(params), dist, self.unreachable))
        return jnp.where(best < self.unreachable, best + 1, -1).astype(jnp.int32)

    def optimal_return(self, params: CompoundGridParams) -> jax.Array:
        """Returns the best return of one episode (float32): 1.0 if the goal can be reached in time, else 0.0."""
        steps = self.steps_to_goal(params)
        return jnp.logical_and(steps > 0, steps <= params.max_steps_in_episode).astype(jnp.float32)
