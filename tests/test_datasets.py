"""Dataset build, the three formats, conversion, the card's loading snippets and integrity checks,
on a real (tiny) collect output."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icrl.atomic import sha256_file
from icrl.datasets import FORMATS, SCHEMA_VERSION, Dataset, DatasetError, convert, verify
from icrl.datasets.card import SNIPPET_MARK


@pytest.fixture(scope="module")
def built(tiny_dataset):
    return tiny_dataset


def _logical(table: pa.Table) -> dict[str, list]:
    """Returns the rows column by column, dictionary-encoded task ids as plain strings."""
    return {
        name: (column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column).to_pylist()
        for name, column in zip(table.column_names, table.columns)
    }


def test_the_manifest_lists_every_file_with_rows_and_sha256(built):
    cfg, out, manifest, _ = built
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk - listed == {"manifest.json"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in manifest["files"])
    for fmt in FORMATS:
        assert manifest["stats"]["rows"] == sum(f["rows"] for f in manifest["files"] if f["path"].startswith(fmt + "/"))
    assert manifest["formats"] == ["ipc", "parquet", "hdf5"]
    assert verify(out) == manifest


def test_every_format_holds_the_same_rows_column_by_column(built):
    _, out, _, _ = built
    dataset = Dataset(out)
    reference = _logical(dataset.table("ipc"))
    assert reference["history_id"]
    for fmt in ("parquet", "hdf5"):
        table = dataset.table(fmt)
        assert table.schema.equals(dataset.table("ipc").schema, check_metadata=True)
        assert _logical(table) == reference, fmt


@pytest.mark.parametrize("path", [("hdf5",), ("parquet",), ("hdf5", "ipc"), ("parquet", "hdf5", "ipc")])
def test_convert_goes_between_formats_without_loss(built, tmp_path, path):
    _, out, _, _ = built
    source = Dataset(out)
    current = source
    for i, fmt in enumerate(path):
        convert(current, tmp_path / f"step{i}", [fmt])
        current = Dataset(tmp_path / f"step{i}")
        assert current.formats == [fmt] and current.id == source.id
    assert _logical(current.table()) == _logical(source.table("ipc"))
    assert current.histories.equals(source.histories)
    assert [t.spec_hash for t in current.tasks] == [t.spec_hash for t in source.tasks]
    if path[-1] == "ipc":  # a round trip gives back the very shards it started from
        for a, b in zip(source.files("ipc"), current.files("ipc")):
            assert sha256_file(out / a) == sha256_file(tmp_path / f"step{len(path) - 1}" / b)


def test_rows_follow_the_schema_and_parquet_row_groups_hold_whole_histories(built):
    _, out, _, _ = built
    dataset = Dataset(out)
    table = dataset.table("ipc")
    assert table.column_names[:9] == [
        "history_id", "task_id", "step", "episode", "obs", "action", "reward", "terminated", "truncated",
    ]
    assert table.schema.field("reward").type == pa.float32()
    assert table.schema.metadata[b"icrl.schema_version"] == str(SCHEMA_VERSION).encode()
    assert table.column_names[9:] == ["epsilon", "expert_action"]
    for rel in dataset.files("parquet"):
        meta = pq.ParquetFile(out / rel).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        ids = pq.read_table(out / rel, columns=["history_id"])["history_id"].to_numpy()
        bounds = np.cumsum([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])[:-1]
        assert all(ids[b - 1] != ids[b] for b in bounds)  # no history is split between row groups


def test_hdf5_holds_history_by_step_arrays_chunked_by_the_context(built):
    import h5py

    _, out, manifest, _ = built
    dataset = Dataset(out)
    with h5py.File(out / "hdf5" / "histories.h5", "r") as f:
        n, steps = dataset.histories.num_rows, int(dataset.histories["steps"].to_numpy().max())
        assert f["obs"].shape == (n, steps) and f["obs"].chunks == (1, 24)
        assert f["obs"].compression == "lzf"
        assert list(f["history_id"][:]) == dataset.histories["history_id"].to_pylist()
        table = dataset.table("ipc")
        first = table.slice(0, steps)
        np.testing.assert_array_equal(f["obs"][0, :steps], first["obs"].to_numpy())
        np.testing.assert_array_equal(f["reward"][0, 5:29], first["reward"].to_numpy()[5:29])


def test_the_manifest_records_the_chunk_length_actually_used(built, tmp_path):
    import h5py

    _, out, _, _ = built
    manifest = convert(Dataset(out), tmp_path / "big", ["hdf5"], chunk_length=1000)
    with h5py.File(tmp_path / "big" / "hdf5" / "histories.h5") as f:
        assert manifest["hdf5_chunk_length"] == f["obs"].chunks[1] == f["obs"].shape[1] == 48


def test_a_dataset_of_another_layout_is_refused_with_a_clear_message(built, tmp_path):
    copy = _copy(built[1], tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["layout_version"]  # as written by icrl before the three formats
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="manifest.json: written by an icrl with dataset layout 1.*rebuild"):
        Dataset(copy)


def test_the_card_has_yaml_front_matter_with_tasks_statistics_and_loading(built):
    import yaml

    _, out, manifest, _ = built
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["dataset_id"] == "tiny-v1" and front["license"] == "cc0-1.0" and front["version"] == 1
    assert len(front["tasks"]) == 25 and sum(t["split"] == "heldout" for t in front["tasks"]) == 5
    assert all(len(t["spec_hash"]) == 64 and "goal" in t["params"] for t in front["tasks"])
    assert front["source"]["source"]["algorithm"] == "noise_curriculum"
    assert [c["name"] for c in front["schema"]][:3] == ["history_id", "task_id", "step"]
    train, heldout = front["statistics"]["train"], front["statistics"]["heldout"]
    assert train["histories"] == manifest["stats"]["histories"] and heldout["histories"] == 0
    returns = Dataset(out).histories["episode_returns"].to_pylist()
    assert train["final_episode_return"]["mean"] == pytest.approx(np.mean([r[-1] for r in returns]), abs=1e-3)
    assert set(front["sizes"]["bytes"]) == set(FORMATS)
    assert front["configs"] == [{"config_name": "default", "data_files": "parquet/*.parquet"}]
    assert text.count("| heldout |") == 5 + 1  # the task table, and the statistics row


def _snippets(card: str) -> dict[str, str]:
    pattern = re.escape(SNIPPET_MARK.format("@")).replace("@", "(\\w+)") + r"\n```python\n(.*?)```"
    return dict(re.findall(pattern, card, flags=re.S))


@pytest.mark.parametrize("library", ["pyarrow", "pandas", "duckdb", "datasets", "h5py", "icrl"])
def test_each_loading_snippet_in_the_card_runs_unmodified(built, tmp_path, library):
    _, out, manifest, _ = built
    code = _snippets((out / "README.md").read_text())[library]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"{manifest['stats']['rows']} rows"


def test_a_dataset_without_parquet_shows_no_parquet_snippets(built, tmp_path):
    _, out, _, _ = built
    convert(Dataset(out), tmp_path / "h5", ["hdf5"])
    assert set(_snippets((tmp_path / "h5" / "README.md").read_text())) == {"h5py", "icrl"}


def test_building_is_deterministic(built, tmp_path):
    _, out, manifest, build = built
    again = build(tmp_path / "tiny-v1")
    assert again["files"] == manifest["files"]


def test_an_existing_dataset_id_is_never_overwritten(built):
    _, out, _, build = built
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(DatasetError, match="immutable"):
        build(out)
    assert (out / "manifest.json").read_bytes() == before


def _copy(out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    return copy


@pytest.mark.parametrize("rel", ["ipc/shard-00001.arrow", "parquet/shard-00002.parquet", "hdf5/histories.h5", "tasks.parquet"])
def test_verify_catches_a_flipped_byte(built, tmp_path, rel):
    copy = _copy(built[1], tmp_path)
    data = bytearray((copy / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / rel).write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=re.escape(rel) + ": sha256 differs"):
        verify(copy)


@pytest.mark.parametrize("rel", ["ipc/shard-00000.arrow", "parquet/shard-00001.parquet", "hdf5/histories.h5"])
def test_verify_catches_a_truncated_file(built, tmp_path, rel):
    copy = _copy(built[1], tmp_path)
    data = (copy / rel).read_bytes()
    (copy / rel).write_bytes(data[: len(data) - 100])
    with pytest.raises(DatasetError, match=re.escape(rel) + r": \d+ bytes, the manifest says \d+ \(truncated"):
        verify(copy)


@pytest.mark.parametrize("rel", ["ipc/shard-00003.arrow", "parquet/shard-00000.parquet", "hdf5/histories.h5", "README.md"])
def test_verify_catches_a_missing_file(built, tmp_path, rel):
    copy = _copy(built[1], tmp_path)
    (copy / rel).unlink()
    with pytest.raises(DatasetError, match=re.escape(rel) + ": missing"):
        verify(copy)


def test_verify_catches_a_manifest_that_lies_about_the_schema(built, tmp_path):
    copy = _copy(built[1], tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema"][6] = "reward: double"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"hdf5/histories.h5: schema differs from the manifest: 'reward: float' where the manifest says 'reward: double'"):
        verify(copy)


def test_damage_is_caught_at_load_and_names_the_file(built, tmp_path):
    copy = _copy(built[1], tmp_path)
    shard = copy / "ipc" / "shard-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="shard-00001.arrow: sha256"):
        Dataset(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="manifest.json: unreadable"):
        Dataset(copy)
    assert json.loads((built[1] / "manifest.json").read_text())  # the original is untouched


def test_a_truncated_shard_is_named_even_without_the_checksum_pass(built, tmp_path):
    copy = _copy(built[1], tmp_path)
    shard = copy / "ipc" / "shard-00000.arrow"
    shard.write_bytes(shard.read_bytes()[:500])
    dataset = Dataset(copy, check=False)
    with pytest.raises(DatasetError, match="shard-00000.arrow: not a readable ipc file"):
        dataset.table("ipc")


def test_a_format_the_dataset_lacks_is_refused_by_name(built, tmp_path):
    _, out, _, _ = built
    convert(Dataset(out), tmp_path / "pq", ["parquet"])
    with pytest.raises(DatasetError, match="has no hdf5 files \\(it holds: parquet\\)"):
        Dataset(tmp_path / "pq").store("hdf5")
