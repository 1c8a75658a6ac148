"""Orbax checkpoints of the training state, with resume from the latest complete one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from icrl.errors import BadInputError


class CheckpointError(BadInputError, ValueError):
    """A checkpoint that cannot be restored into the expected model; the message names it."""


def _key_name(key: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """Returns {dotted path: shape} for every array leaf of `tree` (arrays or orbax metadata)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}


class Checkpoints:
    """The checkpoints under `folder`: saved synchronously, the newest `keep` kept.

    Orbax writes each step into a temporary folder and renames it when complete, so an
    interrupted save never looks like a checkpoint.
    """

    def __init__(self, folder: Path, *, keep: int = 2):
        logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
        self.folder = Path(folder).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(
            self.folder, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    def latest_step(self) -> int | None:
        """Returns the step of the newest complete checkpoint, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Saves `state` as the checkpoint of `step` (no-op if it exists)."""
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def restore(self, step: int, like: Any) -> Any:
        """Returns the state saved at `step`, with the structure and shapes of `like` (arrays or ShapeDtypeStructs)."""
        path = self.folder / str(step)
        try:
            saved = _shapes(self.manager.item_metadata(step))
        except Exception as err:  # orbax raises several types for unreadable metadata
            raise CheckpointError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err})") from None
        wanted = _shapes(like)
        for name in sorted(saved.keys() | wanted.keys(), key=lambda n: (not n.startswith("params"), n)):
            if saved.get(name) != wanted.get(name):
                raise CheckpointError(
                    f"{path}: cannot restore the checkpoint into this model: {name} is {saved.get(name, 'absent')} "
                    f"in the checkpoint and {wanted.get(name, 'absent')} in the model (another model shape?)"
                )
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(like))
        except Exception as err:  # a damaged checkpoint: orbax raises several types
            raise CheckpointError(f"{path}: damaged checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None

    def close(self) -> None:
        self.manager.close()
