"""Stable-Baselines3 PPO training throughput on jrl's CartPole against Gymnasium's, in the same run.

SB3's PPO (CPU torch, its default ``MlpPolicy``) trains on ``CartPole-v1`` from three vector
environments of N copies each:

- ``Gymnasium``: SB3's ``DummyVecEnv`` over ``gymnasium.make("CartPole-v1")``, what an SB3 user
  runs today (the baseline);
- ``jrl, DummyVecEnv``: the same over ``gymnasium.make("jrl/CartPole-v1")``
  (``jrl.wrappers.gymnasium.JrlEnv``: one compiled step per copy per call);
- ``jrl, JrlSB3VecEnv``: ``jrl.wrappers.sb3.JrlSB3VecEnv("CartPole-v1", N)``, all copies in one
  compiled call.

Throughput is environment steps per second of ``model.learn`` (rollouts and gradient updates
together, which is what a user waits for), the best of ``--repeats`` runs of ``--rollouts``
rollouts of ``n_steps`` steps of every copy each (a fresh PPO each run; the runs go round the
contenders in turn, after an untimed warm-up run each). A separate column times the rollouts alone
(``collect_rollouts``' share: SB3's policy forward pass plus the environment). jrl's compile
time (its first reset and step) is excluded, and reported.

    python benchmarks/sb3_ppo.py              # N = 8, 64 and 256 (about 5 minutes on 2 cores)
    python benchmarks/sb3_ppo.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import jrl  # noqa: F401  (registers jrl/<id> in Gymnasium)
from jrl.wrappers.sb3 import JrlSB3VecEnv


def build(contender: str, num_envs: int):
    if contender == "Gymnasium":
        return make_vec_env("CartPole-v1", n_envs=num_envs)
    if contender == "jrl, DummyVecEnv":
        return make_vec_env("jrl/CartPole-v1", n_envs=num_envs)
    return JrlSB3VecEnv("CartPole-v1", num_envs)


def learn_once(venv, total: int, n_steps: int, seed: int) -> tuple[float, float]:
    """Seconds of ``model.learn(total)`` for a fresh PPO, and the part spent in its rollouts."""
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=64, n_epochs=4, seed=seed, device="cpu")
    rollout_seconds = 0.0
    collect = model.collect_rollouts

    def timed_collect(*args, **kwargs):
        nonlocal rollout_seconds
        t = time.perf_counter()
        out = collect(*args, **kwargs)
        rollout_seconds += time.perf_counter() - t
        return out

    model.collect_rollouts = timed_collect
    start = time.perf_counter()
    model.learn(total_timesteps=total)
    return time.perf_counter() - start, rollout_seconds


def bench(contenders: tuple[str, ...], num_envs: int, n_steps: int, rollouts: int, repeats: int) -> dict:
    """Each contender's best learn and rollout throughput; the repeats go round the contenders in
    turn (after one untimed warm-up run each), so a noisy spell of the machine hits them alike."""
    venvs, results = {}, {}
    for name in contenders:
        venv = build(name, num_envs)
        venv.seed(0)
        start = time.perf_counter()
        venv.reset()
        venv.step(np.zeros(num_envs, dtype=np.int64))
        results[name] = {"first_calls": time.perf_counter() - start, "learn": 0.0, "rollout": 0.0}
        learn_once(venv, num_envs * n_steps, n_steps, seed=0)  # warm-up: torch's and jrl's first calls
        venvs[name] = venv
    total = num_envs * n_steps * rollouts
    for repeat in range(repeats):
        for name in contenders:
            learn_seconds, rollout_seconds = learn_once(venvs[name], total, n_steps, seed=repeat + 1)
            results[name]["learn"] = max(results[name]["learn"], total / learn_seconds)
            results[name]["rollout"] = max(results[name]["rollout"], total / rollout_seconds)
    for venv in venvs.values():
        venv.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--n-steps", type=int, default=128, help="PPO's n_steps (steps of every copy per rollout)")
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: N = 8, 1 rollout, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.num_envs, args.rollouts, args.repeats = [8], 1, 1
    torch.set_num_threads(1)  # SB3's tiny MLP: threads only add overhead here, for every contender
    print(
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, gymnasium {gymnasium.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}"
    )
    contenders = ("jrl, JrlSB3VecEnv", "jrl, DummyVecEnv", "Gymnasium")
    print(f"\nSB3 PPO on CartPole-v1: n_steps={args.n_steps}, {args.rollouts} rollouts, best of {args.repeats}\n")
    print("| vector env | copies | learn steps/s | vs Gymnasium | rollout steps/s | vs Gymnasium | first reset+step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for num_envs in args.num_envs:
        results = bench(contenders, num_envs, args.n_steps, args.rollouts, args.repeats)
        base = results["Gymnasium"]
        for name in contenders:
            r = results[name]
            print(
                f"| {name} | {num_envs} | {r['learn']:,.0f} | {r['learn'] / base['learn']:.2f}x | "
                f"{r['rollout']:,.0f} | {r['rollout'] / base['rollout']:.2f}x | {r['first_calls']:.2f} s |"
            )
    print(f"\nload average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
