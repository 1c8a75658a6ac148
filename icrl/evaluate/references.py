"""Reference returns for the report: a random policy, the optimal policy and π_data."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from icrl.collect.noise_curriculum import make_noise_curriculum


def epsilon_greedy_returns(env: Any, params: Any, *, epsilon: float, episodes: int, key: jax.Array) -> np.ndarray:
    """Returns [tasks, episodes] returns of the oracle acting ε-greedily on the stacked tasks `params`.

    ε = 1 is the uniform random policy, ε = 0 the oracle itself.
    """
    collect = make_noise_curriculum(
        env, episodes=episodes, epsilon_floor=epsilon, floor_fraction=1.0, epsilon_start=epsilon
    )
    n = jax.tree.leaves(params)[0].shape[0]
    history = jax.jit(jax.vmap(collect))(jax.random.split(key, n), params)
    returns = jax.vmap(lambda r, e: jnp.zeros(episodes + 1).at[e].add(r))(history.reward, history.episode)
    return np.asarray(returns[:, :episodes])


def reference_returns(env: Any, params: Any, *, epsilon_floor: float, episodes: int, seed: int) -> dict[str, float]:
    """Returns the mean episode return over the tasks `params` of: random, optimal, π_data.

    π_data is the best policy in the data: the demonstrator at the curriculum's ε floor.
    """
    key = jax.random.key(seed)
    random_key, data_key, optimal_key = jax.random.split(key, 3)
    kw = {"episodes": episodes}
    return {
        "random": float(epsilon_greedy_returns(env, params, epsilon=1.0, key=random_key, **kw).mean()),
        "optimal": float(epsilon_greedy_returns(env, params, epsilon=0.0, key=optimal_key, episodes=1).mean()),
        "pi_data": float(epsilon_greedy_returns(env, params, epsilon=epsilon_floor, key=data_key, **kw).mean()),
    }
