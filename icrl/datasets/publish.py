"""Publishing a dataset: a self-contained folder (or one `.tar`) on any filesystem pyarrow reaches.

The destination is a local path or a URI that `pyarrow.fs.FileSystem.from_uri` accepts
(`file:///…`, `s3://bucket/prefix`, `gs://…`, `hdfs://…`). The published folder holds the
card, the manifest, the task and history tables and the rows in the chosen formats, and
passes `icrl datasets verify` wherever it lands.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.fs as pafs

from icrl.datasets.convert import convert
from icrl.datasets.dataset import Dataset
from icrl.datasets.layout import Format
from icrl.datasets.manifest import MANIFEST, DatasetError

_COPY_BLOCK = 1 << 22


def _filesystem(dest: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in dest:
        return pafs.LocalFileSystem(), Path(dest).expanduser().resolve().as_posix()
    try:
        return pafs.FileSystem.from_uri(dest)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise DatasetError(f"{dest}: not a destination pyarrow can write to: {err}") from None


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _remove(fs: pafs.FileSystem, path: str) -> None:
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


def _upload(fs: pafs.FileSystem, src: Path, dst: str) -> str:
    """Copies the local file `src` to `dst` on `fs`; returns the sha256 of the bytes sent."""
    digest = hashlib.sha256()
    with open(src, "rb") as f, fs.open_output_stream(dst) as out:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _read_back(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _tar(root: Path, files: list[str], name: str, out: Path) -> None:
    """Writes `files` (relative to `root`) as `out`, a tar of the folder `name/`: owner-less and
    time-less, so the same dataset always gives the same archive."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            path = root / rel
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with open(path, "rb") as f:
                tar.addfile(info, f)


def _published(fs: pafs.FileSystem, target: str, as_tar: bool) -> bool:
    """Whether `target` is a finished publication: the tar, or a folder holding its manifest (written last)."""
    return _exists(fs, target) if as_tar else _exists(fs, f"{target}/{MANIFEST}")


def _send(fs: pafs.FileSystem, src: Path, dst: str) -> None:
    """Uploads `src` to `dst` and reads it back; raises DatasetError if the bytes differ."""
    sent = _upload(fs, src, dst)
    if _read_back(fs, dst) != sent:
        raise DatasetError(f"{dst}: the bytes read back differ from those written")


def publish(
    dataset: Dataset, dest: str, *, formats: Sequence[Format] | None = None, as_tar: bool = False,
    filesystem: pafs.FileSystem | None = None,
) -> str:
    """Writes `dataset` under `dest` as `<dataset_id>/` (or `<dataset_id>.tar`) with the rows in
    `formats` (default: those it holds, converted where missing); returns the written location.

    `filesystem`, if given, is the pyarrow filesystem `dest` is a path on. Refuses to replace an
    existing publication. Locally the result appears by one rename;
    on object stores, where there is no rename, `manifest.json` is written last, so a reader
    that finds it finds every file it lists.
    """
    fs, base = (filesystem, str(dest)) if filesystem is not None else _filesystem(str(dest))
    name = dataset.id + (".tar" if as_tar else "")
    target = f"{base.rstrip('/')}/{name}"
    if _published(fs, target, as_tar):
        raise DatasetError(f"{dest}: {name} is already published there; published datasets are immutable")
    wanted = list(formats) if formats else dataset.formats
    local = isinstance(fs, pafs.LocalFileSystem)
    # Locally the files go to a hidden sibling renamed into place at the end; an object store
    # has no rename, so they go to the target itself, the manifest last.
    staging = f"{base.rstrip('/')}/.{name}.tmp" if local else target
    with tempfile.TemporaryDirectory(prefix="icrl-publish-") as scratch:
        source = dataset.root
        if sorted(wanted) != sorted(dataset.formats):
            source = Path(scratch) / dataset.id
            convert(dataset, source, wanted)
        files = [entry["path"] for entry in Dataset(source).manifest["files"]]
        fs.create_dir(base, recursive=True)
        _remove(fs, staging)  # left by an interrupted publish
        try:
            if as_tar:
                archive = Path(scratch) / name
                _tar(source, [*files, MANIFEST], dataset.id, archive)
                _send(fs, archive, staging)
            else:
                fs.create_dir(staging, recursive=True)
                for rel in [*files, MANIFEST]:  # the manifest last
                    if "/" in rel:
                        fs.create_dir(f"{staging}/{rel.rsplit('/', 1)[0]}", recursive=True)
                    _send(fs, source / rel, f"{staging}/{rel}")
            if local:
                fs.move(staging, target)
        except BaseException:
            _remove(fs, staging)
            raise
    return target if "://" not in str(dest) else f"{str(dest).rstrip('/')}/{name}"
