import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.envs.key_to_door import DOWN, LEFT, NOOP, RIGHT, UP, DarkKeyToDoor, EnvState


@pytest.fixture(scope="module")
def env():
    return DarkKeyToDoor(size=9, episode_length=50)


def at(env, row, col, *, has_key=False):
    """Returns a state with the agent on (row, col) at time 0."""
    return EnvState(pos=jnp.array([row, col], jnp.int32), has_key=jnp.array(has_key), time=0)


def walk(env, params, state, actions):
    """Returns (rewards, terminated flags, final state) of taking `actions` from `state`."""
    rewards, terminated = [], []
    for i, action in enumerate(actions):
        _, state, reward, term, _, _ = env.step(jax.random.key(i), state, action, params)
        rewards.append(float(reward))
        terminated.append(bool(term))
    return rewards, terminated, state


def test_key_then_door_pays_two_and_terminates(env):
    params = env.params_for_task([2, 3], [2, 5])
    rewards, terminated, _ = walk(env, params, at(env, 2, 2), [RIGHT, RIGHT, RIGHT])
    assert rewards == [1.0, 0.0, 1.0]
    assert terminated == [False, False, True]


def test_door_without_the_key_does_nothing(env):
    params = env.params_for_task([8, 8], [2, 3])
    rewards, terminated, state = walk(env, params, at(env, 2, 2), [RIGHT, NOOP, RIGHT])
    assert rewards == [0.0, 0.0, 0.0]
    assert terminated == [False, False, False]
    assert not bool(state.has_key)


def test_key_pays_only_once_per_episode(env):
    params = env.params_for_task([2, 3], [8, 8])
    rewards, _, state = walk(env, params, at(env, 2, 2), [RIGHT, NOOP, LEFT, RIGHT])
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    assert bool(state.has_key)


def test_a_start_on_the_key_picks_it_up_on_the_first_step_ending_there(env):
    params = env.params_for_task([4, 4], [4, 5])
    rewards, terminated, _ = walk(env, params, at(env, 4, 4), [NOOP, RIGHT])
    assert rewards == [1.0, 1.0]
    assert terminated == [False, True]


def test_termination_resets_the_key_and_truncation_comes_after_the_episode_length():
    env = DarkKeyToDoor(size=5, episode_length=6, random_start=False)
    params = env.params_for_task([2, 3], [2, 4])
    _, state = env.reset(jax.random.key(0), params)
    _, state, _, terminated, truncated, _ = env.step(jax.random.key(1), state, RIGHT, params)
    _, state, _, terminated, truncated, _ = env.step(jax.random.key(2), state, RIGHT, params)
    assert bool(terminated) and not bool(truncated)
    assert state.pos.tolist() == [2, 2] and not bool(state.has_key) and int(state.time) == 0  # auto-reset
    for t in range(6):
        _, state, _, terminated, truncated, _ = env.step(jax.random.key(t), state, UP, params)
        assert bool(truncated) == (t == 5) and not bool(terminated)


def test_random_start_covers_every_cell_and_fixed_start_is_the_centre(env):
    keys = jax.random.split(jax.random.key(0), 2000)
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(keys, env.default_params)
    assert set(np.asarray(obs).tolist()) == set(range(81))
    fixed = DarkKeyToDoor(size=9, random_start=False)
    obs, state = fixed.reset(jax.random.key(3), fixed.default_params)
    assert state.pos.tolist() == [4, 4] and int(obs) == 40


def test_observation_is_only_the_cell(env):
    assert env.observation_space(env.default_params).n == 81
    state = at(env, 3, 6)
    obs = [
        int(env.step(jax.random.key(0), state, NOOP, env.params_for_task(key, door))[0])
        for key, door in (([0, 0], [8, 8]), ([3, 6], [5, 5]), ([1, 1], [3, 6]))
    ]
    assert obs == [3 * 9 + 6] * 3
    held = env.step(jax.random.key(0), at(env, 3, 6, has_key=True), NOOP, env.params_for_task([0, 0], [8, 8]))[0]
    assert held.dtype == jnp.int32 and int(held) == 3 * 9 + 6


def test_oracle_collects_two_from_every_start(env):
    keys = jnp.array([[0, 0], [8, 8], [4, 4], [0, 8]], jnp.int32)
    doors = jnp.array([[8, 8], [0, 0], [4, 5], [8, 0]], jnp.int32)
    params = jax.vmap(env.params_for_task)(keys, doors)
    cells = jnp.arange(81, dtype=jnp.int32)
    starts = jnp.stack([cells // 9, cells % 9], axis=-1)

    def episode(p, start):
        state = EnvState(pos=start, has_key=jnp.array(False), time=0)

        def step(carry, _):
            state, done = carry
            action = env.oracle_action(state, p)
            _, state, reward, terminated, truncated, _ = env.step(jax.random.key(0), state, action, p)
            reward = jnp.where(done, 0.0, reward)  # count one episode only
            return (state, done | terminated | truncated), reward

        return jax.lax.scan(step, (state, jnp.array(False)), None, length=50)[1].sum()

    every_start = jax.vmap(episode, in_axes=(None, 0))
    returns = np.asarray(jax.jit(jax.vmap(every_start, in_axes=(0, None)))(params, starts))
    assert returns.shape == (4, 81)
    np.testing.assert_array_equal(returns, 2.0)
    np.testing.assert_array_equal(np.asarray(jax.vmap(env.optimal_return)(params)), 2.0)


def test_optimal_return_counts_starts_that_run_out_of_time():
    env = DarkKeyToDoor(size=3, episode_length=2)
    # key (0,0), door (0,1): a start at distance d needs max(d,1) steps to the key and one more to the door.
    params = env.params_for_task([0, 0], [0, 1])
    distances = np.array([0, 1, 2, 1, 2, 3, 2, 3, 4])
    to_key = np.maximum(distances, 1)
    expected = ((to_key <= 2).astype(float) + (to_key + 1 <= 2).astype(float)).mean()
    assert float(env.optimal_return(params)) == pytest.approx(expected)
    fixed = DarkKeyToDoor(size=3, episode_length=2, random_start=False)  # the centre is 2 from the key
    assert float(fixed.optimal_return(params)) == 1.0


def test_jit_and_vmap_over_tasks(env):
    keys = jnp.array([[0, 0], [3, 3], [8, 1]], jnp.int32)
    doors = jnp.array([[1, 0], [3, 4], [2, 2]], jnp.int32)
    params = jax.vmap(env.params_for_task)(keys, doors)

    @jax.jit
    @jax.vmap
    def oracle_episode(p, key):
        _, state = env.reset(key, p)

        def step(carry, step_key):
            state, done = carry
            _, state, reward, terminated, truncated, _ = env.step(step_key, state, env.oracle_action(state, p), p)
            return (state, done | terminated | truncated), jnp.where(done, 0.0, reward)

        return jax.lax.scan(step, (state, jnp.array(False)), jax.random.split(key, 50))[1].sum()

    returns = oracle_episode(params, jax.random.split(jax.random.key(0), 3))
    np.testing.assert_array_equal(np.asarray(returns), 2.0)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(env.optimal_return))(params)), 2.0)


def test_moves_match_dark_room(env):
    params = env.params_for_task([0, 0], [8, 8])
    for action, expected in ((NOOP, [4, 4]), (UP, [3, 4]), (RIGHT, [4, 5]), (DOWN, [5, 4]), (LEFT, [4, 3])):
        assert walk(env, params, at(env, 4, 4), [action])[2].pos.tolist() == expected
    assert walk(env, params, at(env, 0, 0, has_key=True), [UP, LEFT])[2].pos.tolist() == [0, 0]
