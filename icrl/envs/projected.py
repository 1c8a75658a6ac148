"""Projected environments (the meta task of Lu et al., 2023, "Structured State Space Models
for In-Context Reinforcement Learning"): a base environment seen through a random linear map.

The agent sees `obs_matrix @ encode_obs(base_obs)` instead of the base observation, and, for
continuous actions, the base receives `clip(action_matrix @ action)` instead of the agent's
action. Each projection seed is a task: the dynamics and rewards stay the base's, so what an
agent learnt about one projection does not carry over to the next without in-context learning.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment
from gymnax.environments import spaces as gym_spaces

from icrl.envs import spaces

# fold_in constants that give the observation and the action maps independent streams.
_OBS_STREAM, _ACTION_STREAM = 0, 1
# Base methods the wrapper offers only when the base has them (see `Projected.__getattr__`).
_DELEGATED = ("oracle_action", "optimal_return")


@struct.dataclass
class ProjectedParams:
    """The task of one projection seed: the base's params and the two linear maps.

    `action_matrix` is a random orthogonal float32 [a, a] matrix for a base with a
    continuous a-vector action; for discrete actions, which pass through unchanged, it is an
    unused float32 [1, 1] identity, so params of every base stack and vmap alike.
    """

    base: Any
    obs_matrix: jax.Array  # float32 [obs_dim, n_in]
    action_matrix: jax.Array  # float32 [a, a], or [1, 1] identity for discrete actions

    @property
    def max_steps_in_episode(self) -> Any:
        # Read through from the base, so the two can never disagree.
        return self.base.max_steps_in_episode


class Projected(environment.Environment[Any, ProjectedParams]):
    """`base` seen through a random linear projection to `obs_dim` features; a task per seed.

    The state is the base's own state. `oracle_action` (discrete actions only) and
    `optimal_return` exist exactly when the base has them.
    """

    def __init__(self, base: environment.Environment, obs_dim: int):
        super().__init__()
        if int(obs_dim) <= 0:
            raise ValueError(f"obs_dim must be positive, got {obs_dim}")
        self.base = base
        self.obs_dim = int(obs_dim)
        self.n_in = spaces.obs_size(base)
        self.discrete = spaces.discrete_actions(base)
        self.action_size = 1 if self.discrete else spaces.action_dim(base)
        self._default_params: ProjectedParams | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached when ordinary lookup fails. Delegates that the base lacks must not
        # exist at all, since callers probe them with `hasattr` (e.g. oracle demonstrators).
        # `vars(self)` (not `self.base`) avoids recursing while copy/pickle rebuild `self`.
        base = vars(self).get("base")
        if name in _DELEGATED and base is not None and hasattr(base, name):
            if name != "oracle_action" or vars(self).get("discrete"):
                return getattr(self, f"_{name}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def name(self) -> str:
        return f"Projected-{self.base.name}"

    @property
    def num_actions(self) -> int:
        return self.base.num_actions

    @property
    def default_params(self) -> ProjectedParams:
        """Returns the params of projection seed 0 over the base's default params."""
        if self._default_params is None:
            # Built concretely even when first asked for inside a trace, so no tracer is cached.
            with jax.ensure_compile_time_eval():
                self._default_params = self.params_for_seed(0)
        return self._default_params

    def params_for_seed(self, seed: int | jax.Array, *, base_params: Any = None) -> ProjectedParams:
        """Returns the params of projection seed `seed` over `base_params` (default: the base's).

        Deterministic in `seed` and jittable, so `jax.vmap` over an int array of seeds gives
        stacked params.
        """
        if base_params is None:
            base_params = self.base.default_params
        key = jax.random.key(seed)
        # Entries of variance 1/n_in keep the projected features at the scale of the input.
        obs_matrix = jax.random.normal(
            jax.random.fold_in(key, _OBS_STREAM), (self.obs_dim, self.n_in), jnp.float32
        ) / jnp.sqrt(jnp.float32(self.n_in))
        if self.discrete:
            action_matrix = jnp.eye(1, dtype=jnp.float32)
        else:
            action_matrix = _random_orthogonal(jax.random.fold_in(key, _ACTION_STREAM), self.action_size)
        return ProjectedParams(base=base_params, obs_matrix=obs_matrix, action_matrix=action_matrix)

    def project(self, base_obs: jax.Array, params: ProjectedParams) -> jax.Array:
        """Returns the agent's view of the base observation `base_obs`: float32 [obs_dim]."""
        return params.obs_matrix @ spaces.encode_obs(self.base, base_obs)

    def map_action(self, action: jax.Array, params: ProjectedParams) -> jax.Array:
        """Returns the action the base receives for the agent's `action`."""
        if self.discrete:
            return action
        space = self.base.action_space(params.base)
        shape = (self.action_size,)
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
        # The rotated box pokes out of the base's box; the base only accepts its own bounds.
        rotated = params.action_matrix @ jnp.reshape(jnp.asarray(action, jnp.float32), shape)
        return jnp.reshape(jnp.clip(rotated, low, high), space.shape)

    def step_env(
        self, key: jax.Array, state: Any, action: int | float | jax.Array, params: ProjectedParams
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, dict[Any, Any]]:
        # step_env, not base.step: the auto-reset belongs to this wrapper's own `step`.
        obs, state, reward, terminated, info = self.base.step_env(
            key, state, self.map_action(action, params), params.base
        )
        return self.project(obs, params), state, reward, terminated, info

    def reset_env(self, key: jax.Array, params: ProjectedParams) -> tuple[jax.Array, Any]:
        obs, state = self.base.reset_env(key, params.base)
        return self.project(obs, params), state

    def is_terminated(self, state: Any, params: ProjectedParams) -> jax.Array:
        return self.base.is_terminated(state, params.base)

    def is_truncated(self, state: Any, params: ProjectedParams) -> jax.Array:
        # gymnax's `step` asks this; the base's rule (and its params) decide, so the wrapper
        # truncates exactly when the base would.
        return self.base.is_truncated(state, params.base)

    def action_space(self, params: ProjectedParams | None = None) -> Any:
        return self.base.action_space(None if params is None else params.base)

    def observation_space(self, params: ProjectedParams | None = None) -> gym_spaces.Box:
        return gym_spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim,), jnp.float32)

    def state_space(self, params: ProjectedParams) -> Any:
        return self.base.state_space(params.base)

    # Reached as `oracle_action` / `optimal_return` through `__getattr__`, when the base has them.

    def _oracle_action(self, state: Any, params: ProjectedParams) -> jax.Array:
        """Returns the base's oracle action: discrete actions are not remapped."""
        return self.base.oracle_action(state, params.base)

    def _optimal_return(self, params: ProjectedParams) -> jax.Array:
        """Returns the base's optimal return: the projection changes what the agent sees, not
        what it can earn (for continuous actions, what the clipped rotated box reaches may fall
        short of it)."""
        return self.base.optimal_return(params.base)


def _random_orthogonal(key: jax.Array, n: int) -> jax.Array:
    """Returns a Haar-random orthogonal float32 [n, n] matrix.

    Gram-Schmidt on a Gaussian matrix (the Q of its QR with diag(R) > 0, which is what makes
    Q uniformly distributed), written out rather than `jnp.linalg.qr`: batched under vmap,
    XLA's LAPACK QR waits on the CPU thread pool it runs on and can deadlock on small machines.
    """
    g = jax.random.normal(key, (n, n), jnp.float32)
    columns: list[jax.Array] = []
    for j in range(n):  # n is an action dimension: a handful of columns
        v = g[:, j]
        for q in columns:
            v = v - jnp.dot(q, v) * q
        columns.append(v / jnp.linalg.norm(v))
    return jnp.stack(columns, axis=1)
