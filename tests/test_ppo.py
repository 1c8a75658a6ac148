"""PPO as a learning-history source: it learns Dark Room, and its history has the promised shape."""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.collect.learner import Learner
from icrl.collect.ppo import make_train
from icrl.config import PPOConfig
from icrl.envs.bandits import BernoulliBandit
from icrl.envs.dark_room import DarkRoom

GOAL = (1, 7)
# Small enough to compile and run in seconds; 30-step rollouts cut 20-step episodes mid-way.
SMALL = PPOConfig(updates=3, rollout_steps=30, minibatches=3, epochs=2)


def stack(tree, n: int):
    """Returns `n` copies of a pytree of task parameters stacked along a new axis 0."""
    return jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * n), tree)


def episode_returns(reward: np.ndarray, episode: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Returns the return of every completed episode of one history, in order."""
    completed = int(episode[done].max()) + 1 if done.any() else 0
    return np.bincount(episode, weights=reward, minlength=completed + 1)[:completed]


def greedy_return(env: DarkRoom, learner: Learner, agent, params, key: jax.Array) -> jax.Array:
    """Returns the return of one episode of `learner.act` on the task `params`."""
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)

    def step(carry, step_key):
        obs, state = carry
        act_key, env_key = jax.random.split(step_key)
        action = learner.act(agent, obs, params, act_key)
        obs, state, reward, _, _, _ = env.step(env_key, state, action, params)
        return (obs, state), reward

    _, rewards = jax.lax.scan(step, (obs, state), jax.random.split(key, env.episode_length))
    return rewards.sum()


@pytest.fixture(scope="module")
def dark_room():
    return DarkRoom(size=9, episode_length=20)


@pytest.fixture(scope="module")
def small(dark_room):
    """Returns (learner, jit(vmap(train))) of the small config, compiled once for this module."""
    learner = make_train(dark_room, SMALL)
    return learner, jax.jit(jax.vmap(learner.train))


def test_ppo_learns_a_dark_room_goal(dark_room):
    env, seeds = dark_room, 8
    learner = make_train(env, PPOConfig(updates=40, rollout_steps=100))
    params = env.params_for_goal(jnp.array(GOAL))
    keys = jax.random.split(jax.random.key(0), seeds)
    history, agents = jax.jit(jax.vmap(learner.train))(keys, stack(params, seeds))

    optimal = float(env.optimal_return(params))
    reward, episode = np.asarray(history.reward), np.asarray(history.episode)
    done = np.asarray(history.terminated | history.truncated)
    returns = np.stack([episode_returns(reward[i], episode[i], done[i]) for i in range(seeds)])
    assert returns.shape == (seeds, learner.steps // env.episode_length)
    first, last = returns[:, :10].mean(), returns[:, -10:].mean()
    assert first < 0.5 * optimal  # it starts out lost, so the history shows learning
    assert last >= 0.9 * optimal, (last, optimal)

    greedy = jax.jit(jax.vmap(lambda agent, key: greedy_return(env, learner, agent, params, key)))
    achieved = np.asarray(greedy(agents, jax.random.split(jax.random.key(1), seeds)))
    assert achieved.mean() >= 0.9 * optimal, (achieved, optimal)


def test_history_shapes_and_columns_under_jit_vmap(dark_room, small):
    env, (learner, run) = dark_room, small
    goals = jnp.array([GOAL, (6, 2)], jnp.int32)
    history, _ = run(jax.random.split(jax.random.key(0), 2), jax.vmap(env.params_for_goal)(goals))
    steps = SMALL.updates * SMALL.rollout_steps

    assert learner.steps == steps and learner.columns == ("logp", "update")
    assert set(history.extra) == set(learner.columns)
    expected = {
        "obs": jnp.int32, "action": jnp.int32, "reward": jnp.float32,
        "terminated": jnp.bool_, "truncated": jnp.bool_, "episode": jnp.int32,
    }
    for name, dtype in expected.items():
        column = getattr(history, name)
        assert column.shape == (2, steps) and column.dtype == dtype, name
    for name, dtype in {"logp": jnp.float32, "update": jnp.int32}.items():
        assert history.extra[name].shape == (2, steps) and history.extra[name].dtype == dtype, name

    obs, action, reward = (np.asarray(a) for a in (history.obs, history.action, history.reward))
    terminated, truncated = np.asarray(history.terminated), np.asarray(history.truncated)
    episode, logp, update = (np.asarray(a) for a in (history.episode, history.extra["logp"], history.extra["update"]))
    t = np.arange(steps)
    np.testing.assert_array_equal(update, np.broadcast_to(t // SMALL.rollout_steps, (2, steps)))
    # Dark Room never terminates; the time limit truncates every 20th step, across update boundaries.
    assert not terminated.any()
    np.testing.assert_array_equal(truncated, np.broadcast_to(t % 20 == 19, (2, steps)))
    np.testing.assert_array_equal(episode[:, 0], 0)
    np.testing.assert_array_equal(np.diff(episode, axis=1), truncated[:, :-1].astype(np.int32))
    assert ((0 <= action) & (action < 5)).all()
    assert np.isfinite(logp).all() and (logp <= 0).all()

    # obs[t] is what the agent saw when it chose action[t]: episodes start in the centre, and
    # inside an episode reward[t] is 1 exactly when obs[t + 1] is the goal cell.
    starts = np.concatenate([np.ones((2, 1), bool), truncated[:, :-1]], axis=1)
    assert (obs[starts] == 4 * 9 + 4).all()
    goal_cells = np.asarray(goals[:, 0] * 9 + goals[:, 1])[:, None]
    inside = ~truncated[:, :-1]
    np.testing.assert_array_equal(reward[:, :-1][inside], (obs[:, 1:] == goal_cells)[inside].astype(np.float32))


def test_same_key_gives_identical_history_bytes(dark_room, small):
    _, run = small
    params = stack(dark_room.params_for_goal(jnp.array(GOAL)), 2)
    keys = jax.random.split(jax.random.key(3), 2)
    (first, agent1), (second, agent2) = run(keys, params), run(keys, params)
    for a, b in zip(jax.tree.leaves((first, agent1)), jax.tree.leaves((second, agent2)), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    other, _ = run(jax.random.split(jax.random.key(4), 2), params)
    assert np.asarray(other.action).tobytes() != np.asarray(first.action).tobytes()


def test_continuous_actions_on_pendulum():
    env, env_params = gymnax.make("Pendulum-v1")
    cfg = PPOConfig(updates=3, rollout_steps=100, minibatches=4, epochs=2, learning_rate=1e-3)
    learner = make_train(env, cfg)
    history, agents = jax.jit(jax.vmap(learner.train))(jax.random.split(jax.random.key(0), 2), stack(env_params, 2))

    steps = cfg.updates * cfg.rollout_steps
    assert history.action.shape == (2, steps, 1) and history.action.dtype == jnp.float32
    assert history.obs.shape == (2, steps, 3) and history.obs.dtype == jnp.float32
    action, logp = np.asarray(history.action), np.asarray(history.extra["logp"])
    assert ((-2.0 <= action) & (action <= 2.0)).all()
    assert np.isfinite(logp).all() and np.isfinite(np.asarray(history.reward)).all()
    # Pendulum's 200-step limit truncates inside the 300-step history, and the next episode begins.
    np.testing.assert_array_equal(np.asarray(history.truncated)[0].nonzero()[0], [199])
    assert np.asarray(history.episode)[0, -1] == 1

    agent = jax.tree.map(lambda a: a[0], agents)
    greedy = learner.act(agent, history.obs[0, 0], env.default_params, jax.random.key(0))
    assert greedy.shape == (1,) and greedy.dtype == jnp.float32 and bool((jnp.abs(greedy) <= 2.0).all())


def test_unavailable_bandit_arms_are_never_pulled():
    env = BernoulliBandit(max_arms=6)
    params = env.params_for(means=jnp.array([0.1, 0.9, 0.2, 1.0, 1.0, 1.0]), num_arms=3)
    cfg = PPOConfig(updates=4, rollout_steps=40, minibatches=2, epochs=2)
    learner = make_train(env, cfg)
    history, agent = jax.jit(learner.train)(jax.random.key(0), params)

    action = np.asarray(history.action)
    assert (action < 3).all()
    assert np.isfinite(np.asarray(history.extra["logp"])).all()
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(agent))
    # Every pull is its own episode.
    np.testing.assert_array_equal(np.asarray(history.episode), np.arange(learner.steps))


def test_minibatches_must_divide_the_rollout(dark_room):
    with pytest.raises(ValueError, match="minibatches"):
        make_train(dark_room, PPOConfig(rollout_steps=30, minibatches=4))
