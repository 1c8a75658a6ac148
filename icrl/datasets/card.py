"""The dataset card: README.md with YAML front matter saying what the dataset holds and how to load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from icrl.atomic import write_text
from icrl.envs.tasks import Task


def render_card(manifest: dict[str, Any], tasks: list[Task]) -> str:
    """Returns the text of the card of the dataset described by `manifest` (its files aside)."""
    stats = manifest["stats"]
    front = {
        "dataset_id": manifest["dataset_id"],
        "version": manifest["version"],
        "license": manifest["license"],
        "schema_version": manifest["schema_version"],
        "icrl_version": manifest["icrl_version"],
        "env": manifest["env"],
        "source": manifest["source"],
        "rows": stats["rows"],
        "histories": stats["histories"],
        "tasks": stats["tasks"],
        "fingerprint": manifest["fingerprint"],
    }
    schema = "\n".join(f"| `{line.split(': ', 1)[0]}` | `{line.split(': ', 1)[1]}` |" for line in manifest["schema"])
    task_rows = "\n".join(f"| `{t.task_id}` | {t.split} | `{t.params}` | `{t.spec_hash}` |" for t in tasks)
    mean = stats["final_return_mean"]
    final = f"{mean:.3f}" if mean is not None else "n/a"
    return f"""---
{yaml.safe_dump(front, sort_keys=False).rstrip()}
---

# {manifest["dataset_id"]}

Learning histories of `{manifest["source"]["source"]["algorithm"]}` on `{manifest["env"]["id"]}`, written by icrl
{manifest["icrl_version"]}. One row per environment step; a history is everything one learner did
on one task, in order, and never spans two shards. Only training tasks appear in the rows;
the held-out tasks are listed below so that evaluation can use them.

- rows: {stats["rows"]}, histories: {stats["histories"]}, mean final-episode return: {final}
- tasks: {stats["tasks"]["train"]} train, {stats["tasks"]["heldout"]} held out
- files and their sha256: `manifest.json` (check them with `icrl datasets verify <this folder>`)

## Schema

| column | type |
|---|---|
{schema}

`obs[t]` is what the agent saw when it chose `action[t]`; `reward[t]`, `terminated[t]` and
`truncated[t]` are its result. `step` counts steps inside the history, `episode` episodes.

## Load it

```python
import pyarrow as pa, glob
table = pa.concat_tables(pa.ipc.open_file(pa.memory_map(p)).read_all() for p in sorted(glob.glob("ipc/*.arrow")))
```

or, with icrl: `icrl.datasets.Dataset("<this folder>").columns(split="train")`.

## Tasks

| task_id | split | params | spec sha256 |
|---|---|---|---|
{task_rows}
"""


def write_card(root: Path, manifest: dict[str, Any], tasks: list[Task]) -> Path:
    """Writes the card README.md into the dataset folder `root`; returns its path."""
    path = Path(root) / "README.md"
    write_text(path, render_card(manifest, tasks))
    return path
