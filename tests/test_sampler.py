import numpy as np
import pytest

from icrl.datasets.sampler import WindowSampler


def _columns(lengths, episode_length=3):
    history = np.concatenate([np.full(n, h) for h, n in enumerate(lengths)])
    step = np.concatenate([np.arange(n) for n in lengths])
    return {
        "history_id": history,
        "episode": step // episode_length,
        "obs": (history * 1000 + step).astype(np.int32),  # encodes where each row came from
        "action": (step % 4).astype(np.int32),
        "reward": (step % 2).astype(np.float32),
    }


def test_windows_stay_inside_one_history_and_are_consecutive():
    sampler = WindowSampler(_columns([10, 4, 7]), context_length=5, num_actions=4, seed=0)
    assert sampler.num_windows == 6 + 0 + 3
    for index in range(20):
        obs = sampler.batch(8, index)["obs"]
        history, step = obs // 1000, obs % 1000
        assert (history == history[:, :1]).all()
        assert (np.diff(step, axis=1) == 1).all()
        assert (history != 1).all()  # the 4-step history holds no 5-step window


def test_previous_action_and_reward_run_across_episodes_and_restart_with_each_history():
    sampler = WindowSampler(_columns([12, 12]), context_length=12, num_actions=4, seed=0)
    batch = sampler.batch(1, 0)
    step = batch["obs"][0] % 1000
    first = step == 0  # only a history's first step has no previous one; episodes start at 0, 3, 6, 9
    assert first.sum() == 1
    assert (batch["prev_action"][0][first] == 4).all() and (batch["prev_reward"][0][first] == 0).all()
    np.testing.assert_array_equal(batch["prev_action"][0][~first], ((step - 1) % 4)[~first])
    np.testing.assert_array_equal(batch["prev_reward"][0][~first], ((step - 1) % 2)[~first])
    np.testing.assert_array_equal(batch["action"][0], step % 4)


def test_a_window_starting_mid_episode_sees_the_real_previous_step():
    sampler = WindowSampler(_columns([8], episode_length=8), context_length=4, num_actions=4, seed=3)
    for index in range(10):
        batch = sampler.batch(4, index)
        step = batch["obs"][:, 0] % 1000
        mid = step > 0
        np.testing.assert_array_equal(batch["prev_action"][mid, 0], (step[mid] - 1) % 4)


def test_batches_depend_only_on_seed_and_index():
    a = WindowSampler(_columns([30, 30]), context_length=5, num_actions=4, seed=1)
    b = WindowSampler(_columns([30, 30]), context_length=5, num_actions=4, seed=1)
    np.testing.assert_array_equal(a.batch(16, 7)["obs"], b.batch(16, 7)["obs"])
    assert not np.array_equal(a.batch(16, 7)["obs"], a.batch(16, 8)["obs"])


def test_too_long_a_context_is_refused():
    with pytest.raises(ValueError, match="no history holds 50 transitions"):
        WindowSampler(_columns([10, 20]), context_length=50, num_actions=4, seed=0)
