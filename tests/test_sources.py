"""Every source on the environments it is meant for, through the real unit code, schema and shard writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from icrl.collect.stage import plan
from icrl.collect.units import run_unit
from icrl.config import GYMNAX_CONTINUOUS, GYMNAX_DISCRETE_OBS, GYMNAX_IDS, ConfigError, load_config, parse_config
from icrl.datasets.build import summarize_histories
from icrl.datasets.shards import read_ipc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "pipelines").glob("*.yaml"))

# Per source: the settings that make its histories tiny (the example's other settings stay).
SHRINK = {
    "noise_curriculum": {"episodes": 2},
    "ppo": {"updates": 2, "rollout_steps": 16, "minibatches": 2, "epochs": 1},
    "q_learning": {"steps": 40},
    "thompson": {"pulls": 12},
    "ucb": {"pulls": 12},
    "linucb": {"pulls": 12},
    "random": {"steps": 30},
}


def _shrunk(cfg, root: Path):
    source = cfg.collect.source
    source = source.model_copy(update=SHRINK[source.algorithm])
    if source.algorithm == "noise_curriculum" and source.demonstrator.algorithm != "oracle":
        teacher = source.demonstrator
        source = source.model_copy(update={"demonstrator": teacher.model_copy(update=SHRINK[teacher.algorithm])})
    collect = cfg.collect.model_copy(update={"source": source, "histories_per_task": 1, "histories_per_unit": 3})
    run = cfg.run.model_copy(update={"root": str(root)})
    return cfg.model_copy(update={"collect": collect, "run": run})


def test_there_is_an_example_pipeline_for_every_source():
    algorithms = {load_config(path).collect.source.algorithm for path in EXAMPLES}
    assert algorithms | {"noise_curriculum"} == set(SHRINK)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_pipeline_collects_a_valid_shard(path, tmp_path):
    cfg = _shrunk(load_config(path), tmp_path)
    jobs = plan(cfg, tmp_path / "collect")
    result = run_unit(jobs[0])
    table = read_ipc(tmp_path / "collect" / "shards" / result.path)
    assert result.rows == table.num_rows and result.histories == len(jobs[0].history_ids)
    steps = table.num_rows // result.histories
    np.testing.assert_array_equal(table["step"].to_numpy(), np.tile(np.arange(steps), result.histories))
    episode = table["episode"].to_numpy().reshape(result.histories, steps)
    assert (np.diff(episode, axis=1) >= 0).all() and (episode[:, 0] == 0).all()
    assert table.schema.field("reward").type == pa.float32()
    continuous = cfg.env.continuous_actions()
    assert pa.types.is_fixed_size_list(table.schema.field("action").type) == continuous
    source = cfg.collect.source.algorithm
    expected = {"noise_curriculum": ["epsilon", "expert_action"], "ppo": ["logp", "update"], "q_learning": ["epsilon"]}
    assert table.column_names[9:] == expected.get(source, [])
    summaries = summarize_histories([(0, table)], {t.task_id: "train" for job in jobs for t in job.tasks})
    assert summaries.num_rows == result.histories
    if source == "ppo":
        assert len(summaries["update_returns"][0]) == cfg.collect.source.updates
    _check_formats_agree(cfg, tmp_path, tmp_path / "collect" / "shards" / result.path, steps)


def _check_formats_agree(cfg, tmp_path: Path, shard: Path, steps: int) -> None:
    """Builds a dataset of the shard in all three formats: each verifies, holds the same rows and gives the same windows."""
    from icrl.datasets import Dataset
    from icrl.datasets.build import build_dataset
    from icrl.envs import make_family

    family = make_family(cfg.env, cfg.tasks)
    build_dataset(
        tmp_path / "ds", shard_paths=[shard], tasks=list(family.tasks), name="x", version=1, fingerprint="0" * 64,
        source=cfg.collect.fingerprint_fields(), env=cfg.env.model_dump(), license="CC0-1.0", chunk_length=4,
    )
    dataset = Dataset(tmp_path / "ds")  # verifies every file, sha256 and schema
    reference = dataset.table("ipc")
    context = min(4, steps)
    windows = dataset.sampler(context_length=context, seed=0, fmt="ipc", num_actions=3).batch(4, 0)
    for fmt in ("parquet", "hdf5"):
        table = dataset.table(fmt)
        assert table.schema.equals(reference.schema), fmt
        assert table["task_id"].cast(pa.string()).equals(reference["task_id"].cast(pa.string()))
        assert table.drop_columns(["task_id"]).equals(reference.drop_columns(["task_id"])), fmt
        batch = dataset.sampler(context_length=context, seed=0, fmt=fmt, num_actions=3).batch(4, 0)
        for name, values in windows.items():
            np.testing.assert_array_equal(batch[name], values, err_msg=f"{fmt} {name}")


def test_a_source_that_cannot_run_on_the_environment_is_refused_before_collecting(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="collect.source: tabular Q-learning needs discrete observations"):
        parse_config(
            {"env": {"id": "CartPole-v1"}, "tasks": {"heldout": 0}, "collect": {"source": {"algorithm": "q_learning"}}},
            source="p.yaml",
        )

    # What only the built environment can tell still surfaces as a config error, before any unit runs.
    def cannot(env, cfg):
        raise ValueError("no can do")

    monkeypatch.setattr("icrl.collect.stage.make_source", cannot)
    cfg = parse_config({"env": {"id": "CartPole-v1"}, "tasks": {"heldout": 0}, "collect": {"source": {"algorithm": "ppo"}}})
    with pytest.raises(ConfigError, match="collect.source: no can do"):
        plan(cfg, tmp_path)


def test_the_gymnax_lists_match_gymnax():
    import gymnax
    from gymnax.environments import spaces

    assert set(GYMNAX_IDS) == set(gymnax.registered_envs)
    continuous, discrete_obs = set(), set()
    for env_id in GYMNAX_IDS:
        if env_id == "MNISTBandit-bsuite":
            continue  # downloads MNIST on creation (tests have no network); its 10 actions are discrete
        env, params = gymnax.make(env_id)
        if not isinstance(env.action_space(params), spaces.Discrete):
            continuous.add(env_id)
        if isinstance(env.observation_space(params), spaces.Discrete):
            discrete_obs.add(env_id)
    assert continuous == set(GYMNAX_CONTINUOUS)
    assert discrete_obs == set(GYMNAX_DISCRETE_OBS)


@pytest.mark.parametrize(
    "source",
    [
        {"algorithm": "random", "steps": 30},
        {"algorithm": "noise_curriculum", "episodes": 2, "demonstrator": {"algorithm": "ppo", **SHRINK["ppo"]}},
    ],
    ids=["random", "noise_curriculum"],
)
def test_sources_collect_on_continuous_actions(source, tmp_path):
    cfg = parse_config(
        {
            "run": {"root": str(tmp_path), "until": "datasets"}, "env": {"id": "Pendulum-v1"}, "tasks": {"heldout": 0},
            "collect": {"source": source, "histories_per_task": 1, "histories_per_unit": 2, "executor": "serial"},
        },
        source="test",
    )
    result = run_unit(plan(cfg, tmp_path / "collect")[0])
    table = read_ipc(tmp_path / "collect" / "shards" / result.path)
    actions = np.asarray(table["action"].combine_chunks().flatten())
    assert pa.types.is_fixed_size_list(table.schema.field("action").type)
    assert (np.abs(actions) <= 2.0).all() and actions.std() > 0  # inside Pendulum's torque bounds, not constant
