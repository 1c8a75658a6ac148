from pathlib import Path

import pytest
import yaml

from icrl.config import ConfigError, PipelineConfig, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_pipeline_is_valid_and_matches_the_built_in_defaults():
    cfg = load_config(ROOT / "pipeline.yaml")
    assert cfg == PipelineConfig()
    assert cfg.env.id == "DarkRoom-v0" and cfg.tasks.heldout == 16
    assert cfg.collect.source.algorithm == "noise_curriculum" and cfg.collect.source.epsilon_floor == 0.5
    assert cfg.evaluate.episodes >= 20


@pytest.mark.parametrize(
    "data, key_path",
    [
        ({"distill": {"context_lenght": 10}}, "distill.context_lenght: unknown key"),
        ({"extra": {}}, "extra: unknown key"),
        ({"distill": {"steps": "many"}}, "distill.steps"),
        ({"distill": {"steps": 2.5}}, "distill.steps"),
        ({"distill": {"steps": 0}}, "distill.steps"),
        ({"collect": {"source": {"algorithm": "noise_curriculum", "epsilon_floor": 1.5}}}, "collect.source.epsilon_floor"),
        ({"collect": {"source": {"algorithm": "ppo", "updates": 0}}}, "collect.source.updates"),
        ({"collect": {"source": {"algorithm": "ppo", "rollout_steps": 50}}}, "collect.source: minibatches (4) must divide"),
        ({"collect": {"source": {"algorithm": "ppo", "lr": 0.1}}}, "collect.source.lr: unknown key"),
        ({"collect": {"source": {"algorithm": "sarsa"}}}, "collect.source.algorithm: unknown value"),
        ({"collect": {"source": {"episodes": 3}}}, "collect.source.algorithm: missing"),
        ({"collect": {"source": {"algorithm": "thompson"}}}, "collect.source.algorithm: thompson runs on BernoulliBandit-v0"),
        ({"env": {"id": "CartPole-v1"}, "tasks": {"heldout": 0}}, "collect.source.demonstrator: CartPole-v1 has no scripted oracle"),
        ({"env": {"id": "Pendulum-v1"}, "tasks": {"heldout": 0}, "collect": {"source": {"algorithm": "ppo"}}}, "env.id: Pendulum-v1 has continuous actions"),
        ({"env": {"id": "ContextualBandit-v0"}, "collect": {"source": {"algorithm": "q_learning"}}}, "collect.source: tabular Q-learning needs discrete"),
        ({"env": {"id": "BernoulliBandit-v0", "min_arms": 5, "max_arms": 4}}, "env.min_arms"),
        ({"env": {"id": "Projected-v0", "base": "Nope"}}, "env.base"),
        ({"env": {"id": "CartPole-v1"}}, "tasks.heldout"),  # a single task cannot be held out
        ({"env": {"id": "DarkRoom-v0", "sise": 3}}, "env.sise: unknown key"),
        ({"datasets": {"formats": ["ipc", "csv"]}}, "datasets.formats.1"),
        ({"datasets": {"formats": []}}, "datasets.formats"),
        ({"datasets": {"formats": ["ipc", "ipc"]}}, "datasets.formats: lists a format twice"),
        ({"datasets": {"hdf5_chunk_length": 0}}, "datasets.hdf5_chunk_length"),
        ({"datasets": {"formats": ["parquet"]}, "distill": {"data_format": "hdf5"}}, "distill.data_format: hdf5 is not among"),
        ({"distill": {"every_kth_episode": 0}}, "distill.every_kth_episode"),
        ({"distill": {"every_kth_episode": 3}}, "distill.context_length: 100 is longer than the 80 steps of a history that distill.every_kth_episode: 3 keeps"),
        ({"env": {"id": ["DarkRoom-v0"]}}, "env.id"),
        ({"env": {"id": "DarkKeyToDoor-v0", "size": 3, "num_tasks": 100}}, "env.num_tasks: 100 is more than the 72"),
        ({"env": {"id": "Pendulum-v1"}, "tasks": {"heldout": 0}, "collect": {"source": {"algorithm": "q_learning"}}}, "collect.source: tabular Q-learning"),
        (
            {"collect": {"source": {"algorithm": "noise_curriculum", "demonstrator": {"algorithm": "q_learning"}}}, "env": {"id": "CartPole-v1"}, "tasks": {"heldout": 0}},
            "collect.source.demonstrator: tabular Q-learning needs discrete observations",
        ),
        ({"collect": {"executor": "dask"}}, "collect.executor"),
        ({"env": {"id": "NoSuchEnv-v0"}}, "env.id"),
        ({"tasks": {"heldout": 81}}, "tasks.heldout"),
        ({"distill": {"context_length": 5000}}, "distill.context_length"),
        ({"distill": {"warmup_steps": 5000}}, "distill.warmup_steps"),
        ({"distill": {"num_heads": 5}}, "distill.num_heads"),
        ({"distill": {"embed_dim": 24, "num_heads": 8}}, "distill.num_heads"),  # odd head width
        ({"collect": {"seed": 2**40}}, "collect.seed"),
        ({"run": {"name": "../escape"}}, "run.name"),
        ({"collect": "fast"}, "collect"),
    ],
)
def test_bad_configs_name_the_key_path(data, key_path):
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="p.yaml")
    message = str(err.value)
    assert message.startswith("p.yaml: ") and key_path in message
    assert "\n" not in message


def test_yaml_problems_name_the_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("distill:\n  steps: 3\n  steps: 4\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: line 3: key 'steps' appears twice"):
        load_config(path)
    path.write_text("distill: [unclosed\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: .*not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


def test_numbers_in_exponent_form_are_numbers_and_keys_must_be_names(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("distill:\n  learning_rate: 3e-4\n  weight_decay: 1E-2\n")
    cfg = load_config(path)
    assert cfg.distill.learning_rate == 3e-4 and cfg.distill.weight_decay == 0.01
    path.write_text("distill:\n  ? [a, b]\n  : 1\n")
    with pytest.raises(ConfigError, match="line 2: a key must be a plain name"):
        load_config(path)


def test_an_empty_file_gives_the_defaults(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("")
    assert load_config(path) == PipelineConfig()


def test_every_default_round_trips_through_yaml():
    cfg = PipelineConfig()
    assert parse_config(yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json")))) == cfg


def test_settings_that_do_not_change_a_stage_s_output_leave_its_fingerprint_alone():
    from icrl.fingerprint import stage_fingerprints

    base = stage_fingerprints(PipelineConfig())
    same = [
        {"distill": {"scan": "parallel"}},  # both scans compute the same function
        {"distill": {"state_size": 16}},  # an S5 setting, for the Transformer
        {"evaluate": {"compare_with": ["runs/other"]}},  # only what the report draws beside
    ]
    for data in same:
        assert stage_fingerprints(parse_config(data, source="test")) == base, data
    changed = stage_fingerprints(parse_config({"distill": {"model": "s5", "num_layers": 6}}, source="test"))
    assert changed["distill"] != base["distill"] and changed["datasets"] == base["datasets"]
