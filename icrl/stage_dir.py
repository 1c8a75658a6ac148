"""A stage's folder and what it says about the stage: done, partial, stale or pending."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
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


def _read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat |= _flatten(value, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): tree}


@dataclass(frozen=True)
class StageDir:
    """`runs/<run>/<stage>/` for the stage output identified by `fingerprint`.

    `described` is what the fingerprint covers (the stage's settings and code version) and
    `upstream` the fingerprint of the stage it builds on; both are recorded with the output
    so that `why_stale` can say what changed.
    """

    path: Path
    fingerprint: str
    described: dict[str, Any] = field(default_factory=dict)
    upstream: str | None = None
    upstream_stage: str | None = None

    def _record(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, **self.described, "upstream": self.upstream}

    def why_stale(self) -> str:
        """Returns what differs between the output in the folder and the current settings."""
        old = _read(self.path / SUCCESS) or _read(self.path / STARTED)
        if "settings" not in old:
            return "written by an earlier icrl or by other settings"
        if old.get("code") != self.described.get("code"):
            return f"icrl's {self.path.name} code changed (version {old.get('code')} -> {self.described.get('code')})"
        before, now = _flatten(old["settings"]), _flatten(self.described.get("settings", {}))
        changed = [
            f"{key} {before.get(key, '(unset)')!r} -> {now.get(key, '(unset)')!r}"
            for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)
        ]
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            return "settings changed: " + ", ".join(changed[:3]) + more
        if old.get("upstream") != self.upstream:
            return f"the {self.upstream_stage} stage it builds on changed"
        return "other settings"

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
        write_json(self.path / STARTED, {**self._record(), "started_at": time.time()})

    def finish(self, summary: dict[str, Any]) -> None:
        """Marks the stage done with `summary`; from now on the same fingerprint skips it."""
        write_json(self.path / SUCCESS, {**self._record(), "finished_at": time.time(), **summary})

    def success(self) -> dict[str, Any]:
        """Returns the contents of `_SUCCESS.json`."""
        return json.loads((self.path / SUCCESS).read_text())

    def clear(self) -> None:
        """Removes everything the stage wrote."""
        if self.path.exists():
            shutil.rmtree(self.path)
