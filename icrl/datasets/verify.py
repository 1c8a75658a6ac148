"""Checking a dataset folder: every file its manifest lists is there, whole, unaltered, and of the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import pyarrow as pa
import pyarrow.parquet as pq

from icrl.atomic import sha256_file
from icrl.datasets.hdf5_format import read_schema, row_columns
from icrl.datasets.layout import format_of
from icrl.datasets.manifest import MANIFEST, DatasetError, read_manifest


def _file_schema(path: Path, fmt: str) -> pa.Schema:
    if fmt == "ipc":
        with pa.memory_map(str(path), "r") as source:
            return pa.ipc.open_file(source).schema
    if fmt == "parquet":
        return pq.read_schema(path)
    with h5py.File(path, "r") as f:
        schema = read_schema(f)
        for name in ("history_id", "task_id", "length", "shard", *row_columns(schema)):
            if name not in f:
                raise DatasetError(f"{path}: has no '{name}' array")
        return schema


def check_schema(path: Path, fmt: str, expected: list[str]) -> None:
    """Raises DatasetError naming `path` unless its columns and types are `expected` ("name: type" lines)."""
    try:
        schema = _file_schema(path, fmt)
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as err:
        raise DatasetError(f"{path}: not a readable {fmt} file: {err}") from None
    found = [f"{field.name}: {field.type}" for field in schema]
    if found != expected:
        diff = next((f"{a!r} where the manifest says {b!r}" for a, b in zip(found, expected) if a != b), None)
        raise DatasetError(f"{path}: schema differs from the manifest: {diff or f'{len(found)} columns, not {len(expected)}'}")


def verify(root: Path) -> dict[str, Any]:
    """Checks every file the manifest lists (present, size, sha256, and the row schema of data files).

    Returns the manifest; raises DatasetError naming the first file that does not match.
    """
    root = Path(root)
    manifest = read_manifest(root)
    for entry in manifest["files"]:
        path = root / entry["path"]
        if not path.is_file():
            raise DatasetError(f"{path}: missing (listed in {root / MANIFEST})")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise DatasetError(f"{path}: {size} bytes, the manifest says {entry['bytes']} (truncated or altered)")
        if sha256_file(path) != entry["sha256"]:
            raise DatasetError(f"{path}: sha256 differs from the manifest (the file was altered)")
        fmt = format_of(entry["path"])
        if fmt is not None:
            check_schema(path, fmt, manifest.get("schema", []))
    return manifest
