"""Where things live inside a dataset folder `<name>-v<N>/`.

```
README.md            the card (YAML front matter + how to load it)
manifest.json        every file below with bytes, rows and sha256
tasks.parquet        the task table (every task of the family, with its split and spec hash)
histories.parquet    one summary row per learning history
ipc/shard-*.arrow    Arrow IPC, uncompressed: the training format (memory-mapped)
parquet/shard-*.parquet  Parquet + zstd: the publishing format (same tables as ipc/)
hdf5/histories.h5    HDF5: (n_histories, T, ...) arrays, chunked by the training context
```
A dataset holds one or more of the three formats; each holds the same rows.
"""

from __future__ import annotations

from typing import Literal

Format = Literal["ipc", "parquet", "hdf5"]
FORMATS: tuple[Format, ...] = ("ipc", "parquet", "hdf5")
# Which format a reader opens when asked for none: the fastest to sample from first.
PREFERENCE: tuple[Format, ...] = ("ipc", "hdf5", "parquet")

# The version of this folder layout; a manifest of another version is refused with a clear message.
LAYOUT_VERSION = 2

CARD_FILE = "README.md"
TASKS_FILE = "tasks.parquet"
HISTORIES_FILE = "histories.parquet"
HDF5_FILE = "hdf5/histories.h5"
SUFFIX: dict[Format, str] = {"ipc": ".arrow", "parquet": ".parquet", "hdf5": ".h5"}


def format_of(rel: str) -> Format | None:
    """Returns the format a dataset file (path relative to the root) belongs to, or None for metadata."""
    head = rel.split("/", 1)[0]
    return head if head in FORMATS and "/" in rel else None  # type: ignore[return-value]


def shard_file(fmt: Format, index: int) -> str:
    """Returns the relative path of row shard `index` in `fmt` (ipc or parquet)."""
    return f"{fmt}/shard-{index:05d}{SUFFIX[fmt]}"
