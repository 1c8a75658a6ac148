"""The datasets stage: the collect shards become the immutable dataset `<name>-v<N>`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icrl.collect.stage import read_ledger
from icrl.datasets.build import build_dataset
from icrl.datasets.manifest import DatasetError, verify
from icrl.envs import make_family


def run_datasets(cfg: Any, collect_dir: Path, collect_fingerprint: str, stage_dir: Path, fingerprint: str) -> dict[str, Any]:
    """Builds `runs/<run>/datasets/<name>-v<N>` from the finished collect stage; returns the summary."""
    finished = read_ledger(collect_dir, collect_fingerprint)
    if not finished:
        raise DatasetError(f"{collect_dir / 'ledger.json'}: no finished collect units to build a dataset from")
    family = make_family(cfg.env.id, cfg.env.settings(), heldout=cfg.tasks.heldout, split_seed=cfg.tasks.split_seed)
    out = stage_dir / cfg.datasets.dataset_id
    if out.exists():  # built by a run interrupted before it could mark the stage done
        manifest = verify(out)
        if manifest.get("fingerprint") != fingerprint:
            raise DatasetError(f"{out}: exists but was built from other settings; datasets are immutable")
        return {"dataset_id": manifest["dataset_id"], "path": str(out), **manifest["stats"]}
    manifest = build_dataset(
        out,
        shard_paths=[collect_dir / "shards" / finished[i].path for i in sorted(finished)],
        tasks=list(family.tasks),
        name=cfg.datasets.name,
        version=cfg.datasets.version,
        fingerprint=fingerprint,
        source=cfg.collect.fingerprint_fields(),
        env=cfg.env.model_dump(),
        license=cfg.datasets.license,
    )
    return {"dataset_id": manifest["dataset_id"], "path": str(out), **manifest["stats"]}
