from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.collect.noise_curriculum import epsilon_schedule, make_noise_curriculum
from icrl.collect.sources import make_source
from icrl.collect.stage import plan
from icrl.collect.units import collect_unit
from icrl.config import DarkRoomConfig, NoiseCurriculumConfig, QLearningConfig, TasksConfig
from icrl.envs import make_family


def test_epsilon_anneals_linearly_to_the_floor_at_the_fraction():
    eps = np.asarray(epsilon_schedule(jnp.arange(10), episodes=10, start=1.0, floor=0.5, floor_fraction=0.8))
    assert eps[0] == 1.0
    np.testing.assert_allclose(eps[:9], np.maximum(1 - 0.5 * np.arange(9) / 8, 0.5), rtol=1e-6)
    assert (eps[8:] == 0.5).all()


def test_the_exponential_schedule_falls_faster_early_and_meets_the_floor():
    kw = {"episodes": 10, "start": 0.9, "floor": 0.1, "floor_fraction": 0.8}
    linear = np.asarray(epsilon_schedule(jnp.arange(10), kind="linear", **kw))
    exponential = np.asarray(epsilon_schedule(jnp.arange(10), kind="exponential", **kw))
    assert exponential[0] == pytest.approx(0.9) and (exponential[8:] == np.float32(0.1)).all()
    assert (exponential[1:8] < linear[1:8]).all() and (np.diff(exponential) <= 0).all()


@pytest.fixture(scope="module")
def family():
    return make_family(DarkRoomConfig(), TasksConfig(heldout=16, split_seed=0))


def test_the_curriculum_records_whole_histories_and_improves(family):
    learner = make_noise_curriculum(family.env, NoiseCurriculumConfig(episodes=30, epsilon_floor=0.5, floor_fraction=0.9))
    tasks = family.train * 2
    h, _ = jax.jit(jax.vmap(learner.train))(jax.random.split(jax.random.key(0), len(tasks)), family.params_for(tasks))
    assert h.obs.shape == (len(tasks), 600)
    assert h.reward.dtype == jnp.float32
    np.testing.assert_array_equal(h.episode[0], np.repeat(np.arange(30), 20))
    assert int(h.truncated.sum()) == len(tasks) * 30 and not bool(h.terminated.any())
    returns = np.asarray(h.reward).reshape(len(tasks), 30, 20).sum(-1).mean(0)
    assert returns[:3].mean() < 1.5 < 5.0 < returns[-3:].mean()  # random start, near π_data at the end
    assert float(h.extra["epsilon"][0, 0]) == 1.0 and float(h.extra["epsilon"][0, -1]) == 0.5
    expert = np.asarray(h.extra["expert_action"])
    # at ε = 0.5 the action is the expert's about 0.5 + 0.5/5 of the time
    late = np.asarray(h.action)[:, -100:] == expert[:, -100:]
    assert 0.5 < late.mean() < 0.7


def test_a_learner_can_demonstrate_for_the_curriculum(family):
    teacher = QLearningConfig(steps=3000)
    cfg = NoiseCurriculumConfig(demonstrator=teacher, episodes=6, epsilon_start=0.0, epsilon_floor=0.0)
    learner = make_source(family.env, cfg)
    tasks = family.train[:4]
    h, _ = jax.jit(jax.vmap(learner.train))(jax.random.split(jax.random.key(1), len(tasks)), family.params_for(tasks))
    returns = np.asarray(h.reward).sum(-1) / 6
    optimal = np.asarray(jax.vmap(family.env.optimal_return)(family.params_for(tasks)))
    assert (returns >= 0.9 * optimal).all()  # ε = 0: the trained Q-learner's greedy policy
    np.testing.assert_array_equal(h.action, h.extra["expert_action"])


def test_obs_is_what_the_agent_saw_when_it_acted(family):
    learner = make_noise_curriculum(family.env, NoiseCurriculumConfig(episodes=2, epsilon_floor=0.0, floor_fraction=0.01))
    h, _ = learner.train(jax.random.key(0), family.env.params_for_goal(jnp.array([4, 6])))
    assert int(h.obs[0]) == 40 and int(h.obs[20]) == 40  # each episode starts in the centre
    # the oracle (ε = 0 after the first episode) walks right twice, then waits on the goal
    assert h.obs[20:23].tolist() == [40, 41, 42] and h.reward[20:23].tolist() == [0.0, 1.0, 1.0]


def test_units_cover_only_training_tasks(tiny):
    cfg = tiny()
    fam = make_family(cfg.env, cfg.tasks)
    jobs = plan(cfg, Path("unused"))
    ids = [t.task_id for job in jobs for t in job.tasks]
    assert set(ids) == {t.task_id for t in fam.train}
    assert not set(ids) & {t.task_id for t in fam.heldout}
    assert len(ids) == len(fam.train) * cfg.collect.histories_per_task
    assert [job.index for job in jobs] == list(range(len(jobs)))
    history_ids = [h for job in jobs for h in job.history_ids]
    assert history_ids == list(range(len(history_ids)))


def test_a_unit_is_deterministic_and_independent_of_its_neighbours(tiny):
    cfg = tiny()
    jobs = plan(cfg, Path("unused"))
    a, b = collect_unit(jobs[1]), collect_unit(jobs[1])
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    other = collect_unit(jobs[0])
    assert not np.array_equal(other["action"][: len(a["action"])], a["action"][: len(other["action"])])
