"""Figures of runs and sweeps (the ``plot`` extra, matplotlib).

``plot_runs(run_dirs)`` draws one learning curve per run on one figure: the mean over seeds of a
metric per logging interval against environment steps, with a band from the lowest to the highest
seed (the curves of ``jrl.experiment.curves``: after a seed stopped early at ``stop_return`` its
return curve holds its stopping evaluation). For a tabular gridworld (an environment that offers
its ``grid_layout``: FrozenLake, CliffWalking) it also draws each run's greedy policy as arrows
over its value map, ``max_a Q(s, a)``, for the first seed of the newest checkpoint.

``plot_sweep(sweep_dir)`` draws a sweep's ``results.json``: for each pair of axes the mean final
return over the two (a heatmap for two grid axes, colored points where an axis is sampled), and
for each axis the final return against it with a 95% bootstrap band over seeds; both averaged
over the other axes, failed configurations marked.

Each writer has a builder that returns the ``matplotlib.figure.Figure`` unsaved, to change or
show: ``learning_curve_figure``, ``policy_figure``, ``sweep_figures``. Figures are made with
constrained layout (titles, labels and colour bars get room, nothing is cut off) and outside
pyplot's list of open figures (nothing to close).
"""

from __future__ import annotations

import itertools
import json
import math
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jrl._extras import install_hint
from jrl.experiment import records
from jrl.experiment.curves import HELD_METRICS, curves

if TYPE_CHECKING:
    from jrl.envs.core import GridLayout

__all__ = [
    "curves",
    "learning_curve_figure",
    "plot_runs",
    "plot_sweep",
    "policy_figure",
    "pyplot",
    "sweep_figures",
]

#: Resolution of the PNG files written (pixels per inch).
DPI = 120


def _matplotlib() -> Any:
    """``matplotlib``; ``ImportError`` naming the extra if it is missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(f"plots need matplotlib, jrl's 'plot' extra: {install_hint('plot')}") from err
    return matplotlib


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend; ``ImportError`` naming the extra if missing."""
    _matplotlib().use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float, height: float) -> Any:
    """An empty ``Figure`` of ``width`` x ``height`` inches with constrained layout. Made without
    pyplot, it needs no closing, raises no "too many figures" warning, and leaves the backend
    alone (a notebook can still show it); ``savefig`` writes PNG with Agg whatever the backend."""
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _default_metric(run_dir: Path) -> str:
    rows = records.read_metrics(run_dir / records.METRICS)
    has_eval = any(r.get("eval_return") is not None for r in rows)
    return "eval_return" if has_eval else "episode_return"


def _layout(env_id: str, env_kwargs: dict) -> GridLayout | None:
    """The ``GridLayout`` of the environment ``jrl.make(env_id, **env_kwargs)`` builds, or ``None``
    when it is no gridworld."""
    from jrl.envs.registry import make

    env, env_params = make(env_id, **env_kwargs)
    return env.grid_layout(env_params)


def _wrap(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` points (a character of
    DejaVu Sans averages under 0.6 em), so that a long title is wrapped instead of cut off."""
    per_line = max(20, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, per_line) for line in text.split("\n"))


def policy_figure(env_id: str, q_table: Any, *, env_kwargs: dict | None = None, title: str | None = None) -> Any:
    """The greedy policy of a gridworld's Q-table as a ``matplotlib.figure.Figure``: an arrow for
    each state's greedy action over the value map ``max_a Q(s, a)``.

    ``env_id``: a gridworld, whose environment offers its map (``env.grid_layout``: FrozenLake,
    CliffWalking), ``env_kwargs`` as given to ``jrl.make`` (``map_name``, ``desc``); ``q_table``
    ``[states, actions]``; ``title``: the first title line (default ``env_id``). The cells where
    no action is taken (holes, the goal, the cliff: the layout's ``stops``) are grey with their
    letter; a state whose actions all tie (never updated) has a dot instead of an arrow.
    """
    matplotlib = _matplotlib()
    layout = _layout(env_id, env_kwargs or {})
    if layout is None:
        raise ValueError(
            f"policy_figure draws the maps of gridworlds (environments whose grid_layout is not None, "
            f"e.g. FrozenLake and CliffWalking); got env {env_id!r}"
        )
    rows, arrows = layout.rows, layout.arrows
    nrow, ncol = len(rows), len(rows[0])
    q = np.asarray(q_table, np.float64)
    if q.shape != (nrow * ncol, len(arrows)):
        raise ValueError(f"q_table of {env_id} must be [{nrow * ncol}, {len(arrows)}]; got shape {q.shape}")
    no_action = np.array([[letter in layout.stops for letter in row] for row in rows])
    values = np.ma.masked_where(no_action, q.max(axis=1).reshape(nrow, ncol))
    greedy = q.argmax(axis=1).reshape(nrow, ncol)
    ties = (q == q[:, :1]).all(axis=1).reshape(nrow, ncol)
    # 0.6 inch a cell, 1.6 inches beside the map for the colour bar, 0.9 above it for the title:
    # a figure of the map's shape, so the colour bar is as tall as the map.
    width = max(4.0, 0.6 * ncol + 1.6)
    fig = _figure(width, max(3.0, 0.6 * nrow + 0.9))
    ax = fig.subplots()
    image = ax.imshow(values, cmap=matplotlib.colormaps["viridis"].with_extremes(bad="lightgray"))
    fig.colorbar(image, ax=ax, label="max_a Q(s, a)")
    for r in range(nrow):
        for c in range(ncol):
            if no_action[r, c]:  # holes, goal, cliff
                ax.text(c, r, rows[r][c], ha="center", va="center", color="black", fontsize=11, fontweight="bold")
            elif ties[r, c]:
                ax.plot(c, r, "o", color="white", markersize=3)
            else:
                dx, dy = arrows[greedy[r, c]]
                ax.arrow(c - 0.25 * dx, r - 0.25 * dy, 0.4 * dx, 0.4 * dy, head_width=0.15, color="white")
    ax.set_xticks([])
    ax.set_yticks([])
    # A figure title, not the axes': constrained layout puts it above the map and the colour bar both.
    fig.suptitle(_wrap(f"{title or env_id}\ngreedy action over max_a Q(s, a)", width, 10), fontsize=10)
    return fig


def _run_policy_figure(run_dir: Path) -> Any:
    """``policy_figure`` of the first seed of a tabular gridworld run's newest checkpoint, or
    ``None`` for other runs."""
    from jrl.experiment.runner import load_run

    run = load_run(run_dir)
    tabular = run.spec.algorithm.tabular
    if not tabular or run.env.grid_layout(run.env_params) is None:
        return None
    state, _ = run.load_checkpoint()
    q = run.spec.algorithm.greedy_table(run.algorithm.result(run.seed_state(state, 0), {}))
    title = f"{run.spec.algo} on {run.spec.env}, seed {run.spec.seeds[0]}"
    return policy_figure(run.spec.env, q, env_kwargs=run.spec.env_kwargs, title=title)


def _seeds_stopped_early(run_dir: Path) -> int:
    """How many seeds of a run have a record with ``stopped`` True (DQN's ``stop_return``)."""
    return len({r["seed"] for r in records.read_metrics(run_dir / records.METRICS) if r.get("stopped")})


def learning_curve_figure(run_dirs: Sequence[str | Path], metric: str | None = None) -> Any:
    """The learning curves of ``run_dirs`` on one ``matplotlib.figure.Figure``: per run the mean
    over seeds of ``metric`` (default ``eval_return``, or ``episode_return`` when the first run
    has no in-loop evaluation) in each logging interval against environment steps per seed, as
    ``curves`` reads it (after an early stop a seed's return holds its last value: the
    evaluation that stopped it), with a band from the lowest to the highest seed. An interval
    where no seed has a value is a gap. Each run's line is ``ax.lines[i]`` in the order given."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("no run directories to plot")
    for d in run_dirs:
        if not (d / records.CONFIG).is_file():
            raise ValueError(f"{d} is not a jrl run directory (no config.toml)")
    metric = metric or _default_metric(run_dirs[0])
    fig = _figure(7.0, 4.8)
    ax = fig.subplots()
    kinds, held = set(), False
    for d in run_dirs:
        steps, values = curves(d, metric)
        spec = records.read_toml(d / records.CONFIG)
        kinds.add(f"{spec['algo']} on {spec['env']}")
        seeds, stopped = values.shape[0], _seeds_stopped_early(d)
        held = held or (stopped > 0 and metric in HELD_METRICS)
        # An interval where no seed has a value (none evaluated, no episode ended) is all NaN:
        # NumPy warns about it, and it plots as a gap, which is what it is.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = (f(values, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
        label = f"{d.name}: {spec['algo']} on {spec['env']} ({seeds} seed{'s' if seeds > 1 else ''}"
        label += f", {stopped} stopped early)" if stopped else ")"
        line = ax.plot(steps, mean, label=label)[0]
        if seeds > 1:
            ax.fill_between(steps, low, high, alpha=0.2, color=line.get_color())
    if len(run_dirs) == 1:
        what = f"{next(iter(kinds))}, {seeds} seed{'s' if seeds > 1 else ''}"
    else:
        what = f"{len(run_dirs)} runs" + (f" of {next(iter(kinds))}" if len(kinds) == 1 else "")
    title = f"{what}\n{metric}: mean over seeds per logging interval; band: lowest to highest seed"
    if held:
        title += "\nafter an early stop (stop_return) a seed holds " + (
            "the evaluation that stopped it" if metric == "eval_return" else "its last value from before the stop"
        )
    ax.set_title(_wrap(title, 7.0, 9), fontsize=9)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_runs(run_dirs: Sequence[str | Path], metric: str | None = None, out: str | Path | None = None) -> list[Path]:
    """Learning curves of ``run_dirs`` on one figure (``learning_curve_figure``), written as PNG
    (default: ``learning_curves.png`` in the first run), and for each tabular gridworld run its
    greedy policy (``policy_figure``: ``policy.png`` in that run). Returns the files written."""
    fig = learning_curve_figure(run_dirs, metric)
    run_dirs = [Path(d) for d in run_dirs]
    target = Path(out) if out is not None else run_dirs[0] / "learning_curves.png"
    fig.savefig(target, dpi=DPI)
    written = [target]
    for d in run_dirs:
        policy = _run_policy_figure(d)
        if policy is not None:
            policy.savefig(d / "policy.png", dpi=DPI)
            written.append(d / "policy.png")
    return written


# -- sweeps ---------------------------------------------------------------------------------------

#: Bootstrap resamples of the band of ``return_vs_*.png`` (a fixed numpy seed: the figure is reproducible).
BAND_RESAMPLES = 2000


class _Axis:
    """One axis of a sweep as drawn: its distinct values in order and each configuration's position."""

    def __init__(self, name: str, column: list, spec: dict):
        self.name = name
        self.sampled = name in spec["sample"]
        keys = [json.dumps(v) for v in column]
        order = [json.dumps(v) for v in spec["grid"][name]] if name in spec["grid"] else sorted(set(keys))
        values = [json.loads(k) for k in order]
        self.numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if self.numeric:
            order = [k for _, k in sorted(zip(values, order, strict=True))]
            values = sorted(values)
        self.values = values
        self.index = np.array([order.index(k) for k in keys])
        positive = self.numeric and min(values) > 0
        self.log = positive and (
            (self.sampled and str(spec["sample"][name]).startswith("log:")) or max(values) / min(values) > 100
        )
        self.x = np.asarray(values, float) if self.numeric else np.arange(len(values), dtype=float)

    def label(self, i: int) -> str:
        value = self.values[i]
        if isinstance(value, list):
            return "[" + ",".join(str(v) for v in value) + "]"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    def decorate(self, ax: Any, which: str) -> None:
        """Name the axis on ``ax`` (``"x"`` or ``"y"``): a log scale, or categorical ticks."""
        set_label, set_scale = getattr(ax, f"set_{which}label"), getattr(ax, f"set_{which}scale")
        set_label(self.name + (" (sampled)" if self.sampled else ""))
        if self.log:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            set_scale("log")
            plain = FuncFormatter(lambda value, _: f"{value:g}")
            axis = getattr(ax, f"{which}axis")
            axis.set_major_formatter(plain)
            if max(self.values) / min(self.values) < 1000:  # few decades: label 2 and 5 between the powers of 10
                axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
                axis.set_minor_formatter(plain)
            else:
                axis.set_minor_formatter(NullFormatter())
        elif not self.numeric:
            getattr(ax, f"set_{which}ticks")(self.x, [self.label(i) for i in range(len(self.values))])


def _bootstrap_band(per_seed: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``per_seed`` (resampling seeds)."""
    if per_seed.size < 2:
        return math.nan, math.nan
    means = per_seed[rng.integers(0, per_seed.size, (BAND_RESAMPLES, per_seed.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def sweep_figures(directory: str | Path) -> Iterator[tuple[str, Any]]:
    """A sweep's figures from its ``results.json``, one at a time: ``(file name, Figure)``, built
    as the iteration reaches them (``plot_sweep`` writes each before the next is drawn).

    - ``heatmap_A_B.png`` for each pair of axes: the mean final return over configurations that
      did not fail, averaged over the other axes; a cell whose configurations all failed says
      ``failed``, one where some did gives their count. Where an axis is sampled, each sampled
      point is a colored dot instead (a failed one a red cross).
    - ``return_vs_A.png`` for each axis: the final return against it, the mean over seeds (of the
      average over the other axes' configurations that did not fail) with a band: the 95%
      bootstrap interval of that mean over seeds.

    Numeric axes use their values (a log scale for log-sampled axes, or values spanning more than
    two decades); others (algorithm names, network sizes) are categories.
    """
    directory = Path(directory)
    if not (directory / "sweep.toml").is_file():
        raise ValueError(f"{directory} is not a jrl sweep directory (no sweep.toml)")
    if not (directory / "results.json").is_file():
        raise ValueError(f"{directory} has no results.json yet: finish the sweep with `jrl resume {directory}`")
    _matplotlib()  # a missing matplotlib is reported now, not at the first figure
    return _sweep_figures(records.read_json(directory / "results.json"))


def _sweep_figures(data: dict) -> Iterator[tuple[str, Any]]:
    """``sweep_figures`` of a ``results.json``'s content ``data``."""
    matplotlib = _matplotlib()
    from matplotlib.patches import Rectangle

    spec, rows = data["spec"], data["rows"]
    members = {m["index"]: m for m in data["members"]}
    finals = np.array([[np.nan if v is None else v for v in members[r["index"]]["final_returns"]] for r in rows])
    ok = np.array([not r["failed"] and r["final_return_mean"] is not None for r in rows])
    means = np.array([r["final_return_mean"] if okay else np.nan for r, okay in zip(rows, ok, strict=True)])
    axes = [_Axis(name, [r[name] for r in rows], spec) for name in [*spec["grid"], *spec["sample"]]]
    what = f"{spec['algo']} on {spec['env']}, {finals.shape[1]} seed(s)"
    for a, b in itertools.combinations(axes, 2):
        fig = _figure(max(5.0, 1.0 + 0.9 * len(a.values)), max(4.0, 1.2 + 0.6 * len(b.values)))
        ax = fig.subplots()
        cells = {}
        for c in range(len(rows)):
            cells.setdefault((a.index[c], b.index[c]), []).append(c)
        value = {key: np.mean(means[[c for c in cs if ok[c]]]) if ok[cs].any() else np.nan for key, cs in cells.items()}
        failed = {key: int((~ok[cs]).sum()) for key, cs in cells.items()}
        if a.sampled or b.sampled:
            keys = list(cells)
            good = [k for k in keys if np.isfinite(value[k])]
            bad = [k for k in keys if not np.isfinite(value[k])]
            dots = ax.scatter(
                [a.x[i] for i, _ in good], [b.x[j] for _, j in good], c=[value[k] for k in good], cmap="viridis", s=40
            )
            if bad:
                ax.scatter([a.x[i] for i, _ in bad], [b.x[j] for _, j in bad], marker="x", color="red", label="failed")
                ax.legend(fontsize=8)
            fig.colorbar(dots, ax=ax, label="mean final return")
            a.decorate(ax, "x")
            b.decorate(ax, "y")
        else:
            grid = np.full((len(b.values), len(a.values)), np.nan)
            for (i, j), v in value.items():
                grid[j, i] = v
            cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgray")
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
            fig.colorbar(image, ax=ax, label="mean final return")
            finite = grid[np.isfinite(grid)]
            middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            for (i, j), v in value.items():
                text = "failed" if not np.isfinite(v) else f"{v:.3g}"
                if np.isfinite(v) and failed[(i, j)]:
                    text += f"\n({failed[(i, j)]} failed)"
                color = "black" if not np.isfinite(v) or v > middle else "white"
                ax.text(i, j, text, ha="center", va="center", fontsize=8, color=color)
                if failed[(i, j)]:  # a red frame around a cell with failed configurations
                    ax.add_patch(Rectangle((i - 0.47, j - 0.47), 0.94, 0.94, fill=False, edgecolor="red", lw=2))
            ax.set_xticks(range(len(a.values)), [a.label(i) for i in range(len(a.values))])
            ax.set_yticks(range(len(b.values)), [b.label(j) for j in range(len(b.values))])
            ax.set_xlabel(a.name)
            ax.set_ylabel(b.name)
        others = "\naveraged over the other axes' configurations that did not fail" if len(axes) > 2 else ""
        ax.set_title(f"{what}: mean final return{others}", fontsize=9)
        yield f"heatmap_{a.name}_{b.name}.png", fig
    rng = np.random.default_rng(0)
    for axis in axes:
        fig = _figure(6.5, 4.2)
        ax = fig.subplots()
        xs, centers, lows, highs, dead = [], [], [], [], []
        for i in range(len(axis.values)):
            chosen = (axis.index == i) & ok
            if not chosen.any():
                dead.append(axis.x[i])
                continue
            per_seed = np.nanmean(finals[chosen], axis=0)  # each seed's average over the other axes
            per_seed = per_seed[np.isfinite(per_seed)]
            low, high = _bootstrap_band(per_seed, rng)
            xs.append(axis.x[i])
            centers.append(per_seed.mean())
            lows.append(low)
            highs.append(high)
        others = ", averaged over the other axes" if len(axes) > 1 else ""
        label, band = f"mean over seeds{others}", "95% bootstrap interval of the mean over seeds"
        if axis.numeric:  # a line with a band
            line = ax.plot(xs, centers, marker="o", label=label)[0]
            if finals.shape[1] > 1:
                ax.fill_between(xs, lows, highs, alpha=0.25, color=line.get_color(), label=band)
        else:  # categories: no line between them, the interval as an error bar
            errors = None
            if finals.shape[1] > 1:
                errors = np.abs(np.array([lows, highs]) - np.array(centers))
                label = f"{label}\nbars: {band}"
            ax.errorbar(xs, centers, yerr=errors, fmt="o", capsize=6, label=label)
            ax.set_xlim(-0.5, len(axis.values) - 0.5)
        if dead:
            ax.plot(dead, [0.02] * len(dead), "x", color="red", transform=ax.get_xaxis_transform(), label="all failed")
        axis.decorate(ax, "x")
        ax.set_ylabel("final greedy return")
        ax.set_title(f"{what}: final return against {axis.name}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        yield f"return_vs_{axis.name}.png", fig


def plot_sweep(directory: str | Path, out: str | Path | None = None) -> list[Path]:
    """A sweep's figures (``sweep_figures``) written as PNG into ``out`` (default: the sweep
    directory); returns the files written."""
    figures = sweep_figures(directory)
    target = Path(directory) if out is None else Path(out)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures:
        fig.savefig(target / name, dpi=DPI)
        written.append(target / name)
    return written
