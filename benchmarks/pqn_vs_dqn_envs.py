"""Why PQN exists: jrl's PQN and DQN on CartPole-v1 as the number of parallel environments grows.

For ``num_envs`` N in 16, 64, 256, 1,024 and 4,096, in one run (for each N every contender in turn,
so that a noisy spell of this shared machine hits them alike), two measurements:

**Environment steps per second**: a fixed budget of iterations, with no in-loop evaluation and no
early stop, compile timed apart (``jrl.experiment.timed``); steps/s = environment steps / run time.

- PQN: ``pqn.default_config("CartPole-v1")`` with ``num_envs=N``; its rollout length, epochs and
  number of minibatches are kept, so every transition is used ``num_epochs`` times at every N (the
  minibatches grow with N); ``PQN_ITERATIONS`` iterations.
- DQN (default's ratio per iteration): ``dqn.default_config("CartPole-v1")`` with ``num_envs=N`` and
  its ``updates_per_iteration`` gradient steps per iteration, so the gradient steps per
  environment step fall as 1/N; replay starting after one iteration; ``DQN_ITERATIONS`` iterations.
- DQN (default's replay ratio): the same with ``updates_per_iteration`` scaled by N / the default's
  ``num_envs`` (at least 1), so that each environment step is sampled as often as in the default
  (batch x updates / env steps kept); ``DQN_RR_ITERATIONS`` iterations. What DQN costs when it
  keeps learning as much per environment step as its tuned default does.

**Time to solve**: compile + run until the first in-loop greedy evaluation that scores 500
(``stop_return=500``, as the defaults' early stop; set where a default has none), or the end of
the budget; each default scaled to N as follows (the rest of each config unchanged):

- PQN: ``num_envs=N``; ``num_steps`` (iterations) the default's, capped so that a run takes at most
  ``PQN_SOLVE_MAX_STEPS`` environment steps (and at least 10 iterations), with 10 in-loop
  evaluations per run (``log_interval = num_steps // 10``); its epsilon decay and learning-rate
  decay are fractions of the run, so they follow ``num_steps``.
- DQN: ``num_envs=N``; ``buffer_size`` and ``learning_starts`` scaled by N / the default's
  ``num_envs`` (the same number of iterations of data, and of iterations before learning), so
  the default's iterations, gradient steps per iteration, target updates and evaluations every
  ``log_interval`` iterations are unchanged (DQN's default ratio per iteration, as above: its
  replay-ratio-keeping variant would be far slower, see the first table).

The table (Markdown) is printed and written with a figure (two panels: steps/s and time to solve
against N) to ``benchmarks/results/pqn_vs_dqn_envs.{csv,png}``.

    python3 benchmarks/pqn_vs_dqn_envs.py             # about 4 minutes on 2 busy cores
    python3 benchmarks/pqn_vs_dqn_envs.py --quick     # a smoke run: tiny budgets, NOT results

Needs the ``plot`` extra (matplotlib) for the figure.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import dqn, pqn
from jrl.experiment import timed, train_key

ENV_ID = "CartPole-v1"
NUM_ENVS = (16, 64, 256, 1024, 4096)
PQN_ITERATIONS = 8
DQN_ITERATIONS = 2000
DQN_RR_ITERATIONS = 200
PQN_SOLVE_MAX_STEPS = 8_000_000
STOP = 500.0
RESULTS = Path(__file__).resolve().parent / "results"


# --- configs ------------------------------------------------------------------------------------
def pqn_throughput_config(n: int, iterations: int) -> pqn.PQNConfig:
    return pqn.default_config(ENV_ID).replace(
        num_envs=n, num_steps=iterations, log_interval=iterations, eval_episodes=0, stop_return=None
    )


def dqn_throughput_config(n: int, iterations: int, keep_replay_ratio: bool) -> dqn.DQNConfig:
    d = dqn.default_config(ENV_ID)
    updates = d.updates_per_iteration
    if keep_replay_ratio:
        updates = max(1, round(d.updates_per_iteration * n / d.num_envs))
    return d.replace(
        num_envs=n,
        num_steps=iterations,
        log_interval=iterations,
        eval_episodes=0,
        stop_return=None,
        keep_best=False,
        updates_per_iteration=updates,
        buffer_size=max(d.buffer_size // d.num_envs, 1) * n,
        learning_starts=max(n, d.batch_size),  # learning from (about) the first iteration: steady state
    )


def pqn_solve_config(n: int) -> pqn.PQNConfig:
    d = pqn.default_config(ENV_ID)
    cap = max(10, PQN_SOLVE_MAX_STEPS // (d.rollout_length * n)) // 10 * 10
    num_steps = min(d.num_steps, cap)
    return d.replace(
        num_envs=n,
        num_steps=num_steps,
        log_interval=num_steps // 10,
        eval_episodes=max(d.eval_episodes, 1),
        stop_return=d.stop_return if d.stop_return is not None else STOP,
    )


def dqn_solve_config(n: int) -> dqn.DQNConfig:
    d = dqn.default_config(ENV_ID)
    per_env = math.ceil(d.buffer_size / d.num_envs)
    return d.replace(
        num_envs=n,
        buffer_size=per_env * n,
        learning_starts=math.ceil(d.learning_starts / d.num_envs) * n,
        stop_return=d.stop_return if d.stop_return is not None else STOP,
    )


# --- runs ---------------------------------------------------------------------------------------
def run(module, config, seed: int) -> dict:
    """Train once; compile and run seconds, environment steps done, the best in-loop evaluation."""
    env, env_params = jrl.make(ENV_ID)
    result, compile_s, run_s = timed(module.make_train(config, env, env_params), train_key(seed))
    metrics = result.metrics
    logs_run = len(metrics["step"]) - int(np.sum(metrics.get("stopped", 0)))
    steps = logs_run * config.resolved_log_interval() * config.env_steps_per_iteration()
    evals = np.asarray(metrics.get("eval_return", [np.nan]), dtype=np.float64)
    best = float(np.nanmax(evals)) if np.any(np.isfinite(evals)) else float("nan")
    return {"compile_s": compile_s, "run_s": run_s, "steps": steps, "best_eval": best, "solved": best >= STOP}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test of the script, NOT results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000], help="seeds for the time to solve")
    parser.add_argument("--num-envs", type=int, nargs="+", default=list(NUM_ENVS))
    parser.add_argument("--out", default=str(RESULTS), help="folder for the CSV and the figure")
    args = parser.parse_args()
    wall_start = time.perf_counter()
    global PQN_SOLVE_MAX_STEPS
    pqn_iters, dqn_iters, rr_iters = PQN_ITERATIONS, DQN_ITERATIONS, DQN_RR_ITERATIONS
    if args.quick:
        pqn_iters, dqn_iters, rr_iters = 2, 20, 4
        PQN_SOLVE_MAX_STEPS = 10 * 64 * 16
        args.num_envs = args.num_envs[:2]
    load = os.getloadavg()
    commit = os.popen("git rev-parse --short HEAD 2>/dev/null").read().strip() or "unknown"
    for name in ("pqn", "dqn"):
        if os.popen(f"git status --porcelain -- jrl/algorithms/{name}.py 2>/dev/null").read().strip():
            commit += f" (jrl/algorithms/{name}.py has uncommitted changes)"
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs; jax {jax.__version__} "
        f"({jax.devices()[0].platform}); jrl commit {commit}"
    )
    print(f"pqn.default_config: {pqn.default_config(ENV_ID)}")
    print(f"dqn.default_config: {dqn.default_config(ENV_ID)}")
    if args.quick:
        print("*** --quick: tiny budgets to smoke-test this script. These numbers are NOT results. ***")
    jax.block_until_ready(jax.jit(lambda x: x + 1.0)(jnp.float32(1.0)))  # XLA's one-time start-up

    rows = []
    for n in args.num_envs:
        row = {"num_envs": n}
        for key, module, config in (
            ("pqn", pqn, pqn_throughput_config(n, pqn_iters)),
            ("dqn", dqn, dqn_throughput_config(n, dqn_iters, keep_replay_ratio=False)),
            ("dqn_rr", dqn, dqn_throughput_config(n, rr_iters, keep_replay_ratio=True)),
        ):
            r = run(module, config, 0)
            row[f"{key}_steps_per_s"] = r["steps"] / r["run_s"]
            row[f"{key}_compile_s"] = r["compile_s"]
            row[f"{key}_iterations"] = config.num_steps
            if key == "dqn_rr":
                row["dqn_rr_updates_per_iteration"] = config.updates_per_iteration
            print(
                f"  N={n} {key} throughput: {row[f'{key}_steps_per_s']:,.0f} steps/s "
                f"({r['steps']:,} steps in {r['run_s']:.2f} s; compile {r['compile_s']:.1f} s)",
                flush=True,
            )
        for key, module, config in (("pqn", pqn, pqn_solve_config(n)), ("dqn", dqn, dqn_solve_config(n))):
            runs = []
            for seed in args.seeds:
                r = run(module, config, seed)
                runs.append(r)
                print(
                    f"  N={n} {key} seed {seed}: compile {r['compile_s']:.1f} s + run {r['run_s']:.1f} s, "
                    f"{r['steps']:,} steps, best in-loop evaluation {r['best_eval']:.1f}",
                    flush=True,
                )
            row[f"{key}_solve_total_s"] = float(np.median([r["compile_s"] + r["run_s"] for r in runs]))
            row[f"{key}_solve_compile_s"] = float(np.median([r["compile_s"] for r in runs]))
            row[f"{key}_solve_steps"] = int(np.median([r["steps"] for r in runs]))
            row[f"{key}_solved"] = sum(r["solved"] for r in runs)
            row[f"{key}_budget_steps"] = config.num_steps * config.env_steps_per_iteration()
        rows.append(row)

    if args.quick:
        print("\n*** --quick: NOT results (tiny budgets) ***")
    seeds = len(args.seeds)
    print(f"\nCartPole-v1, jrl PQN and DQN against the number of parallel environments (load average {load[0]:.2f})\n")
    print(
        "| N envs | PQN steps/s | DQN steps/s (1 update/iteration) | DQN steps/s (default replay ratio) | "
        "PQN / DQN | PQN / DQN (replay ratio) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['num_envs']:,} | {r['pqn_steps_per_s']:,.0f} | {r['dqn_steps_per_s']:,.0f} | "
            f"{r['dqn_rr_steps_per_s']:,.0f} ({r['dqn_rr_updates_per_iteration']} updates) | "
            f"{r['pqn_steps_per_s'] / r['dqn_steps_per_s']:.2f}x | "
            f"{r['pqn_steps_per_s'] / r['dqn_rr_steps_per_s']:.2f}x |"
        )
    print(
        "\n| N envs | PQN time to solve s (compile) | PQN env steps | PQN solved | "
        "DQN time to solve s (compile) | DQN env steps | DQN solved |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = []
        for key in ("pqn", "dqn"):
            mark = "" if r[f"{key}_solved"] == seeds else " (budget)"
            cells += [
                f"{r[f'{key}_solve_total_s']:.1f} ({r[f'{key}_solve_compile_s']:.1f}){mark}",
                f"{r[f'{key}_solve_steps']:,} of {r[f'{key}_budget_steps']:,}",
                f"{r[f'{key}_solved']}/{seeds}",
            ]
        print(f"| {r['num_envs']:,} | " + " | ".join(cells) + " |")
    print(f"(medians over seeds {args.seeds}; time to solve = compile + run to the first evaluation of 500)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "pqn_vs_dqn_envs_quick" if args.quick else "pqn_vs_dqn_envs"
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / f"{name}.png", load[0], quick=args.quick)
    print(f"\nwrote {out / f'{name}.csv'} and {out / f'{name}.png'}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wall time {time.perf_counter() - wall_start:.0f} s")


def plot(rows: list[dict], path: Path, load: float, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["num_envs"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(n, [r["pqn_steps_per_s"] for r in rows], "o-", label="PQN")
    left.plot(n, [r["dqn_steps_per_s"] for r in rows], "s-", label="DQN, 1 update per iteration")
    left.plot(n, [r["dqn_rr_steps_per_s"] for r in rows], "^--", label="DQN, default replay ratio")
    left.set(xscale="log", yscale="log", xlabel="parallel environments", ylabel="environment steps / s")
    left.set_title("training throughput (compile excluded)")
    left.legend()
    for key, marker, label in (("pqn", "o-", "PQN"), ("dqn", "s-", "DQN")):
        t = [r[f"{key}_solve_total_s"] for r in rows]
        right.plot(n, t, marker, label=label)
        unsolved = [(x, y) for x, y, r in zip(n, t, rows, strict=True) if r[f"{key}_solved"] < 1]
        if unsolved:
            right.plot(*zip(*unsolved, strict=True), "x", color="red", markersize=10)
    right.plot([], [], "x", color="red", label="not solved within budget")
    right.set(xscale="log", xlabel="parallel environments", ylabel="seconds (compile + run)")
    right.set_title("time to a greedy evaluation of 500")
    right.legend()
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    title = f"jrl PQN vs DQN on CartPole-v1, 2 shared CPU cores (load {load:.1f})"
    fig.suptitle(title + (" -- QUICK, NOT RESULTS" if quick else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
