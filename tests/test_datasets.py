"""Dataset build, manifest and integrity checks on a real (tiny) collect output."""

import json
from pathlib import Path

import pyarrow as pa
import pytest

from icrl.collect.stage import plan
from icrl.collect.units import run_unit
from icrl.datasets import SCHEMA_VERSION, Dataset, DatasetError, verify
from icrl.datasets.build import build_dataset
from icrl.envs import make_family


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from icrl.config import parse_config

    from conftest import tiny_data

    root = tmp_path_factory.mktemp("ds")
    cfg = parse_config(tiny_data(root), source="test")
    shard_dir = root / "shards"
    results = [run_unit(job) for job in plan(cfg, root)]
    family = make_family(cfg.env, cfg.tasks)

    def build(out: Path):
        return build_dataset(
            out, shard_paths=[shard_dir / r.path for r in results], tasks=list(family.tasks), name="tiny", version=1,
            fingerprint="f" * 64, source=cfg.collect.fingerprint_fields(), env=cfg.env.model_dump(), license="CC0-1.0",
        )

    out = root / "tiny-v1"
    manifest = build(out)
    return cfg, out, manifest, build


def test_the_manifest_lists_every_file_with_rows_and_sha256(built):
    cfg, out, manifest, _ = built
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk - listed == {"manifest.json"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in manifest["files"])
    assert manifest["stats"]["rows"] == sum(f["rows"] for f in manifest["files"] if f["path"].startswith("ipc/"))
    assert verify(out) == manifest


def test_the_card_has_yaml_front_matter_and_the_task_table(built):
    import yaml

    _, out, manifest, _ = built
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["dataset_id"] == "tiny-v1" and front["license"] == "CC0-1.0"
    assert front["tasks"] == {"train": 20, "heldout": 5}
    assert text.count("| heldout |") == 5


def test_rows_follow_the_schema(built):
    _, out, _, _ = built
    dataset = Dataset(out)
    table = pa.ipc.open_file(pa.memory_map(str(out / dataset.shard_paths[0]))).read_all()
    assert table.column_names[:9] == [
        "history_id", "task_id", "step", "episode", "obs", "action", "reward", "terminated", "truncated",
    ]
    assert table.schema.field("reward").type == pa.float32()
    assert table.schema.metadata[b"icrl.schema_version"] == str(SCHEMA_VERSION).encode()
    assert table.column_names[9:] == ["epsilon", "expert_action"]


def test_an_existing_dataset_id_is_never_overwritten(built):
    _, out, _, build = built
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(DatasetError, match="immutable"):
        build(out)
    assert (out / "manifest.json").read_bytes() == before


def test_damage_is_caught_at_load_and_names_the_file(built, tmp_path):
    import shutil

    _, out, _, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = copy / "ipc" / "shard-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="shard-00001.arrow: sha256"):
        Dataset(copy)
    (copy / "tasks.arrow").unlink()
    with pytest.raises(DatasetError):
        Dataset(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="manifest.json: unreadable"):
        Dataset(copy)
    assert json.loads((out / "manifest.json").read_text())  # the original is untouched
