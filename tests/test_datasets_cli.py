"""`icrl datasets list | inspect | verify | convert | publish` as a user meets them."""

import json
import os
import subprocess
import sys
import tarfile

import pytest

from icrl.datasets import Dataset, DatasetError
from icrl.datasets.publish import publish


def icrl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "icrl", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_list_finds_each_dataset_under_a_folder(tiny_dataset, tmp_path):
    _, out, manifest, _ = tiny_dataset
    result = icrl("datasets", "list", str(out.parent), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("tiny-v1"))
    assert "ipc,parquet,hdf5" in row and f"{manifest['stats']['rows']:,}" in row and str(out) in row
    assert icrl("datasets", "list", str(tmp_path / "none"), cwd=tmp_path).returncode == 2
    import shutil

    hidden = tmp_path / ".cache" / "data"  # a dot in the folder given is no reason to skip it
    shutil.copytree(out, hidden / "tiny-v1")
    assert "tiny-v1" in icrl("datasets", "list", str(hidden), cwd=tmp_path).stdout


def test_inspect_prints_sizes_statistics_and_columns(tiny_dataset, tmp_path):
    _, out, manifest, _ = tiny_dataset
    result = icrl("datasets", "inspect", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("tiny-v1") and "noise_curriculum" in text and "DarkRoom-v0" in text
    assert "bytes per transition" in text and "final-episode return" in text and "reward: float" in text
    as_json = json.loads(icrl("datasets", "inspect", "--json", str(out), cwd=tmp_path).stdout)
    assert as_json["stats"] == manifest["stats"]
    card = icrl("datasets", "inspect", "--card", str(out), cwd=tmp_path).stdout
    assert card == (out / "README.md").read_text()


def test_verify_exits_1_naming_the_damaged_file(tiny_dataset, tmp_path):
    import shutil

    _, out, _, _ = tiny_dataset
    ok = icrl("datasets", "verify", str(out), cwd=tmp_path)
    assert ok.returncode == 0 and "ok" in ok.stdout
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "parquet" / "shard-00001.parquet").unlink()
    bad = icrl("datasets", "verify", str(copy), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [f"icrl: error: {copy}/parquet/shard-00001.parquet: missing (listed in {copy}/manifest.json)"]
    assert icrl("datasets", "verify", str(tmp_path / "nothing"), cwd=tmp_path).returncode == 1


def test_convert_writes_a_new_verified_folder_and_refuses_to_overwrite(tiny_dataset, tmp_path):
    _, out, _, _ = tiny_dataset
    result = icrl("datasets", "convert", str(out), str(tmp_path / "h5"), "--to", "hdf5", "--chunk-length", "12", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    converted = Dataset(tmp_path / "h5")
    assert converted.formats == ["hdf5"] and converted.manifest["hdf5_chunk_length"] == 12
    again = icrl("datasets", "convert", str(out), str(tmp_path / "h5"), "--to", "ipc", cwd=tmp_path)
    assert again.returncode == 2 and "immutable" in again.stderr and "Traceback" not in again.stderr
    bad = icrl("datasets", "convert", str(out), str(tmp_path / "x"), "--to", "csv", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and not (tmp_path / "x").exists()


def test_publish_writes_a_self_contained_folder_that_verifies(tiny_dataset, tmp_path):
    _, out, manifest, _ = tiny_dataset
    result = icrl("datasets", "publish", str(out), str(tmp_path / "pub"), "--formats", "parquet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    published = Dataset(tmp_path / "pub" / "tiny-v1")  # verifies every sha256
    assert published.formats == ["parquet"]
    assert published.manifest["stats"]["rows"] == manifest["stats"]["rows"]
    assert "pyarrow" not in (tmp_path / "pub" / "tiny-v1" / "README.md").read_text().split("## Load it")[1].split("```")[0]
    assert not [p for p in (tmp_path / "pub").iterdir() if p.name.startswith(".")]  # no staging left
    again = icrl("datasets", "publish", str(out), str(tmp_path / "pub"), "--formats", "parquet", cwd=tmp_path)
    assert again.returncode == 2 and "already published" in again.stderr


def test_publish_to_a_uri_as_one_reproducible_tar(tiny_dataset, tmp_path):
    _, out, _, _ = tiny_dataset
    first = publish(Dataset(out), (tmp_path / "a").as_uri(), as_tar=True)
    second = publish(Dataset(out), (tmp_path / "b").as_uri(), as_tar=True)
    assert first.endswith("/a/tiny-v1.tar") and second.endswith("/b/tiny-v1.tar")
    a, b = (tmp_path / "a" / "tiny-v1.tar").read_bytes(), (tmp_path / "b" / "tiny-v1.tar").read_bytes()
    assert a == b
    with tarfile.open(tmp_path / "a" / "tiny-v1.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert Dataset(tmp_path / "x" / "tiny-v1").formats == ["ipc", "parquet", "hdf5"]


def test_publish_refuses_a_destination_pyarrow_cannot_reach(tiny_dataset):
    with pytest.raises(DatasetError, match="nosuchscheme://bucket: not a destination"):
        publish(Dataset(tiny_dataset[1]), "nosuchscheme://bucket")


def test_export_to_minari_from_the_command_line_loads_with_minari(tiny_dataset, tmp_path):
    _, out, manifest, _ = tiny_dataset
    result = icrl("datasets", "export", str(out), "--format", "minari", "--id", "icrl/tiny-v0", "--root", str(tmp_path / "m"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    code = "import minari; d = minari.load_dataset('icrl/tiny-v0'); print(d.total_steps)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "m")},
    )
    assert loaded.returncode == 0, loaded.stderr
    assert int(loaded.stdout.strip().splitlines()[-1]) == manifest["stats"]["rows"]


def test_a_failed_upload_leaves_nothing_and_a_retry_publishes(tiny_dataset):
    import fsspec
    import pyarrow.fs as pafs

    memory = fsspec.filesystem("memory")
    uploads = []

    class Flaky(pafs.FSSpecHandler):
        def open_output_stream(self, path, metadata):
            uploads.append(path)
            if len(uploads) == 4:
                raise OSError("connection reset")
            return super().open_output_stream(path, metadata)

    fs = pafs.PyFileSystem(Flaky(memory))
    with pytest.raises(OSError, match="connection reset"):
        publish(Dataset(tiny_dataset[1]), "bucket/failed", filesystem=fs)
    assert not memory.exists("/bucket/failed/tiny-v1")
    publish(Dataset(tiny_dataset[1]), "bucket/failed", filesystem=fs)
    assert memory.exists("/bucket/failed/tiny-v1/manifest.json")


def test_the_tar_holds_exactly_the_listed_files(tiny_dataset, tmp_path):
    import shutil

    copy = tmp_path / "tiny-v1"
    shutil.copytree(tiny_dataset[1], copy)
    (copy / "notes.txt").write_text("not part of the dataset")
    publish(Dataset(copy), str(tmp_path / "pub"), as_tar=True)
    with tarfile.open(tmp_path / "pub" / "tiny-v1.tar") as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames()}
    listed = {f["path"] for f in Dataset(copy).manifest["files"]}
    assert names == listed | {"manifest.json"}


def test_publish_to_an_object_store_writes_the_manifest_last(tiny_dataset):
    """An object store has no rename: a reader that sees manifest.json must see every file it lists."""
    import fsspec
    import pyarrow.fs as pafs

    memory = fsspec.filesystem("memory")
    order = []

    class Recording(pafs.FSSpecHandler):
        def open_output_stream(self, path, metadata):
            order.append(path)
            return super().open_output_stream(path, metadata)

    fs = pafs.PyFileSystem(Recording(memory))
    where = publish(Dataset(tiny_dataset[1]), "bucket/datasets", formats=["parquet", "hdf5"], filesystem=fs)
    assert where == "bucket/datasets/tiny-v1"
    assert order[-1].endswith("tiny-v1/manifest.json") and len(order) == len(set(order))
    manifest = json.loads(memory.cat("/bucket/datasets/tiny-v1/manifest.json"))
    assert {f["path"] for f in manifest["files"]} == {p.split("tiny-v1/", 1)[1] for p in order[:-1]}
    assert {f["path"].split("/")[0] for f in manifest["files"] if "/" in f["path"]} == {"parquet", "hdf5"}
