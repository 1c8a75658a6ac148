"""Tabular Q-learning with ε-greedy exploration, for environments with discrete observations.

ε falls linearly by step from `epsilon_start` to `epsilon_floor`, reaching it after
`floor_fraction` of the history, and stays there. The random action is uniform over the
actions the task offers. Greedy ties are broken at random: with a zero-initialised table a
fixed tie-break (always the first action) would pin the agent until it first sees a reward.

Truncation is not termination: the update bootstraps from the true next observation, which
gymnax's auto-reset hides from `env.step`'s returned obs but keeps in `info["final_observation"]`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from icrl.collect.learner import Learner
from icrl.collect.transition import Transition
from icrl.config import QLearningConfig
from icrl.envs import spaces

COLUMNS = ("epsilon",)


def linear_epsilon(step: jax.Array, *, steps: int, start: float, floor: float, floor_fraction: float) -> jax.Array:
    """Returns ε (float32) at `step`: `start` at step 0, `floor` from `floor_fraction * steps` on."""
    reach = max(floor_fraction * steps, 1.0)
    progress = jnp.minimum(step.astype(jnp.float32) / reach, 1.0)
    # This blend is exactly `start` at progress 0 and exactly `floor` from then on, in float32.
    return jnp.float32(start) * (1.0 - progress) + jnp.float32(floor) * progress


def greedy_action(q_values: jax.Array, mask: jax.Array, key: jax.Array) -> jax.Array:
    """Returns an action of highest value among those `mask` allows, ties broken uniformly at random."""
    masked = jnp.where(mask, q_values, -jnp.inf)
    best = masked == masked.max()
    return jax.random.categorical(key, jnp.where(best, 0.0, -jnp.inf)).astype(jnp.int32)


def make_train(env: Any, cfg: QLearningConfig) -> Learner:
    """Returns the Learner of tabular Q-learning on `env`; its agent state is the Q table [obs, actions].

    Raises ValueError unless `env` has discrete observations and discrete actions.
    """
    num_obs = spaces.num_observations(env)
    if num_obs is None:
        raise ValueError(f"Q-learning needs discrete observations; {env.name} observes vectors")
    if not spaces.discrete_actions(env):
        raise ValueError(f"Q-learning needs discrete actions; {env.name} takes continuous actions")
    num_actions = spaces.action_dim(env)
    steps = cfg.steps

    def train(key: jax.Array, params: Any) -> tuple[Transition, jax.Array]:
        mask = spaces.action_mask(env, params)
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)
        q_table = jnp.zeros((num_obs, num_actions), jnp.float32)

        def step(carry, inputs):
            q_table, obs, state, episode = carry
            t, step_key = inputs
            explore_key, random_key, tie_key, env_key = jax.random.split(step_key, 4)
            eps = linear_epsilon(
                t, steps=steps, start=cfg.epsilon_start, floor=cfg.epsilon_floor, floor_fraction=cfg.floor_fraction
            )
            explore = jax.random.uniform(explore_key) < eps
            action = jnp.where(
                explore, spaces.random_action(env, params, random_key), greedy_action(q_table[obs], mask, tie_key)
            )
            next_obs, state, reward, terminated, truncated, info = env.step(env_key, state, action, params)
            reward = reward.astype(jnp.float32)
            # After a done `next_obs` is already the next episode's first obs; bootstrap from the real one.
            final_obs = info.get("final_observation", next_obs)
            next_value = jnp.where(mask, q_table[final_obs], -jnp.inf).max()
            target = reward + cfg.gamma * (1.0 - terminated.astype(jnp.float32)) * next_value
            q_table = q_table.at[obs, action].add(cfg.learning_rate * (target - q_table[obs, action]))
            record = Transition(
                obs=obs,
                action=action,
                reward=reward,
                terminated=terminated,
                truncated=truncated,
                episode=episode,
                extra={"epsilon": eps},
            )
            done = jnp.logical_or(terminated, truncated)
            return (q_table, next_obs, state, episode + done.astype(jnp.int32)), record

        inputs = (jnp.arange(steps, dtype=jnp.int32), jax.random.split(key, steps))
        (q_table, *_), history = jax.lax.scan(step, (q_table, obs, state, jnp.int32(0)), inputs)
        return history, q_table

    def act(q_table: jax.Array, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        """Returns the greedy action of `q_table` at `obs` among those the task offers, ties broken at random."""
        return greedy_action(q_table[obs], spaces.action_mask(env, params), key)

    return Learner(train=train, act=act, steps=steps, columns=COLUMNS)
