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


def test_keeping_every_kth_episode_skips_the_others_and_links_kept_episodes():
    columns = _columns([30, 30], episode_length=3)  # 10 episodes of 3 steps per history
    sampler = WindowSampler(columns, context_length=6, num_actions=4, seed=0, every=3)
    assert sampler.num_windows == 2 * (12 - 6 + 1)  # episodes 0, 3, 6, 9 kept: 12 steps each
    for index in range(10):
        batch = sampler.batch(8, index)
        step = batch["obs"] % 1000
        assert ((step // 3) % 3 == 0).all()
        for row in range(8):
            for t in range(1, 6):
                if step[row, t] % 3 == 0:  # the first step of a kept episode follows the last kept one
                    assert step[row, t - 1] == step[row, t] - 7
                    assert batch["prev_action"][row, t] == (step[row, t] - 7) % 4


def test_subsampled_windows_start_with_the_real_previous_kept_step():
    sampler = WindowSampler(_columns([30], episode_length=3), context_length=3, num_actions=4, seed=2, every=2)
    for index in range(10):
        batch = sampler.batch(4, index)
        step = batch["obs"][:, 0] % 1000
        later = step > 0
        previous = np.where(step % 3 == 0, step - 4, step - 1)  # 3 steps of the skipped episode lie between
        np.testing.assert_array_equal(batch["prev_action"][later, 0], previous[later] % 4)
        assert (batch["prev_action"][~later, 0] == 4).all()


def test_query_batches_pair_a_context_with_a_labelled_step_of_the_same_history():
    columns = _columns([20, 20, 20]) | {"expert_action": (np.arange(60) % 3).astype(np.int32)}
    sampler = WindowSampler(columns, context_length=5, num_actions=4, seed=0)
    batch = sampler.query_batch(16, 0)
    assert batch["query_obs"].shape == (16,) and batch["obs"].shape == (16, 5)
    np.testing.assert_array_equal(batch["query_obs"] // 1000, batch["obs"][:, 0] // 1000)
    rows = (batch["query_obs"] // 1000) * 20 + batch["query_obs"] % 1000
    np.testing.assert_array_equal(batch["query_action"], rows % 3)
    with pytest.raises(ValueError, match="no 'logp' column"):
        sampler.query_batch(2, 0, label="logp")


def test_prefetched_batches_equal_direct_ones_and_errors_reach_the_consumer():
    import threading

    sampler = WindowSampler(_columns([40, 40]), context_length=5, num_actions=4, seed=4)
    got = list(sampler.batches(8, 3, 9, prefetch=2))
    assert len(got) == 6
    for index, batch in zip(range(3, 9), got):
        for name, values in sampler.batch(8, index).items():
            np.testing.assert_array_equal(batch[name], values)
    before = threading.active_count()
    stream = sampler.batches(8, 0, 1000, prefetch=2)
    next(stream)
    stream.close()  # stops the producer thread
    assert threading.active_count() == before

    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    sampler.store.read = broken
    with pytest.raises(RuntimeError, match="disk gone"):
        list(sampler.batches(8, 0, 5))


def test_every_format_gives_the_same_batches(tiny_dataset):
    from icrl.datasets import Dataset

    dataset = Dataset(tiny_dataset[1])
    batches = {}
    for fmt in dataset.formats:
        for every in (1, 2):  # windows start mid-history too: 48-step histories, 8-step windows
            sampler = dataset.sampler(context_length=8, seed=5, fmt=fmt, every=every)
            batches.setdefault(fmt, []).extend([sampler.batch(16, 3), sampler.query_batch(4, 1)])
    assert (batches["ipc"][0]["prev_action"][:, 0] != 5).any()  # some windows do not start a history
    for fmt in ("parquet", "hdf5"):
        for a, b in zip(batches["ipc"], batches[fmt]):
            assert a.keys() == b.keys()
            for name in a:
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{fmt} {name}")


def test_split_and_task_filters_choose_the_histories(tiny_dataset):
    from icrl.datasets import Dataset, DatasetError

    dataset = Dataset(tiny_dataset[1])
    task = dataset.histories["task_id"][0].as_py()
    only = dataset.sampler(context_length=24, seed=0, tasks=[task])
    per_history = int(dataset.histories["steps"][0].as_py()) - 24 + 1
    assert only.num_windows == per_history * dataset.histories["task_id"].to_pylist().count(task)
    assert set(only.store.task_id[only._histories]) == {task}
    with pytest.raises(ValueError, match="no histories selected"):
        dataset.sampler(context_length=24, seed=0, split="heldout")  # held-out tasks never have rows
    with pytest.raises(DatasetError, match="no task 'nope'"):
        dataset.sampler(context_length=24, seed=0, tasks=["nope"])
