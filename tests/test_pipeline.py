"""End to end: the tiny pipeline through all four stages, serial and on a real local Ray."""

import json

import numpy as np
import pyarrow as pa
import pytest

from icrl.config import parse_config
from icrl.datasets import Dataset
from icrl.datasets.verify import verify
from icrl.pipeline import PipelineError, run_pipeline, stage_dirs

from conftest import tiny_data


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("serial") / "runs"
    cfg = parse_config(tiny_data(root), source="test")
    outcome = run_pipeline(cfg)
    return cfg, outcome


def test_all_four_stages_run_and_leave_their_outputs(serial_run):
    cfg, outcome = serial_run
    assert list(outcome) == ["collect", "datasets", "distill", "evaluate"]
    run = cfg.run_dir
    for stage in outcome:
        assert (run / stage / "_SUCCESS.json").exists()
    assert (run / "config.resolved.yaml").exists()
    dataset = run / "datasets" / "tiny-v1"
    for name in (
        "README.md", "manifest.json", "tasks.parquet", "histories.parquet", "ipc/shard-00000.arrow",
        "parquet/shard-00000.parquet", "hdf5/histories.h5",
    ):
        assert (dataset / name).exists(), name
    verify(dataset)
    metrics = [json.loads(line) for line in (run / "distill" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [3, 6, 9, 12]
    assert all(np.isfinite(m["loss"]) for m in metrics)
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    for split in ("heldout", "train"):
        assert len(summary[split]["returns_per_episode"]) == cfg.evaluate.episodes
    refs = summary["references"]
    assert refs["random"] < refs["pi_data"] < refs["optimal"]
    assert summary["heldout"]["tasks"] == cfg.tasks.heldout
    assert (run / "evaluate" / "report.md").read_text().startswith("# Evaluation")
    assert (run / "evaluate" / "returns.png").read_bytes()[:4] == b"\x89PNG"


def test_no_heldout_task_appears_in_the_training_data(serial_run):
    cfg, _ = serial_run
    dataset = Dataset(cfg.run_dir / "datasets" / "tiny-v1")
    heldout = {t.task_id for t in dataset.tasks if t.split == "heldout"}
    train = {t.task_id for t in dataset.tasks if t.split == "train"}
    assert len(heldout) == cfg.tasks.heldout and heldout.isdisjoint(train)
    assert dataset.formats == ["ipc", "parquet", "hdf5"]
    for fmt in dataset.formats:  # in every format the rows hold exactly the training tasks
        seen = set(dataset.table(fmt)["task_id"].cast(pa.string()).to_pylist())
        assert seen == train, fmt
    assert set(dataset.histories["task_id"].to_pylist()) == train
    # nor any goal cell of a held-out task
    heldout_goals = {tuple(t.params["goal"]) for t in dataset.tasks if t.split == "heldout"}
    train_goals = {tuple(t.params["goal"]) for t in dataset.tasks if t.task_id in seen}
    assert heldout_goals.isdisjoint(train_goals)


def test_histories_are_whole_and_ordered(serial_run):
    cfg, _ = serial_run
    dataset = Dataset(cfg.run_dir / "datasets" / "tiny-v1")
    table = dataset.table()
    cols = {name: table[name].to_numpy() for name in ("history_id", "step", "episode")}
    length = cfg.collect.source.episodes * cfg.env.episode_length
    ids, counts = np.unique(cols["history_id"], return_counts=True)
    assert (counts == length).all()
    assert len(ids) == (cfg.env.size**2 - cfg.tasks.heldout) * cfg.collect.histories_per_task
    np.testing.assert_array_equal(cols["step"], np.tile(np.arange(length), len(ids)))
    summaries = dataset.histories
    assert (np.asarray(summaries["episodes"]) == cfg.collect.source.episodes).all()


def test_a_rerun_with_nothing_changed_skips_every_stage(serial_run, monkeypatch):
    cfg, _ = serial_run

    def no_ray(*args, **kwargs):
        raise AssertionError("a skipped pipeline must not start an executor")

    monkeypatch.setattr("icrl.collect.executors.make_executor", no_ray)
    assert run_pipeline(cfg) == {s: "skipped" for s in ("collect", "datasets", "distill", "evaluate")}
    assert {s: d.status() for s, d in stage_dirs(cfg).items()} == {s: "done" for s in ("collect", "datasets", "distill", "evaluate")}


def test_changing_a_distill_setting_reruns_only_distill_and_evaluate(tmp_path):
    root = tmp_path / "runs"
    first = run_pipeline(parse_config(tiny_data(root), source="test"))
    assert all(isinstance(v, dict) for v in first.values())
    shard = root / "tiny" / "collect" / "shards" / "shard-00000.arrow"
    before = shard.stat().st_mtime_ns
    changed = parse_config(tiny_data(root, distill={"steps": 9}), source="test")
    outcome = run_pipeline(changed)
    assert outcome["collect"] == "skipped" and outcome["datasets"] == "skipped"
    assert isinstance(outcome["distill"], dict) and isinstance(outcome["evaluate"], dict)
    assert outcome["distill"]["steps"] == 9
    assert shard.stat().st_mtime_ns == before

    # new collect settings would change the data of the immutable dataset tiny-v1: refused, nothing touched
    reseeded = tiny_data(root, collect={"seed": 1})
    with pytest.raises(PipelineError, match="tiny-v1 already exists .* datasets.version"):
        run_pipeline(parse_config(reseeded, source="test"))
    assert shard.stat().st_mtime_ns == before
    # a new version is a new dataset; the old one stays
    reseeded["datasets"]["version"] = 2
    outcome = run_pipeline(parse_config(reseeded, source="test"))
    assert outcome["datasets"]["dataset_id"] == "tiny-v2"
    assert (root / "tiny" / "datasets" / "tiny-v1" / "manifest.json").exists()
    # going back to the settings of tiny-v1 reuses it as it is
    v1 = (root / "tiny" / "datasets" / "tiny-v1" / "manifest.json").read_bytes()
    outcome = run_pipeline(parse_config(tiny_data(root), source="test"))
    assert outcome["datasets"]["dataset_id"] == "tiny-v1"
    assert (root / "tiny" / "datasets" / "tiny-v1" / "manifest.json").read_bytes() == v1


def test_a_shard_lost_after_collect_is_collected_again(tmp_path):
    root = tmp_path / "runs"
    cfg = parse_config(tiny_data(root), source="test")
    run_pipeline(cfg)
    ledger = json.loads((cfg.run_dir / "collect" / "ledger.json").read_text())
    shard = cfg.run_dir / "collect" / "shards" / "shard-00001.arrow"
    shard.unlink()
    outcome = run_pipeline(cfg)
    assert outcome["collect"]["rows"] == sum(u["rows"] for u in ledger["units"].values())
    assert json.loads((cfg.run_dir / "collect" / "ledger.json").read_text()) == ledger  # the same bytes again
    assert outcome["datasets"] == "skipped"


@pytest.mark.usefixtures("ray_cluster")
def test_ray_collect_gives_the_same_bytes_as_serial(serial_run, tmp_path):
    cfg_serial, _ = serial_run
    cfg = parse_config(tiny_data(tmp_path / "runs", collect={"executor": "ray"}), source="test")
    outcome = run_pipeline(cfg)
    assert outcome["collect"]["executor"] == "ray"
    serial = json.loads((cfg_serial.run_dir / "datasets" / "tiny-v1" / "manifest.json").read_text())["files"]
    ray_files = json.loads((cfg.run_dir / "datasets" / "tiny-v1" / "manifest.json").read_text())["files"]
    assert serial == ray_files


def test_the_report_draws_another_run_beside_this_one(serial_run, tmp_path):
    from icrl.evaluate.report import render_report, write_report
    from icrl.evaluate.compare import compared_run

    cfg, _ = serial_run
    summary = json.loads((cfg.run_dir / "evaluate" / "summary.json").read_text())
    other = compared_run(cfg.run_dir)
    assert other["model"] == "transformer" and other["heldout"]["last5_mean"] == summary["heldout"]["last5_mean"]
    summary["compare"] = [other, compared_run(tmp_path / "no-such-run")]
    text = render_report(summary)
    assert f"- heldout, transformer of `{cfg.run_dir}`: episode 1" in text and "(1.00× of it)" in text
    assert "no-such-run/evaluate/summary.json is not a finished evaluation" in text
    write_report(tmp_path, summary)
    assert (tmp_path / "returns.png").read_bytes()[:4] == b"\x89PNG"


def test_a_deleted_dataset_folder_is_built_again_forced_or_not(tmp_path):
    import shutil

    cfg = parse_config(tiny_data(tmp_path / "runs", run={"until": "datasets"}, collect={"executor": "serial"}), source="test")
    run_pipeline(cfg)
    folder = cfg.run_dir / "datasets" / "tiny-v1"
    files = json.loads((folder / "manifest.json").read_text())["files"]
    shutil.rmtree(folder)
    assert run_pipeline(cfg)["datasets"] != "skipped"
    assert verify(folder)["files"] == files
    shutil.rmtree(folder)
    run_pipeline(cfg, force={"datasets"})
    assert verify(folder)["files"] == files


def test_a_skipped_evaluation_redraws_its_comparison(serial_run, tmp_path):
    cfg, _ = serial_run
    other = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"compare_with": [str(tmp_path / "later")]})})
    outcome = run_pipeline(other)  # compare_with is not part of the fingerprint: nothing reruns
    assert outcome["evaluate"] == "skipped"
    assert "later/evaluate/summary.json is not a finished evaluation" in (cfg.run_dir / "evaluate" / "report.md").read_text()
    shutil_copy = __import__("shutil").copytree
    shutil_copy(cfg.run_dir / "evaluate", tmp_path / "later" / "evaluate")  # the other run finishes later
    run_pipeline(other)
    assert "- heldout, transformer of" in (cfg.run_dir / "evaluate" / "report.md").read_text()
    run_pipeline(cfg)  # and without the comparison the report is as before
    assert "transformer of" not in (cfg.run_dir / "evaluate" / "report.md").read_text()
