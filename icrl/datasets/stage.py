"""The datasets stage: the collect shards become the immutable dataset `<name>-v<N>`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icrl.collect.ledger import read_ledger
from icrl.datasets.build import build_dataset
from icrl.datasets.manifest import DatasetError
from icrl.datasets.verify import verify
from icrl.datasets.shards import shard_name
from icrl.envs import make_family


def run_datasets(
    cfg: Any, collect_dir: Path, collect_fingerprint: str, units: int, stage_dir: Path, fingerprint: str
) -> dict[str, Any]:
    """Builds `runs/<run>/datasets/<name>-v<N>` from the `units` shards of the finished collect stage.

    Returns the stage summary; refuses (naming a shard) if any shard is missing or damaged.
    """
    finished = read_ledger(collect_dir, collect_fingerprint)
    missing = sorted(set(range(units)) - set(finished))
    if missing:
        raise DatasetError(
            f"{collect_dir / 'shards' / shard_name(missing[0])}: missing or damaged ({len(missing)} of {units} "
            "collect units); run icrl run again to collect them"
        )
    family = make_family(cfg.env, cfg.tasks)
    out = stage_dir / cfg.datasets.dataset_id
    if out.exists():  # built by a run interrupted before it could mark the stage done
        manifest = verify(out)
        if manifest.get("fingerprint") != fingerprint:
            raise DatasetError(f"{out}: exists but was built from other settings; datasets are immutable")
        return _summary(manifest, out)
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
        formats=cfg.datasets.formats,
        chunk_length=cfg.datasets.hdf5_chunk_length,
        num_actions=family.env.num_actions if not cfg.env.continuous_actions() else None,
    )
    return _summary(manifest, out)


def _summary(manifest: dict[str, Any], out: Path) -> dict[str, Any]:
    stats = manifest["stats"]
    return {
        "dataset_id": manifest["dataset_id"], "path": str(out), "rows": stats["rows"], "histories": stats["histories"],
        "bytes": stats["bytes"],
    }
