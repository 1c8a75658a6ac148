"""Reference returns for the report: a random policy, the optimal policy and π_data."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from icrl.envs import spaces

# act(state, obs, params, key) -> action
Act = Callable[[Any, jax.Array, Any, jax.Array], jax.Array]


def policy_returns(env: Any, params: Any, act: Act, *, episodes: int, key: jax.Array) -> np.ndarray:
    """Returns the [tasks, episodes] returns of `act` on the stacked tasks `params`."""
    steps = episodes * spaces.episode_steps(env)

    def run(key: jax.Array, params: Any) -> jax.Array:
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def step(carry, step_key):
            obs, state, episode, returns = carry
            act_key, env_key = jax.random.split(step_key)
            action = act(state, obs, params, act_key)
            obs, state, reward, terminated, truncated, _ = env.step(env_key, state, action, params)
            returns = returns.at[episode].add(reward)  # slot `episodes` absorbs steps past the last
            episode = jnp.minimum(episode + jnp.logical_or(terminated, truncated).astype(jnp.int32), episodes)
            return (obs, state, episode, returns), None

        init = (obs, state, jnp.int32(0), jnp.zeros(episodes + 1, jnp.float32))
        (_, _, _, returns), _ = jax.lax.scan(step, init, jax.random.split(key, steps))
        return returns[:episodes]

    n = jax.tree.leaves(params)[0].shape[0]
    return np.asarray(jax.jit(jax.vmap(run))(jax.random.split(key, n), params))


def epsilon_greedy_oracle(env: Any, epsilon: float) -> Act:
    """Returns the policy of the env's oracle acting ε-greedily (ε = 0: the oracle itself)."""

    def act(state: Any, obs: jax.Array, params: Any, key: jax.Array) -> jax.Array:
        explore_key, random_key = jax.random.split(key)
        random = spaces.random_action(env, params, random_key)
        return jnp.where(jax.random.uniform(explore_key) < epsilon, random, env.oracle_action(state, params))

    return act


def random_policy(env: Any) -> Act:
    """Returns the uniformly random policy over the actions each task offers."""
    return lambda state, obs, params, key: spaces.random_action(env, params, key)


def data_policy_return(episode_returns: list[list[float]], *, tail: float = 0.1) -> float | None:
    """Returns π_data measured in the data: the mean return over the last `tail` of each history's episodes."""
    finals = [np.mean(r[-max(1, int(round(tail * len(r)))):]) for r in episode_returns if len(r)]
    return float(np.mean(finals)) if finals else None


def reference_returns(
    env: Any, params: Any, *, episodes: int, seed: int, demonstrator_epsilon: float | None = None
) -> dict[str, float | None]:
    """Returns the mean episode return over the tasks `params` of the random and optimal policies.

    `optimal` is the env's scripted oracle (None where there is none). With
    `demonstrator_epsilon`, also `pi_data`: the oracle acting ε-greedily at that ε, the
    best policy a noise curriculum puts in its data.
    """
    random_key, optimal_key, data_key = jax.random.split(jax.random.key(seed), 3)
    refs: dict[str, float | None] = {
        "random": float(policy_returns(env, params, random_policy(env), episodes=episodes, key=random_key).mean())
    }
    oracle = hasattr(env, "oracle_action")
    refs["optimal"] = (
        float(policy_returns(env, params, epsilon_greedy_oracle(env, 0.0), episodes=episodes, key=optimal_key).mean())
        if oracle else None
    )
    if demonstrator_epsilon is not None and oracle:
        act = epsilon_greedy_oracle(env, demonstrator_epsilon)
        refs["pi_data"] = float(policy_returns(env, params, act, episodes=episodes, key=data_key).mean())
    return refs
