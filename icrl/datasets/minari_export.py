"""Exporting an icrl dataset as a Minari dataset (needs the optional `minari` package).

Layout of the export:

- One Minari episode is one environment episode of one learning history. Episodes are written in
  dataset order (history by history, each history's episodes in order), so reading Minari
  episodes by id replays every learning history in order.
- Minari stores n + 1 observations for an n-step episode: the observation before every step plus
  the one after the last step. icrl does not record that last one (the next row of a history is
  already the first observation of the next episode). The export therefore repeats the last
  recorded observation as the final one: `observations[-1] == observations[-2]` in every episode,
  and it is not a real next state. The Minari dataset's description says so too.
- `infos` follow Minari's own convention of one entry per observation (n + 1 per episode).
  `infos[key][t]` belongs to the same icrl row as `observations[t]` and `actions[t]`: `history_id`,
  `step` and `episode` (both counted within the history), `task_index` (the task's row in the icrl
  task table) and whichever optional columns the dataset has (`epsilon`, `expert_action`, `logp`,
  `update`). The extra last entry repeats the previous one, and `infos["observation_recorded"]` is
  False there only.
- Rewards, terminations and truncations are icrl's, unchanged: a history's last episode may end with
  neither flag set where collection stopped mid-episode.
- Spaces come from the data: integer scalar observations (Dark Room's cell index) and integer
  actions become `Discrete(largest value seen + 1)`; float vectors become unbounded `Box`es.
"""

from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from icrl import __version__
from icrl.datasets.manifest import DatasetError
from icrl.datasets.schema import OPTIONAL, numpy_column

if TYPE_CHECKING:
    from icrl.datasets.dataset import Dataset

_ENV_VAR = "MINARI_DATASETS_PATH"
_RECORDED = "observation_recorded"


@contextmanager
def _datasets_path(root: Path | None) -> Iterator[None]:
    """Points Minari at `root` (if given) for the duration of the block, then restores the old value."""
    if root is None:
        yield
        return
    old = os.environ.get(_ENV_VAR)
    os.environ[_ENV_VAR] = str(Path(root))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_ENV_VAR, None)
        else:
            os.environ[_ENV_VAR] = old


def _shape_of(table: pa.Table, key: bytes) -> tuple[int, ...] | None:
    """Returns the per-row shape icrl recorded in the schema metadata under `key`, if any."""
    raw = (table.schema.metadata or {}).get(key)
    if not raw:
        return None
    return tuple(int(part) for part in raw.decode().split(","))


def _values(table: pa.Table, name: str, shape_key: bytes) -> np.ndarray:
    """Returns column `name` as numpy, vectors reshaped to the shape recorded in the schema (if it fits)."""
    values = numpy_column(table[name])
    shape = _shape_of(table, shape_key)
    if values.ndim == 2 and shape and int(np.prod(shape)) == values.shape[1]:
        values = values.reshape(len(values), *shape)
    return values


def _space(spaces: Any, values: list[np.ndarray]) -> Any:
    """Returns the space of the rows `values` (one array per shard, all of one kind)."""
    first = values[0]
    if first.ndim == 1 and np.issubdtype(first.dtype, np.integer):
        lo = min(int(v.min()) for v in values)
        hi = max(int(v.max()) for v in values)
        start = min(lo, 0)
        return spaces.Discrete(hi - start + 1, start=start)
    return spaces.Box(-np.inf, np.inf, first.shape[1:], np.float32)


def _scan(dataset: Dataset, spaces: Any) -> tuple[Any, Any, list[str]]:
    """Returns (observation space, action space, optional columns present), from one pass over the rows."""
    seen: dict[str, list[np.ndarray]] = {"obs": [], "action": []}
    optional: list[str] = []
    for _, table in dataset.shards():
        optional = [name for name in OPTIONAL if name in table.column_names]
        if table.num_rows == 0:
            continue
        # Keeps only what the space needs: the first row of float vectors, the range of integers.
        for name, key in (("obs", b"icrl.obs_shape"), ("action", b"icrl.action_shape")):
            values = _values(table, name, key)
            seen[name].append(values[[values.argmin(), values.argmax()]] if values.ndim == 1 else values[:1])
    if not seen["obs"]:
        raise DatasetError(f"{dataset.root}: has no rows to export")
    return _space(spaces, seen["obs"]), _space(spaces, seen["action"]), optional


def _episodes(dataset: Dataset, episode_buffer: Any, obs_space: Any, action_space: Any) -> Iterator[Any]:
    """Yields one Minari EpisodeBuffer per environment episode, in dataset order."""
    task_ids = pa.array([task.task_id for task in dataset.tasks], pa.string())
    obs_dtype, action_dtype = obs_space.dtype, action_space.dtype
    for shard, table in dataset.shards():
        if table.num_rows == 0:
            continue
        task_column = table["task_id"]
        if pa.types.is_dictionary(task_column.type):
            task_column = task_column.cast(task_column.type.value_type)
        task_index = pc.index_in(task_column, value_set=task_ids)
        if task_index.null_count:
            raise DatasetError(f"{dataset.root}: shard {shard} has rows of a task missing from the task table")
        infos = {
            "history_id": numpy_column(table["history_id"]),
            "task_index": numpy_column(task_index).astype(np.int32),
            "step": numpy_column(table["step"]),
            "episode": numpy_column(table["episode"]),
        }
        for name in OPTIONAL:
            if name in table.column_names:
                infos[name] = _values(table, name, b"icrl.action_shape")
        obs = _values(table, "obs", b"icrl.obs_shape").astype(obs_dtype, copy=False)
        action = _values(table, "action", b"icrl.action_shape").astype(action_dtype, copy=False)
        reward = numpy_column(table["reward"]).astype(np.float32, copy=False)
        terminated = numpy_column(table["terminated"]).astype(bool, copy=False)
        truncated = numpy_column(table["truncated"]).astype(bool, copy=False)

        history, episode = infos["history_id"], infos["episode"]
        starts = np.flatnonzero((history[1:] != history[:-1]) | (episode[1:] != episode[:-1])) + 1
        bounds = np.concatenate([[0], starts, [table.num_rows]])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            n = b - a
            # icrl has no observation after the last step: repeat the last recorded one (see module doc).
            episode_infos = {name: np.concatenate([col[a:b], col[b - 1 : b]]) for name, col in infos.items()}
            episode_infos[_RECORDED] = np.arange(n + 1) < n
            yield episode_buffer(
                observations=np.concatenate([obs[a:b], obs[b - 1 : b]]),
                actions=action[a:b],
                rewards=reward[a:b],
                terminations=terminated[a:b],
                truncations=truncated[a:b],
                infos=episode_infos,
            )


def _description(dataset: Dataset, algorithm: str | None, optional: list[str]) -> str:
    manifest = dataset.manifest
    env = manifest.get("env")
    env_id = env.get("id", "an icrl environment") if isinstance(env, dict) else "an icrl environment"
    return (
        f"Learning histories of the icrl dataset {dataset.id} ({algorithm or 'unknown algorithm'} on {env_id}; "
        f"license {manifest.get('license', 'unknown')}; icrl fingerprint {manifest.get('fingerprint', 'unknown')}), "
        f"exported by icrl {__version__}. "
        "One Minari episode is one environment episode of one learning history, in dataset order "
        "(history by history, episodes in order), so reading episodes by id replays each learning history in order. "
        "icrl does not record the observation after an episode's last step: each episode's final observation "
        "repeats the last recorded one and is not a real next state (infos['observation_recorded'] is False for it). "
        "infos[key][t] belongs to the same step as observations[t] and actions[t]: history_id, step and episode "
        "(counted within the history), task_index (row of the icrl task table)"
        + (f", {', '.join(optional)}" if optional else "")
        + "; the extra last entry repeats the previous one. "
        "A history's last episode may end with neither termination nor truncation if collection stopped mid-episode. "
        "Discrete spaces count up to the largest value seen in the data. "
        f"The full task specifications and environment settings are in the card (README.md) of the icrl dataset "
        f"{dataset.id}."
    )


def export_minari(dataset: Dataset, dataset_id: str, *, root: Path | None = None) -> Path:
    """Writes `dataset` as the Minari dataset `dataset_id` (e.g. "icrl/darkroom-ad-eps-v0") under `root`
    (default: Minari's own datasets folder, MINARI_DATASETS_PATH or ~/.minari/datasets); returns its folder.

    minari.load_dataset(dataset_id) loads it when MINARI_DATASETS_PATH is `root`. An existing Minari
    dataset is never overwritten (DatasetError); a failed export leaves no dataset folder behind.
    """
    try:
        import gymnasium
        import minari
        from minari.data_collector import EpisodeBuffer
        from minari.dataset.minari_dataset import parse_dataset_id
        from minari.storage import get_dataset_path
    except ImportError:
        raise DatasetError("minari is not installed: pip install 'icrl[minari]'") from None
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as err:
        raise DatasetError(
            f"{dataset_id!r}: not a Minari dataset id (namespace/name-vN, e.g. icrl/darkroom-v0): {err}"
        ) from None

    with _datasets_path(root):
        folder = Path(get_dataset_path(dataset_id))
        if folder.exists():
            raise DatasetError(
                f"{folder}: Minari dataset {dataset_id} already exists; Minari datasets are immutable, bump the version"
            )
        obs_space, action_space, optional = _scan(dataset, gymnasium.spaces)
        source = dataset.manifest.get("source") or {}
        algorithm = (source.get("source") or {}).get("algorithm") if isinstance(source, dict) else None
        try:
            with warnings.catch_warnings():
                # Minari warns about each field an export without a gymnasium environment cannot fill.
                warnings.filterwarnings("ignore", message=r".*(is set to None|env_spec is None)", category=UserWarning)
                minari.create_dataset_from_buffers(
                    dataset_id,
                    buffer=_episodes(dataset, EpisodeBuffer, obs_space, action_space),  # type: ignore[arg-type]
                    env=None,
                    observation_space=obs_space,
                    action_space=action_space,
                    algorithm_name=algorithm,
                    description=_description(dataset, algorithm, optional),
                    data_format="hdf5",
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return folder
