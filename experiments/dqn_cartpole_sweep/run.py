"""DQN on CartPole-v1 over learning rate x target update rate (tau), from the tuned default.

``sweep.toml`` beside this script is the sweep (``jrl.experiment.sweeps.SweepSpec``, the file ``jrl
sweep --config`` reads): ``dqn.default_config("CartPole-v1")`` with learning_rate x tau as grid
axes, 4 seeds per cell. A seed's score is the mean return of 100 greedy episodes of its returned
parameters (key ``evaluation_key(seed)``); it counts as solved at 475 or more.

    python experiments/dqn_cartpole_sweep/run.py              # the full sweep (see README.md)
    python experiments/dqn_cartpole_sweep/run.py --quick      # 1 seed, 2 x 2 cells, 2,000 iterations: in quick/
    python experiments/dqn_cartpole_sweep/run.py --plot-only  # redraw from results/sweep/results.json

Writes ``results/sweep/`` (the sweep directory: ``results.csv``, ``results.json``; an interrupted
sweep is continued by running the script again), ``results/summary.csv`` and
``results/dqn_cartpole_sweep.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jrl.experiment.harness import run_sweep_file, write_csv
from jrl.experiment.plots import pyplot
from jrl.experiment.sweeps import SweepSettings

HERE = Path(__file__).resolve().parent
SOLVED = 475.0
QUICK = dict(
    seeds=1,
    eval_episodes=10,
    config={"num_steps": 2000, "learning_starts": 1000, "eval_episodes": 10},
    grid={"learning_rate": [0.0005, 0.001], "tau": [0.5, 1.0]},
)
# Four configurations (one learning rate's row) per compiled call: progress and resumption per row.
SETTINGS = SweepSettings(configs_per_batch=4)


def summarize(results_json: Path) -> tuple[list[float], list[float], list[dict]]:
    data = json.loads(results_json.read_text())
    rates, taus = data["spec"]["grid"]["learning_rate"], data["spec"]["grid"]["tau"]
    rows = []
    for row, member in zip(data["rows"], data["members"], strict=True):
        finals = np.asarray([np.nan if v is None else v for v in member["final_returns"]], np.float64)
        rows.append(
            dict(
                learning_rate=row["learning_rate"],
                tau=row["tau"],
                seeds=len(finals),
                final_return_mean=round(row["final_return_mean"], 2),
                final_return_std=round(row["final_return_std"], 2),
                final_return_min=round(float(np.nanmin(finals)), 2),
                seeds_solved=int(np.sum(finals >= SOLVED)),
                seeds_eval_reached_475=row.get("seeds_reached"),
                median_env_steps_to_475=row.get("steps_to_threshold"),
                failed=row["failed"],
            )
        )
    return rates, taus, rows


def heatmap(ax, fig, values, rates, taus, title, fmt, cmap, vmin, vmax) -> None:
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            color = "black" if values[i, j] > (vmin + vmax) / 2 else "white"
            ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(len(taus)), [str(t) for t in taus])
    ax.set_yticks(range(len(rates)), [f"{r:g}" for r in rates])
    ax.set_xlabel("tau (every 50 iterations)")
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=10)


def plot(path: Path, rates, taus, rows) -> None:
    try:
        plt = pyplot()
    except ImportError as err:
        print(f"{err}: no figure")
        return
    shape = (len(rates), len(taus))
    mean = np.asarray([r["final_return_mean"] for r in rows]).reshape(shape)
    solved = np.asarray([r["seeds_solved"] for r in rows]).reshape(shape)
    seeds = rows[0]["seeds"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    heatmap(axes[0], fig, mean, rates, taus, f"CartPole-v1 DQN: mean final greedy return ({seeds} seeds)", ".0f",
            "viridis", 0, 500)  # fmt: skip
    heatmap(axes[1], fig, solved, rates, taus, f"seeds with final return >= {SOLVED:g}", "d", "magma", 0, seeds)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 x 2 cells, 2,000 iterations: in quick/")
    parser.add_argument("--plot-only", action="store_true", help="redraw from results/sweep/results.json")
    args = parser.parse_args()
    base = HERE / ("quick" if args.quick else "results")
    if not args.plot_only:
        started = time.perf_counter()
        run_sweep_file(HERE / "sweep.toml", base / "sweep", settings=SETTINGS, **(QUICK if args.quick else {}))
        print(f"sweep: {time.perf_counter() - started:.0f} s")
    rates, taus, rows = summarize(base / "sweep" / "results.json")
    write_csv(base / "summary.csv", rows)
    plot(base / "dqn_cartpole_sweep.png", rates, taus, rows)
    print(f"{'learning rate':>13s} " + " ".join(f"{'tau ' + str(t):>15s}" for t in taus))
    for rate in rates:
        line = [r for r in rows if r["learning_rate"] == rate]
        print(
            f"{rate:>13g} "
            + " ".join(f"{r['final_return_mean']:>8.1f} ({r['seeds_solved']}/{r['seeds']})" for r in line)
        )
    print(f"cells: mean final greedy return (seeds solved / seeds). Wrote {base / 'summary.csv'}")


if __name__ == "__main__":
    main()
