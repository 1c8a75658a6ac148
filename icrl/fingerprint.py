"""Stage fingerprints: a hash of a stage's own settings, its upstream fingerprints and code version."""

from __future__ import annotations

import hashlib
from typing import Any

from icrl.envs.tasks import canonical_json

# Bump a stage's version when its code changes what it writes for the same settings.
CODE_VERSIONS = {"collect": 3, "datasets": 3, "distill": 3, "evaluate": 2}


def fingerprint(stage: str, settings: Any, upstream: str | None = None) -> str:
    """Returns the hex sha256 identifying the output of `stage` run with `settings` on `upstream`."""
    payload = {"stage": stage, "code": CODE_VERSIONS[stage], "settings": settings, "upstream": upstream}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def stage_fingerprints(cfg: Any) -> dict[str, str]:
    """Returns the fingerprint of every stage of the pipeline `cfg`, in stage order."""
    from icrl.datasets.schema import SCHEMA_VERSION

    collect = fingerprint(
        "collect",
        {
            "schema": SCHEMA_VERSION,
            "env": cfg.env.model_dump(),
            "tasks": cfg.tasks.model_dump(),
            "collect": cfg.collect.fingerprint_fields(),
        },
    )
    datasets = fingerprint("datasets", cfg.datasets.model_dump(), collect)
    distill = fingerprint("distill", cfg.distill.model_dump(), datasets)
    evaluate = fingerprint("evaluate", cfg.evaluate.model_dump(), distill)
    return {"collect": collect, "datasets": datasets, "distill": distill, "evaluate": evaluate}
