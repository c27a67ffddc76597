"""Runs that record themselves: run specs, run directories, chunked training with progress,
exact checkpoints and resumption (see ``docs/experiments.md``)."""

from jrl.experiment.checkpoint import CheckpointError
from jrl.experiment.runner import RunError, RunSettings, evaluate_state, load_run, resume, train
from jrl.experiment.spec import EVALUATION_STREAM, RunSpec, evaluation_key, train_key

__all__ = [
    "EVALUATION_STREAM",
    "CheckpointError",
    "RunError",
    "RunSettings",
    "RunSpec",
    "evaluate_state",
    "evaluation_key",
    "load_run",
    "resume",
    "train",
    "train_key",
]
