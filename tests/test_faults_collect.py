"""Faults during and after collect: a worker killed mid-unit, any number of workers, shards damaged on disk.

Every case ends with the same bytes as an uninterrupted serial run: the data depends on the
config alone, never on who ran a unit, how often, or in which order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from icrl.atomic import sha256_file
from icrl.collect.executors import ExecutorError
from icrl.config import parse_config
from icrl.datasets.shards import read_ipc
from icrl.datasets.verify import verify
from icrl.pipeline import run_pipeline

from conftest import tiny_data

KILLED_UNIT = 1


# --- helpers that run on Ray workers (this module travels to them by value) ---


def _write_part_then_die(path, table, *, root=None):
    """Stands in for write_ipc on the doomed worker: starts the atomic shard write, then dies mid-file."""
    from icrl.atomic import atomic_open

    with atomic_open(path) as f:
        writer = pa.ipc.new_file(f, table.schema)
        writer.write_table(table)  # the footer never comes: the temporary file is left half written
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


def _watched_run_unit(calls: str, kill_unit: int | None = None, marker: str | None = None, *, meet: int = 1):
    """Returns run_unit, logging `unit pid` per call to the file `calls`.

    The first attempt at unit `kill_unit` (the one that creates the file `marker`) is SIGKILLed
    while writing its shard. With `meet`, each unit first waits (30 s at most) until `meet`
    distinct processes have started units, so that this many workers surely run side by side.
    """

    def unit(job):
        import icrl.datasets.shards
        from icrl.collect.units import run_unit

        with open(calls, "a") as log:
            log.write(f"{job.index} {os.getpid()}\n")
        deadline = time.monotonic() + 30
        while len({pid for _, pid in _attempts(Path(calls))}) < meet and time.monotonic() < deadline:
            time.sleep(0.05)
        if job.index == kill_unit:
            try:
                open(marker, "x").close()  # only the first attempt gets to create it
            except FileExistsError:
                pass
            else:  # the unit runs its program and builds its table, then dies inside the shard write
                icrl.datasets.shards.write_ipc = _write_part_then_die
        return run_unit(job)

    return unit


def _attempts(calls: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in calls.read_text().splitlines()]


def _alive(pid: int) -> bool:
    """Returns whether process `pid` is running (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def by_value():
    """Lets Ray workers unpickle functions of this test module, which they cannot import."""
    import ray.cloudpickle

    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    yield
    ray.cloudpickle.unregister_pickle_by_value(module)


# --- helpers for the checks ---


def _ledger(run_dir: Path) -> dict:
    return json.loads((run_dir / "collect" / "ledger.json").read_text())


def _shards(run_dir: Path) -> dict[str, str]:
    """Returns {file name: sha256} of every file in the collect shards folder (temporary ones included)."""
    folder = run_dir / "collect" / "shards"
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def _files(run_dir: Path, dataset: str = "tiny-v1") -> list[dict]:
    return json.loads((run_dir / "datasets" / dataset / "manifest.json").read_text())["files"]


def _serial(root: Path, **overrides):
    """Runs the tiny pipeline serially under `root`; returns (cfg, outcome)."""
    cfg = parse_config(tiny_data(root, **overrides), source="test")
    return cfg, run_pipeline(cfg)


# --- 1. a worker killed in the middle of a unit ---


@pytest.mark.usefixtures("ray_cluster", "by_value")
def test_a_worker_killed_mid_unit_is_retried_and_changes_no_byte(tmp_path, monkeypatch):
    marker, calls = tmp_path / "killed", tmp_path / "calls.txt"
    until = {"run": {"until": "collect"}}
    serial_cfg, _ = _serial(tmp_path / "serial", **until)
    monkeypatch.setattr("icrl.collect.stage.run_unit", _watched_run_unit(str(calls), KILLED_UNIT, str(marker)))
    cfg = parse_config(tiny_data(tmp_path / "ray", collect={"executor": "ray"}, **until), source="test")

    outcome = run_pipeline(cfg)

    assert marker.exists(), "the doomed worker never ran: nothing was killed"
    attempts = _attempts(calls)
    units = outcome["collect"]["units"]
    assert sorted(i for i, _ in attempts) == sorted([*range(units), KILLED_UNIT])  # one retry, nothing else twice
    killed_pid, retry_pid = [pid for i, pid in attempts if i == KILLED_UNIT]
    assert retry_pid != killed_pid
    assert not _alive(killed_pid)  # the worker really died
    assert outcome["collect"]["executor"] == "ray"
    # the same shards, byte for byte, and no half-written temporary file left behind
    assert _shards(cfg.run_dir) == _shards(serial_cfg.run_dir)
    assert len(_shards(cfg.run_dir)) == units
    assert _ledger(cfg.run_dir) == _ledger(serial_cfg.run_dir)
    # every history exactly once, whole
    folder = cfg.run_dir / "collect" / "shards"
    per_shard = [read_ipc(p)["history_id"].to_numpy() for p in sorted(folder.iterdir())]
    ids = [set(np.unique(h).tolist()) for h in per_shard]
    assert sum(map(len, ids)) == len(set().union(*ids)) == outcome["collect"]["histories"]
    assert set().union(*ids) == set(range(outcome["collect"]["histories"]))
    _, counts = np.unique(np.concatenate(per_shard), return_counts=True)
    assert (counts == cfg.collect.source.episodes * cfg.env.episode_length).all()


@pytest.mark.usefixtures("ray_cluster", "by_value")
def test_a_worker_dying_more_often_than_retried_fails_the_stage_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    marker, calls = tmp_path / "killed", tmp_path / "calls.txt"
    serial_cfg, _ = _serial(tmp_path / "serial", run={"until": "collect"})
    monkeypatch.setattr("icrl.collect.stage.run_unit", _watched_run_unit(str(calls), KILLED_UNIT, str(marker)))
    data = tiny_data(tmp_path / "ray", run={"until": "collect"}, collect={"executor": "ray"}, ray={"max_retries": 0})
    cfg = parse_config(data, source="test")
    with pytest.raises(ExecutorError, match="a unit failed on a Ray worker"):
        run_pipeline(cfg)
    assert marker.exists()
    capsys.readouterr()
    outcome = run_pipeline(cfg)  # the worker dies no more: what finished is kept, the rest is collected
    assert "collect: resuming" in capsys.readouterr().err
    assert outcome["collect"]["units"] == len(_shards(cfg.run_dir))
    assert _shards(cfg.run_dir) == _shards(serial_cfg.run_dir)


# --- 2. the same dataset bytes whatever the number of workers ---

SPREAD = {"run": {"until": "datasets"}, "collect": {"histories_per_unit": 4}}  # 10 units of 4 histories


def _run_in_subprocess(tmp_path: Path, name: str, executor: str, num_cpus: int | None) -> subprocess.Popen:
    data = tiny_data(tmp_path / name, **SPREAD)
    data["collect"]["executor"] = executor
    data["ray"] = {"num_cpus": num_cpus}
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data))
    env = dict(os.environ)
    env["RAY_ADDRESS"] = "local"  # a Ray of its own, never the test session's (nor a `ray start` one)
    env.pop("RAY_NAMESPACE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "icrl", "run", str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=tmp_path,
    )


@pytest.mark.usefixtures("ray_cluster", "by_value")
def test_the_dataset_bytes_do_not_depend_on_the_number_of_workers(tmp_path, monkeypatch):
    cases = [("serial", "serial", None), ("ray1", "ray", 1), ("ray4", "ray", 4)]
    runs = {name: _run_in_subprocess(tmp_path, name, executor, n) for name, executor, n in cases}
    try:
        # meanwhile the test session's own two-CPU Ray, with two units surely running side by side
        calls = tmp_path / "calls.txt"
        monkeypatch.setattr("icrl.collect.stage.run_unit", _watched_run_unit(str(calls), meet=2))
        data = tiny_data(tmp_path / "ray2", **SPREAD)
        data["collect"]["executor"] = "ray"
        cfg = parse_config(data, source="test")
        outcome = run_pipeline(cfg)
        assert outcome["collect"]["executor"] == "ray" and outcome["collect"]["units"] == 10
        attempts = _attempts(calls)
        assert sorted(i for i, _ in attempts) == list(range(10))
        assert len({pid for _, pid in attempts} - {os.getpid()}) >= 2  # several workers, none of them this process
        files = {"ray2": _files(cfg.run_dir)}
        for name, proc in runs.items():
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{err[-4000:]}"
            run_dir = tmp_path / name / "tiny"
            collect = json.loads((run_dir / "collect" / "_SUCCESS.json").read_text())
            assert collect["executor"] == name.rstrip("1234") and collect["units"] == 10, name
            if name != "serial":
                assert "Started a local Ray instance" in err, f"{name} joined another Ray:\n{err[-4000:]}"
            files[name] = _files(run_dir)
    finally:
        for proc in runs.values():  # after a failure here: stop what is still running
            if proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=60)
    assert files["serial"] and all(f["sha256"] for f in files["serial"])
    for name in ("ray1", "ray2", "ray4"):
        assert files[name] == files["serial"], name


# --- 3. a shard damaged after collect is collected again ---


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


DAMAGES = pytest.mark.parametrize("damage", [_flip_a_byte, _truncate], ids=["flipped-byte", "truncated"])


@DAMAGES
def test_a_shard_damaged_after_collect_is_collected_again(tmp_path, capsys, damage):
    cfg, first = _serial(tmp_path / "runs", run={"until": "datasets"})
    assert list(first) == ["collect", "datasets"]
    ledger, shards, files = _ledger(cfg.run_dir), _shards(cfg.run_dir), _files(cfg.run_dir)
    shard = cfg.run_dir / "collect" / "shards" / "shard-00001.arrow"
    original = shard.read_bytes()
    damage(shard)
    assert shard.read_bytes() != original
    capsys.readouterr()

    outcome = run_pipeline(cfg)

    err = capsys.readouterr().err
    assert f"collect: shard {shard} is missing or damaged; it will be collected again" in err
    assert "collect: resuming" in err
    assert isinstance(outcome["collect"], dict) and outcome["collect"]["rows"] == first["collect"]["rows"]
    assert shard.read_bytes() == original
    assert _shards(cfg.run_dir) == shards and _ledger(cfg.run_dir) == ledger
    assert _files(cfg.run_dir) == files  # the dataset lists the very same bytes (whether it was rebuilt or not)
    # and a third run finds nothing to do
    assert run_pipeline(cfg) == {"collect": "skipped", "datasets": "skipped"}


@DAMAGES
def test_the_dataset_still_verifies_after_a_collect_shard_was_damaged_and_collected_again(tmp_path, damage):
    cfg, _ = _serial(tmp_path / "runs", run={"until": "datasets"})
    files = _files(cfg.run_dir)
    damage(cfg.run_dir / "collect" / "shards" / "shard-00001.arrow")
    run_pipeline(cfg)
    assert verify(cfg.run_dir / "datasets" / "tiny-v1")["files"] == files


def test_a_damaged_shard_is_the_only_one_collected_again(tmp_path, capsys):
    cfg, first = _serial(tmp_path / "runs", run={"until": "collect"})
    folder = cfg.run_dir / "collect" / "shards"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    _flip_a_byte(folder / "shard-00001.arrow")
    capsys.readouterr()
    run_pipeline(cfg)
    err = capsys.readouterr().err
    units = first["collect"]["units"]
    assert f"collect: resuming, {units - 1} of {units} units already done" in err
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {n for n in before if after[n] != before[n]} == {"shard-00001.arrow"}
