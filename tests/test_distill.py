"""The trainer: deterministic, resumable from its latest checkpoint, loud about divergence."""

import json

import jax
import numpy as np
import pytest

from icrl.config import DistillConfig
from icrl.datasets.sampler import WindowSampler
from icrl.distill import trainer as train_module
from icrl.distill.checkpoints import CheckpointError, Checkpoints
from icrl.distill.trainer import DivergenceError, init_state, load_params, lr_schedule, make_optimizer, train
from icrl.distill.transformer import Transformer

DISTILL = DistillConfig(
    context_length=8, embed_dim=16, num_layers=1, num_heads=2, batch_size=4,
    steps=10, warmup_steps=2, checkpoint_every=4, log_every=2,
)


def _sampler():
    rng = np.random.default_rng(0)
    n = 200
    return WindowSampler(
        {
            "history_id": np.repeat(np.arange(4), n // 4),
            "episode": np.tile(np.repeat(np.arange(5), 10), 4),
            "obs": rng.integers(0, 9, n).astype(np.int32),
            "action": rng.integers(0, 3, n).astype(np.int32),
            "reward": rng.random(n).astype(np.float32),
        },
        context_length=8, num_actions=3, seed=0,
    )


def _model(dim=16):
    return Transformer(num_actions=3, context_length=8, dim=dim, num_layers=1, num_heads=2, num_obs=9)


def _leaves(params):
    return [np.asarray(x) for x in jax.tree.leaves(params)]


def test_training_is_deterministic_and_logs_json_lines(tmp_path):
    a = train(_model(), _sampler(), DISTILL, tmp_path / "a")
    b = train(_model(), _sampler(), DISTILL, tmp_path / "b")
    assert a["final"]["loss"] == b["final"]["loss"]
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6, 8, 10]
    assert {"loss", "accuracy", "grad_norm", "learning_rate", "transitions_per_s"} <= set(lines[0])
    _, pa = load_params(tmp_path / "a", _model(), DISTILL, np.int32(0))
    _, pb = load_params(tmp_path / "b", _model(), DISTILL, np.int32(0))
    for x, y in zip(_leaves(pa), _leaves(pb)):
        np.testing.assert_array_equal(x, y)


def test_an_interrupted_run_resumes_to_the_same_parameters(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train(_model(), _sampler(), DISTILL, straight)

    interrupted = tmp_path / "interrupted"
    real_step = train_module.make_train_step

    def dying_step(*args, **kwargs):
        step = real_step(*args, **kwargs)

        def wrapped(state, batch):
            if int(state.step) == 6:
                raise KeyboardInterrupt
            return step(state, batch)

        return wrapped

    monkeypatch.setattr(train_module, "make_train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(_model(), _sampler(), DISTILL, interrupted)
    monkeypatch.setattr(train_module, "make_train_step", real_step)
    assert Checkpoints(interrupted / "checkpoints").latest_step() == 4
    summary = train(_model(), _sampler(), DISTILL, interrupted)
    assert summary["resumed_from"] == 4
    steps = [json.loads(x)["step"] for x in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]  # lines past the checkpoint were rewritten, not duplicated
    _, p1 = load_params(straight, _model(), DISTILL, np.int32(0))
    _, p2 = load_params(interrupted, _model(), DISTILL, np.int32(0))
    for x, y in zip(_leaves(p1), _leaves(p2)):
        np.testing.assert_array_equal(x, y)  # bit for bit: same batches, same dropout keys


def test_a_checkpoint_of_another_model_shape_is_refused_with_its_path(tmp_path):
    train(_model(), _sampler(), DISTILL, tmp_path)
    expected = r"checkpoints/10: cannot restore the checkpoint into this model: params\.\S+ is \(\d+,( \d+)*\) in the checkpoint and \(\d+,( \d+)*\) in the model"
    with pytest.raises(CheckpointError, match=expected):
        load_params(tmp_path, _model(dim=32), DISTILL.model_copy(update={"embed_dim": 32}), np.int32(0))


def test_a_non_finite_loss_stops_training_names_the_step_and_keeps_the_last_checkpoint(tmp_path):
    sampler = _sampler()
    clean = sampler.batch

    def poisoned(batch_size, index):
        batch = clean(batch_size, index)
        if index >= 5:  # from the 6th step on
            batch["prev_reward"] = np.full_like(batch["prev_reward"], np.inf)
        return batch

    sampler.batch = poisoned
    with pytest.raises(DivergenceError, match=r"became nan at step 6; the last good checkpoint \(step 4\) is kept"):
        train(_model(), sampler, DISTILL, tmp_path)
    assert Checkpoints(tmp_path / "checkpoints").latest_step() == 4


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.9}\n{"step": 6, "lo')
    assert train_module._trim_metrics(path, 4) == {"step": 4, "loss": 0.9}
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4]


def test_warmup_then_cosine_schedule():
    optimizer = make_optimizer(DISTILL)
    state = init_state(_model(), optimizer, np.int32(0), seed=0)
    assert int(state.step) == 0
    schedule = lr_schedule(DISTILL)
    assert float(schedule(0)) == 0.0
    assert float(schedule(2)) == pytest.approx(DISTILL.learning_rate)
    assert float(schedule(10)) == pytest.approx(DISTILL.learning_rate * 0.1)
