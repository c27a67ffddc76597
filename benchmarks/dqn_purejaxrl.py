"""jrl's CartPole DQN against PureJaxRL's, side by side: time to solve, per seed, in one run.

PureJaxRL is a set of scripts, not a package, so this benchmark runs *your* checkout of it
(``--purejaxrl PATH`` to its ``purejaxrl/dqn.py``; ``git clone https://github.com/luchris429/purejaxrl``)
with the config of that file's ``main()`` (its port of CleanRL's DQN: 10 environments, 500k
environment steps, buffer 10k, batch 128, learning rate 2.5e-4, a hard target copy every 500
steps, one gradient step every 10 steps after 10k). Nothing of PureJaxRL is copied here; three
shims let the file run unchanged under today's libraries:

- ``wandb`` is replaced by an empty module (its ``main()`` has ``WANDB_MODE="disabled"``, and
  ``make_train`` only calls wandb in online mode);
- gymnax 1.x's ``LogWrapper.step`` returns six values ``(obs, state, reward, terminated,
  truncated, info)``; PureJaxRL unpacks the five of gymnax 0.0.x, whose ``done`` was
  ``terminated | truncated``, so the shim returns exactly that;
- ``jax.tree_map``, which JAX has since removed, is ``jax.tree.map`` again (the same function).

Both sides are timed the same way, per seed: compile (``jax.jit(train).lower(key).compile()``) plus
run (the compiled call), with ``jrl.experiment.timed``. PureJaxRL trains its 500k steps (it has no
early stopping); jrl's configs stop at their first in-loop greedy evaluation (100 episodes) that
scores 500 and return the best-evaluated parameters. Every trained policy is then evaluated
greedily for 100 episodes in Gymnasium's own ``CartPole-v1`` (``jrl.wrappers.evaluate_in_gymnasium``,
not timed); solved means a mean return >= 475 there.

    python3 benchmarks/dqn_purejaxrl.py --purejaxrl ../purejaxrl/purejaxrl/dqn.py
    python3 benchmarks/dqn_purejaxrl.py --purejaxrl ... --seeds 0 1 2 --jrl-num-steps 20000 40000

Needs ``pip install flashbax`` (PureJaxRL's replay buffer) beside the ``interop`` extra (gymnax).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import types
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import dqn
from jrl.experiment import timed, train_key
from jrl.wrappers import evaluate_in_gymnasium

ENV_ID = "CartPole-v1"
SOLVED = 475.0
EVAL_EPISODES = 100
EVAL_SEED = 10_000  # evaluation episodes seeded apart from every training seed

# purejaxrl/dqn.py, main(): the config it trains CartPole with (numbers only; the code is theirs).
PUREJAXRL_CONFIG = {
    "NUM_ENVS": 10,
    "BUFFER_SIZE": 10000,
    "BUFFER_BATCH_SIZE": 128,
    "TOTAL_TIMESTEPS": 5e5,
    "EPSILON_START": 1.0,
    "EPSILON_FINISH": 0.05,
    "EPSILON_ANNEAL_TIME": 25e4,
    "TARGET_UPDATE_INTERVAL": 500,
    "LR": 2.5e-4,
    "LEARNING_STARTS": 10000,
    "TRAINING_INTERVAL": 10,
    "LR_LINEAR_DECAY": False,
    "GAMMA": 0.99,
    "TAU": 1.0,
    "ENV_NAME": ENV_ID,
    "SEED": 0,
    "NUM_SEEDS": 1,
    "WANDB_MODE": "disabled",
    "ENTITY": "",
    "PROJECT": "",
}


def load_purejaxrl(path: str) -> types.ModuleType:
    """Import PureJaxRL's ``dqn.py`` from ``path`` with the two shims of the module docstring."""
    from gymnax.wrappers.purerl import LogWrapper

    class FiveValueLogWrapper(LogWrapper):
        """gymnax 1.x's ``LogWrapper`` with gymnax 0.0.x's five-value ``step`` (``done`` merged)."""

        def step(self, key, state, action, params=None):
            obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
            return obs, state, reward, jnp.logical_or(terminated, truncated), info

    sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    if "tree_map" not in vars(jax):
        jax.tree_map = jax.tree.map
    spec = importlib.util.spec_from_file_location("purejaxrl_dqn", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--purejaxrl {path!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.LogWrapper = FiveValueLogWrapper  # make_train looks the name up when it runs
    return module


def bench_purejaxrl(module: types.ModuleType, seed: int) -> dict:
    train = module.make_train(dict(PUREJAXRL_CONFIG, SEED=seed))
    out, compile_s, run_s = timed(train, jax.random.PRNGKey(seed))  # as its main() seeds
    params = out["runner_state"][0].params
    network = module.QNetwork(action_dim=2)

    def policy(policy_params, obs, key):
        return jnp.argmax(network.apply(policy_params, obs)).astype(jnp.int32)

    gym = evaluate_in_gymnasium(policy, params, ENV_ID, num_episodes=EVAL_EPISODES, seed=EVAL_SEED)
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps": int(PUREJAXRL_CONFIG["TOTAL_TIMESTEPS"]),
        "gym": float(gym.mean()),
    }


def bench_jrl(config: dqn.DQNConfig, seed: int) -> dict:
    env, env_params = jrl.make(ENV_ID)
    result, compile_s, run_s = timed(dqn.make_train(config, env, env_params), train_key(seed))
    policy, params = dqn.greedy_policy(config, env, env_params, result)
    gym = evaluate_in_gymnasium(policy, params, ENV_ID, num_episodes=EVAL_EPISODES, seed=EVAL_SEED)
    logs_run = len(result.metrics["step"]) - int(np.sum(result.metrics["stopped"]))
    steps = logs_run * config.resolved_log_interval() * config.num_envs
    return {"compile_s": compile_s, "run_s": run_s, "steps": steps, "gym": float(gym.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purejaxrl", required=True, help="path to purejaxrl/dqn.py of a PureJaxRL checkout")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--jrl-num-steps",
        type=int,
        nargs="+",
        default=None,
        help="jrl configs: the CartPole default with these num_steps (default: the default alone)",
    )
    args = parser.parse_args()
    module = load_purejaxrl(args.purejaxrl)
    default = dqn.default_config(ENV_ID)
    configs = {"jrl default": default}
    for n in args.jrl_num_steps or []:
        if n != default.num_steps:
            configs[f"jrl num_steps={n}"] = default.replace(num_steps=n)
    print(
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
        f"gymnax {metadata.version('gymnax')}, flashbax {metadata.version('flashbax')}"
    )
    rows = []
    for seed in args.seeds:  # seed by seed, every contender, so a noisy spell hits them alike
        rows.append(("PureJaxRL", seed, bench_purejaxrl(module, seed)))
        for name, config in configs.items():
            rows.append((name, seed, bench_jrl(config, seed)))
        for name, s, r in rows[-1 - len(configs) :]:
            print(
                f"  seed {s} {name}: {r['compile_s'] + r['run_s']:.1f} s, {r['steps']:,} steps, Gymnasium {r['gym']:.1f}"
            )
    print(f"\nDQN on {ENV_ID}, time to solve per seed (compile + run), greedy return over 100 Gymnasium episodes\n")
    print("| contender | seed | compile s | run s | total s | env steps | Gymnasium return | solved |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, seed, r in rows:
        total = r["compile_s"] + r["run_s"]
        solved = "yes" if r["gym"] >= SOLVED else "**no**"
        print(
            f"| {name} | {seed} | {r['compile_s']:.1f} | {r['run_s']:.1f} | {total:.1f} | {r['steps']:,} | "
            f"{r['gym']:.1f} | {solved} |"
        )
    totals = {}
    for name, _, r in rows:
        totals.setdefault(name, []).append(r["compile_s"] + r["run_s"])
    base = float(np.median(totals["PureJaxRL"]))
    print("\n| contender | median total s | slowest seed s | PureJaxRL median / median | PureJaxRL median / slowest |")
    print("|---|---:|---:|---:|---:|")
    for name, t in totals.items():
        print(f"| {name} | {np.median(t):.1f} | {max(t):.1f} | {base / np.median(t):.2f}x | {base / max(t):.2f}x |")
    print(f"\nload average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
