"""The collect ledger: which units are finished, with the shard each one wrote.

Light on purpose (no JAX): the pipeline reads it before deciding whether to start Ray.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from icrl.atomic import sha256_file, write_json
from icrl.console import say

LEDGER = "ledger.json"


@dataclass(frozen=True)
class UnitResult:
    """What a worker returns: the shard's FileInfo fields and the histories it holds."""

    index: int
    path: str
    bytes: int
    rows: int
    sha256: str
    histories: int


def read_ledger(stage_dir: Path, fingerprint: str, *, quiet: bool = False) -> dict[int, UnitResult]:
    """Returns the finished units recorded in the ledger whose shard is still intact on disk.

    Says which shards are missing or damaged unless `quiet`.
    """
    try:
        ledger = json.loads((stage_dir / LEDGER).read_text())
        if ledger.get("fingerprint") != fingerprint:
            return {}
        entries = [UnitResult(**entry) for entry in ledger["units"].values()]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}  # no ledger, or not one this code wrote: every unit is collected again
    finished = {}
    for result in entries:
        shard = stage_dir / "shards" / result.path
        if shard.is_file() and shard.stat().st_size == result.bytes and sha256_file(shard) == result.sha256:
            finished[result.index] = result
        elif not quiet:
            say(f"collect: shard {shard} is missing or damaged; it will be collected again")
    return finished


def write_ledger(stage_dir: Path, fingerprint: str, finished: dict[int, UnitResult]) -> None:
    """Records the finished units, atomically."""
    units = {str(i): asdict(finished[i]) for i in sorted(finished)}
    write_json(stage_dir / LEDGER, {"fingerprint": fingerprint, "units": units})
