"""Evaluation: frozen models learning held-out tasks in context, references, reports."""

from icrl.evaluate.references import reference_returns
from icrl.evaluate.rollout import choose_action, make_rollout

__all__ = ["choose_action", "make_rollout", "reference_returns"]
