import pickle
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment
from gymnax.environments import spaces as gym_spaces

from icrl.envs import DarkRoom
from icrl.envs.dark_room import RIGHT
from icrl.envs.projected import Projected
from icrl.envs.spaces import encode_obs

OBS_DIM = 6


@struct.dataclass
class DriftState(environment.EnvState):
    pos: jax.Array
    time: int


class Drift(environment.Environment):
    """A 3-d continuous-action test env: the action (within [-1, 1]^3) is added to the position."""

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=10)

    def step_env(self, key, state, action, params):
        state = DriftState(pos=state.pos + action, time=state.time + 1)
        return state.pos, state, jnp.float32(0.0), jnp.array(False), {}

    def reset_env(self, key, params):
        state = DriftState(pos=jnp.zeros(3, jnp.float32), time=0)
        return state.pos, state

    def is_terminated(self, state, params):
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return 3

    def action_space(self, params=None):
        return gym_spaces.Box(-1.0, 1.0, (3,), jnp.float32)

    def observation_space(self, params):
        return gym_spaces.Box(-jnp.inf, jnp.inf, (3,), jnp.float32)


def make(name: str) -> Projected:
    if name == "DarkRoom":
        return Projected(DarkRoom(size=5, episode_length=8), OBS_DIM)
    if name == "Drift":
        return Projected(Drift(), OBS_DIM)
    return Projected(gymnax.make(name)[0], OBS_DIM)


def some_action(env: Projected, key: jax.Array) -> jax.Array:
    return env.action_space(env.default_params).sample(key)


def lockstep(env: Projected, params, steps: int, *, seed: int = 0) -> dict[str, Any]:
    """Runs the wrapper and its base side by side on the same keys and random actions."""
    base, base_params = env.base, params.base
    key = jax.random.key(seed)
    obs, state = env.reset(key, params)
    base_obs, base_state = base.reset(key, base_params)

    def step(carry, key):
        state, base_state = carry
        key_action, key_step = jax.random.split(key)
        action = some_action(env, key_action)
        obs, state, reward, terminated, truncated, _ = env.step(key_step, state, action, params)
        b_obs, base_state, b_reward, b_terminated, b_truncated, _ = base.step(
            key_step, base_state, env.map_action(action, params), base_params
        )
        out = dict(
            obs=obs, base_obs=b_obs, reward=reward, base_reward=b_reward, terminated=terminated,
            base_terminated=b_terminated, truncated=truncated, base_truncated=b_truncated, time=state.time,
        )
        return (state, base_state), out

    keys = jax.random.split(jax.random.key(seed + 1), steps)
    out = jax.jit(lambda c, k: jax.lax.scan(step, c, k)[1])((state, base_state), keys)
    return {"reset_obs": obs, "base_reset_obs": base_obs, **out}


@pytest.mark.parametrize("name, n_in", [("CartPole-v1", 4), ("Pendulum-v1", 3), ("DarkRoom", 25)])
def test_observations_are_float32_vectors_of_obs_dim(name, n_in):
    env = make(name)
    params = env.default_params
    assert env.name == f"Projected-{env.base.name}"
    assert env.num_actions == env.base.num_actions
    assert params.obs_matrix.shape == (OBS_DIM, n_in) and params.obs_matrix.dtype == jnp.float32
    space = env.observation_space(params)
    assert space.shape == (OBS_DIM,) and space.dtype == jnp.float32
    assert type(env.action_space(params)) is type(env.base.action_space(env.base.default_params))
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (OBS_DIM,) and obs.dtype == jnp.float32
    obs, *_ = env.step(jax.random.key(1), state, some_action(env, jax.random.key(2)), params)
    assert obs.shape == (OBS_DIM,) and obs.dtype == jnp.float32


def test_action_matrix_is_an_identity_placeholder_for_discrete_actions():
    params = make("CartPole-v1").params_for_seed(3)
    np.testing.assert_array_equal(params.action_matrix, np.eye(1, dtype=np.float32))


@pytest.mark.parametrize("name", ["CartPole-v1", "Drift"])
def test_same_seed_same_projection_other_seed_other_projection(name):
    env = make(name)
    a, again, b = env.params_for_seed(1), env.params_for_seed(1), env.params_for_seed(2)
    np.testing.assert_array_equal(a.obs_matrix, again.obs_matrix)
    np.testing.assert_array_equal(a.action_matrix, again.action_matrix)
    assert not np.allclose(a.obs_matrix, b.obs_matrix)
    if name == "Drift":
        assert not np.allclose(a.action_matrix, b.action_matrix)


def test_obs_matrix_entries_have_variance_one_over_n_in():
    env = Projected(DarkRoom(size=5, episode_length=8), 256)
    w = np.asarray(env.params_for_seed(0).obs_matrix)
    assert abs(w.mean()) < 0.01
    assert w.var() == pytest.approx(1 / 25, rel=0.1)


def test_action_matrix_is_orthogonal_for_continuous_actions():
    env = make("Drift")
    m = np.asarray(jax.jit(jax.vmap(env.params_for_seed))(jnp.arange(5)).action_matrix)
    assert m.shape == (5, 3, 3) and m.dtype == np.float32
    np.testing.assert_allclose(m @ m.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-5)
    pendulum = make("Pendulum-v1").params_for_seed(0).action_matrix
    assert pendulum.shape == (1, 1) and abs(float(pendulum[0, 0])) == pytest.approx(1.0)


def test_jit_vmap_over_seeds():
    env = make("DarkRoom")
    seeds = jnp.arange(4)
    params = jax.jit(jax.vmap(env.params_for_seed))(seeds)
    assert params.obs_matrix.shape == (4, OBS_DIM, 25)
    np.testing.assert_allclose(params.obs_matrix[2], env.params_for_seed(2).obs_matrix, rtol=1e-6)

    def rollout(p):
        _, state = env.reset(jax.random.key(0), p)

        def step(state, _):
            obs, state, reward, *_ = env.step(jax.random.key(0), state, RIGHT, p)
            return state, (obs, reward)

        return jax.lax.scan(step, state, None, length=3)[1]

    obs, rewards = jax.jit(jax.vmap(rollout))(params)
    assert obs.shape == (4, 3, OBS_DIM) and obs.dtype == jnp.float32
    # Same cells, same rewards; the projected views differ between seeds.
    np.testing.assert_array_equal(rewards, np.broadcast_to(rewards[0], rewards.shape))
    assert not np.allclose(obs[0], obs[1])


def test_dark_room_truncates_at_the_base_episode_length():
    env = make("DarkRoom")
    params = env.params_for_seed(0, base_params=env.base.params_for_goal([0, 0]))
    assert params.max_steps_in_episode == 8
    _, state = env.reset(jax.random.key(0), params)
    for t in range(8):
        obs, state, _, terminated, truncated, _ = env.step(jax.random.key(t), state, RIGHT, params)
        assert bool(truncated) == (t == 7)
        assert not bool(terminated)
    assert int(state.time) == 0 and state.pos.tolist() == [2, 2]  # auto-reset
    np.testing.assert_allclose(obs, params.obs_matrix[:, 2 * 5 + 2], rtol=1e-6)


def test_cartpole_runs_in_lockstep_with_its_base():
    env = make("CartPole-v1")
    assert env.default_params.max_steps_in_episode == 500
    base_params = env.base.default_params.replace(max_steps_in_episode=25)
    params = env.params_for_seed(5, base_params=base_params)
    out = lockstep(env, params, 120, seed=2)
    for field in ("reward", "terminated", "truncated"):
        np.testing.assert_array_equal(out[field], out[f"base_{field}"])
    assert out["truncated"].any() and out["terminated"].any()  # both endings happen and agree
    assert int(np.asarray(out["time"]).max()) < 25
    # Linear: every observation, after resets too, is W @ the base's.
    w = np.asarray(params.obs_matrix)
    np.testing.assert_allclose(out["obs"], np.asarray(out["base_obs"]) @ w.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["reset_obs"], w @ np.asarray(out["base_reset_obs"]), rtol=1e-5, atol=1e-6)


def test_projection_is_linear_in_the_encoded_observation():
    env = make("DarkRoom")
    params = env.params_for_seed(4)
    _, state = env.reset(jax.random.key(0), params)
    obs, state, *_ = env.step(jax.random.key(1), state, RIGHT, params)
    cell = env.base.cell(state.pos)
    np.testing.assert_allclose(obs, params.obs_matrix @ encode_obs(env.base, cell), rtol=1e-6)
    x, y = jnp.array([0.5, -1.0, 2.0, 0.1]), jnp.array([1.5, 0.0, -0.3, 2.0])
    cartpole = make("CartPole-v1")
    p = cartpole.params_for_seed(4)
    combined = 2 * cartpole.project(x, p) - 3 * cartpole.project(y, p)
    np.testing.assert_allclose(cartpole.project(2 * x - 3 * y, p), combined, rtol=1e-5, atol=1e-5)


def test_continuous_actions_are_rotated_then_clipped():
    env = make("Drift")
    params = env.params_for_seed(7)
    m = np.asarray(params.action_matrix)
    _, state = env.reset(jax.random.key(0), params)
    for action in (np.array([0.3, -0.2, 0.1], np.float32), np.array([1.0, 1.0, -1.0], np.float32)):
        _, after, *_ = env.step(jax.random.key(1), state, action, params)
        expected = np.clip(m @ action, -1.0, 1.0)
        np.testing.assert_allclose(after.pos, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(m @ np.array([1.0, 1.0, -1.0])).max() > 1.0  # the second action was clipped


@pytest.mark.parametrize("action", [0.5, 3.0])
def test_pendulum_torque_goes_through_the_action_map(action):
    env = make("Pendulum-v1")
    params = env.params_for_seed(1)
    sign = float(params.action_matrix[0, 0])
    _, state = env.reset(jax.random.key(0), params)
    _, state, *_ = env.step(jax.random.key(1), state, jnp.array([action], jnp.float32), params)
    assert float(state.last_u) == pytest.approx(np.clip(sign * action, -2.0, 2.0))


def test_oracle_and_optimal_return_delegate_to_dark_room():
    env = make("DarkRoom")
    assert hasattr(env, "oracle_action") and hasattr(env, "optimal_return")
    params = env.params_for_seed(0, base_params=env.base.params_for_goal([1, 3]))
    _, state = env.reset(jax.random.key(0), params)

    def step(state, _):
        _, state, reward, *_ = env.step(jax.random.key(0), state, env.oracle_action(state, params), params)
        return state, reward

    episode_return = jax.jit(lambda s: jax.lax.scan(step, s, None, length=8)[1].sum())(state)
    assert float(episode_return) == float(env.optimal_return(params)) == float(
        env.base.optimal_return(params.base)
    ) > 0


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
def test_no_oracle_without_one_in_the_base(name):
    env = make(name)
    assert not hasattr(env, "oracle_action")
    assert not hasattr(env, "optimal_return")
    assert not hasattr(env, "no_such_attribute")


def test_pickles_with_its_delegates():
    env = pickle.loads(pickle.dumps(make("DarkRoom")))
    assert hasattr(env, "oracle_action") and env.name == "Projected-DarkRoom-v0"
    assert not hasattr(pickle.loads(pickle.dumps(make("CartPole-v1"))), "oracle_action")


def test_rejects_a_non_positive_obs_dim():
    with pytest.raises(ValueError, match="obs_dim"):
        Projected(DarkRoom(), 0)


def test_default_params_first_built_inside_a_trace_stay_concrete():
    env = make("DarkRoom")
    obs, _ = jax.jit(lambda key: env.reset(key))(jax.random.key(0))  # params=None: default_params
    assert not isinstance(env.default_params.obs_matrix, jax.core.Tracer)
    np.testing.assert_allclose(obs, env.params_for_seed(0).obs_matrix[:, 12], rtol=1e-6)
