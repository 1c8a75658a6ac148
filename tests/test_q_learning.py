import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.collect.q_learning import make_train
from icrl.config import QLearningConfig
from icrl.envs.dark_room import DarkRoom
from icrl.envs.key_to_door import DarkKeyToDoor

SEEDS = 8


@pytest.fixture(scope="module")
def env():
    return DarkRoom(size=9, episode_length=20)


@pytest.fixture(scope="module")
def cfg():
    return QLearningConfig(steps=6000, learning_rate=0.5, gamma=0.9, epsilon_floor=0.05, floor_fraction=0.5)


@pytest.fixture(scope="module")
def trained(env, cfg):
    """Returns (learner, params, histories, Q tables) of SEEDS runs on the goal (1, 7)."""
    learner = make_train(env, cfg)
    params = jax.vmap(env.params_for_goal)(jnp.tile(jnp.array([[1, 7]], jnp.int32), (SEEDS, 1)))
    history, q_tables = jax.jit(jax.vmap(learner.train))(jax.random.split(jax.random.key(0), SEEDS), params)
    return learner, params, history, q_tables


def greedy_return(env, learner, q_table, params):
    """Returns the return of one episode of the greedy final policy."""
    obs, state = env.reset(jax.random.key(0), params)

    def step(carry, key):
        obs, state = carry
        obs, state, reward, *_ = env.step(key, state, learner.act(q_table, obs, params, key), params)
        return (obs, state), reward

    keys = jax.random.split(jax.random.key(1), env.episode_length)
    return jax.lax.scan(step, (obs, state), keys)[1].sum()


def test_reaches_90_percent_of_optimal_on_dark_room(env, trained):
    learner, params, history, q_tables = trained
    returns = np.asarray(jax.jit(jax.vmap(lambda q, p: greedy_return(env, learner, q, p)))(q_tables, params))
    optimal = float(env.optimal_return(env.params_for_goal([1, 7])))
    assert optimal == 15.0
    assert returns.mean() >= 0.9 * optimal, returns


def test_history_shape_dtypes_and_episodes(env, cfg, trained):
    learner, _, history, q_tables = trained
    assert learner.steps == cfg.steps and learner.columns == ("epsilon",)
    assert q_tables.shape == (SEEDS, 81, 5)
    assert history.obs.shape == history.action.shape == (SEEDS, cfg.steps)
    assert history.action.dtype == jnp.int32 and history.reward.dtype == jnp.float32
    assert history.episode.dtype == jnp.int32 and history.extra["epsilon"].dtype == jnp.float32
    assert set(history.extra) == {"epsilon"}
    # Dark Room never terminates: an episode is exactly 20 steps and starts at the centre.
    assert not np.asarray(history.terminated).any()
    np.testing.assert_array_equal(np.asarray(history.truncated[0]), (np.arange(cfg.steps) % 20) == 19)
    np.testing.assert_array_equal(np.asarray(history.episode[0]), np.arange(cfg.steps) // 20)
    np.testing.assert_array_equal(np.asarray(history.obs[:, ::20]), 40)


def test_epsilon_follows_the_linear_schedule(cfg, trained):
    epsilon = np.asarray(trained[2].extra["epsilon"])
    reach = cfg.floor_fraction * cfg.steps
    t = np.arange(cfg.steps)
    expected = np.maximum(cfg.epsilon_start - (cfg.epsilon_start - cfg.epsilon_floor) * t / reach, cfg.epsilon_floor)
    np.testing.assert_allclose(epsilon, np.broadcast_to(expected, epsilon.shape), rtol=0, atol=1e-6)
    assert epsilon[0, 0] == cfg.epsilon_start and (epsilon[:, int(reach):] == np.float32(cfg.epsilon_floor)).all()


def test_learning_improves_the_behaviour_policy(trained):
    history = trained[2]
    rewards = np.asarray(history.reward).reshape(SEEDS, -1, 20).sum(axis=-1)  # [seeds, episodes]
    assert rewards[:, -10:].mean() > rewards[:, :10].mean() + 5.0


def test_same_key_same_bytes(env, trained):
    cfg = QLearningConfig(steps=200)
    train = jax.jit(make_train(env, cfg).train)
    params = env.params_for_goal([1, 7])
    first, second = train(jax.random.key(5), params), train(jax.random.key(5), params)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    other = train(jax.random.key(6), params)
    assert np.asarray(first[0].action).tobytes() != np.asarray(other[0].action).tobytes()


def test_truncation_bootstraps_from_the_true_next_cell_and_termination_not_at_all():
    # One-step episodes from the centre of a 3x3 room: the next cells are never visited, so their
    # values stay 0 and (lr = 1) Q[centre, move] is the bare reward. Bootstrapping from the reset
    # observation (the centre again) would add gamma * max Q[centre] to it.
    env = DarkRoom(size=3, episode_length=1)
    cfg = QLearningConfig(steps=300, learning_rate=1.0, gamma=0.5, epsilon_start=1.0, epsilon_floor=1.0)
    _, q_table = jax.jit(make_train(env, cfg).train)(jax.random.key(0), env.params_for_goal([1, 2]))
    np.testing.assert_array_equal(np.asarray(q_table[4, 1:]), [0.0, 1.0, 0.0, 0.0])  # up right down left
    np.testing.assert_array_equal(np.delete(np.asarray(q_table), 4, axis=0), 0.0)

    # Key right of the start, door at the start: stepping back LEFT from the key opens the door.
    # That step terminates, so its value is the bare reward although Q at the start is positive.
    env = DarkKeyToDoor(size=3, episode_length=10, random_start=False)
    params = env.params_for_task([1, 2], [1, 1])
    _, q_table = jax.jit(make_train(env, cfg).train)(jax.random.key(0), params)
    assert float(q_table[4].max()) > 0.0
    assert float(q_table[5, 4]) == 1.0


def test_vector_observations_are_rejected(cfg):
    cartpole, _ = gymnax.make("CartPole-v1")
    with pytest.raises(ValueError, match="CartPole"):
        make_train(cartpole, cfg)
