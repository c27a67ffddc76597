"""Training throughput with ``batched_env_step``: DQN, PQN and PPO on CartPole-v1, the environments
stepped one key each (``False``, every default) or by ``env.step_batch`` (``True``), in one run.

For each algorithm and each number of parallel environments ``N``, both settings train the same
fixed budget (no in-loop evaluation, no early stop) from the same key; compile time is measured
apart (``jit(make_train).lower(key).compile()``) and the run time is the best of ``--repeats``
runs, the two settings alternating (so a noisy spell hits both). Environment steps per second are
``N x iterations x steps per iteration / run seconds``. The two settings draw other random numbers,
so their runs differ (same distribution); what is compared is time.

    python benchmarks/batched_env_step.py            # about 4 minutes on 2 CPU cores
    python benchmarks/batched_env_step.py --quick    # a smoke run, NOT results
    python benchmarks/batched_env_step.py --solve    # DQN's time to solve, both settings, and rejax's

``--solve``: the DQN CartPole default itself (early stopping at its first perfect 100-episode
in-loop evaluation) trained on held-out seeds 1000-1004 with ``batched_env_step`` False and True,
seed by seed; time to a solved policy (compile + run, ``jrl.experiment.timed``), environment steps
until it stopped, and the final greedy policy's mean return over 100 episodes of Gymnasium's own
``CartPole-v1``. With rejax installed (the ``bench`` extra), rejax's DQN on its published config
(``benchmarks/dqn_cartpole.py``'s, one run) is timed in the same process.

Configs (the CartPole defaults otherwise): DQN with ``num_envs=N``, ``buffer_size=64 N``,
``learning_starts=4 N`` and ``max(50, 100000 // N)`` iterations (one gradient step each); PQN and
PPO with ``num_envs=N`` and 4 iterations (PQN: rollouts of 64 steps, 4 epochs of 16 minibatches;
PPO: 128 steps, 4 epochs of 4).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

import jrl
from jrl.algorithms import dqn, ppo, pqn
from jrl.experiment import timed, train_key


def configs(name: str, num_envs: int, quick: bool) -> tuple:
    """``(module, config)`` of ``name`` with ``num_envs`` environments and a fixed budget."""
    if name == "dqn":
        steps = 20 if quick else max(50, 100_000 // num_envs)
        config = dqn.default_config("CartPole-v1").replace(
            num_envs=num_envs,
            num_steps=steps,
            buffer_size=64 * num_envs,
            learning_starts=4 * num_envs,
            eval_episodes=0,
            stop_return=None,
            keep_best=False,
            log_interval=steps,
        )
        return dqn, config
    module = pqn if name == "pqn" else ppo
    config = module.default_config("CartPole-v1").replace(
        num_envs=num_envs, num_steps=1 if quick else 4, eval_episodes=0, stop_return=None, log_interval=None
    )
    return module, config


def time_both(module, config, repeats: int) -> dict:
    """Compile and best run seconds of ``config`` with ``batched_env_step`` False and True."""
    env, params = jrl.make("CartPole-v1")
    key = jax.random.key(0)
    compiled, out = {}, {}
    for batched in (False, True):
        train = jax.jit(module.make_train(config.replace(batched_env_step=batched), env, params))
        start = time.perf_counter()
        compiled[batched] = train.lower(key).compile()
        out[batched] = {"compile": time.perf_counter() - start, "run": float("inf")}
    for _ in range(repeats):
        for batched in (False, True):
            start = time.perf_counter()
            jax.block_until_ready(compiled[batched](key))
            out[batched]["run"] = min(out[batched]["run"], time.perf_counter() - start)
    return out


def time_to_solve(seeds: list[int], with_rejax: bool) -> None:
    """``--solve`` (see the module docstring): one row per seed and setting, then rejax's."""
    from jrl.wrappers import evaluate_in_gymnasium

    env, params = jrl.make("CartPole-v1")
    default = dqn.default_config("CartPole-v1")
    print(f"DQN default: {default.to_dict()}")
    print("| seed | batched_env_step | compile s | run s | total s | env steps | Gymnasium greedy return |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    totals = {False: [], True: []}
    for seed in seeds:
        for batched in (False, True):
            config = default.replace(batched_env_step=batched)
            result, compile_s, run_s = timed(dqn.make_train(config, env, params), train_key(seed))
            logs_run = len(result.metrics["step"]) - int(np.sum(result.metrics["stopped"]))
            steps = logs_run * config.resolved_log_interval() * config.num_envs
            policy, policy_params = dqn.greedy_policy(config, env, params, result)
            gym = float(np.mean(evaluate_in_gymnasium(policy, policy_params, "CartPole-v1", 100, seed=10_000)))
            totals[batched].append(compile_s + run_s)
            print(
                f"| {seed} | {batched} | {compile_s:.1f} | {run_s:.1f} | {compile_s + run_s:.1f} | {steps:,} | {gym:.1f} |",
                flush=True,
            )
    medians = {b: float(np.median(v)) for b, v in totals.items()}
    print(f"median total s: one key each {medians[False]:.1f}, step_batch {medians[True]:.1f}")
    if with_rejax:
        from dqn_cartpole import bench_rejax

        row = bench_rejax(quick=False, gym_episodes=100)
        total = row.compile_s + row.run_s
        print(
            f"rejax DQN (its CartPole config, seed 0): compile {row.compile_s:.1f} s + run {row.run_s:.1f} s = "
            f"{total:.1f} s, Gymnasium greedy return {row.gym_return:.1f}; rejax / jrl median: "
            f"one key each {total / medians[False]:.2f}x, step_batch {total / medians[True]:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[16, 256, 1024, 4096])
    parser.add_argument("--algos", nargs="+", default=["dqn", "pqn", "ppo"], choices=["dqn", "pqn", "ppo"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, not results")
    parser.add_argument("--solve", action="store_true", help="DQN's time to solve CartPole instead (docstring)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--no-rejax", action="store_true", help="with --solve: leave rejax out")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor() or platform.machine()})")
    if args.solve:
        time_to_solve(args.seeds, not args.no_rejax)
        return
    print(
        "| algorithm | N envs | env steps | one key each: M steps/s | step_batch: M steps/s | ratio | compile s (each, batched) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.algos:
        for num_envs in args.envs:
            module, config = configs(name, num_envs, args.quick)
            steps = config.num_steps * config.env_steps_per_iteration()
            t = time_both(module, config, args.repeats)
            rate = {b: steps / t[b]["run"] / 1e6 for b in (False, True)}
            print(
                f"| {name} | {num_envs:,} | {steps:,} | {rate[False]:.3f} | {rate[True]:.3f} | "
                f"{rate[True] / rate[False]:.2f}x | {t[False]['compile']:.1f}, {t[True]['compile']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
