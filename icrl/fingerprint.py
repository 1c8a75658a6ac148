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


def stage_settings(cfg: Any) -> dict[str, dict[str, Any]]:
    """Returns, per stage in order, what its fingerprint covers: its own settings and code version."""
    from icrl.datasets.schema import SCHEMA_VERSION

    own = {
        "collect": {
            "schema": SCHEMA_VERSION,
            "env": cfg.env.model_dump(),
            "tasks": cfg.tasks.model_dump(),
            "collect": cfg.collect.fingerprint_fields(),
        },
        "datasets": cfg.datasets.model_dump(),
        "distill": cfg.distill.fingerprint_fields(),
        "evaluate": cfg.evaluate.fingerprint_fields(),
    }
    return {stage: {"settings": settings, "code": CODE_VERSIONS[stage]} for stage, settings in own.items()}


def stage_fingerprints(cfg: Any) -> dict[str, str]:
    """Returns the fingerprint of every stage of the pipeline `cfg`, in stage order."""
    fingerprints: dict[str, str] = {}
    upstream = None
    for stage, described in stage_settings(cfg).items():
        upstream = fingerprints[stage] = fingerprint(stage, described["settings"], upstream)
    return fingerprints
