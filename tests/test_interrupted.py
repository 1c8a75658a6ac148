"""`icrl run` killed (SIGKILL, no clean-up) during collect, during distill and during evaluate,
then run again: it resumes and ends with the outputs of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from conftest import tiny_data

# Small units and a longer training run than the other tiny tests, so there is time to kill each stage.
OVERRIDES = {
    "collect": {"executor": "serial", "histories_per_unit": 2},
    "distill": {"steps": 240, "checkpoint_every": 40, "log_every": 20},
}


def _config(tmp_path: Path, name: str) -> Path:
    data = tiny_data(tmp_path / name, **OVERRIDES)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "icrl", "run", str(config)], cwd=config.parent, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _kill_when(process: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + 240
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed {what}: {process.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting to kill the run {what}"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()  # reaps it and closes the pipes


def _no_partial_files(run: Path) -> None:
    """Every file a reader may open is whole: hidden names (`.x.tmp`) and `_`-names are the writers' own."""
    for path in run.rglob("*"):
        if not path.is_file() or any(p.startswith((".", "_")) for p in path.relative_to(run).parts):
            continue
        if "checkpoints" in path.parts:
            continue  # orbax writes each step into a temporary folder and renames it when complete
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".arrow":
            with pa.memory_map(str(path)) as source:
                pa.ipc.open_file(source).read_all()


def _outputs(run: Path) -> dict:
    from icrl.config import DistillConfig
    from icrl.distill.model import build_model, load_spec
    from icrl.distill.trainer import load_params

    manifest = json.loads((run / "datasets" / "tiny-v1" / "manifest.json").read_text())
    distill = yaml.safe_load((run / "config.resolved.yaml").read_text())["config"]["distill"]
    step, params = load_params(run / "distill", build_model(load_spec(run / "distill")), DistillConfig(**distill), np.int32(0))
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    return {
        "files": manifest["files"],
        "step": step,
        "params": [np.asarray(x) for x in __import__("jax").tree.leaves(params)],
        "returns": {split: summary[split]["returns_per_episode"] for split in ("heldout", "train")},
    }


def test_a_run_killed_in_each_stage_resumes_to_the_same_outputs(tmp_path):
    straight = _config(tmp_path, "straight")
    done = subprocess.run([sys.executable, "-m", "icrl", "run", str(straight)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    config = _config(tmp_path, "killed")
    run = tmp_path / "killed" / "tiny"
    shards = run / "collect" / "shards"
    _kill_when(_start(config), lambda: len(list(shards.glob("shard-*.arrow"))) >= 3, "during collect")
    _no_partial_files(run)
    assert not (run / "collect" / "_SUCCESS.json").exists()
    checkpoints = run / "distill" / "checkpoints"
    _kill_when(_start(config), lambda: (checkpoints / "80").is_dir(), "during distill")
    _no_partial_files(run)
    assert not (run / "distill" / "_SUCCESS.json").exists()
    results = run / "evaluate" / "results"
    _kill_when(_start(config), lambda: (results / "heldout.json").exists(), "during evaluate")
    _no_partial_files(run)
    assert not (run / "evaluate" / "_SUCCESS.json").exists()

    final = _start(config)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-2000:]
    assert "collect: up to date" in err and "distill: up to date" in err
    assert "evaluate: heldout already done" in err  # the finished result file was kept

    a, b = _outputs(tmp_path / "straight" / "tiny"), _outputs(run)
    assert a["files"] == b["files"]  # the same dataset bytes
    assert a["step"] == b["step"] == OVERRIDES["distill"]["steps"]
    for x, y in zip(a["params"], b["params"]):
        np.testing.assert_array_equal(x, y)  # the same final parameters, bit for bit
    assert a["returns"] == b["returns"]  # the same, complete evaluation
