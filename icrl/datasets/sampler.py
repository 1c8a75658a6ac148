"""Training windows: L consecutive transitions inside one learning history, from any format.

A window may span episode boundaries but never two histories. With `every=k` only every
k-th episode of a history is kept (episodes 0, k, 2k, ...), so a window shows k times more
learning progress (Algorithm Distillation subsamples the same way). The batch drawn for a
given (seed, batch index) is always the same, so a resumed run sees the data a straight run
saw, and `batches` can prefetch them in a background thread without changing them.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from icrl.datasets.stores import ArrowStore, HistoryStore

_WINDOW_COLUMNS = ("obs", "action", "reward")


class WindowSampler:
    """Draws windows uniformly over every valid (history, start) pair of the selected histories.

    `store` is any HistoryStore (or a mapping of flat in-memory columns); `histories`
    selects histories by their number in the store (default: all). Each batch is a dict of
    [B, L, ...] arrays: `obs`, `action`, and `prev_action` / `prev_reward`: the action and
    reward of the kept step before, in the same history (across episode boundaries: the last
    reward of an episode is what the next one learns from), and `num_actions` and 0 at a
    history's first kept step (so `num_actions` is required for discrete actions). Continuous
    actions give a zero vector there.
    """

    def __init__(
        self, store: HistoryStore | Mapping[str, np.ndarray], *, context_length: int, seed: int,
        num_actions: int | None = None, histories: Sequence[int] | None = None, every: int = 1,
        action_masks: Mapping[str, np.ndarray] | None = None,
    ):
        self.store = store if isinstance(store, HistoryStore) else ArrowStore.from_columns(store)
        if every < 1:
            raise ValueError(f"every must be >= 1 (keep every k-th episode), got {every}")
        missing = [n for n in (*_WINDOW_COLUMNS, "episode") if n not in self.store.columns]
        if missing:
            raise ValueError(f"the histories lack the columns {missing}")
        self.context_length, self.seed, self.num_actions, self.every = context_length, seed, num_actions, every
        self.action_masks = action_masks
        if action_masks is not None:
            unknown = sorted(set(self.store.task_id.tolist()) - set(action_masks))
            if unknown:
                raise ValueError(f"no action mask for task {unknown[0]!r}")
        chosen = np.arange(len(self.store)) if histories is None else np.asarray(histories, np.int64)
        if len(chosen) == 0:
            raise ValueError("no histories selected (check the split and task filters)")
        # kept[h]: the steps of history h that the sampler uses, in order (None: all of them)
        if every == 1:
            self._kept = None
            kept_lengths = self.store.length[chosen]
        else:
            self._kept = [self._kept_steps(int(h)) for h in chosen]
            kept_lengths = np.array([len(k) for k in self._kept])
        windows = np.maximum(kept_lengths - context_length + 1, 0)
        if windows.sum() == 0:
            raise ValueError(
                f"no history holds {context_length} transitions (longest: {kept_lengths.max(initial=0)}"
                + (f" after keeping every {every}th episode" if every > 1 else "")
                + "); shorten the context or lengthen the histories"
            )
        usable = windows > 0
        self._histories = chosen[usable]
        if self._kept is not None:
            self._kept = [k for k, u in zip(self._kept, usable) if u]
        self._lengths = kept_lengths[usable]
        self._cum_windows = np.cumsum(windows[usable])
        self._base = np.concatenate(([0], self._cum_windows[:-1]))
        self.num_windows = int(self._cum_windows[-1])
        action = self.store.read(int(self._histories[0]), 0, 1, ("action", "obs"))
        self._action_shape = action["action"].shape[1:]
        if not self._action_shape and num_actions is None:
            raise ValueError("discrete actions need num_actions: the previous-action token at a history's start")
        self.example_obs = action["obs"][0]

    def _kept_steps(self, h: int) -> np.ndarray:
        episode = self.store.read(h, 0, int(self.store.length[h]), ("episode",))["episode"]
        return np.flatnonzero(episode % self.every == 0)

    def _positions(self, i: int, start: int, count: int) -> np.ndarray | slice:
        """Returns the steps of kept positions [start, start + count) of selected history i."""
        if self._kept is None:
            return slice(start, start + count)
        return self._kept[i][start : start + count]

    def _window(self, i: int, start: int, extra: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Returns window [start, start + L) (kept positions) of selected history i, with prev_*."""
        h, L = int(self._histories[i]), self.context_length
        first = start == 0
        steps = self._positions(i, start - (not first), L + (not first))  # the step before, too
        if isinstance(steps, slice):
            lo, hi = steps.start, steps.stop
            local = None
        else:
            lo, hi = int(steps[0]), int(steps[-1]) + 1
            local = steps - lo
        cols = self.store.read(h, lo, hi, (*_WINDOW_COLUMNS, *extra))
        if local is not None:
            cols = {name: values[local] for name, values in cols.items()}
        if first:
            start_action = (
                np.full((1,), self.num_actions, np.int32) if not self._action_shape
                else np.zeros((1, *self._action_shape), np.float32)
            )
            prev_action = np.concatenate((start_action, cols["action"][:-1]))
            prev_reward = np.concatenate(([0.0], cols["reward"][:-1]))
            now = slice(0, L)
        else:
            prev_action, prev_reward = cols["action"][:-1], cols["reward"][:-1]
            now = slice(1, L + 1)
        out = {"obs": cols["obs"][now], "action": cols["action"][now], "prev_action": prev_action,
               "prev_reward": prev_reward}
        for name in extra:
            out[name] = cols[name][now]
        if self.action_masks is not None:
            out["available"] = np.asarray(self.action_masks[str(self.store.task_id[h])], bool)
        return out

    def _draw(self, batch_size: int, index: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, index))
        flat = rng.integers(0, self.num_windows, batch_size)
        which = np.searchsorted(self._cum_windows, flat, side="right")
        return rng, which, flat - self._base[which]

    def _stack(self, windows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        batch = {name: np.stack([w[name] for w in windows]) for name in windows[0]}
        batch["action"] = batch["action"].astype(np.int32 if not self._action_shape else np.float32, copy=False)
        batch["prev_action"] = batch["prev_action"].astype(batch["action"].dtype, copy=False)
        batch["prev_reward"] = batch["prev_reward"].astype(np.float32, copy=False)
        return batch

    def batch(self, batch_size: int, index: int) -> dict[str, np.ndarray]:
        """Returns batch number `index` of `batch_size` windows."""
        _, which, starts = self._draw(batch_size, index)
        return self._stack([self._window(int(i), int(s)) for i, s in zip(which, starts)])

    def query_batch(self, batch_size: int, index: int, *, label: str = "expert_action") -> dict[str, np.ndarray]:
        """Returns a DPT-style batch: a context window plus one query step of the same history.

        Adds `query_obs` [B, ...] and `query_action` [B]: a step drawn uniformly from the
        history's kept steps, labelled with its `label` column (the demonstrator's action by default).
        """
        if label not in self.store.columns:
            raise ValueError(f"the histories have no '{label}' column to label queries with")
        rng, which, starts = self._draw(batch_size, index)
        windows, queries, labels = [], [], []
        for i, s in zip(which, starts):
            i = int(i)
            windows.append(self._window(i, int(s)))
            q = int(rng.integers(0, self._lengths[i]))
            step = q if self._kept is None else int(self._kept[i][q])
            row = self.store.read(int(self._histories[i]), step, step + 1, ("obs", label))
            queries.append(row["obs"][0])
            labels.append(row[label][0])
        batch = self._stack(windows)
        batch["query_obs"] = np.stack(queries)
        batch["query_action"] = np.asarray(labels).astype(batch["action"].dtype)
        return batch

    def batches(
        self, batch_size: int, start: int, stop: int, *, prefetch: int = 4, kind: str = "window", **kwargs: Any
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yields batches number start..stop-1 in order, drawn ahead by a background thread.

        `kind` is "window" (`batch`) or "query" (`query_batch`). The thread stops when the
        iterator is closed or garbage-collected; an error in it is raised here.
        """
        make = {"window": self.batch, "query": self.query_batch}[kind]
        ready: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stopping = threading.Event()

        def hand_over(item: tuple) -> bool:
            """Puts `item` in the queue unless the consumer has gone; returns whether it did."""
            while not stopping.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for index in range(start, stop):
                    if not hand_over((index, make(batch_size, index, **kwargs))):
                        return
            except BaseException as err:  # handed to the consumer, which raises it
                hand_over((None, err))

        thread = threading.Thread(target=produce, name="icrl-prefetch", daemon=True)
        thread.start()
        try:
            for _ in range(start, stop):
                index, item = ready.get()
                if index is None:
                    raise item
                yield item
        finally:
            stopping.set()
            thread.join()
