"""Distillation: sequence models of learning histories and the trainer that fits them."""

from icrl.distill.headless import ActionSet, fixed_action_set, orthonormal_rows, random_action_sets
from icrl.distill.model import build_model, build_policy, model_label, model_spec
from icrl.distill.trainer import DivergenceError, load_params, train
from icrl.distill.transformer import Transformer, TransformerPolicy

__all__ = [
    "ActionSet", "DivergenceError", "Transformer", "TransformerPolicy", "build_model", "build_policy",
    "fixed_action_set", "load_params", "model_label", "model_spec", "orthonormal_rows", "random_action_sets", "train",
]
