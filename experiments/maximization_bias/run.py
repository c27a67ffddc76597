"""Sutton & Barto, Figure 6.5 (Example 6.7): Q-learning's maximization bias, Double Q-learning's cure.

``MaximizationBias-v0``: from A, left leads to B (reward 0), right ends the episode (reward 0);
from B every action ends the episode with a reward drawn from N(-0.1, 1). Going left is worth
-0.1, so the optimal epsilon-greedy policy (epsilon 0.1) goes left only epsilon / 2 = 5% of the
time. Q-learning's ``max`` over B's noisy estimates makes B look better than it is, so it goes left
far more often at first; Double Q-learning does not.

Each ``*.toml`` beside this script is one algorithm's run: ``seeds`` runs (train keys
``jax.random.key(seed)``, seeds ``0 .. N-1``) of ``q_learning.make_train`` with one environment
each, 600 steps (at least 300 episodes), all runs of an algorithm in one compiled call. With
``log_interval = 1`` every step is a metrics record, so every episode's length is recovered on the
device: 2 steps means the agent went left in A, 1 step right. The curve is the percent of runs
that went left in each of the first 300 episodes.

A check beside it: ``reference_percent_left``, an independent NumPy implementation of the same
learners, run on the same MDP (5 left, 5 right actions in A) and on the book's (1 left, 1 right).
jrl's tables have one action count for every state, so A has as many actions as B (10), half of
them left; the book's A has two. Both curves are written, so the difference is visible.

    python experiments/maximization_bias/run.py            # 10,000 runs per algorithm (see README.md)
    python experiments/maximization_bias/run.py --quick    # 500 runs: a smoke run, writes *_quick.*

Writes ``percent_left.csv`` (one row per episode: jrl's curves and the two NumPy references) and
``percent_left.png`` beside this script (the PNG needs matplotlib, the ``plot`` extra), and prints
a short table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment.harness import episodes_from_steps, load_per_step_run, timed, train_keys, write_columns
from jrl.experiment.plots import pyplot

HERE = Path(__file__).resolve().parent
RUN_FILES = ("q_learning.toml", "double_q_learning.toml")
NUM_EPISODES = 300
OPTIMAL_PERCENT = 5.0  # epsilon / 2 at epsilon 0.1
BATCH_SIZE = 1000  # runs vmapped together; lax.map over batches bounds the memory of [runs, steps] metrics
QUICK_SEEDS = 500


def train_runs(run: dict[str, Any], seeds: int) -> dict[str, Any]:
    """Train seeds ``0 .. seeds-1`` in one compiled call. Returns ``left`` bool ``[seeds, 300]``
    (the run went left in A in that episode) and the compile and run times in seconds."""
    env, env_params = jrl.make(run["env_id"], **run["env_kwargs"])
    train = q_learning.make_train(run["config"], env, env_params)

    def one_run(key: jax.Array) -> dict[str, jax.Array]:
        return episodes_from_steps(train(key).metrics, NUM_EPISODES)

    # lax.map over batches of vmapped runs bounds the memory of the per-step metrics.
    timing = timed(lambda k: jax.lax.map(one_run, k, batch_size=min(BATCH_SIZE, seeds)), train_keys(range(seeds)))
    out, compile_seconds, run_seconds = jax.device_get(timing.output), timing.compile_seconds, timing.run_seconds
    if out["finished"].min() < NUM_EPISODES:
        raise RuntimeError(f"{run['name']}: a run finished only {out['finished'].min()} episodes; raise num_steps")
    return dict(left=out["lengths"] == 2, compile_seconds=compile_seconds, run_seconds=run_seconds)


def _epsilon_greedy(rng: np.random.Generator, q: np.ndarray, epsilon: float) -> np.ndarray:
    """Epsilon-greedy actions for rows of ``q`` ``[runs, A]``, ties broken uniformly at random."""
    is_max = q == q.max(axis=1, keepdims=True)
    greedy = np.argmax(rng.random(q.shape) * is_max, axis=1)
    return np.where(rng.random(len(q)) < epsilon, rng.integers(q.shape[1], size=len(q)), greedy)


def reference_percent_left(
    num_left: int, num_right: int, num_b: int, double: bool, runs: int, seed: int = 0
) -> np.ndarray:
    """Percent of runs that go left in each of the first 300 episodes: float64 ``[300]``.

    An independent NumPy implementation of tabular Q-learning (``double=False``) or Double
    Q-learning on the maximization-bias MDP with ``num_left`` left and ``num_right`` right actions
    in A and ``num_b`` actions in B: alpha 0.1, epsilon 0.1, gamma 1, zero initial values, as in the
    run files. ``(5, 5, 10)`` is ``MaximizationBias-v0``; ``(1, 1, 10)`` is the book's MDP.
    """
    alpha, epsilon = 0.1, 0.1
    rng = np.random.default_rng(seed)
    rows = np.arange(runs)
    tables = 2 if double else 1
    q_a = np.zeros((tables, runs, num_left + num_right))
    q_b = np.zeros((tables, runs, num_b))
    left = np.zeros((runs, NUM_EPISODES), bool)
    for episode in range(NUM_EPISODES):
        action = _epsilon_greedy(rng, q_a.sum(axis=0), epsilon)  # Double Q acts on the sum of its tables
        went_left = action < num_left
        left[:, episode] = went_left
        # A's transition: reward 0; left bootstraps from B (one table picks the action, the other
        # values it; Q-learning's one table does both), right terminates.
        upd = rng.integers(tables, size=runs)
        other = tables - 1 - upd
        best = np.argmax(q_b[upd, rows], axis=1)
        boot = np.where(went_left, q_b[other, rows, best], 0.0)
        q_a[upd, rows, action] += alpha * (boot - q_a[upd, rows, action])
        # B's transition, in the runs that went left: a noisy reward, then the episode ends.
        b_action = _epsilon_greedy(rng, q_b.sum(axis=0), epsilon)
        reward = rng.normal(-0.1, 1.0, runs)
        upd = rng.integers(tables, size=runs)
        q_b[upd, rows, b_action] += np.where(went_left, alpha * (reward - q_b[upd, rows, b_action]), 0.0)
    return 100.0 * left.mean(axis=0)


def summarize(curve: np.ndarray) -> dict[str, float]:
    """The numbers the README quotes, from a percent-left curve ``[300]``."""
    return dict(
        episodes_1_10=float(curve[:10].mean()),
        peak=float(curve.max()),
        peak_episode=int(curve.argmax()) + 1,
        episodes_11_50=float(curve[10:50].mean()),
        episodes_201_300=float(curve[200:].mean()),
        episodes_251_300=float(curve[250:].mean()),
    )


def plot(path: Path, curves: dict[str, np.ndarray], runs: int) -> None:
    try:
        plt = pyplot()
    except ImportError as err:
        print(f"{err}: no figure")
        return
    episodes = np.arange(1, NUM_EPISODES + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {
        "q_learning": dict(color="tab:red", label="Q-learning (jrl)"),
        "double_q_learning": dict(color="tab:green", label="Double Q-learning (jrl)"),
        "book_mdp_q_learning": dict(color="tab:red", ls="--", lw=0.9, label="Q-learning, book's MDP (NumPy)"),
        "book_mdp_double_q_learning": dict(
            color="tab:green", ls="--", lw=0.9, label="Double Q-learning, book's MDP (NumPy)"
        ),
    }
    for name, style in styles.items():
        ax.plot(episodes, curves[name], **style)
    ax.axhline(OPTIMAL_PERCENT, color="black", ls=":", lw=1, label="optimal (epsilon / 2)")
    ax.set_xlim(1, NUM_EPISODES)
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 5, 25, 50, 75, 100])
    ax.set_xlabel("episode")
    ax.set_ylabel("% left actions from A")
    ax.set_title(f"MaximizationBias-v0 (Sutton & Barto, Figure 6.5), {runs:,} runs")
    ax.legend(frameon=False)
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
        curves[run["name"]] = 100.0 * result["left"].mean(axis=0)
        rows.append((run["name"], seeds, result["compile_seconds"], result["run_seconds"]))
    runs = max(row[1] for row in rows)
    start = time.perf_counter()
    for name, double in (("q_learning", False), ("double_q_learning", True)):
        curves[f"same_mdp_{name}"] = reference_percent_left(5, 5, 10, double, runs)
        curves[f"book_mdp_{name}"] = reference_percent_left(1, 1, 10, double, runs)
    reference_seconds = time.perf_counter() - start
    write_columns(HERE / f"percent_left{suffix}.csv", curves)
    plot(HERE / f"percent_left{suffix}.png", curves, runs)

    print(f"{'curve':28s} {'ep 1-10':>8s} {'peak (ep)':>12s} {'ep 11-50':>8s} {'ep 201-300':>10s} {'ep 251-300':>10s}")
    for name, curve in curves.items():
        s = summarize(curve)
        print(
            f"{name:28s} {s['episodes_1_10']:>7.1f}% {s['peak']:>6.1f}% ({s['peak_episode']:>3d}) {s['episodes_11_50']:>7.1f}% "
            f"{s['episodes_201_300']:>9.1f}% {s['episodes_251_300']:>9.1f}%"
        )
    for name, seeds, compile_seconds, run_seconds in rows:
        print(f"{name}: {seeds} runs, compile {compile_seconds:.1f} s, run {run_seconds:.1f} s")
    print(f"NumPy references: {reference_seconds:.1f} s; wrote percent_left{suffix}.csv and .png in {HERE}")


if __name__ == "__main__":
    main()
