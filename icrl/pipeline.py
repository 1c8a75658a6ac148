"""The pipeline: collect → datasets → distill → evaluate, each skipped when already done.

A stage is skipped when its `_SUCCESS.json` holds the stage's current fingerprint (its own
settings, its upstream fingerprints and the code version), resumed when a run with the same
fingerprint was interrupted, and recomputed from scratch when its settings changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import yaml

from icrl import __version__
from icrl.atomic import write_text
from icrl.config import STAGES, PipelineConfig
from icrl.console import say
from icrl.errors import IcrlError
from icrl.fingerprint import stage_fingerprints, stage_settings
from icrl.stage_dir import StageDir

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "gymnax", "ray", "pyarrow", "h5py", "numpy")


class PipelineError(IcrlError, RuntimeError):
    """A pipeline that cannot proceed for a reason the user can fix; the message says how."""


def stage_dirs(cfg: PipelineConfig) -> dict[str, StageDir]:
    """Returns each stage's folder with its current fingerprint and what that fingerprint covers."""
    fps, described = stage_fingerprints(cfg), stage_settings(cfg)
    dirs = {}
    for i, stage in enumerate(STAGES):
        before = STAGES[i - 1] if i else None
        dirs[stage] = StageDir(
            cfg.run_dir / stage, fps[stage], described[stage], fps[before] if before else None, before
        )
    return dirs


def stage_progress(cfg: PipelineConfig, stage: str, sd: StageDir) -> str:
    """Returns how far a partial stage got, in words."""
    if stage == "collect":
        from icrl.collect.ledger import read_ledger

        pairs = (cfg.env.task_count() - cfg.tasks.heldout) * cfg.collect.histories_per_task
        total = -(-pairs // cfg.collect.histories_per_unit)
        return f"{len(read_ledger(sd.path, sd.fingerprint, quiet=True))} of {total} units collected"
    if stage == "distill":
        def progress(folder: Path) -> str:
            steps = [int(p.name) for p in (folder / "checkpoints").glob("*") if p.name.isdigit()]
            if not steps:
                return f"no checkpoint yet of {cfg.distill.steps} steps"
            return f"checkpoint at step {max(steps)} of {cfg.distill.steps}"

        if cfg.distill.baseline:
            return f"model: {progress(sd.path)}; plain-AD baseline: {progress(sd.path / 'baseline')}"
        return progress(sd.path)
    if stage == "evaluate":
        splits = 1 + (cfg.evaluate.train_tasks > 0) if cfg.tasks.heldout else 1
        done = len([p for p in (sd.path / "results").glob("*.json") if not p.name.startswith("set-")])
        text = f"{done} of {splits} evaluation splits written"
        if cfg.evaluate.sets:
            sets = {p.name.split("-references.json")[0] for p in (sd.path / "results").glob("set-*-references.json")}
            text += f", {len(sets)} of {len(cfg.evaluate.sets)} evaluation sets begun"
        return text
    return "interrupted while building"


def describe_stages(cfg: PipelineConfig) -> list[tuple[str, str, str, Path]]:
    """Returns (stage, status, detail, folder) per stage: done / partial (how far) / stale (why) / pending."""
    rows = []
    for stage, sd in stage_dirs(cfg).items():
        status = sd.status()
        detail = {"partial": lambda: stage_progress(cfg, stage, sd), "stale": sd.why_stale}.get(status, lambda: "")()
        rows.append((stage, status, detail, sd.path))
    return rows


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    versions = {"icrl": __version__}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def write_resolved_config(cfg: PipelineConfig) -> None:
    """Writes `runs/<run>/config.resolved.yaml`: the validated config, versions and git sha."""
    doc = {
        "config": cfg.model_dump(mode="json"),
        "fingerprints": stage_fingerprints(cfg),
        "versions": _versions(),
        "git_sha": _git_sha(),
    }
    write_text(cfg.run_dir / "config.resolved.yaml", yaml.safe_dump(doc, sort_keys=False))


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Holds an exclusive lock on the run folder; a second `icrl run` on it fails at once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "_LOCK", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(f"{run_dir}: another icrl run is using this run folder") from None
        yield


def _dataset_conflict(cfg: PipelineConfig, dirs: dict[str, StageDir], force: set[str]) -> None:
    """Refuses to replace an existing dataset id with different content (ids are immutable)."""
    datasets = dirs["datasets"]
    if "datasets" in force or datasets.status() in ("done", "partial", "pending"):
        return
    existing = datasets.path / cfg.datasets.dataset_id / "manifest.json"
    if not existing.exists():
        return
    try:
        built_from = json.loads(existing.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        built_from = None  # unreadable: certainly not this dataset
    if built_from != datasets.fingerprint:
        raise PipelineError(
            f"{existing.parent}: dataset {cfg.datasets.dataset_id} already exists with other contents and "
            "dataset ids are immutable; set datasets.version to a new number, or pass --force datasets to discard it"
        )


def run_pipeline(
    cfg: PipelineConfig, *, force: set[str] = frozenset(), ray_address: str | None = None
) -> dict[str, Any]:
    """Runs every stage that is not already done; returns each stage's summary (or `skipped`)."""
    dirs = stage_dirs(cfg)
    _dataset_conflict(cfg, dirs, set(force))
    outcome: dict[str, Any] = {}
    with run_lock(cfg.run_dir):
        write_resolved_config(cfg)
        say(f"icrl: run folder {cfg.run_dir}")
        for stage in STAGES[: STAGES.index(cfg.run.until) + 1]:
            sd = dirs[stage]
            status = sd.status()
            if stage == "collect" and status == "done" and not _shards_intact(sd):
                status = "partial"  # a shard was lost or damaged since: collect it again
            if stage == "datasets" and status == "done" and stage not in force and not _dataset_intact(cfg, sd):
                say(f"datasets: {cfg.datasets.dataset_id} is missing or no longer matches its manifest; building it again")
                shutil.rmtree(sd.path / cfg.datasets.dataset_id, ignore_errors=True)
                status = "partial"
            if status == "done" and stage not in force:
                say(f"{stage}: up to date (fingerprint {sd.fingerprint[:12]}), skipped")
                if stage == "evaluate":
                    from icrl.evaluate.compare import refresh_comparison

                    refresh_comparison(cfg.evaluate.compare_with, sd.path)  # the other runs may have changed
                outcome[stage] = "skipped"
                continue
            reason = {"partial": "resuming", "stale": "settings changed, recomputing", "pending": "starting"}.get(
                status, "forced"
            )
            if stage in force:
                reason = "forced"
            say(f"{stage}: {reason}")
            if stage == "datasets":  # other dataset versions stay; a forced one is rebuilt
                sd.begin(keep=True)
                if stage in force:
                    shutil.rmtree(sd.path / cfg.datasets.dataset_id, ignore_errors=True)
            else:  # a partial stage keeps its work (a done collect with a damaged shard keeps the others)
                sd.begin(fresh=stage in force, keep=status == "partial" and stage not in force)
            started = time.monotonic()
            # The dataset's files are hashed once per run: here if it was already built, else when first opened.
            checked = outcome.get("datasets") == "skipped" or "distill" in outcome
            summary = _run_stage(stage, cfg, dirs, ray_address=ray_address, dataset_checked=checked)
            summary["wall_s"] = round(time.monotonic() - started, 2)
            sd.finish(summary)
            say(f"{stage}: done in {summary['wall_s']:.1f}s")
            outcome[stage] = summary
    return outcome


def _shards_intact(collect: StageDir) -> bool:
    """Returns whether every shard the finished collect stage wrote is still on disk, unaltered."""
    from icrl.collect.ledger import read_ledger

    return len(read_ledger(collect.path, collect.fingerprint)) == collect.success().get("units")


def _dataset_intact(cfg: PipelineConfig, datasets: StageDir) -> bool:
    """Returns whether the finished dataset still matches its manifest (sizes, sha256, schema)."""
    from icrl.datasets.manifest import DatasetError
    from icrl.datasets.verify import verify

    try:
        verify(datasets.path / cfg.datasets.dataset_id)
    except DatasetError:
        return False
    return True


def _open_dataset(cfg: PipelineConfig, dirs: dict[str, StageDir], *, checked: bool):
    from icrl.datasets.dataset import Dataset

    return Dataset(dirs["datasets"].path / cfg.datasets.dataset_id, check=not checked)


def _run_stage(
    stage: str, cfg: PipelineConfig, dirs: dict[str, StageDir], *, ray_address: str | None, dataset_checked: bool = False
) -> dict[str, Any]:
    sd = dirs[stage]
    if stage == "collect":
        from icrl.collect.executors import make_executor

        # Ray starts before any JAX work in this process: the stage code (gymnax) loads after.
        executor = make_executor(
            cfg.collect.executor,
            address=ray_address or cfg.ray.address,
            num_cpus=cfg.ray.num_cpus,
            max_retries=cfg.ray.max_retries,
        )
        with executor:
            from icrl.collect.stage import run_collect

            return run_collect(cfg, sd.path, sd.fingerprint, executor=executor)
    from icrl.jax_runtime import enable_compilation_cache

    enable_compilation_cache()
    if stage == "datasets":
        from icrl.datasets.stage import run_datasets

        collect = dirs["collect"]
        units = collect.success()["units"]
        return run_datasets(cfg, collect.path, collect.fingerprint, units, sd.path, sd.fingerprint)
    if stage == "distill":
        from icrl.distill.stage import run_distill

        return run_distill(cfg, _open_dataset(cfg, dirs, checked=dataset_checked), sd.path)
    from icrl.evaluate.stage import run_evaluate

    return run_evaluate(cfg, _open_dataset(cfg, dirs, checked=dataset_checked), dirs["distill"].path, sd.path, sd.fingerprint)
