"""Model specs: everything needed to rebuild a trained model, saved beside its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from icrl.atomic import write_json
from icrl.distill.checkpoints import CheckpointError
from icrl.distill.s5 import S5, S5Policy
from icrl.distill.transformer import Transformer, TransformerPolicy

MODEL_FILE = "model.json"


MODELS = {"transformer": (Transformer, TransformerPolicy), "s5": (S5, S5Policy)}


BASELINE_DIR = "baseline"
"""Where, inside the distill stage folder, the plain-AD baseline of a headless model lives."""


def model_spec(distill: Any, *, num_actions: int, num_obs: int | None, head: str | None = None) -> dict[str, Any]:
    """Returns the spec of the model that the distill config `distill` trains (with `head`, that head instead)."""
    head = head or distill.head
    spec = {
        "kind": distill.model,
        "num_actions": num_actions,
        "num_obs": num_obs,
        "context_length": distill.context_length,
        "dim": distill.embed_dim,
        "num_layers": distill.num_layers,
        "dropout": distill.dropout,
    }
    if head == "headless":
        spec |= {"head": "headless", "action_embed_dim": distill.action_embed_dim}
    if distill.model == "s5":
        return spec | {"state_size": distill.state_size, "scan": distill.scan}
    return spec | {"num_heads": distill.num_heads, "mlp_ratio": distill.mlp_ratio}


def model_label(spec: dict[str, Any]) -> str:
    """Returns how reports name the model of `spec`, e.g. `Headless-AD (transformer)`."""
    return f"{'Headless-AD' if spec.get('head') == 'headless' else 'AD'} ({spec['kind']})"


def build_model(spec: dict[str, Any]) -> Transformer | S5:
    """Returns the (unbound) Flax module described by `spec`."""
    kind = spec.get("kind")
    if kind not in MODELS:
        raise CheckpointError(f"{MODEL_FILE}: unknown model kind {kind!r}")
    try:
        return MODELS[kind][0](**{k: v for k, v in spec.items() if k != "kind"})
    except TypeError as err:
        raise CheckpointError(f"{MODEL_FILE}: not a model spec this icrl understands ({err})") from None


def build_policy(spec: dict[str, Any]) -> TransformerPolicy | S5Policy:
    """Returns the step-by-step inference wrapper of the model described by `spec`."""
    model = build_model(spec)  # refuses an unknown kind with a CheckpointError
    return MODELS[spec["kind"]][1](model)


def save_spec(folder: Path, spec: dict[str, Any]) -> None:
    write_json(Path(folder) / MODEL_FILE, spec)


def load_spec(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MODEL_FILE
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read the model spec: {err}") from None
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path}: not a model spec")
    return spec
