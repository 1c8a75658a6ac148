import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.collect.bandit_algorithms import make_linucb, make_thompson, make_ucb
from icrl.config import LinUCBConfig, ThompsonConfig, UCBConfig
from icrl.envs import Task
from icrl.envs.bandits import BernoulliBandit, ContextualBandit, bernoulli_tasks, contextual_tasks

ARMS, PULLS, SEEDS, TASKS = 10, 300, 4, 64
DIM = 4


def stacked(env, tasks):
    """Returns the env params of the task dicts `tasks`, stacked along a leading axis."""
    return jax.vmap(env.params_for)(**{name: jnp.asarray([t[name] for t in tasks]) for name in tasks[0]})


def keys(seed, n):
    return jax.random.split(jax.random.key(seed), n * SEEDS).reshape(n, SEEDS)


def batched(learner):
    """Returns jit(train) over [tasks, seeds] keys and [tasks] params."""
    return jax.jit(jax.vmap(jax.vmap(learner.train, in_axes=(0, None)), in_axes=(0, 0)))


def bernoulli_regret(params, actions):
    """Returns the cumulative regret of every (task, seed) history: Σ_t best mean - mean of the pulled arm."""
    means = np.where(np.asarray(params.num_arms)[:, None] > np.arange(ARMS), np.asarray(params.means), -np.inf)
    chosen = np.take_along_axis(means, np.asarray(actions).reshape(len(means), -1), axis=1).reshape(actions.shape)
    return (means.max(axis=1)[:, None, None] - chosen).sum(axis=-1)


def contextual_regret(params, contexts, actions):
    """Returns the cumulative expected regret of every (task, seed) history, from the recorded contexts."""
    values = np.einsum("nkd,nstd->nstk", np.asarray(params.theta, np.float64), np.asarray(contexts, np.float64))
    values = np.where(np.asarray(params.num_arms)[:, None, None, None] > np.arange(ARMS), values, -np.inf)
    chosen = np.take_along_axis(values, np.asarray(actions)[..., None], axis=-1)[..., 0]
    return (values.max(axis=-1) - chosen).sum(axis=-1)


def uniform_actions(key, params, shape):
    """Returns uniformly random available arms, int32 of `shape` = [tasks, seeds, pulls]."""
    mask = jnp.arange(ARMS)[None, :] < params.num_arms[:, None]
    logits = jnp.where(mask, 0.0, -jnp.inf)[:, None, None, :]
    return jax.random.categorical(key, jnp.broadcast_to(logits, (*shape, ARMS)))


# --------------------------------------------------------------------------------------
# Environments


@pytest.fixture(scope="module")
def bandit():
    return BernoulliBandit(max_arms=5)


def test_bernoulli_mask_and_unavailable_arms_pay_nothing(bandit):
    params = bandit.params_for(means=[0.2, 0.4, 1.0, 1.0, 1.0], num_arms=3)
    assert bandit.action_mask(params).tolist() == [True, True, True, False, False]
    _, state = bandit.reset(jax.random.key(0), params)
    pull = jax.jit(jax.vmap(bandit.step, in_axes=(0, None, None, None)))
    step_keys = jax.random.split(jax.random.key(1), 200)
    assert float(pull(step_keys, state, 2, params)[2].min()) == 1.0
    for arm in (3, 4):
        assert float(pull(step_keys, state, arm, params)[2].max()) == 0.0
    assert int(bandit.oracle_action(state, params)) == 2
    assert float(bandit.optimal_return(params)) == 1.0
    assert float(bandit.expected_reward(state, params, jnp.int32(3))) == 0.0
    # The oracle ignores a better arm the task does not offer.
    params = bandit.params_for(means=[0.1, 0.7, 0.3, 0.9, 0.95], num_arms=3)
    assert int(bandit.oracle_action(state, params)) == 1
    assert float(bandit.optimal_return(params)) == pytest.approx(0.7)


def test_every_bernoulli_pull_is_a_one_step_episode(bandit):
    params = bandit.params_for(means=[0.5] * 5, num_arms=5)
    obs, state = bandit.reset(jax.random.key(0), params)
    assert obs.dtype == jnp.int32 and int(obs) == 0
    assert bandit.observation_space(params).n == 1 and bandit.action_space(params).n == 5
    for t in range(3):
        obs, state, reward, terminated, truncated, _ = bandit.step(jax.random.key(t), state, t, params)
        assert bool(truncated) and not bool(terminated)
        assert reward.dtype == jnp.float32 and int(obs) == 0 and int(state.time) == 0  # auto-reset


def test_bernoulli_reward_frequencies_match_the_means(bandit):
    means = np.array([0.1, 0.3, 0.5, 0.8, 0.95], np.float32)
    params = bandit.params_for(means=means, num_arms=5)
    _, state = bandit.reset(jax.random.key(0), params)

    def frequencies(step_keys):
        pulls = jax.vmap(lambda arm: jax.vmap(lambda k: bandit.step(k, state, arm, params)[2])(step_keys))
        return pulls(jnp.arange(5)).mean(axis=1)

    freq = jax.jit(frequencies)(jax.random.split(jax.random.key(1), 4000))
    np.testing.assert_allclose(np.asarray(freq), means, atol=0.03)


def test_uniform_tasks():
    tasks = bernoulli_tasks(300, min_arms=4, max_arms=20, distribution="uniform", seed=0)
    counts = np.array([t["num_arms"] for t in tasks])
    assert counts.min() == 4 and counts.max() == 20
    means = [m for t in tasks for m in t["means"][: t["num_arms"]]]
    assert 0.0 <= min(means) and max(means) <= 1.0 and np.mean(means) == pytest.approx(0.5, abs=0.03)
    assert all(len(t["means"]) == 20 and not any(t["means"][t["num_arms"]:]) for t in tasks)


def high_arms(task):
    """Returns 'odd' or 'even' when exactly those arms of `task` are drawn high (>= 0.5), else None."""
    means = np.asarray(task["means"][: task["num_arms"]])
    high = means >= 0.5
    odd = np.arange(len(means)) % 2 == 1
    return "odd" if np.array_equal(high, odd) else "even" if np.array_equal(high, ~odd) else None


def test_adversarial_tasks_put_the_high_arms_on_odd_indices_in_training_and_even_ones_held_out():
    train = bernoulli_tasks(1000, min_arms=4, max_arms=20, distribution="adversarial", heldout=False, seed=1)
    held = bernoulli_tasks(200, min_arms=4, max_arms=20, distribution="adversarial", heldout=True, seed=1)
    sides = [high_arms(t) for t in train]
    assert None not in sides
    assert 0.93 <= sides.count("odd") / len(sides) <= 0.97
    assert all(high_arms(t) == "even" for t in held)


def test_task_parameters_survive_json_and_float32():
    env = BernoulliBandit(max_arms=12)
    tasks = bernoulli_tasks(20, min_arms=2, max_arms=12, distribution="adversarial", seed=3)
    again = json.loads(json.dumps(tasks))
    assert again == tasks
    assert [Task(env.name, t).task_id for t in again] == [Task(env.name, t).task_id for t in tasks]
    means = np.asarray(stacked(env, again).means)
    assert np.array_equal(means, np.asarray([t["means"] for t in tasks], np.float32))
    ctx = contextual_tasks(5, min_arms=2, max_arms=6, context_dim=3, seed=0)
    assert json.loads(json.dumps(ctx)) == ctx


def test_task_generation_is_seeded_and_prefix_stable():
    def make(n, **kw):
        return bernoulli_tasks(n, min_arms=2, max_arms=8, distribution="uniform", **kw)

    assert make(10, seed=0)[:4] == make(4, seed=0)
    assert make(4, seed=0) != make(4, seed=1)
    assert make(4, seed=0) != make(4, seed=0, heldout=True)
    assert contextual_tasks(6, min_arms=2, max_arms=4, context_dim=2, seed=5)[:3] == contextual_tasks(
        3, min_arms=2, max_arms=4, context_dim=2, seed=5
    )


def test_bad_task_arguments_raise():
    with pytest.raises(ValueError, match="distribution"):
        bernoulli_tasks(2, min_arms=2, max_arms=4, distribution="gaussian", seed=0)
    with pytest.raises(ValueError, match="min_arms"):
        bernoulli_tasks(2, min_arms=5, max_arms=4, distribution="uniform", seed=0)
    with pytest.raises(ValueError, match="means"):
        BernoulliBandit(max_arms=4).params_for(means=[0.5, 0.5], num_arms=2)
    with pytest.raises(ValueError, match="theta"):
        ContextualBandit(max_arms=4, context_dim=2).params_for(theta=np.zeros((4, 3)), num_arms=2)


def test_contextual_bandit_rewards_have_mean_x_dot_theta():
    env = ContextualBandit(max_arms=4, context_dim=3, noise=0.5)
    (task,) = contextual_tasks(1, min_arms=3, max_arms=3, context_dim=3, seed=0)
    theta = np.zeros((4, 3), np.float32)
    theta[:3] = task["theta"][:3]
    params = env.params_for(theta=theta, num_arms=3)
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (3,) and obs.dtype == jnp.float32 and np.array_equal(obs, state.context)
    values = theta[:3] @ np.asarray(obs)

    def pull_each_arm(step_keys):
        return jax.vmap(lambda arm: jax.vmap(lambda k: env.step(k, state, arm, params)[2])(step_keys))(jnp.arange(4))

    rewards = jax.jit(pull_each_arm)(jax.random.split(jax.random.key(1), 4000))
    assert rewards.dtype == jnp.float32
    # Means within ~5 standard errors of x·theta; the unavailable arm pays the worst available arm, noisily.
    np.testing.assert_allclose(np.asarray(rewards.mean(axis=1)), [*values, values.min()], atol=0.04)
    np.testing.assert_allclose(np.asarray(rewards.std(axis=1)), 0.5, atol=0.03)
    np.testing.assert_allclose(
        [float(env.expected_reward(state, params, jnp.int32(a))) for a in range(4)], [*values, values.min()], rtol=1e-5
    )
    assert int(env.oracle_action(state, params)) == int(np.argmax(values))
    assert float(env.best_expected_reward(state, params)) == pytest.approx(values.max(), rel=1e-5)

    # Each pull is a one-step episode that shows a fresh context.
    next_obs, state2, _, terminated, truncated, _ = env.step(jax.random.key(2), state, 0, params)
    assert bool(truncated) and not bool(terminated)
    assert not np.allclose(next_obs, obs) and np.array_equal(next_obs, state2.context)


def test_contextual_tasks_scale_theta_to_unit_reward_variance():
    tasks = contextual_tasks(200, min_arms=2, max_arms=6, context_dim=4, seed=0)
    assert {t["num_arms"] for t in tasks} == {2, 3, 4, 5, 6}
    theta = np.asarray([t["theta"] for t in tasks])
    assert theta.shape == (200, 6, 4)
    available = np.arange(6)[None, :] < np.array([t["num_arms"] for t in tasks])[:, None]
    assert not theta[~available].any()
    assert theta[available].var() == pytest.approx(1 / 4, rel=0.1)


# --------------------------------------------------------------------------------------
# Learners


@pytest.fixture(scope="module")
def arms_env():
    return BernoulliBandit(max_arms=ARMS)


@pytest.fixture(scope="module")
def bernoulli_runs(arms_env):
    """Thompson and UCB on the same 64 ten-armed uniform bandits × 4 seeds, and their compiled trainers."""
    params = stacked(arms_env, bernoulli_tasks(TASKS, min_arms=ARMS, max_arms=ARMS, distribution="uniform", seed=0))
    runs = {}
    for name, learner in (
        ("thompson", make_thompson(arms_env, ThompsonConfig(pulls=PULLS))),
        ("ucb", make_ucb(arms_env, UCBConfig(pulls=PULLS))),
    ):
        train = batched(learner)
        history, agent = jax.block_until_ready(train(keys(0, TASKS), params))
        runs[name] = (learner, train, history, agent)
    return params, runs


@pytest.fixture(scope="module")
def contextual_run():
    """LinUCB on 64 contextual bandits with 4–10 arms × 4 seeds."""
    env = ContextualBandit(max_arms=ARMS, context_dim=DIM, noise=0.1)
    params = stacked(env, contextual_tasks(TASKS, min_arms=4, max_arms=ARMS, context_dim=DIM, seed=0))
    learner = make_linucb(env, LinUCBConfig(pulls=PULLS))
    train = batched(learner)
    history, agent = jax.block_until_ready(train(keys(0, TASKS), params))
    return env, params, learner, train, history, agent


def test_thompson_beats_ucb_and_both_beat_random(bernoulli_runs):
    params, runs = bernoulli_runs
    regret = {name: bernoulli_regret(params, run[2].action).mean() for name, run in runs.items()}
    random = bernoulli_regret(params, uniform_actions(jax.random.key(1), params, (TASKS, SEEDS, PULLS))).mean()
    print(f"cumulative regret over {PULLS} pulls: {regret} random={random:.1f}")
    assert regret["thompson"] < regret["ucb"] < random
    assert regret["thompson"] < 0.5 * random


def test_linucb_beats_random_by_a_wide_margin(contextual_run):
    env, params, _, _, history, _ = contextual_run
    regret = contextual_regret(params, history.obs, history.action).mean()
    random = contextual_regret(
        params, history.obs, uniform_actions(jax.random.key(1), params, (TASKS, SEEDS, PULLS))
    ).mean()
    print(f"LinUCB cumulative expected regret over {PULLS} pulls: {regret:.1f} random={random:.1f}")
    assert regret < 0.25 * random


def test_histories_record_every_pull_as_an_episode(bernoulli_runs, contextual_run):
    _, runs = bernoulli_runs
    histories = [(run[0], run[2]) for run in runs.values()] + [(contextual_run[2], contextual_run[4])]
    for learner, history in histories:
        assert learner.steps == PULLS and learner.columns == () and history.extra == {}
        assert history.action.shape == (TASKS, SEEDS, PULLS) and history.action.dtype == jnp.int32
        assert history.reward.dtype == jnp.float32 and history.episode.dtype == jnp.int32
        assert bool(history.truncated.all()) and not bool(history.terminated.any())
        assert np.array_equal(history.episode, np.broadcast_to(np.arange(PULLS), (TASKS, SEEDS, PULLS)))
    assert contextual_run[4].obs.shape == (TASKS, SEEDS, PULLS, DIM)


def test_ucb_tries_every_arm_once_first(bernoulli_runs):
    history = bernoulli_runs[1]["ucb"][2]
    assert np.array_equal(history.action[:, :, :ARMS], np.broadcast_to(np.arange(ARMS), (TASKS, SEEDS, ARMS)))


def test_same_key_same_bytes(bernoulli_runs, contextual_run):
    params, runs = bernoulli_runs
    for _, train, history, _ in runs.values():
        again, _ = train(keys(0, TASKS), params)
        for a, b in zip(jax.tree.leaves(history), jax.tree.leaves(again)):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        other, _ = train(keys(1, TASKS), params)
        assert not np.array_equal(history.action, other.action)
    _, cparams, _, train, history, _ = contextual_run
    again, _ = train(keys(0, TASKS), cparams)
    for a, b in zip(jax.tree.leaves(history), jax.tree.leaves(again)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def _greedy(learner, agent, obs, params):
    """Returns the final agents' greedy arms, [tasks, seeds]."""
    per_seed = jax.vmap(learner.act, in_axes=(0, 0, None, 0))
    return jax.vmap(per_seed)(agent, obs, params, keys(3, TASKS))


def test_arms_beyond_the_task_are_never_pulled(arms_env, bernoulli_runs, contextual_run):
    # Same shapes as the acceptance runs, so the compiled trainers are reused.
    tasks = bernoulli_tasks(TASKS, min_arms=2, max_arms=ARMS, distribution="adversarial", seed=4)
    params = stacked(arms_env, tasks)
    num_arms = np.asarray(params.num_arms)[:, None, None]
    for learner, train, _, _ in bernoulli_runs[1].values():
        history, agent = train(keys(2, TASKS), params)
        assert (np.asarray(history.action) < num_arms).all()
        greedy = _greedy(learner, agent, history.obs[:, :, -1], params)
        assert (np.asarray(greedy) < num_arms[..., 0]).all()
    _, cparams, learner, _, history, agent = contextual_run
    cnum = np.asarray(cparams.num_arms)[:, None, None]
    assert len(np.unique(cnum)) > 1 and (np.asarray(history.action) < cnum).all()
    greedy = _greedy(learner, agent, history.obs[:, :, -1], cparams)
    assert (np.asarray(greedy) < cnum[..., 0]).all()


def test_thompson_ends_up_preferring_the_best_arm(arms_env, bernoulli_runs):
    params, runs = bernoulli_runs
    learner, _, history, agent = runs["thompson"]
    greedy = _greedy(learner, agent, history.obs[:, :, -1], params)
    best = np.asarray(jax.vmap(arms_env.oracle_action, in_axes=(None, 0))(None, params))
    assert (np.asarray(greedy) == best[:, None]).mean() > 0.6
    pulls = np.asarray(agent.alpha + agent.beta - 2.0).sum(axis=-1)
    assert np.array_equal(pulls, np.full((TASKS, SEEDS), PULLS, np.float32))


def test_a_bernoulli_history_does_not_depend_on_its_batch(bernoulli_runs):
    # Bernoulli histories are bit-for-bit the same alone or in a batch. (Contextual rewards can
    # differ in the last bit: XLA sums x·theta in another order when vectorised.)
    params, runs = bernoulli_runs
    learner, _, history, _ = runs["ucb"]
    task, seed = 5, 2
    alone, _ = jax.jit(learner.train)(keys(0, TASKS)[task, seed], jax.tree.map(lambda x: x[task], params))
    for a, b in zip(jax.tree.leaves(history), jax.tree.leaves(alone)):
        assert np.asarray(a)[task, seed].tobytes() == np.asarray(b).tobytes()
