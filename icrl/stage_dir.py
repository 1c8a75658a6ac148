"""A stage's folder and what it says about the stage: done, partial, stale or pending."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icrl.atomic import write_json

SUCCESS = "_SUCCESS.json"
STARTED = "_STARTED.json"  # written when a stage begins: partial outputs belong to this fingerprint


def _read_fingerprint(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class StageDir:
    """`runs/<run>/<stage>/` for the stage output identified by `fingerprint`."""

    path: Path
    fingerprint: str

    def status(self) -> str:
        """Returns `done`, `partial` (started, same settings), `stale` (other settings) or `pending`."""
        if _read_fingerprint(self.path / SUCCESS) == self.fingerprint:
            return "done"
        if _read_fingerprint(self.path / STARTED) == self.fingerprint:
            return "partial"
        if self.path.exists() and any(self.path.iterdir()):
            return "stale"
        return "pending"

    def begin(self, *, fresh: bool = False, keep: bool = False) -> None:
        """Prepares the folder for a run: keeps a partial run's work unless `fresh` or stale.

        With `keep`, earlier outputs stay whatever their settings (immutable datasets).
        """
        status = self.status()
        if not keep and (fresh or status in ("stale", "done")):
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / SUCCESS).unlink(missing_ok=True)
        write_json(self.path / STARTED, {"fingerprint": self.fingerprint, "started_at": time.time()})

    def finish(self, summary: dict[str, Any]) -> None:
        """Marks the stage done with `summary`; from now on the same fingerprint skips it."""
        write_json(self.path / SUCCESS, {"fingerprint": self.fingerprint, "finished_at": time.time(), **summary})

    def success(self) -> dict[str, Any]:
        """Returns the contents of `_SUCCESS.json`."""
        return json.loads((self.path / SUCCESS).read_text())

    def clear(self) -> None:
        """Removes everything the stage wrote."""
        if self.path.exists():
            shutil.rmtree(self.path)
