"""Parquet + zstd: the publishing format, the same tables as the Arrow IPC shards.

Row groups hold whole histories, about `ROW_GROUP_ROWS` rows each, so a streaming reader
(Hugging Face `datasets`, DuckDB) holds one row group in memory at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from icrl.atomic import atomic_open, sha256_file
from icrl.datasets.schema import history_bounds
from icrl.datasets.shards import FileInfo

ROW_GROUP_ROWS = 1 << 16
COMPRESSION = "zstd"


def _row_groups(history_id: np.ndarray) -> list[tuple[int, int]]:
    """Returns [start, stop) row ranges of whole histories of about ROW_GROUP_ROWS rows each."""
    groups, lo = [], 0
    for _, stop in history_bounds(history_id):
        if stop - lo >= ROW_GROUP_ROWS or stop == len(history_id):
            groups.append((lo, stop))
            lo = stop
    return groups


def write_parquet(path: Path, table: pa.Table, *, root: Path) -> FileInfo:
    """Writes `table` (one shard of rows) to `path` atomically; returns its FileInfo relative to `root`."""
    path = Path(path)
    with atomic_open(path) as f:
        # Non-compliant nesting keeps Arrow's list child name ("item"), so the schema read back is the written one.
        with pq.ParquetWriter(
            f, table.schema, compression=COMPRESSION, store_schema=True, use_compliant_nested_type=False
        ) as writer:
            for lo, hi in _row_groups(table["history_id"].to_numpy()):
                writer.write_table(table.slice(lo, hi - lo), row_group_size=hi - lo)
    return FileInfo(path.relative_to(root).as_posix(), path.stat().st_size, table.num_rows, sha256_file(path))


def read_parquet(path: Path) -> pa.Table:
    """Returns the rows of one Parquet shard, with the schema it was written with."""
    return pq.read_table(path)


def write_table(path: Path, table: pa.Table, *, root: Path) -> FileInfo:
    """Writes a small metadata table (tasks, history summaries) to `path` atomically."""
    path = Path(path)
    with atomic_open(path) as f:
        pq.write_table(table, f, compression=COMPRESSION)
    return FileInfo(path.relative_to(root).as_posix(), path.stat().st_size, table.num_rows, sha256_file(path))
