"""Runs that record themselves: run specs, run directories, chunked training with progress,
exact checkpoints and resumption (see ``docs/experiments.md``)."""

from jrl.experiment.checkpoint import CheckpointError
from jrl.experiment.exports import export_run
from jrl.experiment.harness import Timing, evaluation_keys, read_csv, timed, train_keys, train_seeds, write_csv
from jrl.experiment.runner import RunError, RunSettings, evaluate_state, load_run, resume, train
from jrl.experiment.search import optuna_search
from jrl.experiment.spec import EVALUATION_STREAM, RunSpec, evaluation_key, train_key
from jrl.experiment.sweeps import (
    Sample,
    SweepError,
    SweepResult,
    SweepSettings,
    SweepSpec,
    load_sweep,
    resume_sweep,
    run_sweep,
    sweep,
)

__all__ = [
    "EVALUATION_STREAM",
    "CheckpointError",
    "RunError",
    "RunSettings",
    "RunSpec",
    "Sample",
    "SweepError",
    "SweepResult",
    "SweepSettings",
    "SweepSpec",
    "Timing",
    "evaluate_state",
    "evaluation_key",
    "evaluation_keys",
    "export_run",
    "load_run",
    "load_sweep",
    "optuna_search",
    "read_csv",
    "resume",
    "resume_sweep",
    "run_sweep",
    "sweep",
    "timed",
    "train",
    "train_key",
    "train_keys",
    "train_seeds",
    "write_csv",
]
