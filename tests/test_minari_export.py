"""Exporting a real (tiny) dataset to Minari and loading it back with minari.load_dataset."""

import os

import numpy as np
import pytest

from icrl.datasets import Dataset, DatasetError
from icrl.datasets.schema import numpy_column

minari = pytest.importorskip("minari")

# Minari nags about metadata an env-less export cannot give (no Gymnasium env spec, no eval env)
# or icrl does not know (author, author e-mail, code permalink).

MINARI_ID = "icrl/tiny-eps-v0"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from icrl.collect.stage import plan
    from icrl.collect.units import run_unit
    from icrl.config import parse_config
    from icrl.datasets.build import build_dataset
    from icrl.datasets.minari_export import export_minari
    from icrl.envs import make_family

    from conftest import tiny_data

    root = tmp_path_factory.mktemp("minari")
    cfg = parse_config(tiny_data(root, collect={"histories_per_task": 1}), source="test")
    results = [run_unit(job) for job in plan(cfg, root)]
    family = make_family(cfg.env, cfg.tasks)
    out = root / "tiny-v1"
    build_dataset(
        out, shard_paths=[root / "shards" / r.path for r in results], tasks=list(family.tasks), name="tiny", version=1,
        fingerprint="f" * 64, source=cfg.collect.fingerprint_fields(), env=cfg.env.model_dump(), license="CC0-1.0",
    )
    dataset = Dataset(out)
    minari_root = root / "minari-datasets"
    before = os.environ.get("MINARI_DATASETS_PATH")
    folder = export_minari(dataset, MINARI_ID, root=minari_root)
    assert os.environ.get("MINARI_DATASETS_PATH") == before  # only set for the call
    return dataset, minari_root, folder, export_minari


@pytest.fixture
def loaded(exported, monkeypatch):
    dataset, minari_root, _, _ = exported
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return dataset, minari.load_dataset(MINARI_ID)


def test_the_export_lands_in_the_minari_folder(exported):
    _, minari_root, folder, _ = exported
    assert folder == minari_root / "icrl" / "tiny-eps-v0"
    assert (folder / "data" / "metadata.json").is_file()


def test_every_step_and_every_episode_survives(loaded):
    dataset, mds = loaded
    rows = dataset.table()
    pairs = set(zip(numpy_column(rows["history_id"]).tolist(), numpy_column(rows["episode"]).tolist()))
    assert mds.total_steps == rows.num_rows == dataset.manifest["stats"]["rows"]
    assert mds.total_episodes == len(pairs)
    metadata = mds.storage.metadata
    assert metadata["algorithm_name"] == dataset.manifest["source"]["source"]["algorithm"]
    assert dataset.id in metadata["description"] and "repeats the last recorded" in metadata["description"]


def test_episodes_match_the_icrl_rows_in_dataset_order(loaded):
    dataset, mds = loaded
    rows = dataset.table()
    columns = {name: numpy_column(rows[name]) for name in ("history_id", "episode", "obs", "action", "reward")}
    terminated, truncated = numpy_column(rows["terminated"]), numpy_column(rows["truncated"])
    task_of = {task.task_id: i for i, task in enumerate(dataset.tasks)}
    task_index = np.array([task_of[t] for t in numpy_column(rows["task_id"])])
    epsilon = numpy_column(rows["epsilon"])

    starts = np.flatnonzero(np.diff(columns["history_id"]) | np.diff(columns["episode"])) + 1
    bounds = np.concatenate([[0], starts, [rows.num_rows]])
    ids = sorted({0, 1, mds.total_episodes // 2, mds.total_episodes - 1})
    for i, episode in zip(ids, mds.iterate_episodes(ids)):
        a, b = bounds[i], bounds[i + 1]
        assert len(episode) == b - a
        np.testing.assert_array_equal(episode.actions, columns["action"][a:b])
        np.testing.assert_array_equal(episode.rewards, columns["reward"][a:b])
        np.testing.assert_array_equal(episode.terminations, terminated[a:b])
        np.testing.assert_array_equal(episode.truncations, truncated[a:b])
        np.testing.assert_array_equal(episode.observations[:-1], columns["obs"][a:b])
        assert episode.observations[-1] == episode.observations[-2]  # icrl has no final observation
        infos = episode.infos
        assert all(len(values) == b - a + 1 for values in infos.values())
        np.testing.assert_array_equal(infos["history_id"][:-1], columns["history_id"][a:b])
        np.testing.assert_array_equal(infos["episode"][:-1], columns["episode"][a:b])
        np.testing.assert_array_equal(infos["task_index"][:-1], task_index[a:b])
        np.testing.assert_array_equal(infos["epsilon"][:-1], epsilon[a:b])
        assert infos["observation_recorded"].tolist() == [True] * (b - a) + [False]
    assert mds.observation_space.contains(np.int64(columns["obs"].max()))
    assert mds.action_space.contains(np.int64(columns["action"].max()))


def test_an_existing_minari_dataset_is_never_overwritten(exported):
    dataset, minari_root, folder, export_minari = exported
    before = (folder / "data" / "main_data.hdf5").read_bytes()
    variable = os.environ.get("MINARI_DATASETS_PATH")
    with pytest.raises(DatasetError, match=f"{folder}.*already exists"):
        export_minari(dataset, MINARI_ID, root=minari_root)
    assert os.environ.get("MINARI_DATASETS_PATH") == variable  # restored on errors too
    assert (folder / "data" / "main_data.hdf5").read_bytes() == before


def test_bad_inputs_are_dataset_errors(exported, tmp_path):
    dataset, minari_root, _, export_minari = exported
    with pytest.raises(DatasetError, match="missing"):
        export_minari(Dataset(tmp_path / "no-such-dataset"), "icrl/missing-v0", root=minari_root)
    for bad in ("no version", "icrl/x", "bad"):
        with pytest.raises(DatasetError, match="not a Minari dataset id"):
            export_minari(dataset, bad, root=minari_root)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A hand-made dataset: float vector observations and actions, optional columns, an unfinished episode."""
    from icrl import __version__
    from icrl.datasets.build import write_dataset
    from icrl.datasets.schema import history_schema, history_table
    from icrl.envs.tasks import Task

    root = tmp_path_factory.mktemp("synthetic")
    tasks = [Task("Synthetic-v0", {"goal": i}) for i in range(3)]
    schema = history_schema((3,), np.float32, ("expert_action", "logp", "update"), action_shape=(2,))
    # History 7 (task 2): episodes of 3 and 2 steps. History 9 (task 0): 3 steps, then 2 of an unfinished episode.
    episode = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 1], np.int32)
    rows = len(episode)
    rng = np.random.default_rng(0)
    columns = {
        "history_id": np.array([7] * 5 + [9] * 5), "task_id": np.array([0] * 5 + [1] * 5), "episode": episode,
        "step": np.array([0, 1, 2, 3, 4] * 2, np.int32), "obs": rng.normal(size=(rows, 3)),
        "action": rng.normal(size=(rows, 2)), "reward": rng.normal(size=rows),
        "terminated": np.isin(np.arange(rows), [2, 4]), "truncated": np.isin(np.arange(rows), [7]),
        "expert_action": rng.normal(size=(rows, 2)), "logp": rng.normal(size=rows), "update": np.arange(rows) // 4,
    }
    table = history_table(columns, [tasks[2].task_id, tasks[0].task_id], schema)
    fields = {
        "dataset_id": "synthetic-v1", "name": "synthetic", "version": 1, "icrl_version": __version__,
        "fingerprint": "e" * 64, "env": {"id": "Synthetic-v0"}, "source": {"source": {"algorithm": "handmade"}},
        "license": "CC0-1.0",
    }
    out = root / "synthetic-v1"
    write_dataset(out, shards=lambda: iter([(0, table)]), formats=("ipc",), tasks=tasks, fields=fields, chunk_length=4)
    return Dataset(out), root / "minari-datasets", columns


def test_vectors_optional_columns_and_unfinished_episodes_survive(synthetic, monkeypatch):
    from icrl.datasets.minari_export import export_minari

    dataset, minari_root, columns = synthetic
    export_minari(dataset, "synthetic-v0", root=minari_root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    mds = minari.load_dataset("synthetic-v0")
    assert (mds.observation_space.shape, mds.action_space.shape) == ((3,), (2,))
    assert mds.total_episodes == 4 and mds.total_steps == 10
    episodes = list(mds.iterate_episodes())
    assert [len(e) for e in episodes] == [3, 2, 3, 2]
    last = episodes[-1]  # unfinished: neither flag set, as in icrl
    assert not last.terminations.any() and not last.truncations.any()
    np.testing.assert_allclose(last.observations, np.float32(columns["obs"][[8, 9, 9]]))
    np.testing.assert_allclose(last.actions, np.float32(columns["action"][8:]))
    assert last.infos["expert_action"].shape == (3, 2)
    np.testing.assert_allclose(last.infos["logp"], np.float32(columns["logp"][[8, 9, 9]]))
    assert last.infos["update"].tolist() == [2, 2, 2]
    assert [e.infos["task_index"][0] for e in episodes] == [2, 2, 0, 0]
    assert [e.infos["history_id"][0] for e in episodes] == [7, 7, 9, 9]
