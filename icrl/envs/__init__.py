"""Environments with the gymnax API, and the tasks they offer.

Importing gymnax starts JAX, so the environment classes load on first use: a driver can
import icrl (and start Ray) before doing any JAX work.
"""

from importlib import import_module
from typing import Any

from icrl.envs.tasks import HELDOUT, TRAIN, Task, split_tasks

_LAZY = {
    "DarkRoom": "icrl.envs.dark_room",
    "ENVIRONMENTS": "icrl.envs.family",
    "TaskFamily": "icrl.envs.family",
    "make_env": "icrl.envs.family",
    "make_family": "icrl.envs.family",
}

__all__ = ["DarkRoom", "ENVIRONMENTS", "HELDOUT", "TRAIN", "Task", "TaskFamily", "make_env", "make_family", "split_tasks"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'icrl.envs' has no attribute {name!r}")
