"""Distillation: sequence models of learning histories and the trainer that fits them."""

from icrl.distill.model import build_model, build_policy, model_spec
from icrl.distill.trainer import DivergenceError, load_params, train
from icrl.distill.transformer import Transformer, TransformerPolicy

__all__ = ["DivergenceError", "Transformer", "TransformerPolicy", "build_model", "build_policy", "load_params", "model_spec", "train"]
