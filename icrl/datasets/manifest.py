"""manifest.json: every file of a dataset with its bytes, rows and sha256, and how to check them."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from icrl.atomic import write_json
from icrl.datasets.layout import LAYOUT_VERSION
from icrl.datasets.shards import FileInfo
from icrl.errors import BadInputError

MANIFEST = "manifest.json"


class DatasetError(BadInputError, ValueError):
    """A dataset that cannot be trusted or read; the message names the file."""


def write_manifest(root: Path, files: list[FileInfo], **fields: Any) -> dict[str, Any]:
    """Writes `root/manifest.json` listing `files` (paths relative to `root`) and `fields`."""
    manifest = {**fields, "files": [f.to_json() for f in sorted(files, key=lambda f: f.path)]}
    write_json(root / MANIFEST, manifest)
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """Returns the manifest of the dataset at `root`; raises DatasetError if absent or unreadable."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing: {root} is not an icrl dataset (or is incomplete)") from None
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable manifest: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise DatasetError(f"{path}: not an icrl manifest (no 'files' list)")
    if manifest.get("layout_version") != LAYOUT_VERSION:
        raise DatasetError(
            f"{path}: written by an icrl with dataset layout {manifest.get('layout_version', 1)}, this one reads "
            f"layout {LAYOUT_VERSION}; rebuild the dataset (icrl run --force datasets) or use that icrl"
        )
    for i, entry in enumerate(manifest["files"]):
        _check_entry(path, i, entry)
    return manifest


def _check_entry(manifest: Path, i: int, entry: Any) -> None:
    where = f"{manifest}: files[{i}]"
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: not an object")
    types = {"path": str, "bytes": int, "rows": int, "sha256": str}
    for key, kind in types.items():
        if not isinstance(entry.get(key), kind):
            raise DatasetError(f"{where}: '{key}' missing or not a {kind.__name__}")
    rel = PurePosixPath(entry["path"])
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DatasetError(f"{where}: path {entry['path']!r} points outside the dataset folder")
