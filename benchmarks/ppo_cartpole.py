"""PPO on CartPole-v1: time to a solved policy for jrl, rejax and PureJaxRL, seed by seed, in one run.

Contenders, each trained from scratch for every seed (the seeds taking turns, so that a noisy
spell of this shared machine hits every contender alike):

1. **jrl**: ``ppo.default_config("CartPole-v1")`` (read at run time, never copied here), which stops
   at its first in-loop greedy evaluation that scores ``stop_return``;
2. **rejax** 0.1.3's PPO with its published CartPole config (rejax repository,
   ``configs/gymnax/cartpole.yaml``, the ``ppo`` entry: 5 envs x 100 steps, 5 epochs of 5
   minibatches, lr 7.5e-4, tanh (64, 64), 100k environment steps, its 128-episode evaluation
   every 1,000 steps as part of its run);
3. **PureJaxRL**'s ``purejaxrl/ppo.py`` from a checkout (``--purejaxrl PATH``), with the config of
   its ``__main__`` (4 envs x 128 steps, 4 epochs of 4 minibatches, lr 2.5e-4 annealed, 500k
   environment steps), except ``DEBUG=False``: with ``DEBUG`` it prints every finished episode
   from a host callback, which is logging, not training.

rejax and PureJaxRL have no early stopping: they train their configs' steps. Nothing of theirs is
copied here; ``benchmarks/peers.py`` documents the shims (gymnax 1.0.1's six-value ``step`` folded
back to the five values both unpack, which is the environment they were written for; Brax and
navix, which PureJaxRL's ``wrappers.py`` imports for other environments, as empty modules where
absent).

Every run is timed by ``jrl.experiment.timed``: compile (``jax.jit(train).lower(key).compile()``)
and run (the compiled call); total = compile + run. Every trained policy is then evaluated
greedily (the most probable action) over 100 episodes of Gymnasium's own ``CartPole-v1`` through
``jrl.wrappers.evaluate_in_gymnasium`` (not timed); solved means a mean return >= 475 there.
Issue 23's targets: jrl's median total at most half of rejax's, and below PureJaxRL's.

    python3 benchmarks/ppo_cartpole.py --purejaxrl ../purejaxrl/purejaxrl/ppo.py
    python3 benchmarks/ppo_cartpole.py --purejaxrl ... --quick     # a smoke run: NOT results

Needs rejax 0.1.3 and distrax (the ``bench`` extra: ``pip install -e ".[bench]"``) and a PureJaxRL
checkout (``git clone https://github.com/luchris429/purejaxrl``). distrax imports TensorFlow
Probability, whose last release (0.25) fails to import under jax 0.10; a nightly (``tfp-nightly``,
0.26.0.dev20261027 here, with ``dm-tree``, ``decorator`` and ``gast``) works. To keep a shared
environment untouched: ``pip install --target DIR --no-deps rejax==0.1.3 distrax tfp-nightly
dm-tree decorator gast`` and ``PYTHONPATH=DIR python3 benchmarks/ppo_cartpole.py ...`` (the
script prints which jax and gymnax it imported).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import types
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
from peers import (
    check_target,
    five_value_gymnax,
    greedy_gymnasium_return,
    jrl_commit,
    load_script,
    print_tables,
    stub_modules,
)

import jrl
from jrl.algorithms import ppo
from jrl.experiment import timed, train_key

ENV_ID = "CartPole-v1"
TARGET_REJAX = 2.0  # jrl's time at most half of rejax's
TARGET_PUREJAXRL = 1.0  # ... and below PureJaxRL's

# rejax's published CartPole PPO (rejax repository, configs/gymnax/cartpole.yaml, ``ppo``).
REJAX_CARTPOLE_PPO = dict(
    agent_kwargs=dict(activation="tanh"),
    num_envs=5,
    num_steps=100,
    num_epochs=5,
    num_minibatches=5,
    learning_rate=0.00075,
    max_grad_norm=0.5,
    total_timesteps=100_000,
    eval_freq=1000,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
)

# purejaxrl/ppo.py, ``__main__``: the config it trains CartPole with (numbers only; the code is theirs).
PUREJAXRL_CONFIG = {
    "LR": 2.5e-4,
    "NUM_ENVS": 4,
    "NUM_STEPS": 128,
    "TOTAL_TIMESTEPS": 5e5,
    "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "ENT_COEF": 0.01,
    "VF_COEF": 0.5,
    "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh",
    "ENV_NAME": ENV_ID,
    "ANNEAL_LR": True,
    "DEBUG": False,  # its __main__ has True: a per-episode print from a host callback (see above)
}


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# --- jrl ----------------------------------------------------------------------------------------
def bench_jrl(config: ppo.PPOConfig, seed: int) -> dict:
    env, env_params = jrl.make(ENV_ID)
    result, compile_s, run_s = timed(ppo.make_train(config, env, env_params), train_key(seed))
    policy, params = ppo.greedy_policy(config, env, env_params, result)
    logs_run = len(result.metrics["step"]) - int(np.sum(result.metrics["stopped"]))
    steps = logs_run * config.resolved_log_interval() * config.env_steps_per_iteration()
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps": steps,
        "gym": greedy_gymnasium_return(policy, params, ENV_ID),
    }


# --- rejax --------------------------------------------------------------------------------------
def bench_rejax(config: dict, seed: int) -> dict:
    import rejax

    gymnax = five_value_gymnax()
    env, env_params = gymnax.make(ENV_ID)
    algo = rejax.PPO.create(env=env, env_params=env_params, **config)
    (train_state, _), compile_s, run_s = timed(algo.train, jax.random.key(seed))

    def policy(params, obs, key):  # the most probable action of rejax's actor
        del key
        logits = algo.actor.apply(params, obs[None], method=lambda m, x: m.action_logits(m.features(x)))
        return jnp.argmax(logits[0]).astype(jnp.int32)

    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps": int(config["total_timesteps"]),
        "gym": greedy_gymnasium_return(policy, train_state.actor_ts.params, ENV_ID),
    }


# --- PureJaxRL ----------------------------------------------------------------------------------
def load_purejaxrl(path: str) -> types.ModuleType:
    """PureJaxRL's ``ppo.py`` (and its sibling ``wrappers.py``), with the shims above."""
    stub_modules(
        "brax.envs.wrappers.training",
        "navix",
        brax__envs__wrappers__training={"EpisodeWrapper": None, "AutoResetWrapper": None},
    )
    module = load_script(path, "purejaxrl_ppo")
    module.gymnax = five_value_gymnax()  # make_train looks the name up when it runs
    return module


def bench_purejaxrl(module: types.ModuleType, config: dict, seed: int) -> dict:
    train = module.make_train(dict(config))
    out, compile_s, run_s = timed(train, jax.random.PRNGKey(seed))
    params = out["runner_state"][0].params
    network = module.ActorCritic(2, activation=config["ACTIVATION"])

    def policy(policy_params, obs, key):
        del key
        pi, _ = network.apply(policy_params, obs)
        return jnp.argmax(pi.logits).astype(jnp.int32)

    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps": int(config["TOTAL_TIMESTEPS"]),
        "gym": greedy_gymnasium_return(policy, params, ENV_ID),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purejaxrl", required=True, help="path to purejaxrl/ppo.py of a PureJaxRL checkout")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test of the script, NOT results")
    args = parser.parse_args()
    wall_start = time.perf_counter()

    config = ppo.default_config(ENV_ID)
    rejax_config = dict(REJAX_CARTPOLE_PPO)
    pjr_config = dict(PUREJAXRL_CONFIG)
    seeds = args.seeds
    if args.quick:
        config = config.replace(num_steps=8, log_interval=2, eval_episodes=4)
        rejax_config.update(total_timesteps=5_000)
        pjr_config.update(TOTAL_TIMESTEPS=4 * 4 * 128)
        seeds = seeds[:1]
    module = load_purejaxrl(args.purejaxrl)

    import flax
    import gymnax
    import optax

    print(
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
        f"{os.cpu_count()} CPUs; jax {jax.__version__} ({jax.devices()[0].platform}), flax {flax.__version__}, "
        f"optax {optax.__version__}, gymnax {version('gymnax')}, rejax {version('rejax')}, "
        f"distrax {version('distrax')}, tensorflow-probability {version('tfp-nightly')}"
    )
    print(f"imported from: jax {jax.__file__}, gymnax {gymnax.__file__}")
    print(f"jrl commit: {jrl_commit('ppo')}")
    print(f"python: {sys.version.split()[0]}")
    if args.quick:
        print("*** --quick: shortened training runs to smoke-test this script. These numbers are NOT results. ***")
    print(f"\njrl: ppo.default_config({ENV_ID!r}){' shortened by --quick' if args.quick else ''}:")
    print(f"  {dataclasses.asdict(config)}")
    print(f"rejax (configs/gymnax/cartpole.yaml, ppo): {rejax_config}")
    print(f"PureJaxRL (purejaxrl/ppo.py __main__, DEBUG off): {pjr_config}")

    # XLA's one-time initialisation happens at the first compile of a process; do it here so that
    # it is not charged to whichever contender is timed first.
    jax.block_until_ready(jax.jit(lambda x: x + 1.0)(jnp.float32(1.0)))
    rows = []
    for seed in seeds:  # seed by seed, every contender, so a noisy spell hits them alike
        rows.append(("jrl default", seed, bench_jrl(config, seed)))
        rows.append(("rejax", seed, bench_rejax(rejax_config, seed)))
        rows.append(("PureJaxRL", seed, bench_purejaxrl(module, pjr_config, seed)))
        for name, s, r in rows[-3:]:
            print(
                f"  seed {s} {name}: compile {r['compile_s']:.1f} s + run {r['run_s']:.1f} s, "
                f"{r['steps']:,} steps, Gymnasium {r['gym']:.1f}",
                flush=True,
            )
    if args.quick:
        print("\n*** --quick: NOT results (shortened runs) ***")
    summary = print_tables(rows, "PPO", ENV_ID, "jrl default")
    print()
    print("- " + check_target(summary, "jrl default", "rejax", TARGET_REJAX))
    print("- " + check_target(summary, "jrl default", "PureJaxRL", TARGET_PUREJAXRL))
    load = os.getloadavg()
    print(
        f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wall time {time.perf_counter() - wall_start:.0f} s"
    )


if __name__ == "__main__":
    main()
