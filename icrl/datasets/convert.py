"""Converting a dataset between formats: a new folder with the same rows, tasks and summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from icrl.datasets.build import write_dataset
from icrl.datasets.dataset import Dataset
from icrl.datasets.layout import Format

# Manifest fields that describe the files rather than the data; written anew.
_FILE_FIELDS = ("files", "schema_version", "formats", "hdf5_chunk_length", "stats", "schema")


def convert(
    dataset: Dataset, out: Path, formats: Sequence[Format], *, source: Format | None = None,
    chunk_length: int | None = None,
) -> dict[str, Any]:
    """Writes `dataset` to the new folder `out` in `formats`, reading its `source` format
    (default: the fastest present); returns the new manifest. Nothing is lost: the rows,
    task table and history summaries are the same, column by column."""
    fields = {k: v for k, v in dataset.manifest.items() if k not in _FILE_FIELDS}
    chunk = chunk_length or dataset.manifest.get("hdf5_chunk_length") or 100
    return write_dataset(
        Path(out), shards=lambda: dataset.shards(source), formats=formats, tasks=dataset.tasks, fields=fields,
        chunk_length=chunk, summaries=dataset.histories,
    )
