"""Bridges to the outside world (Gymnasium). Nothing in jrl imports this package."""

from jrl.wrappers.gymnasium import evaluate_in_gymnasium

__all__ = ["evaluate_in_gymnasium"]
