"""Arrow IPC shards: the training format, uncompressed so readers memory-map them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from icrl.atomic import atomic_open, sha256_file


@dataclass(frozen=True)
class FileInfo:
    """What a manifest records of one file: its path (relative), size, rows and sha256."""

    path: str
    bytes: int
    rows: int
    sha256: str

    def to_json(self) -> dict:
        return asdict(self)


def shard_name(index: int) -> str:
    """Returns the file name of shard `index`: `shard-00042.arrow` (never a uuid or a time)."""
    return f"shard-{index:05d}.arrow"


def write_ipc(path: str | Path, table: pa.Table, *, root: str | Path | None = None) -> FileInfo:
    """Writes `table` as an Arrow IPC file at `path`, atomically; returns its FileInfo.

    The FileInfo's path is relative to `root` (default: the file's folder).
    """
    path = Path(path)
    with atomic_open(path) as f:
        with pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)
    rel = path.relative_to(root) if root is not None else Path(path.name)
    return FileInfo(rel.as_posix(), path.stat().st_size, table.num_rows, sha256_file(path))


def read_ipc(path: str | Path) -> pa.Table:
    """Returns the table in the Arrow IPC file at `path`, memory-mapped (zero-copy)."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()
