"""The record of one environment step, as every learning-history source writes it."""

from __future__ import annotations

from typing import NamedTuple

import jax


class Transition(NamedTuple):
    """One environment step of a learning history (arrays gain leading axes under scan/vmap).

    `extra` holds the optional columns a source adds, by name: `epsilon` (float32, the noise
    level of the action), `expert_action` (the demonstrator's choice), `logp` (float32, the
    log-probability of `action` under the learner's policy), `update` (int32, the learner's
    update index when it acted).
    """

    obs: jax.Array  # what the agent saw when it chose `action`
    action: jax.Array  # int32 index, or float32 vector for continuous actions
    reward: jax.Array  # float32, the result of `action`
    terminated: jax.Array
    truncated: jax.Array
    episode: jax.Array  # int32, index of the episode inside the history
    extra: dict[str, jax.Array]
