"""Environments with the gymnax API, and the tasks they offer.

Importing gymnax starts JAX, so the environment classes load on first use: a driver can
import icrl (and start Ray) before doing any JAX work.
"""

from importlib import import_module
from typing import Any

from icrl.envs.tasks import HELDOUT, TRAIN, Task, split_tasks

_LAZY = {
    "BernoulliBandit": "icrl.envs.bandits",
    "CompoundGrid": "icrl.envs.compound_grid",
    "ContextualBandit": "icrl.envs.bandits",
    "DarkKeyToDoor": "icrl.envs.key_to_door",
    "DarkRoom": "icrl.envs.dark_room",
    "Projected": "icrl.envs.projected",
    "TaskFamily": "icrl.envs.family",
    "make_env": "icrl.envs.family",
    "make_family": "icrl.envs.family",
    "set_tasks": "icrl.envs.family",
    "spaces": "icrl.envs.spaces",
}

__all__ = ["HELDOUT", "TRAIN", "Task", "split_tasks", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name == "spaces":
        return import_module(_LAZY[name])
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'icrl.envs' has no attribute {name!r}")
