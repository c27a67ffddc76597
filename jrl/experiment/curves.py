"""Learning curves: what ``jrl plot``, a sweep's table and a run's progress line call a curve.

A run's curve of a metric is its ``metrics.jsonl`` read as an array ``[seeds, logging intervals]``:
the metric's value in each interval of each seed, NaN where it was ``null`` (no episode ended in
the interval, no evaluation). The file itself stays raw; one rule is applied on reading:

**After an early stop a return curve holds its last value.** A DQN seed that reaches
``stop_return`` trains and evaluates no more: its later records have ``stopped`` True and null
returns. Its policy (and its exploration) no longer changes, so from the first stopped interval on
its ``eval_return`` and ``episode_return`` hold their last value from before the stop: for
``eval_return``, the evaluation that stopped it. Left NaN, a mean over seeds would cover only the
seeds still training (a curve that drops when the best seeds stop), and an area under the curve
would count only the intervals before the stop (ranking a seed that solves early below one that
never does). Other metrics (``loss``, ``updates``, ...) describe work done in the interval, and
none was: they stay as recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jrl.experiment import records

__all__ = ["HELD_METRICS", "Latest", "curves", "from_records", "held_after_stopping", "latest"]

#: The metrics whose curve holds its last value after an early stop (see the module docstring).
HELD_METRICS = ("eval_return", "episode_return")


def held_after_stopping(curve: np.ndarray, stopped: np.ndarray) -> np.ndarray:
    """``curve`` ``[M, L]`` (float, NaN: no value) with every interval from a member's first
    ``stopped`` one on holding that member's last finite value before it: for ``eval_return``
    the evaluation that stopped it (an interval's ``stopped`` says the interval did not run,
    ``stop_return`` having been reached before it). A member that never stopped, or had no
    finite value before its stop, is unchanged. Returns a new array; ``curve`` is not modified.

    ``stopped`` is ``[M, L]`` bool, True from the first stopped interval on."""
    curve, stopped = np.asarray(curve, np.float64), np.asarray(stopped, bool)
    if curve.shape != stopped.shape or curve.ndim != 2:
        raise ValueError(f"curve and stopped must both be [members, intervals]; got {curve.shape} and {stopped.shape}")
    held = curve.copy()
    for member in np.flatnonzero(stopped.any(axis=1)):
        first = int(np.argmax(stopped[member]))
        before = np.flatnonzero(np.isfinite(curve[member, :first]))
        if before.size:
            held[member, first:] = curve[member, before[-1]]
    return held


def from_records(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps [L], values [seeds, L])`` of ``metric`` from a run's ``metrics.jsonl`` records
    (``records.read_metrics``; any order), seeds in increasing order: NaN where the metric is
    ``None``/null or a record is missing, and for the ``HELD_METRICS`` the rule above applied.
    ``env_steps`` are per seed: every seed's where an iteration's env steps are fixed, their mean
    over seeds where they vary (a text run's tokens). Pass every record from the first interval
    on: the held value comes from before the stop."""
    if not rows:
        raise ValueError("no metric records")
    seeds = sorted({r["seed"] for r in rows})
    logs = sorted({r["log"] for r in rows})
    seed_index = {seed: i for i, seed in enumerate(seeds)}
    log_index = {log: j for j, log in enumerate(logs)}
    values = np.full((len(seeds), len(logs)), np.nan)
    stopped = np.zeros((len(seeds), len(logs)), bool)
    steps, counts = np.zeros(len(logs)), np.zeros(len(logs))
    for r in rows:
        i, j = seed_index[r["seed"]], log_index[r["log"]]
        value = r.get(metric)
        values[i, j] = math.nan if value is None else float(value)
        stopped[i, j] = bool(r.get("stopped", False))
        steps[j] += r["env_steps"]
        counts[j] += 1
    steps /= np.maximum(
        counts, 1
    )  # every seed's where an iteration's env steps are fixed; text: the mean of its tokens
    if metric in HELD_METRICS and stopped.any():
        values = held_after_stopping(values, stopped)
    return steps, values


def curves(run_dir: str | Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps [L], values [seeds, L])`` of ``metric`` from a run directory's
    ``metrics.jsonl``, as ``from_records`` reads it (return curves held after an early stop).
    ``ValueError`` if the run has no records yet or does not log ``metric``."""
    rows = records.read_metrics(Path(run_dir) / records.METRICS)
    if not rows:
        raise ValueError(f"{run_dir} has no metrics yet")
    if metric not in rows[0]:
        names = sorted(k for k in rows[0] if k not in ("seed", "log"))
        raise ValueError(f"{run_dir} has no metric {metric!r}; its metrics are {names}")
    return from_records(rows, metric)


def latest(rows: Sequence[Mapping[str, Any]], metric: str) -> float:
    """The mean over seeds of ``metric`` at the last logging interval where any seed has a value
    (``from_records``' curve: a seed that stopped early counts with its held return); NaN if no
    interval has one. ``rows``: every record of the run so far, from the first interval on."""
    if not rows:
        return math.nan
    _, values = from_records(rows, metric)
    has_value = np.isfinite(values).any(axis=0)
    if not has_value.any():
        return math.nan
    last = values[:, np.flatnonzero(has_value)[-1]]
    return float(np.mean(last[np.isfinite(last)]))


class Latest:
    """``latest(rows, metric)`` kept up to date as records arrive, at a cost per record (a run's
    progress line asks after every chunk; recomputing from every record would grow with the run).

    ``add(rows)`` takes the records of the next logging intervals (every record of an interval
    together, intervals in order, as a run writes them); ``value`` is then
    ``latest(all rows so far, metric)``, and ``stopped`` the seeds that stopped early.
    """

    def __init__(self, metric: str, rows: Sequence[Mapping[str, Any]] = ()):
        self.metric = metric
        self.value = math.nan
        self.stopped: set[int] = set()
        self._before_stop: dict[int, float] = {}  # each seed's last finite value before its stop
        self.add(rows)

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        by_log: dict[int, list] = {}
        for row in rows:
            by_log.setdefault(row["log"], []).append(row)
        for log in sorted(by_log):
            values = []
            for row in by_log[log]:
                seed, value = row["seed"], row.get(self.metric)
                if row.get("stopped"):
                    self.stopped.add(seed)
                    if self.metric in HELD_METRICS and seed in self._before_stop:
                        value = self._before_stop[seed]
                elif value is not None and math.isfinite(value):
                    self._before_stop[seed] = float(value)
                if value is not None and math.isfinite(value):
                    values.append(float(value))
            if values:
                self.value = float(np.mean(values))
