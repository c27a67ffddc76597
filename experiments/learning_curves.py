"""Learning curves of jrl's DQN, PQN or PPO default configs, several seeds per environment.

``--algo dqn`` (the default) trains ``CartPole-v1``, ``Acrobot-v1`` and ``MountainCar-v0``;
``--algo pqn`` and ``--algo ppo`` every id of ``pqn.tuned_env_ids()`` / ``ppo.tuned_env_ids()``
(so a default added later is picked up by the next run); ``--envs`` names others. Each run uses the
tuned default, ``<algo>.default_config(env_id)``; an id without one is skipped with a printed note.
All seeds of an environment train in one compiled call, ``jax.jit(jax.vmap(<algo>.make_train(config,
env, env_params)))(keys)`` with ``keys[i] = jax.random.key(seed_i)`` and seeds ``0 .. N-1``. Every
``log_interval`` iterations the training loop records, per seed, the greedy evaluation return
(``config.eval_episodes`` episodes, inside the compiled loop), the mean return of the training
episodes that finished and two of the algorithm's own metrics (DQN, PQN: loss and epsilon; PPO:
loss and the policy's entropy). After training, each seed's final greedy policy
(``<algo>.greedy_policy``) is evaluated over 100 episodes with ``jrl.evaluate``, keyed by
``evaluation_key(seed) = jax.random.fold_in(jax.random.key(seed), 1)`` (both keys:
``jrl.experiment``'s rule). Every random number comes from those keys: the same seeds give the same
tables (the timings aside).

**Records.** PQN's and PPO's defaults log only 4 to 20 times per run (each record is an in-loop
evaluation); for a curve, ``--records N`` (default 40 for pqn and ppo, 0 for dqn) lowers
``log_interval`` to the largest divisor of ``num_steps`` that gives at least ``N`` records (never
raises it). The in-loop evaluation draws from its own key (``fold_in(eval_key, record)``), so this
changes nothing in training, except that a config with ``stop_return`` (PPO's CartPole default)
checks for its stop more often and may stop earlier. DQN's curves use the defaults as they are.

    python experiments/learning_curves.py                                # DQN: every env, seeds 0..4
    python experiments/learning_curves.py --algo pqn                     # PQN's tuned envs
    python experiments/learning_curves.py --algo ppo --envs Pendulum-v1  # one env; the others' rows stay
    python experiments/learning_curves.py --algo ppo --quick             # smoke test, about a minute
    python experiments/learning_curves.py --algo ppo --plot-only         # redraw the PNG from the CSVs

(``experiments/dqn_learning_curves.py`` is ``--algo dqn``.) A run writes, under
``experiments/results/``, replacing the rows of the environments it ran and keeping the others':

- ``<algo>_learning_curves.csv``: long format, one row per environment, seed and log record:
  ``env_id, seed, env_steps, eval_return, episode_return`` and the two metrics (``loss, epsilon``
  or ``loss, entropy``); ``env_steps`` is ``metrics["env_steps"]`` (``step * num_envs`` for DQN,
  ``step * num_envs * rollout_length`` for PQN and PPO); ``episode_return`` is NaN in an interval
  where no training episode finished, ``loss`` NaN before DQN's learning starts, ``eval_return``
  NaN after a run stopped (``stop_return``).
- ``<algo>_final_returns.csv``: one row per environment and seed: ``env_id, seed,
  final_return_100_episodes, train_seconds`` (the run time of the environment's one vmapped call,
  compilation excluded, shared by its seeds), ``compile_seconds``, and ``nonfinite_updates``
  (skipped non-finite gradient steps; should be 0).
- ``<algo>_learning_curves.png``: one panel per environment, greedy evaluation return against
  environment steps, a thin line per seed, their mean in bold, and a dashed line at the return
  that counts as solved (``SOLVED_AT``: the learning tests' and the tuned defaults' bar; for
  RandomLake-v0 the success rate of the optimal policy, 1.0: ``experiments/random_lake_dqn.py``).
  Every environment in the CSV files gets a panel. It needs matplotlib, the ``plot`` extra
  (``pip install -e ".[plot]"``); without it the CSV files are still written. ``--no-plot`` skips it.

``--quick`` shrinks every config (fewer iterations, more frequent logs) for a smoke test and writes
``*_quick.csv`` and ``*_quick.png`` instead, so it never overwrites real results; its returns say
nothing about how well the algorithm learns.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import ModuleType

import jax
import numpy as np

import jrl
from jrl.algorithms import dqn, ppo, pqn
from jrl.experiment import evaluation_key, read_csv, train_seeds, write_csv

ALGORITHMS: dict[str, ModuleType] = {"dqn": dqn, "pqn": pqn, "ppo": ppo}
TITLES = {"dqn": "DQN", "pqn": "PQN", "ppo": "PPO"}
DQN_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
# The two algorithm-specific metrics each curve row keeps, after the shared ones.
EXTRA_METRICS = {"dqn": ("loss", "epsilon"), "pqn": ("loss", "epsilon"), "ppo": ("loss", "entropy")}
DEFAULT_RECORDS = {"dqn": 0, "pqn": 40, "ppo": 40}
# The bar jrl's learning tests and tuned defaults are held to (tests/test_dqn_learning.py, issue 23):
# Gymnasium's reward_threshold for CartPole-v1, Acrobot-v1 and MountainCarContinuous-v0; -120 for
# MountainCar-v0 (Gymnasium's is -110); -200 for Pendulum-v1 (Gymnasium has none).
SOLVED_AT = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -120.0,
    "Pendulum-v1": -200.0,
    "MountainCarContinuous-v0": 90.0,
}
# The dashed line of each panel: the bar above, or RandomLake-v0's optimum (every map is solvable
# and not slippery, so the best policy reaches the goal in every episode).
REFERENCE_LINES = {env_id: (value, f"solved ({value:g})") for env_id, value in SOLVED_AT.items()} | {
    "RandomLake-v0": (1.0, "optimum (1.0)")
}
FINAL_EVAL_EPISODES = 100
QUICK_ITERATIONS = 2_000  # DQN's (one environment step per environment per iteration)
QUICK_ROLLOUTS = 8  # PQN's and PPO's (a rollout of num_envs x rollout_length steps per iteration)
QUICK_LOGS = 20
RESULTS = Path(__file__).resolve().parent / "results"
FINAL_FIELDS = (
    "env_id",
    "seed",
    "final_return_100_episodes",
    "train_seconds",
    "compile_seconds",
    "nonfinite_updates",
)


def curve_fields(algo: str) -> tuple[str, ...]:
    """The columns of ``<algo>_learning_curves.csv``."""
    return ("env_id", "seed", "env_steps", "eval_return", "episode_return", *EXTRA_METRICS[algo])


def default_envs(algo: str) -> list[str]:
    """DQN: the classic-control ids; PQN and PPO: every tuned id (probe environments aside)."""
    if algo == "dqn":
        return list(DQN_ENVS)
    return [e for e in ALGORITHMS[algo].tuned_env_ids() if not e.startswith("Probe-")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), default="dqn", help="the algorithm (default dqn)")
    parser.add_argument(
        "--envs",
        default=None,
        help=f"comma-separated environment ids (default: dqn {','.join(DQN_ENVS)}; pqn, ppo: their tuned ids)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="train seeds 0 .. N-1 (default 5)")
    parser.add_argument(
        "--records",
        type=int,
        default=None,
        help="at least this many log records per run (default 40 for pqn and ppo, 0: the config's own, for dqn)",
    )
    parser.add_argument("--quick", action="store_true", help="shrunken configs, a smoke test; writes *_quick files")
    parser.add_argument("--no-plot", action="store_true", help="write the CSV files only")
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw the PNG from the recorded CSV files; no training"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.records is None:
        args.records = DEFAULT_RECORDS[args.algo]
    if args.records < 0:
        parser.error("--records must be >= 0")
    args.envs = default_envs(args.algo) if args.envs is None else [e.strip() for e in args.envs.split(",") if e.strip()]
    if not args.envs:
        parser.error("--envs names no environment")
    unknown = [e for e in args.envs if e not in jrl.registered_envs()]
    if unknown:
        parser.error(f"unknown environment id(s) {unknown}; registered: {jrl.registered_envs()}")
    return args


def quick_config(algo: str, config):
    """``config`` shrunk for a smoke test. DQN: at most ``QUICK_ITERATIONS`` iterations, learning
    from a quarter of the way in (or earlier if the config starts earlier), ``QUICK_LOGS`` log
    records. PQN, PPO: at most ``QUICK_ROLLOUTS`` iterations, a record after each. Everything else
    (buffer, batch, network, schedule fractions) is the tuned config's."""
    if algo != "dqn":
        return config.replace(num_steps=min(config.num_steps, QUICK_ROLLOUTS), log_interval=1)
    num_steps = min(config.num_steps, QUICK_ITERATIONS)
    # None lets DQNConfig pick the divisor of num_steps closest to 50 records.
    log_interval = num_steps // QUICK_LOGS if num_steps % QUICK_LOGS == 0 else None
    learning_starts = min(config.learning_starts, config.num_envs * num_steps // 4)
    return config.replace(num_steps=num_steps, learning_starts=learning_starts, log_interval=log_interval)


def with_records(config, records: int):
    """``config`` with ``log_interval`` lowered to the largest divisor of ``num_steps`` that gives at
    least ``records`` log records (unchanged if it already gives that many, or ``records`` is 0)."""
    current = config.resolved_log_interval()
    if config.num_steps // current >= records:
        return config
    divisors = [d for d in range(1, current + 1) if config.num_steps % d == 0 and config.num_steps // d >= records]
    return config.replace(log_interval=max(divisors))


def digits(values: np.ndarray) -> int:
    """Decimals to print: 1 for returns in the tens and hundreds, 3 for success rates (RandomLake)."""
    return 1 if np.max(np.abs(values)) >= 10 else 3


def sig(x) -> float:
    """``x`` as a float with 6 significant digits (the metrics are float32; NaN stays NaN)."""
    return float(f"{float(x):.6g}")


def run_env(algo: str, env_id: str, config, seeds: list[int]) -> tuple[list[dict], list[dict], dict]:
    """Train every seed in one compiled call and evaluate each final greedy policy.

    Returns the learning-curve rows, the final-return rows and a summary for the table."""
    module = ALGORITHMS[algo]
    env, env_params = jrl.make(env_id)
    trained = train_seeds(module.make_train(config, env, env_params), seeds)
    results, compile_s, train_s = trained.output, trained.compile_seconds, trained.run_seconds

    metrics = {name: np.asarray(value) for name, value in results.metrics.items()}  # each [seeds, num_logs]
    env_steps = metrics["env_steps"].astype(np.int64)
    curve_rows = [
        {
            "env_id": env_id,
            "seed": seed,
            "env_steps": int(env_steps[i, j]),
            "eval_return": sig(metrics["eval_return"][i, j]),
            "episode_return": sig(metrics["episode_return"][i, j]),
            **{name: sig(metrics[name][i, j]) for name in EXTRA_METRICS[algo]},
        }
        for i, seed in enumerate(seeds)
        for j in range(env_steps.shape[1])
    ]

    # One policy function for every seed (only its parameters differ), so jrl.evaluate compiles once.
    policy, batched_params = module.greedy_policy(config, env, env_params, results)
    start = time.perf_counter()
    final_rows = []
    for i, seed in enumerate(seeds):
        params = jax.tree.map(lambda x, i=i: x[i], batched_params)
        returns = jrl.evaluate(evaluation_key(seed), policy, params, env, env_params, num_episodes=FINAL_EVAL_EPISODES)
        nonfinite = int(metrics["nonfinite_updates"][i].sum())
        if nonfinite:
            print(f"  warning: {env_id} seed {seed} skipped {nonfinite} non-finite gradient step(s)")
        final_rows.append(
            {
                "env_id": env_id,
                "seed": seed,
                "final_return_100_episodes": sig(np.mean(returns)),
                "train_seconds": round(train_s, 3),
                "compile_seconds": round(compile_s, 3),
                "nonfinite_updates": nonfinite,
            }
        )
    eval_s = time.perf_counter() - start
    finals = np.array([r["final_return_100_episodes"] for r in final_rows])
    summary = {
        "env_id": env_id,
        "env_steps": int(config.num_steps * (config.env_steps_per_iteration() or config.num_envs)),
        "finals": finals,
        "compile_s": compile_s,
        "train_s": train_s,
        "eval_s": eval_s,
    }
    return curve_rows, final_rows, summary


def print_summary(summaries: list[dict]) -> None:
    print()
    print(f"Final greedy return over {FINAL_EVAL_EPISODES} episodes, per seed (seeds in order):")
    header = (
        f"{'env':<16} {'env steps':>10}  {'per seed':<42} {'mean':>8} {'std':>7} {'solved':>7} "
        f"{'compile s':>9} {'train s':>8} {'eval s':>7}"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        finals = s["finals"]
        d = digits(finals)
        per_seed = " ".join(f"{x:.{d}f}" for x in finals)
        threshold = SOLVED_AT.get(s["env_id"])
        solved = f"{int(np.sum(finals >= threshold))}/{len(finals)}" if threshold is not None else "-"
        print(
            f"{s['env_id']:<16} {s['env_steps']:>10,}  {per_seed:<42} {finals.mean():>8.{d}f} {finals.std():>7.{d}f} "
            f"{solved:>7} {s['compile_s']:>9.1f} {s['train_s']:>8.1f} {s['eval_s']:>7.1f}"
        )
    print("std: over seeds (ddof=0); solved: seeds whose final return reaches SOLVED_AT (the learning tests' bar)")


def plot(algo: str, path: Path, curve_rows: list[dict], summaries: list[dict], eval_episodes: dict[str, int]) -> None:
    """One panel per environment: greedy eval return per seed (thin), their mean (bold), threshold (dashed)."""
    try:
        import matplotlib
    except ImportError:
        print(
            'matplotlib is not installed, so no plot was written (the CSV files were). Install the plot extra: pip install -e ".[plot]"'
        )
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    columns = min(len(summaries), 3)
    grid_rows = -(-len(summaries) // columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(5.5 * columns, 4.2 * grid_rows), squeeze=False)
    for ax in axes.reshape(-1)[len(summaries) :]:
        ax.set_visible(False)
    for ax, s in zip(axes.reshape(-1), summaries, strict=False):
        env_id = s["env_id"]
        rows = [r for r in curve_rows if r["env_id"] == env_id]
        seeds = sorted({r["seed"] for r in rows})
        curves = []
        for seed in seeds:
            seed_rows = sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["env_steps"])
            steps = np.array([r["env_steps"] for r in seed_rows])
            returns = np.array([r["eval_return"] for r in seed_rows], dtype=np.float64)
            # A run that stopped early (stop_return) records NaN afterwards; it holds the policy of
            # its last evaluation, so the curve carries that value on.
            for j in range(1, len(returns)):
                if np.isnan(returns[j]):
                    returns[j] = returns[j - 1]
            curves.append(returns)
            ax.plot(steps, returns, color="tab:blue", linewidth=0.8, alpha=0.45)
        ax.plot(steps, np.mean(curves, axis=0), color="tab:blue", linewidth=2.5, label=f"mean of {len(seeds)} seeds")
        ax.plot([], [], color="tab:blue", linewidth=0.8, alpha=0.45, label="one seed")
        if env_id in REFERENCE_LINES:
            value, label = REFERENCE_LINES[env_id]
            ax.axhline(value, color="tab:red", linestyle="--", linewidth=1.2, label=label)
        ax.set_title(f"{env_id}: mean final return {s['finals'].mean():.{digits(s['finals'])}f}")
        ax.set_xlabel("environment steps")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1M
        ax.set_ylabel(f"greedy eval return ({eval_episodes[env_id]} episodes)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"jrl {TITLES[algo]}, default configs (final return: greedy policy over 100 episodes)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def replot(algo: str, suffix: str) -> None:
    """Redraw the PNG from the CSV files a previous run wrote."""
    curve_rows = [
        {k: (v if k == "env_id" else float(v)) for k, v in row.items()}
        for row in read_csv(RESULTS / f"{algo}_learning_curves{suffix}.csv")
    ]
    final_rows = read_csv(RESULTS / f"{algo}_final_returns{suffix}.csv")
    if not final_rows:
        raise SystemExit(f"no recorded {algo}_final_returns{suffix}.csv in {RESULTS}: run without --plot-only first")
    env_ids = list(dict.fromkeys(r["env_id"] for r in final_rows))
    summaries = [
        {
            "env_id": e,
            "finals": np.array([float(r["final_return_100_episodes"]) for r in final_rows if r["env_id"] == e]),
        }
        for e in env_ids
    ]
    eval_episodes = {e: ALGORITHMS[algo].default_config(e).eval_episodes for e in env_ids}
    plot(algo, RESULTS / f"{algo}_learning_curves{suffix}.png", curve_rows, summaries, eval_episodes)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    algo, module = args.algo, ALGORITHMS[args.algo]
    if args.plot_only:
        replot(algo, "_quick" if args.quick else "")
        return
    seeds = list(range(args.seeds))
    suffix = "_quick" if args.quick else ""
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; {algo}; seeds {seeds}; "
        f"{'quick' if args.quick else 'full'} run"
    )
    curve_rows: list[dict] = []
    final_rows: list[dict] = []
    summaries: list[dict] = []
    eval_episodes: dict[str, int] = {}
    for env_id in args.envs:
        try:
            config = module.default_config(env_id)
        except ValueError as err:
            print(f"\n{env_id}: skipped ({err})")
            continue
        config = quick_config(algo, config) if args.quick else with_records(config, args.records)
        per_iteration = config.env_steps_per_iteration() or config.num_envs
        rollout = f" x {per_iteration // config.num_envs} steps" if per_iteration != config.num_envs else ""
        print(
            f"\n{env_id}: {len(seeds)} seeds x {per_iteration * config.num_steps:,} environment steps "
            f"({config.num_envs} envs{rollout} x {config.num_steps:,} iterations, a record every "
            f"{config.resolved_log_interval()} iterations), one compiled call",
            flush=True,
        )
        curves, finals, summary = run_env(algo, env_id, config, seeds)
        print(
            f"  compile {summary['compile_s']:.1f} s, train {summary['train_s']:.1f} s, final evaluation "
            f"{summary['eval_s']:.1f} s; final returns {np.round(summary['finals'], 1).tolist()}",
            flush=True,
        )
        curve_rows += curves
        final_rows += finals
        summaries.append(summary)
        eval_episodes[env_id] = config.eval_episodes
    if not summaries:
        raise SystemExit(f"no environment had a default {TITLES[algo]} config; nothing was written")
    print_summary(summaries)
    print()
    ran = {s["env_id"] for s in summaries}
    for name, fields, rows in (
        (f"{algo}_learning_curves{suffix}.csv", curve_fields(algo), curve_rows),
        (f"{algo}_final_returns{suffix}.csv", FINAL_FIELDS, final_rows),
    ):
        kept = [r for r in read_csv(RESULTS / name) if r["env_id"] not in ran]  # other environments' rows stay
        print(f"wrote {write_csv(RESULTS / name, kept + rows, fields)}")
    if not args.no_plot:
        replot(algo, suffix)


if __name__ == "__main__":
    main()
