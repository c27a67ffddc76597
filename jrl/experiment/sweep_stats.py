"""A sweep's statistics and table: per configuration the mean, standard deviation and a 95%
bootstrap interval over seeds of the final greedy return (for tabular runs the exact expected
return of the greedy policy, computed from the model over the time limit), the area under the
learning curve, the steps to reach a threshold and whether it diverged (a seed with a non-finite
logging interval: the configuration is marked failed; its finite seeds are still summarized).

``tabulate`` turns the numbers of finished batches (``sweep_members.run_batch``) into a
``SweepResult``; ``write_table`` records it as ``results.csv`` and ``results.json``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jrl.experiment import records
from jrl.experiment.sweep_spec import SweepResult, SweepSpec, plain_point

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_STREAM",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "best_line",
    "configuration_stats",
    "csv_cell",
    "curve_area",
    "mean_stats",
    "tabulate",
    "write_table",
]

#: The table, one row per configuration.
RESULTS_CSV = "results.csv"
#: The rows, the spec, the best row and every member's final return and mean curve.
RESULTS_JSON = "results.json"
#: Bootstrap resamples for the 95% interval of the mean over seeds.
BOOTSTRAP_RESAMPLES = 10_000
#: ``fold_in`` data of the bootstrap's key (``key(sample_seed)``), apart from the sample axes' (0, 1, ...).
BOOTSTRAP_STREAM = 2**20


def _bootstrap_indices(spec: SweepSpec, num_seeds: int) -> np.ndarray:
    key = jax.random.fold_in(jax.random.key(spec.sample_seed), BOOTSTRAP_STREAM + num_seeds)
    return np.asarray(jax.random.randint(key, (BOOTSTRAP_RESAMPLES, num_seeds), 0, num_seeds))


def mean_stats(values: np.ndarray, spec: SweepSpec) -> dict:
    """``mean``, ``std`` and the 95% percentile-bootstrap interval (``ci_low``, ``ci_high``) of the
    mean of ``values`` (float64 ``[S]``, the finite seeds' numbers; all ``None`` when empty). The
    resamples come from ``spec.sample_seed``: the same values give the same interval."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None}
    means = values[_bootstrap_indices(spec, n)].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "std": float(values.std()), "ci_low": float(low), "ci_high": float(high)}


def curve_area(curve: np.ndarray) -> float:
    """Mean of a learning curve over its logging intervals (area under it / run length); intervals
    with no value (NaN: no episode ended) are skipped."""
    finite = curve[np.isfinite(curve)]
    return float(finite.mean()) if finite.size else math.nan


def configuration_stats(
    final: np.ndarray, finite: np.ndarray, curves: np.ndarray, env_steps: np.ndarray, spec: SweepSpec
) -> dict:
    """One configuration's statistics over its seeds, as its row of the table has them.

    Args:
        final: float64 ``[S]``, each seed's final greedy return.
        finite: bool ``[S]``, seeds whose numbers stayed finite (the others are left out and make
            the configuration ``failed``).
        curves: float64 ``[S, L]``, the learning curve ``spec.curve`` at each log record.
        env_steps: ``[S, L]``, each seed's env steps at each log record (for ``steps_to_threshold``;
            the same for every seed but where an iteration's env steps vary: text's tokens).
    """
    num_seeds = len(final)
    row: dict[str, Any] = {f"final_return_{k}": v for k, v in mean_stats(final[finite], spec).items()}
    areas = np.array([curve_area(curves[s]) for s in range(num_seeds) if finite[s]])
    areas = areas[np.isfinite(areas)]
    row["auc_mean"] = float(areas.mean()) if areas.size else None
    row["auc_std"] = float(areas.std()) if areas.size else None
    if spec.threshold is not None:
        first = []
        for s in range(num_seeds):
            crossed = np.flatnonzero(finite[s] & (curves[s] >= spec.threshold))
            first.append(float(env_steps[s, crossed[0]]) if crossed.size else math.inf)
        median = float(np.median(first))
        row["seeds_reached"] = int(np.isfinite(first).sum())
        row["steps_to_threshold"] = median if math.isfinite(median) else None
    row["diverged_seeds"] = int((~finite).sum())
    row["failed"] = bool((~finite).any())
    return row


def tabulate(spec: SweepSpec, batches: list, done: dict[int, dict], directory: Path | None) -> SweepResult:
    """The ``SweepResult`` of a finished sweep.

    Args:
        spec: the sweep.
        batches: its ``sweep_members.Batch`` list (which configurations each one trained; a
            configuration's group is its batch's).
        done: batch number -> its numbers (``sweep_members.run_batch``'s dict, or a batch file's).
        directory: the sweep directory the result names, or ``None``.
    """
    num_configs, num_seeds = len(spec.points()), len(spec.seeds)
    final = np.full((num_configs, num_seeds), np.nan)
    diverged = np.zeros((num_configs, num_seeds), bool)
    curves: dict[int, np.ndarray] = {}
    steps: dict[int, np.ndarray] = {}
    group_of = {}
    for batch in batches:
        numbers = done[batch.number]
        for j, c in enumerate(batch.configs):
            rows = slice(j * num_seeds, (j + 1) * num_seeds)
            final[c] = numbers["final_return"][rows]
            diverged[c] = ~numbers["finite"][rows]
            curves[c] = numbers["curve"][rows]
            steps[c] = numbers["env_steps"][rows]
            group_of[c] = batch.group
    final[diverged] = np.nan
    points = spec.points()
    table = []
    for c in range(num_configs):
        row = {"index": c, "group": group_of[c], **plain_point(points[c]), "seeds": num_seeds}
        row.update(configuration_stats(final[c], ~diverged[c], curves[c], steps[c], spec))
        table.append(row)
    lengths = {curves[c].shape[1] for c in range(num_configs)}
    curve_array = np.stack([curves[c] for c in range(num_configs)]) if len(lengths) == 1 else None
    return SweepResult(spec, table, final, curve_array, diverged, directory)


def best_line(result: SweepResult) -> str:
    """The sweep's last word: its best configuration and return, and how many failed."""
    failed = sum(r["failed"] for r in result.rows)
    note = f" ({failed} configuration(s) failed: non-finite values)" if failed else ""
    best = result.best
    if best is None:
        return f"no configuration finished with finite values{note}"
    axes = ", ".join(f"{name}={best[name]}" for name in result.spec.axes)
    return (
        f"best: {axes}: final return {best['final_return_mean']:.4g} +- {best['final_return_std']:.3g} "
        f"(95% CI {best['final_return_ci_low']:.4g} to {best['final_return_ci_high']:.4g}){note}"
    )


def write_table(result: SweepResult) -> None:
    """``results.csv`` (one row per configuration) and ``results.json`` (the rows, the spec, the
    best row, and per configuration the seeds' final returns and mean learning curve)."""
    directory = result.directory
    columns = list(result.rows[0])
    lines = [",".join(columns)]
    for row in result.rows:
        lines.append(",".join(csv_cell(row[name]) for name in columns))
    tmp = directory / f".{RESULTS_CSV}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, directory / RESULTS_CSV)
    per_config = []
    for c, row in enumerate(result.rows):
        entry = {"index": row["index"], "final_returns": [records._plain(v) for v in result.final_returns[c]]}
        if result.curves is not None:
            with warnings.catch_warnings():  # an interval where no seed ended an episode: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_curve = np.nanmean(np.where(result.diverged[c][:, None], np.nan, result.curves[c]), axis=0)
            entry["mean_curve"] = [records._plain(v) for v in mean_curve]
        per_config.append(entry)
    records.write_json(
        directory / RESULTS_JSON,
        {"spec": result.spec.to_dict(), "rows": result.rows, "best": result.best, "members": per_config},
    )


def csv_cell(value: Any) -> str:
    """A table value as its CSV cell: ``None`` empty, a list ``"4x4"``, a float its ``repr``."""
    if value is None:
        return ""
    if isinstance(value, list):
        return '"' + "x".join(str(v) for v in value) + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)
