"""AD-ε noise curriculum (Zisman et al., 2023): a demonstrator acting ε-greedily, ε annealed.

ε falls from `epsilon_start` to `epsilon_floor` over the first `floor_fraction` of the
history and stays there, linearly or exponentially. A history is `episodes` x the episode
length steps, and ε moves once per episode length of steps: exactly once per episode where
episodes run their full length (Dark Room), and still over the whole history where they
end early (Key-to-Door's door, a CartPole fall). The random action is uniform
over every action the task offers (the demonstrator's own choice included), so ε = 1 is a
plain random walk. The demonstrator is the environment's scripted oracle, or the final
policy of a learner (PPO, Q-learning) trained on the same task first, inside the same program.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from icrl.collect.learner import Learner
from icrl.collect.transition import Transition
from icrl.envs import spaces

# Steepness of the exponential schedule: ε has covered 1 - e^-5 ≈ 99% of its fall by the
# time it reaches the floor, most of it early.
_EXP_RATE = 5.0


def epsilon_schedule(
    episode: jax.Array, *, episodes: int, start: float, floor: float, floor_fraction: float, kind: str = "linear"
) -> jax.Array:
    """Returns ε at (nominal) episode `episode` of `episodes`: `start` at the first, `floor` from `floor_fraction` on."""
    reach = jnp.maximum(floor_fraction * episodes, 1.0)
    progress = jnp.minimum(episode.astype(jnp.float32) / reach, 1.0)
    if kind == "exponential":
        decay = (jnp.exp(-_EXP_RATE * progress) - jnp.exp(-_EXP_RATE)) / (1.0 - jnp.exp(-_EXP_RATE))
        return (floor + (start - floor) * decay).astype(jnp.float32)
    if kind != "linear":
        raise ValueError(f"unknown ε schedule {kind!r}: use 'linear' or 'exponential'")
    return (start - (start - floor) * progress).astype(jnp.float32)


def make_noise_curriculum(env: Any, cfg: Any, *, demonstrator: Learner | None = None) -> Learner:
    """Returns the Learner recording `cfg.episodes` episodes of the ε-greedy demonstrator per history.

    `cfg` is a NoiseCurriculumConfig. With `demonstrator=None` the environment's
    `oracle_action` demonstrates; otherwise the demonstrator learner is trained on the task
    first (its own steps are not recorded) and its final greedy policy demonstrates.
    Transitions carry `epsilon` and `expert_action` (what the demonstrator would have done).
    """
    if demonstrator is None and not hasattr(env, "oracle_action"):
        raise ValueError(f"{env.name} has no scripted oracle: give the noise curriculum a learner demonstrator")
    episode_length = spaces.episode_steps(env)
    steps = cfg.episodes * episode_length

    def schedule(episode: jax.Array) -> jax.Array:
        return epsilon_schedule(
            episode, episodes=cfg.episodes, start=cfg.epsilon_start, floor=cfg.epsilon_floor,
            floor_fraction=cfg.floor_fraction, kind=cfg.schedule,
        )

    def train(key: jax.Array, params: Any) -> tuple[Transition, None]:
        key, reset_key, teach_key = jax.random.split(key, 3)
        agent = demonstrator.train(teach_key, params)[1] if demonstrator is not None else None

        def expert(state: Any, obs: jax.Array, act_key: jax.Array) -> jax.Array:
            if demonstrator is None:
                return env.oracle_action(state, params)
            return demonstrator.act(agent, obs, params, act_key)

        obs, state = env.reset(reset_key, params)

        def step(carry, inputs):
            obs, state, episode = carry
            t, step_key = inputs
            explore_key, random_key, act_key, env_key = jax.random.split(step_key, 4)
            eps = schedule(t // episode_length)
            expert_action = expert(state, obs, act_key)
            explore = jax.random.uniform(explore_key) < eps
            action = jnp.where(explore, spaces.random_action(env, params, random_key), expert_action)
            next_obs, state, reward, terminated, truncated, _ = env.step(env_key, state, action, params)
            extra = {"epsilon": eps, "expert_action": expert_action}
            record = Transition(obs, action, reward.astype(jnp.float32), terminated, truncated, episode, extra)
            done = jnp.logical_or(terminated, truncated)
            return (next_obs, state, episode + done.astype(jnp.int32)), record

        inputs = (jnp.arange(steps, dtype=jnp.int32), jax.random.split(key, steps))
        _, history = jax.lax.scan(step, (obs, state, jnp.int32(0)), inputs)
        return history, None

    def act(agent: Any, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        raise NotImplementedError("a noise curriculum has no final policy to demonstrate with")

    return Learner(train=train, act=act, steps=steps, columns=("epsilon", "expert_action"))
