"""What learners need to know about an environment's spaces, whatever the environment."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces


def is_discrete(space: Any) -> bool:
    """Returns whether `space` is a gymnax Discrete space (an integer index)."""
    return isinstance(space, spaces.Discrete)


def discrete_actions(env: Any) -> bool:
    """Returns whether `env` takes an action index (else a float vector)."""
    return is_discrete(env.action_space(env.default_params))


def action_dim(env: Any) -> int:
    """Returns the number of actions (discrete) or the length of the action vector (continuous)."""
    space = env.action_space(env.default_params)
    return int(space.n) if is_discrete(space) else math.prod(space.shape)  # static: usable inside jit


def action_bounds(env: Any) -> tuple[jax.Array, jax.Array]:
    """Returns (low, high) of a continuous action space, as float32 vectors."""
    space = env.action_space(env.default_params)
    shape = (action_dim(env),)
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
    return low, high


def num_observations(env: Any) -> int | None:
    """Returns how many distinct observations a discrete observation space has (None for vectors)."""
    space = env.observation_space(env.default_params)
    return int(space.n) if is_discrete(space) else None


def obs_size(env: Any) -> int:
    """Returns the length of `encode_obs`'s vector for `env`."""
    n = num_observations(env)
    if n is not None:
        return n
    return int(jnp.prod(jnp.asarray(env.observation_space(env.default_params).shape)))


def encode_obs(env: Any, obs: jax.Array) -> jax.Array:
    """Returns `obs` as a float32 vector a network can read: one-hot for discrete observations."""
    n = num_observations(env)
    if n is not None:
        return jax.nn.one_hot(obs, n, dtype=jnp.float32)
    return jnp.ravel(obs).astype(jnp.float32)


def action_mask(env: Any, params: Any) -> jax.Array:
    """Returns which actions the task `params` offers (bool [num_actions]); all of them unless the env says."""
    if hasattr(env, "action_mask"):
        return env.action_mask(params)
    return jnp.ones(action_dim(env), bool)


def random_action(env: Any, params: Any, key: jax.Array) -> jax.Array:
    """Returns a uniformly random action among those the task offers."""
    if discrete_actions(env):
        if not hasattr(env, "action_mask"):  # every action offered: one integer draw is cheaper
            return jax.random.randint(key, (), 0, action_dim(env), jnp.int32)
        mask = action_mask(env, params)
        return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf)).astype(jnp.int32)
    low, high = action_bounds(env)
    return jax.random.uniform(key, low.shape, jnp.float32, low, high)


def episode_steps(env: Any) -> int:
    """Returns the most steps an episode of `env` lasts (some gymnax envs store it as a float)."""
    return int(env.default_params.max_steps_in_episode)
