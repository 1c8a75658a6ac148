"""The row schema of learning histories: one row per environment step."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 2

# Required columns, in order; `obs` and `action` are filled in per environment.
_BASE = [
    ("history_id", pa.int64()),
    ("task_id", pa.dictionary(pa.int32(), pa.string())),
    ("step", pa.int32()),
    ("episode", pa.int32()),
    ("obs", None),
    ("action", None),
    ("reward", pa.float32()),
    ("terminated", pa.bool_()),
    ("truncated", pa.bool_()),
]
# Columns a source may add; None: the type of `action`.
OPTIONAL = {
    "epsilon": pa.float32(),
    "expert_action": None,
    "logp": pa.float32(),
    "update": pa.int32(),
}
REQUIRED = [name for name, _ in _BASE]


def obs_type(obs_shape: tuple[int, ...], obs_dtype: Any) -> pa.DataType:
    """Returns the Arrow type of one observation: a scalar, or a fixed-size list of float32."""
    if obs_shape == ():
        return pa.from_numpy_dtype(np.dtype(obs_dtype))
    return pa.list_(pa.float32(), int(np.prod(obs_shape)))


def history_schema(
    obs_shape: tuple[int, ...], obs_dtype: Any, optional: tuple[str, ...] = (), *, action_shape: tuple[int, ...] = ()
) -> pa.Schema:
    """Returns the row schema for observations of `obs_shape`/`obs_dtype` plus `optional` columns.

    Actions are int32 indices, or (`action_shape` not empty) fixed-size lists of float32.
    """
    action = pa.int32() if action_shape == () else obs_type(tuple(action_shape), np.float32)
    filled = {"obs": obs_type(tuple(obs_shape), obs_dtype), "action": action}
    fields = [pa.field(n, filled[n] if t is None else t, nullable=False) for n, t in _BASE]
    fields += [pa.field(n, action if OPTIONAL[n] is None else OPTIONAL[n], nullable=False) for n in optional]
    meta = {
        "icrl.schema_version": str(SCHEMA_VERSION),
        "icrl.obs_shape": ",".join(map(str, obs_shape)),
        "icrl.action_shape": ",".join(map(str, action_shape)),
    }
    return pa.schema(fields, metadata=meta)


def history_table(columns: Mapping[str, np.ndarray], task_ids: list[str], schema: pa.Schema) -> pa.Table:
    """Returns a table of `schema` from flat numpy `columns`; `task_id` holds indices into `task_ids`."""
    arrays = []
    for field in schema:
        if field.name == "task_id":
            indices = pa.array(np.asarray(columns["task_id"], np.int32))
            arrays.append(pa.DictionaryArray.from_arrays(indices, pa.array(task_ids, pa.string())))
        elif pa.types.is_fixed_size_list(field.type):
            values = np.ascontiguousarray(columns[field.name], np.float32).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values), field.type.list_size))
        else:
            arrays.append(pa.array(np.asarray(columns[field.name]), field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def numpy_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Returns an Arrow column as numpy (zero-copy where Arrow allows); fixed-size lists become [rows, size]."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_fixed_size_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), column.type.list_size)
    return column.to_numpy(zero_copy_only=False)


def history_bounds(history_id: np.ndarray) -> list[tuple[int, int]]:
    """Returns the [start, stop) row range of each run of equal `history_id`s, in row order."""
    history_id = np.asarray(history_id)
    starts = np.flatnonzero(np.r_[True, history_id[1:] != history_id[:-1]]).tolist()
    return list(zip(starts, starts[1:] + [len(history_id)]))
