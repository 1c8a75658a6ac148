"""Tasks: an environment id plus task parameters, with a stable content hash and a split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

TRAIN, HELDOUT = "train", "heldout"


def canonical_json(obj: Any) -> str:
    """Returns the canonical JSON text of `obj` (sorted keys, no whitespace)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Task:
    """One task: `env_id`, the environment's fixed settings and the task's own parameters."""

    env_id: str
    params: dict[str, Any]
    split: str = TRAIN

    @property
    def spec(self) -> dict[str, Any]:
        """Returns the full specification that the hash covers (the split is not part of it)."""
        return {"env_id": self.env_id, "params": self.params}

    @cached_property
    def spec_hash(self) -> str:
        """Returns the sha256 of the canonical JSON of the specification."""
        return hashlib.sha256(canonical_json(self.spec).encode()).hexdigest()

    @property
    def task_id(self) -> str:
        """Returns the stable id of the task: a prefix of its specification hash."""
        return self.spec_hash[:16]


def split_tasks(tasks: list[Task], *, heldout: int, seed: int) -> list[Task]:
    """Returns `tasks` with `heldout` of them, chosen by a seeded permutation, marked held out."""
    if not 0 <= heldout < len(tasks):
        raise ValueError(f"cannot hold out {heldout} of {len(tasks)} tasks")
    order = np.random.default_rng(seed).permutation(len(tasks))
    held = set(order[:heldout].tolist())
    return [
        Task(t.env_id, t.params, HELDOUT if i in held else TRAIN) for i, t in enumerate(tasks)
    ]
