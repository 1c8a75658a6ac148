"""Training windows: L consecutive transitions inside one learning history.

A window may span episode boundaries but never two histories. The batch drawn for a given
(seed, batch index) is always the same, so a resumed run sees the data a straight run saw.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


class WindowSampler:
    """Draws windows uniformly over every valid (history, start) pair.

    `columns` holds flat arrays in row order with histories contiguous: `history_id`,
    `episode`, `obs`, `action`, `reward`. Each batch is a dict of [B, L, ...] arrays:
    `obs`, `action`, `prev_action` and `prev_reward`: the action and reward of the step
    before, in the same history (across episode boundaries: the last reward of an episode
    is what the next one learns from), and `num_actions` and 0 at a history's first step.
    """

    def __init__(self, columns: Mapping[str, np.ndarray], *, context_length: int, num_actions: int, seed: int):
        self.obs = columns["obs"]
        self.action = np.asarray(columns["action"], np.int32)
        self.reward = np.asarray(columns["reward"], np.float32)
        self.context_length = context_length
        self.num_actions = num_actions
        self.seed = seed
        history = np.asarray(columns["history_id"])
        n = len(history)
        new_history = np.ones(n, bool)
        new_history[1:] = history[1:] != history[:-1]
        self.history_start = new_history
        starts = np.flatnonzero(new_history)
        lengths = np.diff(np.append(starts, n))
        if len(np.unique(history[starts])) != len(starts):
            raise ValueError("histories are not contiguous: a history_id appears in two runs of rows")
        windows = np.maximum(lengths - context_length + 1, 0)
        if windows.sum() == 0:
            raise ValueError(
                f"no history holds {context_length} transitions (longest: {lengths.max(initial=0)}); "
                "shorten the context or lengthen the histories"
            )
        self.history_starts = starts[windows > 0]
        self.cum_windows = np.cumsum(windows[windows > 0])
        self.num_windows = int(self.cum_windows[-1])

    def batch(self, batch_size: int, index: int) -> dict[str, np.ndarray]:
        """Returns batch number `index` of `batch_size` windows."""
        rng = np.random.default_rng((self.seed, index))
        flat = rng.integers(0, self.num_windows, batch_size)
        h = np.searchsorted(self.cum_windows, flat, side="right")
        offset = flat - np.concatenate(([0], self.cum_windows))[h]
        rows = (self.history_starts[h] + offset)[:, None] + np.arange(self.context_length)
        first = self.history_start[rows]
        prev = np.maximum(rows - 1, 0)
        return {
            "obs": self.obs[rows],
            "action": self.action[rows],
            "prev_action": np.where(first, self.num_actions, self.action[prev]).astype(np.int32),
            "prev_reward": np.where(first, 0.0, self.reward[prev]).astype(np.float32),
        }
