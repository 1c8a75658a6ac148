"""The dataset card: README.md with YAML front matter saying what the dataset holds and how to load it.

Every loading snippet in the card is runnable as it stands from the dataset folder and
prints `<rows> rows`; the tests run each one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from icrl.atomic import write_text
from icrl.datasets.layout import HDF5_FILE
from icrl.envs.tasks import Task

SNIPPET_MARK = "<!-- snippet: {} -->"


def snippets(manifest: dict[str, Any]) -> dict[str, str]:
    """Returns the loading snippets (library -> Python code) for the formats the dataset holds."""
    formats = manifest["formats"]
    context = max(1, min(100, manifest["stats"]["rows"] // max(1, manifest["stats"]["histories"])))
    code = {}
    if "ipc" in formats:
        code["pyarrow"] = (
            "import glob\n\nimport pyarrow as pa\n\n"
            "shards = sorted(glob.glob(\"ipc/*.arrow\"))  # memory-mapped: nothing is read until used\n"
            "table = pa.concat_tables(pa.ipc.open_file(pa.memory_map(p)).read_all() for p in shards)\n"
            "print(table.num_rows, \"rows\")\n"
        )
    if "parquet" in formats:
        code["pandas"] = (
            "import pandas as pd\n\n"
            "df = pd.read_parquet(\"parquet/\")\n"
            "returns = df.groupby([\"history_id\", \"episode\"])[\"reward\"].sum()\n"
            "print(len(df), \"rows\")\n"
        )
        code["duckdb"] = (
            "import duckdb\n\n"
            "returns = duckdb.sql(\n"
            "    \"SELECT history_id, episode, sum(reward) AS episode_return FROM 'parquet/*.parquet' GROUP BY ALL\"\n"
            ").df()\n"
            "print(duckdb.sql(\"SELECT count(*) FROM 'parquet/*.parquet'\").fetchall()[0][0], \"rows\")\n"
        )
        code["datasets"] = (
            "from datasets import load_dataset\n\n"
            "ds = load_dataset(\"parquet\", data_files=\"parquet/*.parquet\", split=\"train\")  # all rows\n"
            "print(ds.num_rows, \"rows\")\n"
        )
    if "hdf5" in formats:
        code["h5py"] = (
            "import h5py\n\n"
            f"with h5py.File(\"{HDF5_FILE}\", \"r\") as f:\n"
            f"    window = f[\"obs\"][0, 0:{context}]  # history 0, its first {context} steps: one hyperslab\n"
            "    lengths = f[\"length\"][:]  # steps per history; rows past a history's length are padding\n"
            "    print(int(lengths.sum()), \"rows\")\n"
        )
    code["icrl"] = (
        "from icrl.datasets import Dataset\n\n"
        "dataset = Dataset(\".\")  # checks every sha256 first\n"
        f"sampler = dataset.sampler(context_length={context}, seed=0)  # training windows of the train split\n"
        "batch = sampler.batch(8, 0)  # obs, action, prev_action, prev_reward: [8, context, ...]\n"
        "print(int(dataset.histories[\"steps\"].to_numpy().sum()), \"rows\")\n"
    )
    return code


def format_stat(values: dict[str, float] | None) -> str:
    """Returns return statistics as `mean ± std [min, max]`, or n/a when there were none."""
    return "n/a" if not values else f"{values['mean']:.3f} ± {values['std']:.3f} [{values['min']:.2f}, {values['max']:.2f}]"


def render_card(manifest: dict[str, Any], tasks: list[Task]) -> str:
    """Returns the text of the card of the dataset described by `manifest` (its files aside)."""
    stats = manifest["stats"]
    algorithm = manifest["source"]["source"]["algorithm"]
    front: dict[str, Any] = {
        "pretty_name": f"{manifest['dataset_id']}: {algorithm} learning histories on {manifest['env']['id']}",
        "license": str(manifest["license"]).lower(),
        "tags": ["reinforcement-learning", "in-context-learning", "learning-histories", "icrl"],
    }
    if "parquet" in manifest["formats"]:
        front["configs"] = [{"config_name": "default", "data_files": "parquet/*.parquet"}]
    front |= {
        "dataset_id": manifest["dataset_id"],
        "version": manifest["version"],
        "schema_version": manifest["schema_version"],
        "icrl_version": manifest["icrl_version"],
        "fingerprint": manifest["fingerprint"],
        "formats": manifest["formats"],
        "schema": [dict(zip(("name", "type"), line.split(": ", 1))) for line in manifest["schema"]],
        "env": manifest["env"],
        "source": manifest["source"],
        "sizes": {"rows": stats["rows"], "histories": stats["histories"], "bytes": stats["bytes"]},
        "statistics": stats["splits"],
        "tasks": [
            {"task_id": t.task_id, "split": t.split, "env_id": t.env_id, "params": t.params, "spec_hash": t.spec_hash}
            for t in tasks
        ],
    }
    schema = "\n".join(f"| `{line.split(': ', 1)[0]}` | `{line.split(': ', 1)[1]}` |" for line in manifest["schema"])
    split_rows = "\n".join(
        f"| {name} | {s['tasks']} | {s['histories']} | {s['rows']} | {format_stat(s['first_episode_return'])} | "
        f"{format_stat(s['final_episode_return'])} |"
        for name, s in stats["splits"].items()
    )
    task_rows = "\n".join(f"| `{t.task_id}` | {t.split} | `{t.params}` | `{t.spec_hash}` |" for t in tasks)
    sizes = ", ".join(f"{fmt} {n / 1e6:.2f} MB" for fmt, n in stats["bytes"].items())
    loading = "\n\n".join(
        f"{SNIPPET_MARK.format(name)}\n```python\n{code}```" for name, code in snippets(manifest).items()
    )
    return f"""---
{yaml.safe_dump(front, sort_keys=False, width=120).rstrip()}
---

# {manifest["dataset_id"]}

Learning histories of `{algorithm}` on `{manifest["env"]["id"]}`, written by icrl {manifest["icrl_version"]}.
One row per environment step; a history is everything one learner did on one task, in order.
Only training tasks appear in the rows; the held-out tasks are listed so that evaluation can
use them. Licence: {manifest["license"]}.

- rows: {stats["rows"]}, histories: {stats["histories"]}; formats: {sizes}
- every file with its bytes, rows and sha256: `manifest.json`; check them with `icrl datasets verify <this folder>`
- the task table: `tasks.parquet`; one summary per history (episode returns, ...): `histories.parquet`

## Statistics

Episode returns per history (mean ± std [min, max] over histories):

| split | tasks | histories | rows | first episode | final episode |
|---|---|---|---|---|---|
{split_rows}

## Schema

| column | type |
|---|---|
{schema}

`obs[t]` is what the agent saw when it chose `action[t]`; `reward[t]`, `terminated[t]` and
`truncated[t]` are its result. `step` counts steps inside the history, `episode` episodes.
Arrow IPC (`ipc/`) and Parquet (`parquet/`, zstd) hold the same tables, shard for shard;
HDF5 (`{HDF5_FILE}`) holds every row column as an `[history, step, ...]` array chunked by the
training context, with `history_id`, `task_id`, `length` and `shard` per history.

## Load it

Run from this folder; each prints the number of rows.

{loading}

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
