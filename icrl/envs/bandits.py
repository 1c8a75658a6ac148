"""Multi-armed bandits with the gymnax API: Bernoulli arms, and linear contextual arms.

Every pull is a one-step episode (`max_steps_in_episode` = 1): `truncated` is True after
every step and gymnax's `step` resets at once, so a learning history of T pulls holds T
episodes. Pulls never *terminate*: nothing about the task ends, the time limit does.

A task may offer fewer arms than the environment's `max_arms` (Headless-AD trains on 4–20
arms and evaluates on up to 50 with one model): arms `0..num_arms-1` are available, the rest
are padding. `action_mask(params)` says which; an unavailable arm pays the least an
available arm could, so pulling one never helps. Learners must choose available arms only.

Task generators are plain numpy: they return JSON-able task parameter dicts whose keys are
the keyword arguments of the environment's `params_for`, e.g. `env.params_for(**task.params)`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

__all__ = [
    "BernoulliBandit",
    "BernoulliParams",
    "BernoulliState",
    "ContextualBandit",
    "ContextualParams",
    "ContextualState",
    "DISTRIBUTIONS",
    "bernoulli_tasks",
    "contextual_tasks",
    "permute_arms",
]

DISTRIBUTIONS = ("uniform", "adversarial")
# Task parameters are rounded so that JSON text and float32 arrays round-trip exactly.
_DIGITS = 6
# Adversarial training tasks (Algorithm Distillation): the share whose odd arms are high.
_ODD_HIGH_SHARE = 0.95


def _available(max_arms: int, num_arms: jax.Array) -> jax.Array:
    return jnp.arange(max_arms, dtype=jnp.int32) < num_arms


# ---------------------------------------------------------------------------------------
# Bernoulli bandit


@struct.dataclass
class BernoulliState(environment.EnvState):
    time: int


@struct.dataclass
class BernoulliParams(environment.EnvParams):
    means: jax.Array = struct.field(default_factory=lambda: jnp.full((2,), 0.5, jnp.float32))
    num_arms: jax.Array = struct.field(default_factory=lambda: jnp.int32(2))
    max_steps_in_episode: int = 1


class BernoulliBandit(environment.Environment[BernoulliState, BernoulliParams]):
    """A Bernoulli bandit with up to `max_arms` arms; arm a pays 1 with probability `means[a]`.

    The observation is always the int32 0 (there is nothing to see). An unavailable arm
    pays 0.
    """

    def __init__(self, max_arms: int):
        super().__init__()
        if max_arms < 1:
            raise ValueError(f"a bandit needs at least one arm, got max_arms={max_arms}")
        self.max_arms = max_arms

    @property
    def name(self) -> str:
        return "BernoulliBandit-v0"

    @property
    def default_params(self) -> BernoulliParams:
        return self.params_for(means=jnp.full((self.max_arms,), 0.5, jnp.float32), num_arms=self.max_arms)

    def params_for(self, means: Any, num_arms: Any) -> BernoulliParams:
        """Returns the parameters of the task with arm `means` (length `max_arms`) and `num_arms` available arms.

        Values are not checked, so that the function stays jittable (and vmappable over tasks).
        """
        means = jnp.asarray(means, jnp.float32)
        if means.shape != (self.max_arms,):
            raise ValueError(f"means must have shape ({self.max_arms},), got {means.shape}")
        return BernoulliParams(means=means, num_arms=jnp.asarray(num_arms, jnp.int32), max_steps_in_episode=1)

    def action_mask(self, params: BernoulliParams) -> jax.Array:
        """Returns which arms the task offers: bool [max_arms], True for arms < num_arms."""
        return _available(self.max_arms, params.num_arms)

    def step_env(
        self, key: jax.Array, state: BernoulliState, action: int | jax.Array, params: BernoulliParams
    ) -> tuple[jax.Array, BernoulliState, jax.Array, jax.Array, dict[Any, Any]]:
        win = jax.random.bernoulli(key, params.means[action])
        reward = jnp.logical_and(win, self.action_mask(params)[action]).astype(jnp.float32)
        return jnp.int32(0), BernoulliState(time=state.time + 1), reward, jnp.array(False), {}

    def reset_env(self, key: jax.Array, params: BernoulliParams) -> tuple[jax.Array, BernoulliState]:
        return jnp.int32(0), BernoulliState(time=0)

    def is_terminated(self, state: BernoulliState, params: BernoulliParams) -> jax.Array:
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return self.max_arms

    def action_space(self, params: BernoulliParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.max_arms)

    def observation_space(self, params: BernoulliParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(1)

    def expected_reward(self, state: BernoulliState, params: BernoulliParams, action: jax.Array) -> jax.Array:
        """Returns the expected reward (float32) of pulling `action`: its mean, 0 if unavailable."""
        return jnp.where(self.action_mask(params)[action], params.means[action], 0.0).astype(jnp.float32)

    def oracle_action(self, state: BernoulliState, params: BernoulliParams) -> jax.Array:
        """Returns the best available arm (int32; the lowest index among equals)."""
        return jnp.argmax(jnp.where(self.action_mask(params), params.means, -jnp.inf)).astype(jnp.int32)

    def optimal_return(self, params: BernoulliParams) -> jax.Array:
        """Returns the expected return of one episode (one pull) of the best available arm (float32)."""
        return jnp.max(jnp.where(self.action_mask(params), params.means, -jnp.inf)).astype(jnp.float32)

    def pull_regret(self, params: BernoulliParams, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Returns the expected regret (float32) of pulling `action`: the best available mean minus its own."""
        del obs  # nothing to see
        return self.optimal_return(params) - jnp.where(self.action_mask(params)[action], params.means[action], 0.0)


def _check_arms(n: int, min_arms: int, max_arms: int) -> None:
    if n < 0:
        raise ValueError(f"cannot make {n} tasks")
    if not 1 <= min_arms <= max_arms:
        raise ValueError(f"need 1 <= min_arms <= max_arms, got min_arms={min_arms}, max_arms={max_arms}")


def bernoulli_tasks(
    n: int, *, min_arms: int, max_arms: int, distribution: str, heldout: bool = False, seed: int
) -> list[dict[str, Any]]:
    """Returns `n` Bernoulli task parameter dicts `{"num_arms": k, "means": [max_arms floats]}`.

    k is uniform in [min_arms, max_arms]; means beyond k are 0. Means are rounded to 6 digits,
    so a task survives JSON and float32 unchanged.

    `distribution`:
    - "uniform": every mean ~ U[0, 1] (`heldout` changes only the random stream).
    - "adversarial" (Algorithm Distillation; Headless-AD's training bandits): "high" means
      ~ U[0.5, 1], "low" means ~ U[0, 0.5]. Training tasks (`heldout=False`) draw the
      odd-indexed arms high and the even ones low in 95% of tasks, the reverse in 5%;
      held-out tasks always draw the even arms high, the case training rarely shows.

    Task i depends only on (seed, heldout, i), so a longer list extends a shorter one.
    """
    _check_arms(n, min_arms, max_arms)
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown bandit distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS)}")
    tasks = []
    for i in range(n):
        rng = np.random.default_rng([seed, int(heldout), i])
        k = int(rng.integers(min_arms, max_arms + 1))
        if distribution == "uniform":
            means = rng.uniform(0.0, 1.0, k)
        else:
            odd_high = (not heldout) and bool(rng.uniform() < _ODD_HIGH_SHARE)
            high = (np.arange(k) % 2 == 1) == odd_high
            means = np.where(high, rng.uniform(0.5, 1.0, k), rng.uniform(0.0, 0.5, k))
        padded = np.zeros(max_arms)
        padded[:k] = means
        tasks.append({"num_arms": k, "means": [round(float(m), _DIGITS) for m in padded]})
    return tasks


def permute_arms(task: dict[str, Any], *, seed: int, index: int) -> dict[str, Any]:
    """Returns the task dict `task` with its available arms in a seeded random order (padding stays last).

    Works on Bernoulli (`means`) and contextual (`theta`) tasks; depends only on (seed, index).
    """
    k = task["num_arms"]
    order = np.random.default_rng([seed, index]).permutation(k)
    key = "means" if "means" in task else "theta"
    values = list(task[key])
    return {**task, key: [values[i] for i in order] + values[k:]}


# ---------------------------------------------------------------------------------------
# Linear contextual bandit


@struct.dataclass
class ContextualState(environment.EnvState):
    context: jax.Array  # float32 [context_dim], what the agent sees before this pull
    time: int


@struct.dataclass
class ContextualParams(environment.EnvParams):
    theta: jax.Array = struct.field(default_factory=lambda: jnp.zeros((2, 1), jnp.float32))
    num_arms: jax.Array = struct.field(default_factory=lambda: jnp.int32(2))
    max_steps_in_episode: int = 1


class ContextualBandit(environment.Environment[ContextualState, ContextualParams]):
    """A linear contextual bandit: each pull shows a context x ~ N(0, I), arm a pays x·theta[a] + noise.

    The noise is `noise` times a standard normal draw. The context is drawn at every reset
    (so gymnax's auto-reset shows a fresh one for each pull) and kept in the state. An
    unavailable arm pays the noise-free expected reward of the worst available arm for this
    context: never more than any arm the task offers, so the oracle is optimal over all arms.
    There is no closed-form `optimal_return`; `expected_reward` and `best_expected_reward`
    give per-pull regret instead.
    """

    def __init__(self, max_arms: int, context_dim: int, noise: float = 0.1):
        super().__init__()
        if max_arms < 1:
            raise ValueError(f"a bandit needs at least one arm, got max_arms={max_arms}")
        if context_dim < 1:
            raise ValueError(f"context_dim must be at least 1, got {context_dim}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.max_arms = max_arms
        self.context_dim = context_dim
        self.noise = float(noise)

    @property
    def name(self) -> str:
        return "ContextualBandit-v0"

    @property
    def default_params(self) -> ContextualParams:
        return self.params_for(theta=jnp.zeros((self.max_arms, self.context_dim), jnp.float32), num_arms=self.max_arms)

    def params_for(self, theta: Any, num_arms: Any) -> ContextualParams:
        """Returns the parameters of the task with arm weights `theta` [max_arms, context_dim] and `num_arms` arms."""
        theta = jnp.asarray(theta, jnp.float32)
        if theta.shape != (self.max_arms, self.context_dim):
            raise ValueError(f"theta must have shape ({self.max_arms}, {self.context_dim}), got {theta.shape}")
        return ContextualParams(theta=theta, num_arms=jnp.asarray(num_arms, jnp.int32), max_steps_in_episode=1)

    def action_mask(self, params: ContextualParams) -> jax.Array:
        """Returns which arms the task offers: bool [max_arms], True for arms < num_arms."""
        return _available(self.max_arms, params.num_arms)

    def _arm_values(self, context: jax.Array, params: ContextualParams) -> jax.Array:
        """Returns every arm's expected reward for `context` (float32 [max_arms]), padding at the worst."""
        values = params.theta @ context
        mask = self.action_mask(params)
        worst = jnp.min(jnp.where(mask, values, jnp.inf))
        return jnp.where(mask, values, worst)

    def step_env(
        self, key: jax.Array, state: ContextualState, action: int | jax.Array, params: ContextualParams
    ) -> tuple[jax.Array, ContextualState, jax.Array, jax.Array, dict[Any, Any]]:
        mean = self._arm_values(state.context, params)[action]
        reward = (mean + self.noise * jax.random.normal(key, (), jnp.float32)).astype(jnp.float32)
        state = ContextualState(context=state.context, time=state.time + 1)
        return state.context, state, reward, jnp.array(False), {}

    def reset_env(self, key: jax.Array, params: ContextualParams) -> tuple[jax.Array, ContextualState]:
        context = jax.random.normal(key, (self.context_dim,), jnp.float32)
        return context, ContextualState(context=context, time=0)

    def is_terminated(self, state: ContextualState, params: ContextualParams) -> jax.Array:
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return self.max_arms

    def action_space(self, params: ContextualParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.max_arms)

    def observation_space(self, params: ContextualParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.context_dim,), jnp.float32)

    def expected_reward(self, state: ContextualState, params: ContextualParams, action: jax.Array) -> jax.Array:
        """Returns the noise-free reward (float32) of pulling `action` in the context of `state`."""
        return self._arm_values(state.context, params)[action]

    def best_expected_reward(self, state: ContextualState, params: ContextualParams) -> jax.Array:
        """Returns the expected reward (float32) of the oracle's arm in the context of `state`."""
        return jnp.max(self._arm_values(state.context, params))

    def pull_regret(self, params: ContextualParams, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Returns the expected regret (float32) of pulling `action` when the context shown is `obs`."""
        values = self._arm_values(obs.astype(jnp.float32), params)
        return jnp.max(values) - values[action]

    def oracle_action(self, state: ContextualState, params: ContextualParams) -> jax.Array:
        """Returns the available arm (int32) with the highest expected reward in the context of `state`."""
        values = jnp.where(self.action_mask(params), params.theta @ state.context, -jnp.inf)
        return jnp.argmax(values).astype(jnp.int32)


def contextual_tasks(
    n: int, *, min_arms: int, max_arms: int, context_dim: int, seed: int
) -> list[dict[str, Any]]:
    """Returns `n` contextual task parameter dicts `{"num_arms": k, "theta": [max_arms rows of context_dim floats]}`.

    k is uniform in [min_arms, max_arms]; rows of theta ~ N(0, I / context_dim), so that
    x·theta[a] has unit variance for x ~ N(0, I); rows beyond k are 0. Values are rounded to
    6 digits. Task i depends only on (seed, i).
    """
    _check_arms(n, min_arms, max_arms)
    if context_dim < 1:
        raise ValueError(f"context_dim must be at least 1, got {context_dim}")
    tasks = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        k = int(rng.integers(min_arms, max_arms + 1))
        theta = np.zeros((max_arms, context_dim))
        theta[:k] = rng.normal(0.0, 1.0 / np.sqrt(context_dim), (k, context_dim))
        tasks.append({"num_arms": k, "theta": [[round(float(v), _DIGITS) for v in row] for row in theta]})
    return tasks
