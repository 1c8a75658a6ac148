"""The shape every learning-history source has: `make_train(env, cfg) -> Learner`."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from icrl.collect.transition import Transition


class Learner(NamedTuple):
    """A pure, jittable learner (or curriculum) for one environment.

    `train(key, env_params)` runs the whole learning history on one task and returns
    `(history, agent)`: a Transition with arrays of leading shape [steps], and the final
    agent state (network parameters, Q-table, posteriors; None for a curriculum).
    `act(agent, obs, env_params, key)` returns the final agent's greedy action for `obs`
    among the actions the task offers, so that a trained learner can serve as a demonstrator. `columns` names the `extra` columns its
    transitions carry.
    """

    train: Callable[[jax.Array, Any], tuple[Transition, Any]]
    act: Callable[[Any, jax.Array, Any, jax.Array], jax.Array]
    steps: int
    columns: tuple[str, ...]
