"""The `icrl` command as a user meets it: exit codes, one-line errors, nothing written on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_data

ROOT = Path(__file__).resolve().parents[1]


def icrl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "icrl", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    "section, values, key_path",
    [
        ("distill", {"context_lenght": 10}, "distill.context_lenght: unknown key"),
        ("collect", {"histories_per_task": -1}, "collect.histories_per_task"),
        ("evaluate", {"policy": "argmax"}, "evaluate.policy"),
    ],
)
def test_a_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path, section, values, key_path):
    data = tiny_data(tmp_path / "runs", **{section: values})
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(data))
    result = icrl("run", str(config), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key_path in lines[0] and "pipeline.yaml" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_missing_config_file_exits_2(tmp_path):
    result = icrl("run", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "nope.yaml: no such file" in result.stderr


def test_a_bad_argument_exits_2(tmp_path):
    result = icrl("run", "pipeline.yaml", "--force", "everything", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_status_of_a_fresh_config_is_pending(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(tiny_data(tmp_path / "runs")))
    result = icrl("status", str(config), cwd=tmp_path)
    assert result.returncode == 0
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["collect", "pending"], ["datasets", "pending"], ["distill", "pending"], ["evaluate", "pending"],
    ]
    assert not (tmp_path / "runs").exists()


def test_verify_names_the_damaged_file(tmp_path):
    from icrl.atomic import sha256_file

    root = tmp_path / "ds"
    (root / "ipc").mkdir(parents=True)
    shard = root / "ipc" / "shard-00000.arrow"
    shard.write_bytes(b"0123456789")
    manifest = {"dataset_id": "x-v1", "layout_version": 2, "files": [{"path": "ipc/shard-00000.arrow", "bytes": 10, "rows": 1, "sha256": sha256_file(shard)}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    result = icrl("datasets", "verify", str(root), cwd=tmp_path)  # sha256 matches, but it is no Arrow file
    assert result.returncode == 1 and "shard-00000.arrow: not a readable ipc file" in result.stderr
    shard.write_bytes(b"0123456780")
    result = icrl("datasets", "verify", str(root), cwd=tmp_path)
    assert result.returncode == 1 and "shard-00000.arrow" in result.stderr and "sha256" in result.stderr
    shard.write_bytes(b"01234")
    result = icrl("datasets", "verify", str(root), cwd=tmp_path)
    assert result.returncode == 1 and "truncated" in result.stderr
    shard.unlink()
    result = icrl("datasets", "verify", str(root), cwd=tmp_path)
    assert result.returncode == 1 and "missing" in result.stderr
    manifest["files"][0]["path"] = "../outside.arrow"
    (root / "manifest.json").write_text(json.dumps(manifest))
    result = icrl("datasets", "verify", str(root), cwd=tmp_path)
    assert result.returncode == 1 and "points outside the dataset folder" in result.stderr


def test_readme_quickstart_holds_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = section.split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(commands) == 2
    assert "icrl run pipeline.yaml" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_importing_icrl_does_no_jax_work_so_ray_can_start_first():
    code = (
        "import sys, icrl.cli, icrl.pipeline, icrl.datasets, icrl.envs, icrl.collect.executors\n"
        "from jax._src import xla_bridge\n"
        "print(bool(xla_bridge._backends), 'gymnax' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_status_says_why_a_stage_is_stale_and_how_far_a_partial_one_got(tmp_path, capsys):
    from icrl.cli import main
    from icrl.config import parse_config
    from icrl.pipeline import run_pipeline

    data = tiny_data(tmp_path / "runs", run={"until": "datasets"}, collect={"executor": "serial"})
    run_pipeline(parse_config(data, source="test"))
    config = tmp_path / "pipeline.yaml"

    def status() -> dict[str, str]:
        config.write_text(yaml.safe_dump(data))
        assert main(["status", str(config)]) == 0
        return {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}

    lines = status()
    assert lines["collect"].split()[1] == "done" and lines["distill"].split()[1] == "pending"
    data["datasets"]["license"] = "CC0-1.0"
    lines = status()
    assert "stale" in lines["datasets"] and "settings changed: license 'CC-BY-4.0' -> 'CC0-1.0'" in lines["datasets"]
    data["datasets"]["license"] = "CC-BY-4.0"
    data["collect"]["seed"] = 7
    lines = status()
    assert "settings changed: collect.seed 0 -> 7" in lines["collect"]
    assert "the collect stage it builds on changed" in lines["datasets"]
    data["collect"]["seed"] = 0
    collect = tmp_path / "runs" / "tiny" / "collect"
    (collect / "_SUCCESS.json").unlink()  # as if the run was killed after two shards were lost
    for shard in sorted((collect / "shards").glob("*.arrow"))[:2]:
        shard.unlink()
    lines = status()
    units = len(list((collect / "shards").glob("*.arrow")))
    assert "partial" in lines["collect"] and f"({units} of {units + 2} units collected)" in lines["collect"]
