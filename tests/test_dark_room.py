from icrl.config import DarkRoomConfig, TasksConfig
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.envs import DarkRoom, make_family
from icrl.envs.dark_room import DOWN, LEFT, NOOP, RIGHT, UP


@pytest.fixture(scope="module")
def env():
    return DarkRoom(size=9, episode_length=20)


def test_starts_in_the_centre_and_observes_its_cell(env):
    obs, state = env.reset(jax.random.key(0), env.params_for_goal([0, 0]))
    assert state.pos.tolist() == [4, 4]
    assert int(obs) == 4 * 9 + 4


@pytest.mark.parametrize("action, expected", [(NOOP, [4, 4]), (UP, [3, 4]), (RIGHT, [4, 5]), (DOWN, [5, 4]), (LEFT, [4, 3])])
def test_moves(env, action, expected):
    params = env.params_for_goal([0, 0])
    _, state = env.reset(jax.random.key(0), params)
    obs, state, *_ = env.step(jax.random.key(1), state, action, params)
    assert state.pos.tolist() == expected
    assert int(obs) == expected[0] * 9 + expected[1]


def test_walls_keep_the_agent_inside(env):
    params = env.params_for_goal([8, 8])
    _, state = env.reset(jax.random.key(0), params)
    for _ in range(6):
        _, state, *_ = env.step(jax.random.key(1), state, UP, params)
    assert state.pos.tolist() == [0, 4]


def test_reward_on_every_step_spent_on_the_goal(env):
    params = env.params_for_goal([4, 5])
    _, state = env.reset(jax.random.key(0), params)
    rewards = []
    for action in (RIGHT, NOOP, NOOP, LEFT):
        _, state, reward, terminated, truncated, _ = env.step(jax.random.key(1), state, action, params)
        rewards.append(float(reward))
        assert not bool(terminated)
    assert rewards == [1.0, 1.0, 1.0, 0.0]


def test_truncates_after_the_episode_length_and_resets(env):
    params = env.params_for_goal([0, 0])
    _, state = env.reset(jax.random.key(0), params)
    for t in range(20):
        obs, state, _, terminated, truncated, _ = env.step(jax.random.key(t), state, RIGHT, params)
        assert bool(truncated) == (t == 19)
        assert not bool(terminated)
    assert state.pos.tolist() == [4, 4] and int(state.time) == 0  # auto-reset
    assert int(obs) == 40


def test_oracle_return_is_the_optimal_return_for_every_goal(env):
    family = make_family(DarkRoomConfig(), TasksConfig(heldout=0, split_seed=0))
    params = family.params_for(family.tasks)

    def episode(p):
        _, state = env.reset(jax.random.key(0), p)

        def step(state, _):
            action = env.oracle_action(state, p)
            _, state, reward, *_ = env.step(jax.random.key(0), state, action, p)
            return state, reward

        return jax.lax.scan(step, state, None, length=20)[1].sum()

    returns = np.asarray(jax.vmap(episode)(params))
    np.testing.assert_allclose(returns, np.asarray(jax.vmap(env.optimal_return)(params)))
    assert returns.mean() == pytest.approx(16.54, abs=0.01)  # the AD-ε paper's ≈ 16.5


def test_size_and_episode_length_are_configurable():
    env = DarkRoom(size=5, episode_length=7)
    assert env.observation_space(env.default_params).n == 25
    _, state = env.reset(jax.random.key(0), env.default_params)
    assert state.pos.tolist() == [2, 2]
    assert int(jnp.asarray(env.default_params.max_steps_in_episode)) == 7
