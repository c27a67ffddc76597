"""Run an exported ONNX CartPole policy in Gymnasium's ``CartPole-v1`` with ONNX Runtime, NumPy and
Gymnasium alone: no JAX, no jrl (checked at the end: the script fails if either was imported).

The model is one ``jrl.export.onnx_model.export_onnx`` wrote: input ``obs`` (float32 ``[B, 4]``),
outputs ``outputs`` (Q-values ``[B, 2]``) and ``actions`` (greedy actions, int ``[B]``); this script
reads ``actions``. Episode ``i`` is reset with seed ``SEED + i`` (``--seed``, default 0, as
``jrl.wrappers.gymnasium.evaluate_in_gymnasium`` seeds its episodes). Prints each episode's return
with ``--verbose`` and, last, the mean return.

    python experiments/onnx_cartpole.py policy.onnx --episodes 100
"""

from __future__ import annotations

import argparse
import sys

import gymnasium
import numpy as np
import onnxruntime


def episode_return(session: onnxruntime.InferenceSession, env: gymnasium.Env, seed: int) -> float:
    """The undiscounted return of one greedy episode of ``env`` reset with ``seed``."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        (actions,) = session.run(["actions"], {"obs": np.asarray(obs, np.float32)[None]})
        obs, reward, terminated, truncated, _ = env.step(int(actions[0]))
        total += float(reward)
        done = terminated or truncated
    return total


def main(argv: list[str] | None = None) -> float:
    """Parse ``argv``, run the episodes, print and return the mean return."""
    parser = argparse.ArgumentParser(description="Run an exported ONNX CartPole policy in Gymnasium.")
    parser.add_argument("model", help="the .onnx file (jrl.export.onnx_model.export_onnx)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes to run (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i (default 0)")
    parser.add_argument("--verbose", action="store_true", help="print every episode's return")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    env = gymnasium.make("CartPole-v1")
    returns = []
    for i in range(args.episodes):
        returns.append(episode_return(session, env, args.seed + i))
        if args.verbose:
            print(f"episode {i} (seed {args.seed + i}): {returns[-1]:.1f}")
    imported = sorted(name for name in ("jax", "jrl") if name in sys.modules)
    if imported:  # the point of this script: deployment needs neither
        raise SystemExit(f"onnx_cartpole.py imported {imported}; it must run without JAX and jrl")
    mean = float(np.mean(returns))
    print(f"mean return over {args.episodes} episodes: {mean:.2f}")
    return mean


if __name__ == "__main__":
    main()
