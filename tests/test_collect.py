from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.collect.noise_curriculum import linear_epsilon, make_noise_curriculum
from icrl.collect.stage import plan
from icrl.collect.units import collect_unit
from icrl.envs import make_family


def test_epsilon_anneals_linearly_to_the_floor_at_the_fraction():
    eps = np.asarray(linear_epsilon(jnp.arange(10), episodes=10, floor=0.5, floor_fraction=0.8))
    assert eps[0] == 1.0
    np.testing.assert_allclose(eps[:9], np.maximum(1 - 0.5 * np.arange(9) / 8, 0.5), rtol=1e-6)
    assert (eps[8:] == 0.5).all()


@pytest.fixture(scope="module")
def family():
    return make_family("DarkRoom-v0", {"size": 9, "episode_length": 20}, heldout=16, split_seed=0)


def test_the_curriculum_records_whole_histories_and_improves(family):
    collect = make_noise_curriculum(family.env, episodes=30, epsilon_floor=0.5, floor_fraction=0.9)
    tasks = family.train * 2
    h = jax.jit(jax.vmap(collect))(jax.random.split(jax.random.key(0), len(tasks)), family.params_for(tasks))
    assert h.obs.shape == (len(tasks), 600)
    assert h.reward.dtype == jnp.float32
    np.testing.assert_array_equal(h.episode[0], np.repeat(np.arange(30), 20))
    assert int(h.truncated.sum()) == len(tasks) * 30 and not bool(h.terminated.any())
    returns = np.asarray(h.reward).reshape(len(tasks), 30, 20).sum(-1).mean(0)
    assert returns[:3].mean() < 1.5 < 5.0 < returns[-3:].mean()  # random start, near π_data at the end
    assert float(h.epsilon[0, 0]) == 1.0 and float(h.epsilon[0, -1]) == 0.5


def test_obs_is_what_the_agent_saw_when_it_acted(family):
    collect = make_noise_curriculum(family.env, episodes=2, epsilon_floor=0.0, floor_fraction=0.01)
    h = collect(jax.random.key(0), family.env.params_for_goal(jnp.array([4, 6])))
    assert int(h.obs[0]) == 40 and int(h.obs[20]) == 40  # each episode starts in the centre
    # the oracle (ε = 0 after the first episode) walks right twice, then waits on the goal
    assert h.obs[20:23].tolist() == [40, 41, 42] and h.reward[20:23].tolist() == [0.0, 1.0, 1.0]


def test_units_cover_only_training_tasks(tiny):
    cfg = tiny()
    fam = make_family(cfg.env.id, cfg.env.settings(), heldout=cfg.tasks.heldout, split_seed=cfg.tasks.split_seed)
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
