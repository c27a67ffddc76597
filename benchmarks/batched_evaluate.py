"""``jrl.evaluate`` with one key per episode (the default) against ``batched=True`` (every
episode's random numbers drawn in one call per step), in one run.

For each environment and number of episodes ``N``, both settings evaluate the same fixed policy
from the same key; compile time is measured apart (the first call) and the run time is the best
of ``--repeats`` calls, the two settings alternating (so a noisy spell hits both). The two draw
other random numbers, so their episodes differ (same distribution): the table shows both mean
returns beside the times, and what is compared is time per environment step.

Policies: on the tabular worlds the greedy policy of the optimal Q-values (value iteration,
gamma 0.99), on CartPole-v1 a fixed linear controller, on Acrobot-v1 torque in the direction of
the second joint's velocity. The policy draws nothing, so only the environment's draws differ.

    python benchmarks/batched_evaluate.py            # about 2 minutes on 2 CPU cores
    python benchmarks/batched_evaluate.py --quick    # a smoke run, NOT results
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import q_learning

TABULAR = ("FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1")


def policy_for(env_id: str, env, params) -> tuple:
    """``(policy, policy_params)`` that draws no random numbers (see the module docstring)."""
    if env_id in TABULAR:
        q_star = jrl.planning.value_iteration(env.mdp(params), 0.99)
        return q_learning.greedy_policy(q_learning.QLearningResult(q_table=q_star, metrics={}))
    if env_id == "CartPole-v1":
        weights = jnp.array([0.0, 0.1, 1.0, 0.5], jnp.float32)
        return (lambda w, obs, key: (obs @ w > 0).astype(jnp.int32)), weights
    if env_id == "Acrobot-v1":  # torque +1 (action 2) or -1 (action 0) along the second joint's velocity
        return (lambda p, obs, key: jnp.where(obs[5] > 0, 2, 0).astype(jnp.int32)), None
    raise ValueError(env_id)


def time_both(env_id: str, num_episodes: int, repeats: int) -> dict:
    env, params = jrl.make(env_id)
    policy, policy_params = policy_for(env_id, env, params)
    key = jax.random.key(0)

    def call(batched: bool):
        stats = jrl.evaluate_episodes(key, policy, policy_params, env, params, num_episodes, batched=batched)
        return jax.block_until_ready(stats)

    out = {}
    for batched in (False, True):  # the first call compiles (and runs once)
        started = time.perf_counter()
        stats = call(batched)
        out[batched] = {
            "first": time.perf_counter() - started,
            "best": float("inf"),
            "mean_return": float(np.mean(np.asarray(stats.returns))),
            "env_steps": int(np.sum(np.asarray(stats.lengths))),
            "loop_steps": int(np.max(np.asarray(stats.lengths))),
        }
    for _ in range(repeats):
        for batched in (False, True):
            started = time.perf_counter()
            call(batched)
            out[batched]["best"] = min(out[batched]["best"], time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=[*TABULAR, "CartPole-v1", "Acrobot-v1"])
    parser.add_argument("--episodes", type=int, nargs="+", default=[1000, 16384])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="few episodes: a smoke run, not results")
    args = parser.parse_args()
    episodes = [64] if args.quick else args.episodes
    repeats = 1 if args.quick else args.repeats
    print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, {jax.devices()[0].platform}")
    print(f"best of {repeats} calls each, alternating; the first call (compile + one run) apart\n")
    print(
        "| environment | episodes | loop steps (default / batched) | mean return (default / batched) "
        "| ms per call: default | ms: batched | default / batched (time) | first call s (default / batched) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for env_id in args.envs:
        for n in episodes:
            r = time_both(env_id, n, repeats)
            d, b = r[False], r[True]
            print(
                f"| {env_id} | {n:,} | {d['loop_steps']} / {b['loop_steps']} "
                f"| {d['mean_return']:.3f} / {b['mean_return']:.3f} | {1e3 * d['best']:.2f} | {1e3 * b['best']:.2f} "
                f"| **{d['best'] / b['best']:.2f}x** | {d['first']:.2f} / {b['first']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
