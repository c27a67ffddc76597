"""Sutton & Barto, Example 6.6 (Figure 6.4): Sarsa and Q-learning on the cliff, online returns.

``CliffWalking-v1`` with epsilon 0.1 throughout, alpha 0.5 and gamma 1, one agent per run. Q-learning
learns the optimal path along the cliff edge (return -13), but while it follows that path
epsilon-greedily, one exploring step in ten may walk it off the cliff (-100). Sarsa learns the
value of the epsilon-greedy policy it follows and takes the safer path away from the edge, so its
return per episode *during learning* is higher. Expected Sarsa and Double Q-learning run beside
them.

Each ``*.toml`` beside this script is one algorithm's run: ``seeds`` runs (train keys
``jax.random.key(seed)``, seeds ``0 .. N-1``) of ``q_learning.make_train`` with one environment
each, all runs of an algorithm in one compiled call. With ``log_interval = 1`` every step is a
metrics record, so the return of each episode (the sum of its rewards, what the agent earned while
learning) is recovered on the device. The curve is each episode's return, for the first 500
episodes, averaged over the runs.

    python experiments/cliff_walking_sutton_barto/run.py            # 1,000 runs per algorithm (see README.md)
    python experiments/cliff_walking_sutton_barto/run.py --quick    # 20 runs: a smoke run, writes *_quick.*

Writes ``returns.csv`` (one row per episode, one column per algorithm) and ``returns.png`` beside
this script (the PNG needs matplotlib, the ``plot`` extra), and prints a short table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment.harness import episodes_from_steps, load_per_step_run, timed, train_keys, write_columns, write_csv
from jrl.experiment.plots import pyplot

HERE = Path(__file__).resolve().parent
RUN_FILES = ("sarsa.toml", "q_learning.toml", "expected_sarsa.toml", "double_q_learning.toml")
NUM_EPISODES = 500
LATE = slice(400, 500)  # episodes 401-500: the plateau the README quotes
MAX_PATH = 100  # greedy_path_length's cap: a longer greedy walk loops (or falls off the cliff and restarts)
PATHS = (13, 15, 17)  # the greedy paths along the cliff edge (row 2), through row 1, along the top row
BATCH_SIZE = 50  # runs vmapped together; lax.map over batches bounds the memory of [runs, steps] metrics
QUICK_SEEDS = 20
# Run file name -> (label, color) in the table and the figure.
STYLES = {
    "sarsa": ("Sarsa", "tab:blue"),
    "q_learning": ("Q-learning", "tab:red"),
    "expected_sarsa": ("Expected Sarsa", "tab:purple"),
    "double_q_learning": ("Double Q-learning", "tab:green"),
}


def greedy_path_length(q_table: jax.Array, mdp: jrl.TabularMDP) -> jax.Array:
    """Steps the greedy policy of ``q_table`` ``[S, A]`` (first maximal action) takes from the start
    state to a terminal outcome of a deterministic model (K = 1): 13 along the cliff edge, 17
    along the top row. ``MAX_PATH`` (int32) when it has not arrived by then (it loops)."""

    def step(carry: tuple, _: None) -> tuple[tuple, None]:
        s, steps, arrived = carry
        a = jnp.argmax(q_table[s])
        next_s = jnp.where(arrived, s, mdp.next_states[s, a, 0])
        return (next_s, steps + (~arrived).astype(jnp.int32), arrived | mdp.terminals[s, a, 0]), None

    start = jnp.argmax(mdp.initial_distribution)
    (_, steps, arrived), _ = jax.lax.scan(step, (start, jnp.int32(0), jnp.bool_(False)), None, length=MAX_PATH)
    return jnp.where(arrived, steps, MAX_PATH)


def train_runs(run: dict[str, Any], seeds: int) -> dict[str, Any]:
    """Train seeds ``0 .. seeds-1`` in one compiled call. Returns ``returns`` float32
    ``[seeds, 500]`` (each run's return in each episode), ``steps_needed`` int32 ``[seeds]``,
    ``greedy_path`` int32 ``[seeds]`` (``greedy_path_length`` of each run's final table, after all
    ``num_steps`` steps), and the compile and run times in seconds."""
    env, env_params = jrl.make(run["env_id"], **run["env_kwargs"])
    train = q_learning.make_train(run["config"], env, env_params)
    mdp = env.mdp(env_params)
    if mdp.num_outcomes != 1:
        raise ValueError(f"{run['env_id']}: greedy_path_length needs a deterministic model (K = 1)")

    def one_run(key: jax.Array) -> dict[str, jax.Array]:
        result = train(key)
        return {
            **episodes_from_steps(result.metrics, NUM_EPISODES),
            "greedy_path": greedy_path_length(result.q_table, mdp),
        }

    # lax.map over batches of vmapped runs bounds the memory of the per-step metrics.
    timing = timed(lambda k: jax.lax.map(one_run, k, batch_size=min(BATCH_SIZE, seeds)), train_keys(range(seeds)))
    out, compile_seconds, run_seconds = jax.device_get(timing.output), timing.compile_seconds, timing.run_seconds
    if out["finished"].min() < NUM_EPISODES:
        raise RuntimeError(
            f"{run['name']}: a run finished only {out['finished'].min()} episodes in "
            f"{run['config'].num_steps} steps; raise num_steps"
        )
    return dict(
        returns=out["returns"],
        steps_needed=out["steps_needed"],
        greedy_path=out["greedy_path"],
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
    )


def late_return(returns: np.ndarray) -> tuple[float, float]:
    """Mean return per episode over episodes 401-500 and runs, and its standard error over runs
    (``returns`` ``[runs, 500]``; the runs are independent, the episodes of one run are not)."""
    per_run = returns[:, LATE].mean(axis=1)
    standard_error = per_run.std(ddof=1) / np.sqrt(len(per_run)) if len(per_run) > 1 else np.nan
    return float(per_run.mean()), float(standard_error)


def summarize(name: str, seeds: int, result: dict[str, Any]) -> dict[str, Any]:
    """One row of ``summary.csv`` and of the printed table: returns early and late, steps needed,
    the percent of runs whose final greedy path is each of ``PATHS`` (or none of them), timings."""
    late, standard_error = late_return(result["returns"])
    row = dict(
        algorithm=name,
        runs=seeds,
        return_episodes_1_10=round(float(result["returns"][:, :10].mean()), 2),
        return_episodes_401_500=round(late, 2),
        standard_error_401_500=round(standard_error, 2),
        steps_for_500_episodes_mean=int(result["steps_needed"].mean()),
        steps_for_500_episodes_max=int(result["steps_needed"].max()),
    )
    for length in PATHS:
        row[f"greedy_path_{length}_percent"] = round(100.0 * float(np.mean(result["greedy_path"] == length)), 1)
    row["greedy_path_other_percent"] = round(100.0 * float(np.mean(~np.isin(result["greedy_path"], PATHS))), 1)
    row["compile_seconds"] = round(result["compile_seconds"], 1)
    row["run_seconds"] = round(result["run_seconds"], 1)
    return row


def plot(path: Path, curves: dict[str, np.ndarray], runs: int) -> None:
    try:
        plt = pyplot()
    except ImportError as err:
        print(f"{err}: no figure")
        return
    episodes = np.arange(1, NUM_EPISODES + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        label, color = STYLES[name]
        ax.plot(episodes, curve, color=color, lw=1, label=label)
    ax.axhline(-13, color="black", ls=":", lw=1, label="optimal path (-13)")
    ax.set_xlim(0, NUM_EPISODES)
    ax.set_ylim(-100, -10)
    ax.set_xlabel("episode")
    ax.set_ylabel("sum of rewards during episode")
    ax.set_title(f"CliffWalking-v1 (Sutton & Barto, Figure 6.4), mean of {runs:,} runs")
    ax.legend(frameon=False, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} runs per algorithm, *_quick outputs")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    curves, rows = {}, []
    for file_name in RUN_FILES:
        run = load_per_step_run(HERE / file_name)
        seeds = min(run["seeds"], QUICK_SEEDS) if args.quick else run["seeds"]
        result = train_runs(run, seeds)
        curves[run["name"]] = result["returns"].mean(axis=0)
        rows.append(summarize(run["name"], seeds, result))
    write_columns(HERE / f"returns{suffix}.csv", curves)
    write_csv(HERE / f"summary{suffix}.csv", rows)
    plot(HERE / f"returns{suffix}.png", curves, max(row["runs"] for row in rows))

    paths = " / ".join(str(n) for n in PATHS)
    print(f"{'algorithm':18s} {'runs':>5s} {'ep 1-10':>8s} {'ep 401-500 (s.e.)':>18s} {'steps':>13s} ", end="")
    print(f"{'greedy path ' + paths + ' / other':>31s} {'time':>12s}")
    for r in rows:
        steps = f"{r['steps_for_500_episodes_mean']} / {r['steps_for_500_episodes_max']}"
        shares = " / ".join(f"{r[f'greedy_path_{n}_percent']:.0f}" for n in PATHS)
        shares += f" / {r['greedy_path_other_percent']:.0f} %"
        print(
            f"{STYLES[r['algorithm']][0]:18s} {r['runs']:>5d} {r['return_episodes_1_10']:>8.1f} "
            f"{r['return_episodes_401_500']:>10.2f} ({r['standard_error_401_500']:.2f}) {steps:>13s} {shares:>31s} "
            f"{r['compile_seconds']:>4.1f} + {r['run_seconds']:.1f} s"
        )
    print("steps: for 500 episodes, mean / max over runs; greedy path: steps from the start, final tables;")
    print(f"time: compile + run. Wrote returns{suffix}.csv, summary{suffix}.csv and returns{suffix}.png in {HERE}")


if __name__ == "__main__":
    main()
