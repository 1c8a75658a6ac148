"""AD-ε noise curriculum (Zisman et al., 2023): a demonstrator acting ε-greedily, ε annealed.

ε falls linearly from 1 to `floor` over the first `floor_fraction` of the history's episodes
and stays there. The random action is uniform over all actions (the demonstrator's own
choice included), so even ε = 1 is a plain random walk.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    """One environment step of a learning history (arrays gain leading axes under scan/vmap)."""

    obs: jax.Array  # what the agent saw when it chose `action`
    action: jax.Array
    reward: jax.Array  # float32, the result of `action`
    terminated: jax.Array
    truncated: jax.Array
    episode: jax.Array  # index of the episode inside the history
    epsilon: jax.Array  # the noise level the action was drawn at


def linear_epsilon(
    episode: jax.Array, *, episodes: int, floor: float, floor_fraction: float, start: float = 1.0
) -> jax.Array:
    """Returns ε for `episode`: `start` at the first episode, `floor` from `floor_fraction` of the history on."""
    reach = jnp.maximum(floor_fraction * episodes, 1.0)
    progress = jnp.minimum(episode.astype(jnp.float32) / reach, 1.0)
    return (start - (start - floor) * progress).astype(jnp.float32)


def make_noise_curriculum(
    env: Any, *, episodes: int, epsilon_floor: float, floor_fraction: float, epsilon_start: float = 1.0
) -> Callable[[jax.Array, Any], Transition]:
    """Returns `collect(key, env_params) -> Transition` with arrays of shape [steps].

    The history holds `episodes` episodes of the oracle demonstrator `env.oracle_action`.
    With `epsilon_start == epsilon_floor` it is a fixed ε-greedy demonstrator (ε = 1: random).
    """
    steps = episodes * env.default_params.max_steps_in_episode
    num_actions = env.num_actions

    def collect(key: jax.Array, params: Any) -> Transition:
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def step(carry, step_key):
            obs, state, episode = carry
            explore_key, random_key, env_key = jax.random.split(step_key, 3)
            eps = linear_epsilon(
                episode, episodes=episodes, floor=epsilon_floor, floor_fraction=floor_fraction, start=epsilon_start
            )
            random_action = jax.random.randint(random_key, (), 0, num_actions, jnp.int32)
            explore = jax.random.uniform(explore_key) < eps
            action = jnp.where(explore, random_action, env.oracle_action(state, params))
            next_obs, state, reward, terminated, truncated, _ = env.step(env_key, state, action, params)
            record = Transition(obs, action, reward.astype(jnp.float32), terminated, truncated, episode, eps)
            done = jnp.logical_or(terminated, truncated)
            return (next_obs, state, episode + done.astype(jnp.int32)), record

        _, history = jax.lax.scan(step, (obs, state, jnp.int32(0)), jax.random.split(key, steps))
        return history

    return collect
