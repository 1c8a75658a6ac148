"""Other runs drawn beside this one in the report (`evaluate.compare_with`), kept up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from icrl.atomic import write_json
from icrl.console import say
from icrl.evaluate.report import write_report

SPLITS = ("heldout", "train")


def compared_run(run: Path) -> dict[str, Any]:
    """Returns the figures of another run's evaluation for the report, or why there are none."""
    path = run / "evaluate" / "summary.json"
    try:
        other = json.loads(path.read_text())
        return {
            "run": str(run), "model": other["model"], "checkpoint_step": other["checkpoint_step"],
            **{split: {k: other[split][k] for k in ("returns_per_episode", "episode_1", "last5_mean")}
               for split in SPLITS if split in other},
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        say(f"evaluate: cannot compare with {run}: {path} is not a finished evaluation ({err})")
        return {"run": str(run), "missing": f"{path} is not a finished evaluation"}


def refresh_comparison(compare_with: list[str], stage_dir: Path) -> None:
    """Redraws a finished evaluation's report with the current figures of the runs in `compare_with`.

    Those runs are not part of the evaluation's fingerprint, so they may have finished or
    changed since it ran; nothing is rewritten when there is nothing to compare, then or now.
    """
    try:
        summary = json.loads((stage_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return
    if not compare_with and not summary.get("compare"):
        return
    summary["compare"] = [compared_run(Path(run)) for run in compare_with]
    write_json(stage_dir / "summary.json", summary)
    write_report(stage_dir, summary)
