"""PQN on CartPole-v1: time to a solved policy for jrl, rejax and purejaxql, seed by seed, in one run.

Contenders, each trained from scratch for every seed (the seeds taking turns, so that a noisy
spell of this shared machine hits every contender alike):

1. **jrl**: ``pqn.default_config("CartPole-v1")`` (read at run time, never copied here), stopping
   at its first in-loop greedy evaluation that scores ``stop_return`` where the default has one;
2. **rejax** 0.1.3's PQN with its published CartPole config (rejax repository,
   ``configs/gymnax/cartpole.yaml``, the ``pqn`` entry: 16 envs x 128 steps, 5 epochs of 16
   minibatches, lr 3e-4, lambda 0.9, 524,288 environment steps, its 128-episode evaluation every
   16,384 steps as part of its run);
3. **purejaxql**'s ``purejaxql/pqn_gymnax.py`` from a checkout (``--purejaxql PATH``), with the
   config its hydra entry point would build for CartPole: ``config/config.yaml`` overlaid with
   ``config/alg/pqn_cartpole.yaml``, read from the checkout at run time (32 envs x 64 steps, 4
   epochs of 16 minibatches, (256, 256) LayerNorm network, 500k environment steps, its test of
   128 greedy episodes every 5% of the updates as part of its run), passed to its ``make_train``
   directly, as its ``single_run`` does.

rejax and purejaxql have no early stopping: they train their configs' steps. Nothing of theirs is
copied here. Shims (``benchmarks/peers.py``): gymnax 1.0.1's six-value ``step`` folded back to the
five values both unpack (the environment they were written for); ``wandb``, ``hydra`` and
``omegaconf``, which purejaxql imports for logging, sweeps and its command line, as empty modules
where absent (``WANDB_MODE`` is ``disabled``, so ``make_train`` never calls wandb).

Every run is timed by ``jrl.experiment.timed``: compile (``jax.jit(train).lower(key).compile()``)
and run (the compiled call); total = compile + run. Every trained policy is then evaluated
greedily (argmax Q) over 100 episodes of Gymnasium's own ``CartPole-v1`` through
``jrl.wrappers.evaluate_in_gymnasium`` (not timed); solved means a mean return >= 475 there.
Issue 23's targets: jrl's median total at most half of rejax's, and below purejaxql's.

    python3 benchmarks/pqn_cartpole.py --purejaxql ../purejaxql/purejaxql/pqn_gymnax.py
    python3 benchmarks/pqn_cartpole.py --purejaxql ... --quick     # a smoke run: NOT results

Needs rejax 0.1.3 (the ``bench`` extra) with distrax, which rejax imports (see
``benchmarks/ppo_cartpole.py`` for installing both beside a shared environment with
``--target`` and ``PYTHONPATH``), PyYAML, and a purejaxql checkout
(``git clone https://github.com/mttga/purejaxql``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import time
import types
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
from peers import (
    check_target,
    five_value_gymnax,
    five_value_log_wrapper,
    greedy_gymnasium_return,
    jrl_commit,
    load_script,
    print_tables,
    stub_modules,
)

import jrl
from jrl.algorithms import pqn
from jrl.experiment import timed, train_key

ENV_ID = "CartPole-v1"
TARGET_REJAX = 2.0  # jrl's time at most half of rejax's
TARGET_PUREJAXQL = 1.0  # ... and below purejaxql's

# rejax's published CartPole PQN (rejax repository, configs/gymnax/cartpole.yaml, ``pqn``).
REJAX_CARTPOLE_PQN = dict(
    num_envs=16,
    num_steps=128,
    num_minibatches=16,
    max_grad_norm=10,
    learning_rate=0.0003,
    num_epochs=5,
    total_timesteps=524288,
    eval_freq=16384,
    eps_start=1,
    eps_end=0.05,
    exploration_fraction=0.5,
    gamma=0.99,
    td_lambda=0.9,
    normalize_observations=False,
)


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# --- jrl ----------------------------------------------------------------------------------------
def bench_jrl(config: pqn.PQNConfig, seed: int) -> dict:
    env, env_params = jrl.make(ENV_ID)
    result, compile_s, run_s = timed(pqn.make_train(config, env, env_params), train_key(seed))
    policy, params = pqn.greedy_policy(config, env, env_params, result)
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

    env, env_params = five_value_gymnax().make(ENV_ID)
    algo = rejax.PQN.create(env=env, env_params=env_params, **config)
    (train_state, _), compile_s, run_s = timed(algo.train, jax.random.key(seed))

    def policy(params, obs, key):  # argmax of rejax's Q-network
        del key
        return jnp.argmax(algo.agent.apply(params, obs[None])[0]).astype(jnp.int32)

    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps": int(config["total_timesteps"]),
        "gym": greedy_gymnasium_return(policy, train_state.q_ts.params, ENV_ID),
    }


# --- purejaxql ----------------------------------------------------------------------------------
def purejaxql_config(path: str) -> dict:
    """What purejaxql's ``single_run`` trains CartPole with: ``config/config.yaml`` with the
    ``alg`` group set to ``config/alg/pqn_cartpole.yaml`` (hydra's composition), then flattened
    as ``single_run`` does (``{**config, **config["alg"]}``)."""
    import yaml

    folder = os.path.join(os.path.dirname(os.path.abspath(path)), "config")
    with open(os.path.join(folder, "config.yaml")) as f:
        config = yaml.safe_load(f)
    with open(os.path.join(folder, "alg", "pqn_cartpole.yaml")) as f:
        alg = yaml.safe_load(f)
    config["alg"] = {**(config.get("alg") or {}), **alg}
    return {key: omegaconf_scalar(value) for key, value in {**config, **config["alg"]}.items()}


def omegaconf_scalar(value):
    """A YAML scalar as OmegaConf (hydra's loader) reads it: PyYAML's YAML 1.1 rules leave ``5e5``
    (no dot) a string, OmegaConf reads it as the float 500000.0, as purejaxql expects."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value):
        return float(value)
    return value


def load_purejaxql(path: str) -> types.ModuleType:
    """purejaxql's ``pqn_gymnax.py`` with the shims above."""

    def hydra_main(**kwargs):  # hydra.main(...) decorates its command-line entry point
        return lambda fn: fn

    stub_modules("wandb", "hydra", "omegaconf", hydra={"main": hydra_main}, omegaconf={"OmegaConf": None})
    module = load_script(path, "purejaxql_pqn_gymnax")
    module.LogWrapper = five_value_log_wrapper()  # make_train looks the name up when it runs
    return module


def bench_purejaxql(module: types.ModuleType, config: dict, seed: int) -> dict:
    train = module.make_train(dict(config, SEED=seed))
    out, compile_s, run_s = timed(train, jax.random.PRNGKey(seed))  # as its single_run seeds
    train_state = out["runner_state"][0]
    network = module.QNetwork(
        action_dim=2,
        hidden_size=config.get("HIDDEN_SIZE", 128),
        num_layers=config.get("NUM_LAYERS", 2),
        norm_type=config["NORM_TYPE"],
        norm_input=config.get("NORM_INPUT", False),
    )

    def policy(variables, obs, key):
        del key
        return jnp.argmax(network.apply(variables, obs[None], train=False)[0]).astype(jnp.int32)

    variables = {"params": train_state.params, "batch_stats": train_state.batch_stats}
    per_update = config["NUM_STEPS"] * config["NUM_ENVS"]  # its NUM_UPDATES: whole updates only
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps": int(config["TOTAL_TIMESTEPS"]) // per_update * per_update,
        "gym": greedy_gymnasium_return(policy, variables, ENV_ID),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purejaxql", required=True, help="path to purejaxql/pqn_gymnax.py of a purejaxql checkout")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test of the script, NOT results")
    args = parser.parse_args()
    wall_start = time.perf_counter()

    config = pqn.default_config(ENV_ID)
    rejax_config = dict(REJAX_CARTPOLE_PQN)
    pjq_config = purejaxql_config(args.purejaxql)
    seeds = args.seeds
    if args.quick:
        config = config.replace(num_steps=4, log_interval=2, eval_episodes=4)
        rejax_config.update(total_timesteps=4 * 16 * 128, eval_freq=2 * 16 * 128)
        pjq_config.update(TOTAL_TIMESTEPS=20 * 32 * 64, TOTAL_TIMESTEPS_DECAY=20 * 32 * 64)
        seeds = seeds[:1]
    module = load_purejaxql(args.purejaxql)

    import flax
    import gymnax
    import optax

    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs; jax {jax.__version__} "
        f"({jax.devices()[0].platform}), flax {flax.__version__}, optax {optax.__version__}, "
        f"gymnax {version('gymnax')}, rejax {version('rejax')}, distrax {version('distrax')}"
    )
    print(f"imported from: jax {jax.__file__}, gymnax {gymnax.__file__}")
    print(f"jrl commit: {jrl_commit('pqn')}")
    if args.quick:
        print("*** --quick: shortened training runs to smoke-test this script. These numbers are NOT results. ***")
    print(f"\njrl: pqn.default_config({ENV_ID!r}){' shortened by --quick' if args.quick else ''}:")
    print(f"  {dataclasses.asdict(config)}")
    print(f"rejax (configs/gymnax/cartpole.yaml, pqn): {rejax_config}")
    print(f"purejaxql (config.yaml + alg/pqn_cartpole.yaml): {pjq_config}")

    # XLA's one-time initialisation happens at the first compile of a process; do it here so that
    # it is not charged to whichever contender is timed first.
    jax.block_until_ready(jax.jit(lambda x: x + 1.0)(jnp.float32(1.0)))
    rows = []
    for seed in seeds:  # seed by seed, every contender, so a noisy spell hits them alike
        rows.append(("jrl default", seed, bench_jrl(config, seed)))
        rows.append(("rejax", seed, bench_rejax(rejax_config, seed)))
        rows.append(("purejaxql", seed, bench_purejaxql(module, pjq_config, seed)))
        for name, s, r in rows[-3:]:
            print(
                f"  seed {s} {name}: compile {r['compile_s']:.1f} s + run {r['run_s']:.1f} s, "
                f"{r['steps']:,} steps, Gymnasium {r['gym']:.1f}",
                flush=True,
            )
    if args.quick:
        print("\n*** --quick: NOT results (shortened runs) ***")
    summary = print_tables(rows, "PQN", ENV_ID, "jrl default")
    print()
    print("- " + check_target(summary, "jrl default", "rejax", TARGET_REJAX))
    print("- " + check_target(summary, "jrl default", "purejaxql", TARGET_PUREJAXQL))
    load = os.getloadavg()
    print(
        f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wall time {time.perf_counter() - wall_start:.0f} s"
    )


if __name__ == "__main__":
    main()
