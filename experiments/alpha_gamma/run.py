"""Alpha and gamma "are chosen by experiment": Q-learning over an alpha x gamma grid on
FrozenLake8x8-v1 and Taxi-v4, 32 seeds per cell.

Each ``*.toml`` beside this script is one sweep (``jrl.experiment.sweeps.SweepSpec``: the same file
``jrl sweep --config`` reads): the tuned ``q_learning.default_config`` of the environment with a
quarter of its parallel environments, alpha x gamma as grid axes, 32 seeds. Every cell x seed is
trained in one compiled call per environment. A seed's score is the exact expected undiscounted
return of its final greedy policy over the environment's time limit (200 steps), computed from the
model, so cells with different gammas are compared on the same scale.

    python experiments/alpha_gamma/run.py              # the full sweeps (see README.md)
    python experiments/alpha_gamma/run.py --quick      # 2 seeds, a short budget: a smoke run, in quick/
    python experiments/alpha_gamma/run.py --plot-only  # redraw from results/*/results.json

Writes ``results/<sweep>/`` (the sweep directories: ``results.csv``, ``results.json``; an
interrupted sweep is continued by running the script again), ``summary.csv`` and ``alpha_gamma.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import jrl
from jrl.experiment.harness import run_sweep_file, write_csv
from jrl.experiment.plots import pyplot
from jrl.experiment.sweeps import exact_greedy_returns
from jrl.planning import value_iteration

HERE = Path(__file__).resolve().parent
# Sweep file stem -> (environment id, success threshold on a seed's final exact return).
SWEEPS = {"frozen_lake_8x8": ("FrozenLake8x8-v1", 0.8), "taxi": ("Taxi-v4", 7.0)}
QUICK = dict(seeds=2, config={"num_steps": 200, "log_interval": 200}, grid={"alpha": [0.1, 0.5], "gamma": [0.9, 0.99]})


def references(env_id: str, gammas: list[float]) -> dict[str, float]:
    """Exact undiscounted returns over the time limit: of the greedy policy of Q* at each gamma
    (the best a learner that converges at that gamma can do), and the finite-horizon optimum."""
    env, env_params = jrl.make(env_id)
    mdp = env.mdp(env_params)
    out = {}
    for gamma in gammas:
        q_star = np.asarray(value_iteration(mdp, gamma))
        out[f"q_star_{gamma}"] = float(exact_greedy_returns(env, env_params, q_star[None])[0])
    # Undiscounted backward induction over the time limit (a policy that may depend on the steps left).
    probs = np.asarray(mdp.transition_probs, np.float64)
    rewards = np.asarray(mdp.rewards, np.float64)
    continuing = ~np.asarray(mdp.terminals, bool)
    next_states = np.asarray(mdp.next_states)
    values = np.zeros(probs.shape[0])
    for _ in range(int(env_params.max_steps_in_episode)):
        values = np.max(np.sum(probs * (rewards + continuing * values[next_states]), axis=-1), axis=-1)
    out["horizon_optimum"] = float(values @ np.asarray(mdp.initial_distribution, np.float64))
    return out


def cells(results_json: Path, threshold: float) -> tuple[list[float], list[float], list[dict]]:
    """The alpha and gamma values and one row per cell: mean, std, 95% CI and the seeds at or
    above ``threshold`` of the final exact return."""
    data = json.loads(results_json.read_text())
    alphas, gammas = data["spec"]["grid"]["alpha"], data["spec"]["grid"]["gamma"]
    rows = []
    for row, member in zip(data["rows"], data["members"], strict=True):
        finals = np.asarray([np.nan if v is None else v for v in member["final_returns"]], np.float64)
        rows.append(
            dict(
                alpha=row["alpha"],
                gamma=row["gamma"],
                seeds=len(finals),
                mean=round(row["final_return_mean"], 4),
                std=round(row["final_return_std"], 4),
                ci_low=round(row["final_return_ci_low"], 4),
                ci_high=round(row["final_return_ci_high"], 4),
                worst=round(float(np.nanmin(finals)), 4),
                seeds_at_threshold=int(np.sum(finals >= threshold)),
                failed=row["failed"],
            )
        )
    return alphas, gammas, rows


def heatmap(ax, fig, values: np.ndarray, alphas, gammas, title: str, fmt: str, cmap: str, vmin, vmax) -> None:
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax)
    middle = (vmin + vmax) / 2
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            color = "black" if values[i, j] > middle else "white"
            ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(gammas)), [str(g) for g in gammas])
    ax.set_yticks(range(len(alphas)), [str(a) for a in alphas])
    ax.set_xlabel("gamma")
    ax.set_ylabel("alpha")
    ax.set_title(title, fontsize=10)


def plot(path: Path, panels: dict) -> None:
    try:
        plt = pyplot()
    except ImportError as err:
        print(f"{err}: no figure")
        return
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for k, (env_id, (alphas, gammas, rows, threshold, reference)) in enumerate(panels.items()):
        shape = (len(alphas), len(gammas))
        mean = np.asarray([r["mean"] for r in rows]).reshape(shape)
        hits = np.asarray([r["seeds_at_threshold"] for r in rows]).reshape(shape)
        seeds = rows[0]["seeds"]
        low = min(float(mean.min()), 0.0) if env_id.startswith("FrozenLake") else max(float(mean.min()), -50.0)
        heatmap(
            axes[k, 0],
            fig,
            mean,
            alphas,
            gammas,
            f"{env_id}: mean final greedy return ({seeds} seeds)\n(exact; best stationary policy: {reference:.3g})",
            ".3g",
            "viridis",
            low,
            reference,
        )
        heatmap(
            axes[k, 1],
            fig,
            hits,
            alphas,
            gammas,
            f"{env_id}: seeds with final return >= {threshold}",
            "d",
            "magma",
            0,
            seeds,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 200 steps, 2 x 2 cells: a smoke run in quick/")
    parser.add_argument("--plot-only", action="store_true", help="redraw from results/*/results.json")
    args = parser.parse_args()
    base = HERE / ("quick" if args.quick else "results")
    overrides = QUICK if args.quick else {}
    panels, summary = {}, []
    for stem, (env_id, threshold) in SWEEPS.items():
        out = base / stem
        if not args.plot_only:
            started = time.perf_counter()
            run_sweep_file(HERE / f"{stem}.toml", out, **overrides)
            print(f"{env_id}: {time.perf_counter() - started:.0f} s")
        alphas, gammas, rows = cells(out / "results.json", threshold)
        reference = references(env_id, gammas)
        best_stationary = max(v for k, v in reference.items() if k.startswith("q_star"))
        panels[env_id] = (alphas, gammas, rows, threshold, best_stationary)
        summary += [{"env": env_id, "threshold": threshold, **row} for row in rows]
        print(
            f"{env_id}: exact undiscounted return over the time limit of Q*'s greedy policy per gamma and the optimum:"
        )
        print("  " + ", ".join(f"{k} {v:.4f}" for k, v in reference.items()))
        print(f"  {'alpha':>6s} " + " ".join(f"{'gamma ' + str(g):>17s}" for g in gammas))
        for a in alphas:
            line = [r for r in rows if r["alpha"] == a]
            print(
                f"  {a:>6g} "
                + " ".join(f"{r['mean']:>9.3f} ({r['seeds_at_threshold']:>2d}/{r['seeds']})" for r in line)
            )
    write_csv(base / "summary.csv", summary)
    plot(base / "alpha_gamma.png", panels)
    print(
        f"cells: mean final return (seeds >= threshold / seeds). Wrote {base / 'summary.csv'} and {base / 'alpha_gamma.png'}"
    )


if __name__ == "__main__":
    main()
