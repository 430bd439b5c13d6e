"""Measures a world-model checkpoint on held-out episodes: fidelity, control, drift, heads, speed
and sampler ablations, written as metrics.json and report.md. Run ``python -m worldmodel.evaluate``."""

from worldmodel.evaluate.episodes import EvaluationError
from worldmodel.evaluate.run import FULL, QUICK, Plan, evaluate

__all__ = ["FULL", "QUICK", "EvaluationError", "Plan", "evaluate"]
