"""Sutton & Barto (2nd ed.), Figure 6.3: interim and asymptotic performance of Sarsa, Expected Sarsa
and Q-learning on the cliff (``CliffWalking-v1``) as a function of alpha, epsilon 0.1 throughout.

Two sweep files (``jrl.experiment.sweeps.SweepSpec``, the files ``jrl sweep --config`` reads), each
a grid of algorithm x alpha (0.1 .. 1.0) with one agent per run, gamma 1, zero initial values:

- ``interim.toml``: 10,000 steps, a metrics record every step. With one environment a record holds
  at most one finished episode, and ``episode_return`` is not NaN exactly when one finished, so the
  first 100 values of a run's curve are its first 100 episode returns. Interim performance is
  their mean (the return earned while learning, exploration included).
- ``asymptotic.toml``: 250,000 steps, a record every 1,000 steps, 10 runs. A record is the mean
  return of the episodes that ended in it, so the file is swept twice with the same seeds (the
  same trainings, bit for bit): once for ``episode_return`` and once for ``episodes``, the count
  per record. Asymptotic performance is the sum of returns over the sum of episodes: the mean
  return per episode over the whole run, weighted exactly.

    python experiments/sutton_barto_figure_6_3/run.py              # the full sweeps (see README.md)
    python experiments/sutton_barto_figure_6_3/run.py --quick      # few runs and steps: a smoke run, in quick/
    python experiments/sutton_barto_figure_6_3/run.py --plot-only  # redraw from results/summary.csv

Writes ``results/<sweep>/`` (sweep directories; an interrupted sweep is continued by running the
script again), ``results/summary.csv`` and ``results/figure_6_3.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment.harness import read_csv, run_sweep_file, write_csv
from jrl.experiment.plots import pyplot

HERE = Path(__file__).resolve().parent
NUM_EPISODES = 100  # interim: the first 100 episodes
BOTTOM = -160  # the y range of the book's figure: -160 to 0
QUICK = {
    "interim": dict(seeds=4, grid={"alpha": [0.1, 0.5, 1.0]}),
    "asymptotic": dict(seeds=2, config={"num_steps": 20000}, grid={"alpha": [0.1, 0.5, 1.0]}),
}
STYLES = {
    "sarsa": ("Sarsa", "tab:blue"),
    "expected_sarsa": ("Expected Sarsa", "tab:red"),
    "q_learning": ("Q-learning", "black"),
}


def check_episode_records(result: jrl.experiment.SweepResult) -> None:
    """The interim curve's premise, checked on the first configuration's seed 0 against
    ``make_train``: its curve is the sweep's, bit for bit, and ``episode_return`` is a number
    exactly at the records where ``episodes`` is 1 (and ``episodes`` is never above 1)."""
    spec = result.spec
    config = spec.configs()[0]
    env, env_params = jrl.make(spec.env)
    metrics = jax.jit(q_learning.make_train(config, env, env_params))(jax.random.key(spec.seeds[0])).metrics
    curve = np.asarray(metrics["episode_return"], np.float64)
    episodes = np.asarray(metrics["episodes"])
    assert np.array_equal(curve, result.curves[0, 0], equal_nan=True), "the sweep's curve is not make_train's"
    assert episodes.max() <= 1 and np.array_equal(episodes == 1, np.isfinite(curve)), "a record is not one episode"


def interim(result: jrl.experiment.SweepResult) -> tuple[np.ndarray, np.ndarray]:
    """Per configuration and run: the mean return of the first 100 episodes (NaN for a run that
    finished fewer) and the number of episodes it finished, ``[C, S]`` each."""
    curves = result.curves
    finished = np.isfinite(curves).sum(axis=2)
    means = np.full(finished.shape, np.nan)
    for c, s in zip(*np.nonzero(finished >= NUM_EPISODES), strict=True):
        values = curves[c, s][np.isfinite(curves[c, s])]
        means[c, s] = values[:NUM_EPISODES].mean()
    return means, finished


def asymptotic(returns: jrl.experiment.SweepResult, counts: jrl.experiment.SweepResult) -> dict[str, np.ndarray]:
    """Per configuration and run ``[C, S]``: the mean return per episode over the whole run
    (``weighted``: sum of per-record sums over the episodes), the mean of the per-record means
    (``unweighted``: what a learning-curve average gives) and the episodes."""
    means, n = returns.curves, counts.curves
    assert np.array_equal(np.isfinite(means), n > 0), "episode_return and episodes disagree on the records"
    total = np.where(n > 0, np.nan_to_num(means) * n, 0.0).sum(axis=2)
    episodes = n.sum(axis=2)
    return {"weighted": total / episodes, "unweighted": np.nanmean(means, axis=2), "episodes": episodes}


def standard_error(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def plot(path: Path, rows: list[dict]) -> None:
    try:
        plt = pyplot()
    except ImportError as err:
        print(f"{err}: no figure")
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, (label, color) in STYLES.items():
        mine = [r for r in rows if r["algorithm"] == name]
        alphas = [float(r["alpha"]) for r in mine]
        for kind, style, marker in (("asymptotic", "-", "o"), ("interim", "--", "^")):
            values = [float(r[f"{kind}_mean"]) for r in mine]
            errors = [float(r[f"{kind}_se"]) for r in mine]
            ax.errorbar(alphas, values, yerr=errors, ls=style, marker=marker, ms=4, color=color, capsize=2)
            ax.plot([], [], ls=style, marker=marker, color=color, label=f"{label}, {kind}")
            for alpha, value in zip(alphas, values, strict=True):
                if value < BOTTOM:  # off the book's scale: say where it is
                    ax.annotate(
                        f"{value:.0f}",
                        (alpha, BOTTOM),
                        xytext=(-4, 6),
                        textcoords="offset points",
                        ha="right",
                        fontsize=8,
                        color=color,
                    )
    runs_i, runs_a = rows[0]["interim_runs"], rows[0]["asymptotic_runs"]
    ax.set_xlabel("alpha")
    ax.set_ylabel("sum of rewards per episode")
    ax.set_ylim(BOTTOM, 0)
    ax.set_xticks([float(r["alpha"]) for r in rows if r["algorithm"] == "sarsa"])
    ax.set_title(
        f"CliffWalking-v1, epsilon 0.1 (Sutton & Barto, Figure 6.3)\ninterim: first {NUM_EPISODES} episodes, "
        f"{runs_i} runs; asymptotic: whole run, {runs_a} runs",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="lower right", bbox_to_anchor=(1, 0.07))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few runs, alphas and steps: a smoke run in quick/")
    parser.add_argument("--plot-only", action="store_true", help="redraw from results/summary.csv")
    args = parser.parse_args()
    base = HERE / ("quick" if args.quick else "results")
    if args.plot_only:
        plot(base / "figure_6_3.png", read_csv(base / "summary.csv"))
        return
    timings = {}

    def sweep(stem: str, out: str, **extra) -> jrl.experiment.SweepResult:
        started = time.perf_counter()
        overrides = {**(QUICK[stem] if args.quick else {}), **extra}
        result = run_sweep_file(HERE / f"{stem}.toml", base / out, **overrides)
        timings[out] = time.perf_counter() - started
        return result

    early = sweep("interim", "interim")
    check_episode_records(early)
    late_returns = sweep("asymptotic", "asymptotic")
    late_counts = sweep("asymptotic", "asymptotic_episodes", curve="episodes")
    assert np.array_equal(late_returns.final_returns, late_counts.final_returns), "the two passes trained differently"
    interim_means, finished = interim(early)
    late = asymptotic(late_returns, late_counts)
    rows = []
    for c, point in enumerate(early.spec.points()):
        assert late_returns.spec.points()[c] == point
        rows.append(
            dict(
                algorithm=point["algorithm"],
                alpha=point["alpha"],
                interim_mean=round(float(np.nanmean(interim_means[c])), 3),
                interim_se=round(standard_error(interim_means[c]), 3),
                interim_runs=int(np.isfinite(interim_means[c]).sum()),
                interim_runs_short=int((finished[c] < NUM_EPISODES).sum()),
                asymptotic_mean=round(float(late["weighted"][c].mean()), 3),
                asymptotic_se=round(standard_error(late["weighted"][c]), 3),
                asymptotic_unweighted=round(float(late["unweighted"][c].mean()), 3),
                asymptotic_runs=late["weighted"].shape[1],
                asymptotic_episodes_per_run=int(late["episodes"][c].mean()),
                final_greedy_return_mean=round(float(np.mean(late_returns.final_returns[c])), 3),
            )
        )
    write_csv(base / "summary.csv", rows)
    plot(base / "figure_6_3.png", rows)
    print(f"{'algorithm':15s} {'alpha':>5s} {'interim (s.e.) [short]':>24s} {'asymptotic (s.e.)':>19s}", end="")
    print(f" {'unweighted':>10s} {'episodes':>8s} {'greedy':>8s}")
    for r in rows:
        print(
            f"{STYLES[r['algorithm']][0]:15s} {r['alpha']:>5.1f} {r['interim_mean']:>9.2f} ({r['interim_se']:.2f}) "
            f"[{r['interim_runs_short']}] {r['asymptotic_mean']:>10.2f} ({r['asymptotic_se']:.2f}) "
            f"{r['asymptotic_unweighted']:>10.2f} {r['asymptotic_episodes_per_run']:>8d} "
            f"{r['final_greedy_return_mean']:>8.1f}"
        )
    print("[short]: runs that finished fewer than 100 episodes (left out of the interim mean); greedy: exact")
    print(
        "return of the final greedy policy (asymptotic runs). Time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    )
    print(f"Wrote {base / 'summary.csv'} and {base / 'figure_6_3.png'}")


if __name__ == "__main__":
    main()
