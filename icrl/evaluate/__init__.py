"""Evaluation: frozen models learning held-out tasks in context, references, reports."""

from icrl.evaluate.references import reference_returns
from icrl.evaluate.rollout import choose_action, make_rollout
from icrl.evaluate.sets import evaluate_sets, normalised_regret

__all__ = ["choose_action", "evaluate_sets", "make_rollout", "normalised_regret", "reference_returns"]
