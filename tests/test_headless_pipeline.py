"""Headless-AD end to end: the plain-AD baseline, evaluation sets (regret, normalised regret,
`cannot run`), their resume, their config checks and the pieces underneath (set tasks,
per-pull regret)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icrl.config import ConfigError, EvalSetConfig, parse_config, set_env
from icrl.envs import make_family
from icrl.envs.bandits import BernoulliBandit, ContextualBandit
from icrl.envs.family import make_env, set_tasks
from icrl.evaluate.sets import cannot_run, normalised_regret, source_regret
from icrl.fingerprint import stage_fingerprints
from icrl.pipeline import describe_stages, run_pipeline

STAGES = ("collect", "datasets", "distill", "evaluate")
TRAIN_ARMS = 6  # env.max_arms of the tiny bandit pipeline: the baseline's action count
BIG = 8  # the arms of the set plain AD cannot act on


def bandit_data(root=None, *, distill=None, sets=None, env=None, evaluate=None):
    """Returns a tiny Headless-AD bandit pipeline config as YAML data."""
    data = {
        "run": {"name": "headless"},
        "env": {
            "id": "BernoulliBandit-v0", "min_arms": 3, "max_arms": TRAIN_ARMS, "distribution": "adversarial",
            "num_tasks": 12, **(env or {}),
        },
        "tasks": {"heldout": 2},
        "collect": {
            "source": {"algorithm": "thompson", "pulls": 40}, "histories_per_task": 1, "histories_per_unit": 16,
            "executor": "serial",
        },
        "datasets": {"name": "hl", "hdf5_chunk_length": 40, "formats": ["ipc"]},
        "distill": {
            "head": "headless", "baseline": True, "action_embed_dim": BIG, "context_length": 20, "embed_dim": 16,
            "num_layers": 1, "num_heads": 2, "batch_size": 4, "steps": 4, "warmup_steps": 1, "log_every": 2,
            "checkpoint_every": 2, **(distill or {}),
        },
        "evaluate": {
            "episodes": 24, "rollouts_per_task": 1, "train_tasks": 2, "reference_episodes": 4,
            "sets": sets if sets is not None else [
                {"name": "training-like", "tasks": 2, "draw": "train"},
                {"name": "permuted", "tasks": 2, "draw": "train", "permute_actions": True, "same_tasks_as": "training-like"},
                {"name": f"arms-{BIG}", "tasks": 2, "draw": "train", "env": {"min_arms": BIG, "max_arms": BIG}},
            ],
            **(evaluate or {}),
        },
    }
    if root is not None:
        data["run"]["root"] = str(root)
    return data


def _files(folder):
    """Returns {name: (mtime_ns, bytes)} of the files directly in `folder`."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------
# Under the suite's strict rank promotion (jax_numpy_rank_promotion="raise")


def _headless_model():
    from icrl.distill.model import build_model, model_spec

    cfg = parse_config(bandit_data(), source="test")
    return build_model(model_spec(cfg.distill, num_actions=TRAIN_ARMS, num_obs=1))


def test_a_headless_model_scores_only_the_offered_actions():
    """A batch of two sequences with their own action sets, as training feeds them."""
    from icrl.distill.headless import random_action_sets

    model = _headless_model()
    available = jnp.asarray([[True] * 4 + [False] * 2, [True] * 6])
    actions = random_action_sets(jax.random.key(0), available, BIG)
    obs = jnp.zeros((2, 5), jnp.int32)
    prev_action = jnp.asarray([[TRAIN_ARMS, 0, 1, 2, 3]] * 2, jnp.int32)
    prev_reward = jnp.zeros((2, 5), jnp.float32)
    params = model.init(jax.random.key(1), obs, prev_action, prev_reward, actions=actions)
    logits = model.apply(params, obs, prev_action, prev_reward, actions=actions)
    assert logits.shape == (2, 5, TRAIN_ARMS)
    assert np.isneginf(np.asarray(logits[0, :, 4:])).all() and np.isfinite(np.asarray(logits[0, :, :4])).all()
    assert np.isfinite(np.asarray(logits[1])).all()


def test_the_source_and_random_regret_of_a_set():
    cfg = parse_config(bandit_data(), source="test")
    env, params_for = make_env(set_env(cfg, 0))
    tasks = set_tasks(set_env(cfg, 0), cfg.tasks, cfg.evaluate.sets[0].model_copy(update={"tasks": 3}))
    own, random = source_regret(cfg, env, params_for(tasks), 3, horizon=24, key=jax.random.key(0))
    assert own.shape == random.shape == (3, 24)
    for task, own_row, random_row in zip(tasks, own, random):
        means = task.params["means"][: task.params["num_arms"]]
        # Bernoulli: random's expected regret is the same every pull, the source's one of the arms' gaps
        np.testing.assert_allclose(random_row, max(means) - np.mean(means), atol=1e-5)
        gaps = max(means) - np.asarray(means)
        assert (np.abs(own_row[:, None] - gaps[None, :]).min(axis=1) < 1e-5).all()
    assert own[:, -8:].mean() < random[:, -8:].mean()  # Thompson sampling has learnt something by then


# ---------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def headless_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("headless") / "runs"
    cfg = parse_config(bandit_data(root), source="test")
    return cfg, run_pipeline(cfg)


def _summary(cfg):
    return json.loads((cfg.run_dir / "evaluate" / "summary.json").read_text())


def test_the_summary_reports_every_set_for_both_models(headless_run):
    cfg, outcome = headless_run
    assert list(outcome) == list(STAGES) and all(isinstance(v, dict) for v in outcome.values())
    summary = _summary(cfg)
    main, plain = "Headless-AD (transformer)", "AD (transformer)"
    assert summary["set_models"] == [main, plain]
    sets = summary["sets"]
    assert sorted(sets) == sorted(s.name for s in cfg.evaluate.sets)
    pulls = cfg.evaluate.episodes  # one pull per episode
    for index, eval_set in enumerate(cfg.evaluate.sets):
        name, fig = eval_set.name, sets[eval_set.name]
        tasks = set_tasks(set_env(cfg, index), cfg.tasks, eval_set)
        counts = [t.params["num_arms"] for t in tasks]
        assert fig["metric"] == "regret" and fig["episodes"] == pulls
        assert fig["tasks"] == eval_set.tasks and fig["rollouts"] == eval_set.tasks * cfg.evaluate.rollouts_per_task
        assert fig["actions"] == [min(counts), max(counts)] and fig["slots"] == set_env(cfg, index).max_arms
        assert fig["draw"] == eval_set.draw and fig["permuted"] == eval_set.permute_actions
        refs = fig["references"]
        assert refs["source"] == "thompson"
        assert len(refs["source_curve"]) == len(refs["random_curve"]) == pulls
        assert refs["source_regret"] == refs["source_curve"][-1] and refs["random_regret"] == refs["random_curve"][-1]
        # the random policy's expected regret is known in closed form: best mean - mean of the available means
        gaps = [max(t.params["means"][:k]) - np.mean(t.params["means"][:k]) for t, k in zip(tasks, counts)]
        assert refs["random_regret"] == pytest.approx(pulls * np.mean(gaps), abs=0.01)
        assert 0 <= refs["source_regret"] < refs["random_regret"]
        assert set(fig["models"]) == {main, plain}
        for label, result in fig["models"].items():
            if "cannot_run" in result:
                continue
            assert len(result["curve"]) == pulls and result["regret"] == result["curve"][-1]
            assert np.all(np.diff(result["curve"]) >= -1e-3)  # cumulative regret never falls
            assert math.isfinite(result["regret_std"]) and result["regret_std"] >= 0
            norm = result["normalised_regret"]
            expected = (refs["random_regret"] - result["regret"]) / (refs["random_regret"] - refs["source_regret"])
            assert math.isfinite(norm) and norm == pytest.approx(expected, abs=2e-4), (name, label)
    # Headless-AD acts everywhere; plain AD only where the set offers its 6 action slots
    assert all("regret" in fig["models"][main] for fig in sets.values())
    assert "regret" in sets["training-like"]["models"][plain] and "regret" in sets["permuted"]["models"][plain]
    why = sets[f"arms-{BIG}"]["models"][plain]
    assert set(why) == {"cannot_run"}
    assert str(TRAIN_ARMS) in why["cannot_run"] and str(BIG) in why["cannot_run"]
    assert outcome["distill"]["baseline"]["steps"] == cfg.distill.steps


def test_set_results_plots_and_report_are_written(headless_run):
    cfg, _ = headless_run
    folder = cfg.run_dir / "evaluate"
    results = folder / "results"
    names = ["training-like", "permuted", f"arms-{BIG}"]
    for name in names:
        assert (folder / f"set-{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (results / f"set-{name}-references.json").exists()
        assert (results / f"set-{name}-main.json").exists()
    assert (results / "set-training-like-baseline.json").exists()
    assert not (results / f"set-arms-{BIG}-baseline.json").exists()  # plain AD never ran there
    # the per-pull regrets of a result file lie within [0, best - worst available mean] of its task
    index = names.index("permuted")
    tasks = set_tasks(set_env(cfg, index), cfg.tasks, cfg.evaluate.sets[index])
    result = json.loads((results / "set-permuted-main.json").read_text())
    assert result["task_ids"] == [t.task_id for t in tasks]
    for task, row in zip(tasks, result["regret"]):
        means = task.params["means"][: task.params["num_arms"]]
        assert len(row) == cfg.evaluate.episodes
        assert min(row) >= -1e-4 and max(row) <= max(means) - min(means) + 1e-4
    report = (folder / "report.md").read_text()
    assert "## Evaluation sets" in report
    row = next(line for line in report.splitlines() if line.startswith(f"| arms-{BIG} "))
    assert f"cannot run: trained for {TRAIN_ARMS} actions; this set offers {BIG}" in row
    summary = _summary(cfg)
    line = next(line for line in report.splitlines() if line.startswith("| training-like "))
    assert f"{summary['sets']['training-like']['models']['AD (transformer)']['regret']:.1f}" in line
    assert "(train draw, permuted)" in next(line for line in report.splitlines() if line.startswith("| permuted "))
    # the paired sets: the same tasks, then with the arms shuffled; each model's change is reported
    plain = set_tasks(set_env(cfg, 0), cfg.tasks, cfg.evaluate.sets[0])
    assert [sorted(t.params["means"]) for t in plain] == [sorted(t.params["means"]) for t in tasks]
    paired = next(line for line in report.splitlines() if line.startswith("- permuted holds the tasks of training-like"))
    for label in ("Headless-AD (transformer)", "AD (transformer)"):
        before, after = (summary["sets"][name]["models"][label]["regret"] for name in ("training-like", "permuted"))
        assert f"{label} {before:.1f} → {after:.1f}" in paired


def test_the_baseline_is_a_plain_ad_model_of_its_own(headless_run):
    cfg, _ = headless_run
    distill = cfg.run_dir / "distill"
    main = json.loads((distill / "model.json").read_text())
    baseline = json.loads((distill / "baseline" / "model.json").read_text())
    assert main["head"] == "headless" and main["action_embed_dim"] == BIG
    assert baseline.get("head") != "headless" and "action_embed_dim" not in baseline
    assert baseline["num_actions"] == main["num_actions"] == TRAIN_ARMS
    assert any(p.name.isdigit() for p in (distill / "baseline" / "checkpoints").iterdir())


def test_a_rerun_recomputes_nothing(headless_run):
    cfg, _ = headless_run
    results = cfg.run_dir / "evaluate" / "results"
    before = _files(results)
    assert run_pipeline(cfg) == {s: "skipped" for s in STAGES}
    assert _files(results) == before


def test_a_lost_set_result_is_computed_again_and_alone(headless_run):
    cfg, _ = headless_run
    folder = cfg.run_dir / "evaluate"
    before, summary = _files(folder / "results"), _summary(cfg)
    (folder / "_SUCCESS.json").unlink()  # an interrupted evaluation: _STARTED.json stays
    (folder / "results" / "set-permuted-main.json").unlink()
    row = next(r for r in describe_stages(cfg) if r[0] == "evaluate")
    assert row[1] == "partial" and row[2] == "2 of 2 evaluation splits written, 3 of 3 evaluation sets begun"
    outcome = run_pipeline(cfg)
    assert [outcome[s] for s in ("collect", "datasets", "distill")] == ["skipped"] * 3
    assert isinstance(outcome["evaluate"], dict)
    after = _files(folder / "results")
    assert set(after) == set(before)
    for name, (mtime, data) in before.items():
        if name == "set-permuted-main.json":
            assert after[name][1] == data  # seeded: the same figures again
        else:
            assert after[name] == (mtime, data), f"{name} was rewritten"
    assert _summary(cfg)["sets"] == summary["sets"]


# ---------------------------------------------------------------------------------------
# Config checks


@pytest.mark.parametrize(
    "data, match",
    [
        (bandit_data(distill={"head": "linear"}), r"distill\.baseline: "),
        (bandit_data(sets=[{"name": "a"}, {"name": "b"}, {"name": "a"}]), r"evaluate\.sets: two sets are called 'a'"),
        (bandit_data(sets=[{"name": "a", "env": {"id": "ContextualBandit-v0"}}]), r"evaluate\.sets\.0\.env\.id: "),
        (bandit_data(sets=[{"name": "a"}, {"name": "b", "env": {"max_arms": "many"}}]), r"evaluate\.sets\.1\.env\.max_arms: "),
        (bandit_data(sets=[{"name": "a", "env": {"min_arms": 1}}]), r"evaluate\.sets\.0\.env\.min_arms: "),
        (bandit_data(sets=[{"name": "a", "env": {"max_armz": 9}}]), r"evaluate\.sets\.0\.env\.max_armz: an evaluation set may change only min_arms, max_arms, distribution"),
        (bandit_data(sets=[{"name": "a", "env": {"num_tasks": 9}}]), r"evaluate\.sets\.0\.env\.num_tasks: an evaluation set may change only"),
        (bandit_data(sets=[{"name": "a", "env": {"min_arms": 7}}]), r"evaluate\.sets\.0\.env\.min_arms: 7 is more than"),
        (
            bandit_data(sets=[{"name": "a"}, {"name": "b", "env": {"min_arms": 9, "max_arms": 9}}]),
            r"evaluate\.sets\.1\.env\.max_arms: 9 actions need distill\.action_embed_dim >= 9",
        ),
        (bandit_data(distill={"action_embed_dim": 5}, sets=[]), r"env\.max_arms: 6 actions need distill\.action_embed_dim >= 6"),
        (bandit_data(sets=[{"name": "a", "draw": "test"}]), r"evaluate\.sets\.0\.draw"),
        (bandit_data(sets=[{"name": "a", "same_tasks_as": "b"}]), r"evaluate\.sets\.0\.same_tasks_as: no other set is called 'b'"),
        (
            bandit_data(sets=[{"name": "a"}, {"name": "b", "draw": "train", "same_tasks_as": "a"}]),
            r"evaluate\.sets\.1\.same_tasks_as: set 'a' draws other tasks",
        ),
    ],
)
def test_headless_and_set_settings_that_do_not_fit_are_refused(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(data, source="test")


def test_sets_need_a_task_generator(tmp_path):
    from conftest import tiny_data

    data = tiny_data(tmp_path, evaluate={"sets": [{"name": "a"}]})
    with pytest.raises(ConfigError, match=r"evaluate\.sets: DarkRoom-v0 has no task generator"):
        parse_config(data, source="test")
    del data["evaluate"]["sets"]
    parse_config(data, source="test")  # the same config without sets is fine


def test_settings_that_fit_are_accepted():
    # plain AD may have sets (it is evaluated where it can act) and needs no action_embed_dim
    cfg = parse_config(bandit_data(distill={"head": "linear", "baseline": False, "action_embed_dim": 1}), source="test")
    assert cfg.distill.head == "linear" and [s.name for s in cfg.evaluate.sets] == ["training-like", "permuted", f"arms-{BIG}"]
    assert set_env(cfg, 2).max_arms == BIG and set_env(cfg, 2).min_arms == BIG and set_env(cfg, 0) == cfg.env
    # a headless model's embeddings just wide enough for the biggest set
    cfg = parse_config(bandit_data(distill={"action_embed_dim": BIG}), source="test")
    assert cfg.distill.baseline and cfg.evaluate.sets[1].permute_actions
    assert set_env(cfg, 2).distribution == cfg.env.distribution  # what a set does not override is the pipeline's


# ---------------------------------------------------------------------------------------
# Fingerprints


def _distill_fp(**distill):
    return stage_fingerprints(parse_config(bandit_data(distill=distill), source="test"))["distill"]


def test_action_embed_dim_and_baseline_decide_a_headless_model_only():
    assert _distill_fp(action_embed_dim=8) != _distill_fp(action_embed_dim=16)
    assert _distill_fp(baseline=True) != _distill_fp(baseline=False)
    linear = dict(head="linear", baseline=False)
    assert _distill_fp(**linear, action_embed_dim=8) == _distill_fp(**linear, action_embed_dim=16)
    assert _distill_fp(**linear) != _distill_fp(baseline=False)  # the head itself decides the model
    # plain-AD runs keep the fingerprints they had before heads existed
    plain = parse_config(bandit_data(distill=linear), source="test").distill.fingerprint_fields()
    assert not {"head", "action_embed_dim", "baseline"} & set(plain)


def test_sets_decide_the_evaluation_not_the_model():
    with_sets = stage_fingerprints(parse_config(bandit_data(), source="test"))
    without = stage_fingerprints(parse_config(bandit_data(sets=[]), source="test"))
    assert with_sets["distill"] == without["distill"] and with_sets["evaluate"] != without["evaluate"]


# ---------------------------------------------------------------------------------------
# Set tasks


def _set(name="s", **kw):
    return EvalSetConfig(name=name, **kw)


def test_set_tasks_are_seeded_new_tasks_within_the_sets_arms():
    cfg = parse_config(bandit_data(env={"num_tasks": 40}, sets=[{"name": "big", "env": {"min_arms": 5, "max_arms": 7}}]), source="test")
    env = set_env(cfg, 0)
    eval_set = cfg.evaluate.sets[0].model_copy(update={"tasks": 30})
    tasks = set_tasks(env, cfg.tasks, eval_set)
    assert [t.task_id for t in tasks] == [t.task_id for t in set_tasks(env, cfg.tasks, eval_set)]
    assert len(tasks) == 30 and len({t.task_id for t in tasks}) == 30
    counts = {t.params["num_arms"] for t in tasks}
    assert counts <= {5, 6, 7} and len(counts) > 1
    assert all(len(t.params["means"]) == 7 and t.split == "heldout" for t in tasks)
    # none is a task of the dataset, not even with the pipeline's own env section
    dataset_ids = {t.task_id for t in make_family(cfg.env, cfg.tasks).tasks}
    same_env = set_tasks(cfg.env, cfg.tasks, _set("big", tasks=30))
    assert dataset_ids.isdisjoint(t.task_id for t in same_env) and dataset_ids.isdisjoint(t.task_id for t in tasks)
    other = set_tasks(env, cfg.tasks, eval_set.model_copy(update={"name": "other"}))
    assert {t.task_id for t in other}.isdisjoint(t.task_id for t in tasks)


def test_the_draw_picks_the_training_or_the_heldout_distribution():
    cfg = parse_config(bandit_data(), source="test")
    def even_high(task):
        return all((m >= 0.5) == (i % 2 == 0) for i, m in enumerate(task.params["means"][: task.params["num_arms"]]))

    heldout = set_tasks(cfg.env, cfg.tasks, _set(tasks=30, draw="heldout"))
    train = set_tasks(cfg.env, cfg.tasks, _set(tasks=30, draw="train"))
    assert all(map(even_high, heldout))  # the held-out case: the even arms high, always
    assert sum(map(even_high, train)) < 5  # training bandits have the odd arms high in 95% of them


@pytest.mark.parametrize("env_id", ["BernoulliBandit-v0", "ContextualBandit-v0"])
def test_a_permuted_set_shuffles_the_arms_of_the_same_tasks(env_id):
    data = bandit_data(env={"id": env_id}, sets=[])
    if env_id == "ContextualBandit-v0":
        data["env"]["context_dim"] = 2
        del data["env"]["distribution"]
        data["collect"]["source"] = {"algorithm": "linucb", "pulls": 40}
    cfg = parse_config(data, source="test")
    key = "means" if env_id == "BernoulliBandit-v0" else "theta"
    plain = set_tasks(cfg.env, cfg.tasks, _set("p", tasks=12, draw="train"))
    shuffled = set_tasks(cfg.env, cfg.tasks, _set("q", tasks=12, draw="train", permute_actions=True, same_tasks_as="p"))
    assert shuffled == set_tasks(cfg.env, cfg.tasks, _set("p", tasks=12, draw="train", permute_actions=True))
    changed = 0
    for a, b in zip(plain, shuffled):
        k = a.params["num_arms"]
        assert b.params["num_arms"] == k
        va, vb = a.params[key], b.params[key]
        assert len(vb) == len(va) == cfg.env.max_arms
        assert sorted(map(str, va[:k])) == sorted(map(str, vb[:k]))  # the same arms
        assert vb[k:] == va[k:] and np.all(np.asarray(vb[k:]) == 0)  # padding stays last
        changed += va[:k] != vb[:k]
    assert changed > 0


# ---------------------------------------------------------------------------------------
# Per-pull regret, normalised regret, who can run


def test_bernoulli_pull_regret_is_the_gap_to_the_best_available_arm():
    env = BernoulliBandit(max_arms=4)
    params = env.params_for(means=[0.2, 0.9, 0.5, 0.95], num_arms=3)  # arm 3 (best mean) is not offered
    obs = jnp.int32(0)
    regret = jax.jit(jax.vmap(lambda a: env.pull_regret(params, obs, a)))(jnp.arange(4))
    np.testing.assert_allclose(regret, [0.7, 0.0, 0.4, 0.9], atol=1e-6)
    assert regret.dtype == jnp.float32
    # vmapped over tasks too
    both = jax.tree.map(lambda *x: jnp.stack(x), params, env.params_for(means=[0.1, 0.3, 0.0, 0.0], num_arms=2))
    per_task = jax.vmap(lambda p: env.pull_regret(p, obs, jnp.int32(0)))(both)
    np.testing.assert_allclose(per_task, [0.7, 0.2], atol=1e-6)


def test_contextual_pull_regret_is_the_gap_in_this_context():
    env = ContextualBandit(max_arms=5, context_dim=3)
    rng = np.random.default_rng(0)
    theta = np.zeros((5, 3), np.float32)
    theta[:4] = rng.normal(size=(4, 3))
    params = env.params_for(theta=theta, num_arms=4)
    contexts = rng.normal(size=(64, 3)).astype(np.float32)
    every = jax.jit(jax.vmap(lambda x: jax.vmap(lambda a: env.pull_regret(params, x, a))(jnp.arange(5))))(contexts)
    values = contexts @ theta[:4].T  # [64, 4] available arms only
    np.testing.assert_allclose(every[:, :4], values.max(1, keepdims=True) - values, atol=1e-5)
    assert (np.asarray(every) >= -1e-6).all()
    assert (np.asarray(every).min(axis=1) <= 1e-6).all()  # some arm is optimal in every context
    # all offered arms worse than the zero padding row: the padding does not set the best value
    theta = np.zeros((5, 3), np.float32)
    theta[:3, 0] = [1.0, 0.5, 0.2]
    params = env.params_for(theta=theta, num_arms=3)
    x = jnp.asarray([-1.0, 0.0, 0.0], jnp.float32)
    regret = jax.vmap(lambda a: env.pull_regret(params, x, a))(jnp.arange(5))
    np.testing.assert_allclose(regret[:3], [0.8, 0.3, 0.0], atol=1e-6)
    assert (np.asarray(regret[3:]) >= 0).all()


def test_normalised_regret_is_zero_at_random_and_one_at_the_source():
    assert normalised_regret(40.0, 40.0, 10.0) == pytest.approx(0.0)
    assert normalised_regret(10.0, 40.0, 10.0) == pytest.approx(1.0)
    assert normalised_regret(25.0, 40.0, 10.0) == pytest.approx(0.5)
    assert normalised_regret(50.0, 40.0, 10.0) == pytest.approx(-1 / 3)
    assert normalised_regret(3.0, 7.5, 7.5) is None


def test_only_a_model_with_another_action_count_cannot_run():
    from icrl.distill.model import model_spec

    cfg = parse_config(bandit_data(), source="test")
    headless = model_spec(cfg.distill, num_actions=TRAIN_ARMS, num_obs=1)
    plain = model_spec(cfg.distill, num_actions=TRAIN_ARMS, num_obs=1, head="linear")
    same, bigger, smaller = BernoulliBandit(TRAIN_ARMS), BernoulliBandit(BIG), BernoulliBandit(4)
    assert cannot_run(headless, same) is None and cannot_run(headless, bigger) is None and cannot_run(headless, smaller) is None
    assert cannot_run(plain, same) is None
    for env in (bigger, smaller):
        why = cannot_run(plain, env)
        assert isinstance(why, str) and str(TRAIN_ARMS) in why and str(env.num_actions) in why


# ---------------------------------------------------------------------------------------
# The compound-action grid: sets never hold the dataset's tasks, nor its actions where unseen


def grid_data(*, sets, env=None, tasks=None, source=None):
    return {
        "env": {"id": "CompoundGrid-v0", **(env or {})},
        "tasks": {"heldout": 16, **(tasks or {})},
        "collect": {"source": source or {"algorithm": "noise_curriculum", "episodes": 10}},
        "distill": {"head": "headless", "action_embed_dim": 128},
        "evaluate": {"sets": sets},
    }


@pytest.mark.parametrize(
    "data, match",
    [
        (grid_data(sets=[], env={"action_pool": "all"}), r"env\.action_pool: training tasks offer the train pool"),
        (grid_data(sets=[{"name": "a", "env": {"size": 7}}]), r"evaluate\.sets\.0\.env\.size: an evaluation set may change only"),
        (grid_data(sets=[{"name": "a", "env": {"train_actions": 40}}]), r"evaluate\.sets\.0\.env\.train_actions: "),
        (grid_data(sets=[{"name": "a", "draw": "train"}]), r"evaluate\.sets\.0: training goals with the training actions"),
        (grid_data(sets=[{"name": "a"}], tasks={"heldout": 0}), r"evaluate\.sets\.0\.draw: heldout needs held-out goals"),
        (grid_data(sets=[{"name": "a", "env": {"action_pool": "heldout", "num_actions": 80}}]), r"evaluate\.sets\.0\.env\.num_actions: 80 is more than the 75"),
        (grid_data(sets=[{"name": "a", "env": {"action_pool": "all"}}]) | {"distill": {"head": "headless"}}, r"evaluate\.sets\.0\.env\.num_actions: 125 actions need"),
    ],
)
def test_grid_sets_that_would_not_be_unseen_are_refused(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(data, source="test")


def test_bandit_sets_need_a_bandit_algorithm_as_the_source():
    data = bandit_data()
    data["collect"]["source"] = {"algorithm": "noise_curriculum", "episodes": 60}
    with pytest.raises(ConfigError, match=r"evaluate\.sets: bandit sets normalise regret by the source algorithm"):
        parse_config(data, source="test")


def test_the_gridworld_pipelines_sets_are_unseen():
    from pathlib import Path

    from icrl.config import load_config
    from icrl.envs.compound_grid import split_codes

    cfg = load_config(Path(__file__).parent.parent / "pipelines" / "gridworld-headless.yaml")
    family = make_family(cfg.env, cfg.tasks)
    training_ids = {t.task_id for t in family.train}
    train_codes, _ = split_codes(moves=cfg.env.moves, train=cfg.env.train_actions, seed=cfg.tasks.split_seed)
    heldout_goals = {tuple(t.params["goal"]) for t in family.heldout}
    assert all(set(t.params["codes"][: t.params["num_actions"]]) == set(train_codes) for t in family.train)
    for i, eval_set in enumerate(cfg.evaluate.sets):
        tasks = set_tasks(set_env(cfg, i), cfg.tasks, eval_set)
        assert not {t.task_id for t in tasks} & training_ids, eval_set.name  # never a task trained on
        assert {tuple(t.params["goal"]) for t in tasks} <= heldout_goals, eval_set.name
        offered = [t.params["codes"][: t.params["num_actions"]] for t in tasks]
        if eval_set.name == "unseen-actions":
            assert all(len(o) == 50 and not set(o) & set(train_codes) for o in offered)
        elif eval_set.name == "permuted":
            assert all(sorted(o) == train_codes for o in offered) and any(o != train_codes for o in offered)
        elif eval_set.name == "heldout-goals":  # the dataset's held-out tasks: goals never trained on
            assert {t.task_id for t in tasks} <= {t.task_id for t in family.heldout}
        else:
            assert all(sorted(o) == list(range(125)) for o in offered)
