"""Figures of runs (the ``plot`` extra, matplotlib): learning curves, and a gridworld's greedy policy.

``plot_runs(run_dirs)`` draws one learning curve per run on one figure: the mean over seeds of a
metric against environment steps, with a band from the lowest to the highest seed. For a tabular
gridworld (FrozenLake, CliffWalking) it also draws each run's greedy policy as arrows over its
value map, ``max_a Q(s, a)``, for the first seed of the newest checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jrl.experiment import records

__all__ = ["curves", "plot_runs", "pyplot"]

# Arrow (dx, dy) of each action in image coordinates (y grows downwards), per gridworld family.
_FROZEN_LAKE_ARROWS = ((-1, 0), (0, 1), (1, 0), (0, -1))  # left, down, right, up
_CLIFF_ARROWS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # up, right, down, left


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend; ``ImportError`` naming the extra if missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plots need matplotlib, jrl's 'plot' extra: pip install 'jrl[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(run_dir: str | Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps [L], values [seeds, L])`` of ``metric`` from a run's ``metrics.jsonl`` (NaN
    where the metric was null: no episode ended, no evaluation)."""
    rows = records.read_metrics(Path(run_dir) / records.METRICS)
    if not rows:
        raise ValueError(f"{run_dir} has no metrics yet")
    if metric not in rows[0]:
        names = sorted(k for k in rows[0] if k not in ("seed", "log"))
        raise ValueError(f"{run_dir} has no metric {metric!r}; its metrics are {names}")
    seeds = sorted({r["seed"] for r in rows})
    logs = sorted({r["log"] for r in rows})
    values = np.full((len(seeds), len(logs)), np.nan)
    steps = np.zeros(len(logs))
    for r in rows:
        j = logs.index(r["log"])
        values[seeds.index(r["seed"]), j] = np.nan if r[metric] is None else float(r[metric])
        steps[j] = r["env_steps"]
    return steps, values


def _default_metric(run_dir: Path) -> str:
    rows = records.read_metrics(run_dir / records.METRICS)
    has_eval = any(r.get("eval_return") is not None for r in rows)
    return "eval_return" if has_eval else "episode_return"


def _grid(env_id: str, env_kwargs: dict) -> tuple[list[str], tuple] | None:
    """The map rows and action arrows of a gridworld id, or ``None`` for other environments."""
    if env_id in ("FrozenLake-v1", "FrozenLake8x8-v1"):
        from jrl.envs.frozen_lake import MAPS, _check_desc

        desc = env_kwargs.get("desc")
        rows = (
            _check_desc(desc)
            if desc is not None
            else MAPS[env_kwargs.get("map_name", "8x8" if "8x8" in env_id else "4x4")]
        )
        return list(rows), _FROZEN_LAKE_ARROWS
    if env_id in ("CliffWalking-v1", "CliffWalkingSlippery-v1"):
        rows = ["." * 12] * 3 + ["S" + "C" * 10 + "G"]
        return rows, _CLIFF_ARROWS
    return None


def _plot_policy(plt: Any, run_dir: Path, out: Path) -> Path | None:

    from jrl.experiment.runner import load_run

    run = load_run(run_dir)
    grid = _grid(run.spec.env, run.spec.env_kwargs)
    if grid is None or run.spec.algorithm.module.__name__ != "jrl.algorithms.q_learning":
        return None
    rows, arrows = grid
    state, _ = run.load_checkpoint()
    first = run.seed_state(state, 0)
    q = np.asarray(run.algorithm.result(first, {}).q_table)
    nrow, ncol = len(rows), len(rows[0])
    values = q.max(axis=1).reshape(nrow, ncol)
    greedy = q.argmax(axis=1).reshape(nrow, ncol)
    fig, ax = plt.subplots(figsize=(max(4, ncol * 0.6), max(3, nrow * 0.6) + 0.6))
    image = ax.imshow(values, cmap="viridis")
    fig.colorbar(image, ax=ax, label="max_a Q(s, a)")
    for r in range(nrow):
        for c in range(ncol):
            letter = rows[r][c]
            if letter in "HGC":  # holes, goal, cliff: no action is taken there
                ax.text(c, r, letter, ha="center", va="center", color="white", fontsize=11, fontweight="bold")
                continue
            dx, dy = arrows[greedy[r, c]]
            ax.arrow(c - 0.25 * dx, r - 0.25 * dy, 0.4 * dx, 0.4 * dy, head_width=0.15, color="white")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{run.spec.env}, {run.spec.algo}: greedy policy over max_a Q (seed {run.spec.seeds[0]})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_runs(run_dirs: Sequence[str | Path], metric: str | None = None, out: str | Path | None = None) -> list[Path]:
    """Learning curves of ``run_dirs`` on one figure, written as PNG (default:
    ``learning_curves.png`` in the first run), and for each tabular gridworld run its greedy
    policy (``policy.png`` in that run). Returns the files written."""
    plt = pyplot()
    run_dirs = [Path(d) for d in run_dirs]
    for d in run_dirs:
        if not (d / records.CONFIG).is_file():
            raise ValueError(f"{d} is not a jrl run directory (no config.toml)")
    metric = metric or _default_metric(run_dirs[0])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for d in run_dirs:
        steps, values = curves(d, metric)
        spec = records.read_toml(d / records.CONFIG)
        seeds = values.shape[0]
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0)
        line = ax.plot(steps, mean, label=f"{d.name}: {spec['algo']} on {spec['env']} ({seeds} seeds)")[0]
        if seeds > 1:
            ax.fill_between(
                steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.2, color=line.get_color()
            )
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel(f"{metric} (mean over seeds; band: lowest to highest seed)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = Path(out) if out is not None else run_dirs[0] / "learning_curves.png"
    fig.savefig(target, dpi=120)
    plt.close(fig)
    written = [target]
    for d in run_dirs:
        policy = _plot_policy(plt, d, d / "policy.png")
        if policy is not None:
            written.append(policy)
    return written
