"""Uniformly random actions: no learning. The environment-only throughput ceiling, and a baseline."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from icrl.collect.learner import Learner
from icrl.collect.transition import Transition
from icrl.envs import spaces


def make_random(env: Any, cfg: Any) -> Learner:
    """Returns the Learner that acts uniformly at random for `cfg.steps` steps (a RandomConfig)."""

    def train(key: jax.Array, params: Any) -> tuple[Transition, None]:
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def step(carry, step_key):
            obs, state, episode = carry
            act_key, env_key = jax.random.split(step_key)
            action = spaces.random_action(env, params, act_key)
            next_obs, state, reward, terminated, truncated, _ = env.step(env_key, state, action, params)
            record = Transition(obs, action, reward.astype(jnp.float32), terminated, truncated, episode, {})
            done = jnp.logical_or(terminated, truncated)
            return (next_obs, state, episode + done.astype(jnp.int32)), record

        _, history = jax.lax.scan(step, (obs, state, jnp.int32(0)), jax.random.split(key, cfg.steps))
        return history, None

    def act(agent: Any, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        raise NotImplementedError("a random policy has nothing to demonstrate")

    return Learner(train=train, act=act, steps=cfg.steps, columns=())
