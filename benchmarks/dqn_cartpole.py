"""DQN on CartPole-v1: how long each library takes to train, and whether the result solves it, in one run.

Trains, one after the other in this process:

1. jrl's DQN with ``dqn.default_config("CartPole-v1")`` (read at run time, never copied here);
2. rejax 0.1.3's DQN with its published CartPole config (``configs/gymnax/cartpole.yaml`` in the
   rejax repository: 10 envs, dueling network, double DQN, batch 100, 5 gradient steps per
   iteration, Polyak 0.98, 100k environment steps);
3. Stable-Baselines3's DQN with the rl-baselines3-zoo CartPole-v1 hyperparameters
   (``hyperparams/dqn.yml``: 50k steps, lr 2.3e-3, train_freq 256, 128 gradient steps, [256, 256]);
4. jrl's default config for 8 seeds in one call, ``jax.jit(jax.vmap(train))(keys)``, against 1,
   both without early stopping (``stop_return=None``) so that they do the same work per seed.
   ``benchmarks/dqn_seeds.py`` measures the same with the seeds sharded over CPU cores, and why.

jrl's time to solve is its default config's: training stops at the first in-loop greedy
evaluation (100 episodes) that scores 500 and returns the best-evaluated parameters; rejax and
SB3 train their published number of steps (neither config stops early).

JAX runs are timed by ``jrl.experiment.timed``, as compile (``jax.jit(train).lower(key).compile()``)
and run (the compiled call, ``jax.block_until_ready``); total = compile + run. SB3 has no compile:
total = building the model plus ``learn``, timed with ``time.perf_counter``. Each library's
in-training evaluation, as its config has it, is part of its run.

Every trained policy is then evaluated greedily over 100 episodes (not timed): in the library's
own CartPole (jrl: ``jrl.evaluate``; rejax: ``rejax.evaluate.evaluate`` in gymnax's CartPole with
an argmax act function; SB3: ``evaluate_policy(..., deterministic=True)`` in Gymnasium) and in
Gymnasium's own ``CartPole-v1`` (jrl and rejax through ``jrl.wrappers.evaluate_in_gymnasium``).
Solved means a greedy mean return >= 475 in both.

    python3 benchmarks/dqn_cartpole.py            # the full comparison (roughly 6-16 minutes on 2 cores)
    python3 benchmarks/dqn_cartpole.py --quick    # a smoke run: short training, NOT results

Needs ``pip install -e ".[bench]"`` (rejax, stable-baselines3, a CPU torch); ``--skip-rejax`` and
``--skip-sb3`` leave those out. torch keeps its default thread count (what a user gets; printed);
``--torch-threads N`` overrides it as a diagnostic only: on a busy machine torch's spinning
OpenMP threads can slow SB3 several-fold, and a comparison should note when that happened.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
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
# Evaluation episodes are seeded apart from every training seed, and every library (jrl, rejax,
# Gymnasium) is evaluated from this one seed; that is why jrl's runs here do not use evaluation_key(seed).
EVAL_SEED = 10_000
NUM_SEEDS = 8
TARGET_REJAX = 4.0  # jrl's total time at most 1/4 of rejax's
TARGET_SB3 = 5.0  # ... and at most 1/5 of SB3's
TARGET_SEEDS = 2.5  # 8 vmapped seeds at most 2.5x the time of one
REJAX_SEEDS_MEASURED = 5.8  # docs/benchmarks.md, "Reference figures for the baselines"

# rejax's published CartPole DQN (rejax repository, configs/gymnax/cartpole.yaml, the ``dqn`` entry,
# whose field names are rejax 0.1.3's). ``target_update_freq`` is commented out there, so rejax's
# default 1 applies: a Polyak update (0.98) after every iteration of 10 environment steps.
REJAX_CARTPOLE_DQN = dict(
    agent="DuelingQNetwork",
    agent_kwargs=dict(activation="swish"),
    num_envs=10,
    buffer_size=50_000,
    fill_buffer=5_000,
    batch_size=100,
    max_grad_norm=10,
    learning_rate=0.001,
    num_epochs=5,
    total_timesteps=100_000,
    eval_freq=2_500,
    polyak=0.98,
    eps_start=1,
    eps_end=0.05,
    exploration_fraction=0.5,
    gamma=0.99,
    ddqn=True,
    normalize_observations=False,
)

# rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1 ("Almost Tuned"; one environment, the zoo's
# default n_envs). ``n_timesteps`` becomes ``learn(total_timesteps=...)``.
SB3_ZOO_CARTPOLE = dict(
    n_timesteps=50_000,
    policy="MlpPolicy",
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)


@dataclasses.dataclass
class Row:
    library: str
    env_steps: int
    compile_s: float  # NaN: nothing to compile
    run_s: float
    own_return: float  # greedy mean over EVAL_EPISODES in the library's own CartPole
    gym_return: float  # the same in Gymnasium's CartPole-v1
    own_env: str

    @property
    def total_s(self) -> float:
        return self.run_s + (0.0 if np.isnan(self.compile_s) else self.compile_s)

    @property
    def solved(self) -> bool:
        return self.own_return >= SOLVED and self.gym_return >= SOLVED


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# --- jrl ----------------------------------------------------------------------------------------
def quick_jrl_config(config: dqn.DQNConfig) -> dqn.DQNConfig:
    """A much shorter run of the same config (a smoke test of the script, not a result)."""
    num_steps = min(config.num_steps, 1_000)
    return config.replace(
        num_steps=num_steps,
        learning_starts=min(config.learning_starts, num_steps * config.num_envs // 2),
        log_interval=num_steps // 5 if num_steps % 5 == 0 else None,
    )


def bench_jrl(config: dqn.DQNConfig, gym_episodes: int) -> Row:
    env, env_params = jrl.make(ENV_ID)
    train = dqn.make_train(config, env, env_params)
    result, compile_s, run_s = timed(train, train_key(0))
    skipped = int(np.sum(result.metrics["nonfinite_updates"]))
    if skipped:
        print(f"  jrl: {skipped} non-finite gradient steps were skipped during training")
    policy, params = dqn.greedy_policy(config, env, env_params, result)
    own = jrl.evaluate(jax.random.key(EVAL_SEED), policy, params, env, env_params, num_episodes=EVAL_EPISODES)
    gym = evaluate_in_gymnasium(policy, params, ENV_ID, num_episodes=gym_episodes, seed=EVAL_SEED)
    logs_run = len(result.metrics["step"]) - int(np.sum(result.metrics.get("stopped", 0)))
    steps = logs_run * config.resolved_log_interval() * config.num_envs  # fewer than planned if it stopped early
    return Row("jrl", steps, compile_s, run_s, float(own.mean()), float(gym.mean()), "jrl")


def bench_jrl_seeds(config: dqn.DQNConfig, num_seeds: int) -> dict:
    """One seed, then ``jax.jit(jax.vmap(train))(keys)`` for ``num_seeds`` seeds, both without
    early stopping (a vmapped run only ends when its last member does, so equal work means full
    runs); greedy returns per seed in jrl's CartPole."""
    config = config.replace(stop_return=None)
    env, env_params = jrl.make(ENV_ID)
    train = dqn.make_train(config, env, env_params)
    _, one_compile_s, one_run_s = timed(train, train_key(0))
    # Not train_keys(range(num_seeds)): docs/benchmarks.md's 8 seeds' returns (and docs/dqn.md's
    # "seeds split(key(0), 8) of the benchmark") were recorded with these keys, the same as
    # benchmarks/dqn_seeds.py's, and re-recording needs the full comparison (rejax, SB3 and torch).
    keys = jax.random.split(jax.random.key(0), num_seeds)
    result, compile_s, run_s = timed(jax.vmap(train), keys)
    policy, params = dqn.greedy_policy(config, env, env_params, result)
    returns = []
    for i in range(num_seeds):
        seed_params = jax.tree.map(lambda x, i=i: x[i], params)
        episodes = jrl.evaluate(
            jax.random.key(EVAL_SEED), policy, seed_params, env, env_params, num_episodes=EVAL_EPISODES
        )
        returns.append(float(episodes.mean()))
    return {
        "one_compile_s": one_compile_s,
        "one_run_s": one_run_s,
        "compile_s": compile_s,
        "run_s": run_s,
        "returns": np.array(returns),
    }


# --- rejax --------------------------------------------------------------------------------------
class TruncationAsDone:
    """gymnax 1.0.1 CartPole with the five-value ``step`` rejax 0.1.3 unpacks.

    gymnax 1.0.1's ``step`` returns ``(obs, state, reward, terminated, truncated, info)``; rejax
    0.1.3 (its DQN's ``collect_transitions`` and ``rejax.evaluate``) unpacks the older
    ``(obs, state, reward, done, info)``, where CartPole's ``done`` already included the 500-step
    time limit. Folding truncation back into ``done`` restores exactly the environment rejax was
    written and tuned against (its targets stop bootstrapping at the time limit, as they did then).
    The methods are spelled out rather than forwarded with ``__getattr__``, because rejax deep-copies
    its config, and ``__getattr__`` forwarding through a not-yet-set attribute recurses forever
    under ``copy.deepcopy``. Instances are hashable (by identity), as rejax's static ``env`` must be.
    """

    def __init__(self, env):
        self.env = env

    @property
    def default_params(self):
        return self.env.default_params

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def action_space(self, params=None):
        return self.env.action_space(params)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def reset(self, key, params=None):
        return self.env.reset(key, params)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def bench_rejax(quick: bool, gym_episodes: int) -> Row:
    import gymnax
    import rejax
    from rejax.evaluate import evaluate as rejax_evaluate

    env, env_params = gymnax.make(ENV_ID)
    env = TruncationAsDone(env)
    config = dict(REJAX_CARTPOLE_DQN)
    if quick:
        config.update(total_timesteps=10_000, fill_buffer=1_000)
    algo = rejax.DQN.create(env=env, env_params=env_params, **config)
    (train_state, _), compile_s, run_s = timed(algo.train, jax.random.key(0))
    q_params = train_state.q_ts.params

    def greedy_act(obs, key):  # rejax's act(obs, rng) for its own evaluate; its make_act keeps epsilon 0.005
        del key
        return jnp.argmax(algo.agent.apply(q_params, obs[None])[0])

    _, own = rejax_evaluate(
        greedy_act, jax.random.key(EVAL_SEED), env, env_params, EVAL_EPISODES, env_params.max_steps_in_episode
    )

    def policy(params, obs, key):  # the same argmax, in jrl's policy(params, obs, key) form
        del key
        return jnp.argmax(algo.agent.apply(params, obs[None])[0]).astype(jnp.int32)

    gym = evaluate_in_gymnasium(policy, q_params, ENV_ID, num_episodes=gym_episodes, seed=EVAL_SEED)
    steps = config["total_timesteps"]
    return Row("rejax", steps, compile_s, run_s, float(own.mean()), float(gym.mean()), "gymnax")


# --- Stable-Baselines3 --------------------------------------------------------------------------
def bench_sb3(quick: bool, gym_episodes: int) -> Row:
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = dict(SB3_ZOO_CARTPOLE)
    n_timesteps = config.pop("n_timesteps")
    total_timesteps = 3_000 if quick else n_timesteps
    policy = config.pop("policy")
    start = time.perf_counter()
    model = DQN(policy, ENV_ID, seed=0, verbose=0, **config)
    model.learn(total_timesteps=total_timesteps)
    run_s = time.perf_counter() - start
    eval_env = DummyVecEnv([lambda: Monitor(gym.make(ENV_ID))])
    eval_env.seed(EVAL_SEED)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=gym_episodes, deterministic=True)
    eval_env.close()
    # SB3 trains and is evaluated in Gymnasium itself: its own environment is the reference.
    return Row("SB3", total_timesteps, float("nan"), run_s, float(mean), float(mean), "Gymnasium")


# --- report -------------------------------------------------------------------------------------
def print_header(quick: bool, torch_threads: int | None) -> None:
    try:
        import torch
    except ImportError:  # only SB3 needs torch; --skip-sb3 runs without it
        torch = None
    if torch is not None:
        default_threads = torch.get_num_threads()
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        how = "torch default" if torch_threads is None else f"set by --torch-threads; default {default_threads}"
        threads = f"{torch.get_num_threads()} ({how})"
    else:
        threads = "- (torch not installed)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"jax {jax.__version__} ({jax.devices()[0].platform}), flax {version('flax')}, optax {version('optax')}, "
        f"rejax {version('rejax')}, gymnax {version('gymnax')}, gymnasium {version('gymnasium')}, "
        f"stable-baselines3 {version('stable-baselines3')}, torch {version('torch')}"
    )
    print(f"CPU cores: {cores} usable ({os.cpu_count()} in the machine); torch threads: {threads}")
    if quick:
        print("*** --quick: shortened training runs to smoke-test this script. These numbers are NOT results. ***")


def print_table(rows: list[Row]) -> None:
    print(
        f"\n{'library':<8} | {'env steps':>9} | {'compile s':>9} | {'run s':>7} | {'total s':>7} | "
        f"{'greedy return (own env)':>24} | {'greedy return (Gymnasium)':>25} | {'solved':>6}"
    )
    for r in rows:
        compile_s = "-" if np.isnan(r.compile_s) else f"{r.compile_s:.1f}"
        own = f"{r.own_return:.1f} ({r.own_env})"
        print(
            f"{r.library:<8} | {r.env_steps:>9,} | {compile_s:>9} | {r.run_s:>7.1f} | {r.total_s:>7.1f} | "
            f"{own:>24} | {r.gym_return:>25.1f} | {'yes' if r.solved else 'no':>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="much shorter training runs: a smoke test, not results")
    parser.add_argument("--skip-rejax", action="store_true", help="leave rejax out")
    parser.add_argument("--skip-sb3", action="store_true", help="leave Stable-Baselines3 out")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="override torch's default thread count (a diagnostic: the comparison uses the default)",
    )
    args = parser.parse_args()
    wall_start = time.perf_counter()
    print_header(args.quick, args.torch_threads)
    gym_episodes = 10 if args.quick else EVAL_EPISODES

    config = dqn.default_config(ENV_ID)
    if args.quick:
        config = quick_jrl_config(config)
    print(f"\njrl config (dqn.default_config({ENV_ID!r}){' shortened by --quick' if args.quick else ''}):")
    print(f"  {dataclasses.asdict(config)}")
    if not args.skip_rejax:
        print(f"rejax config (configs/gymnax/cartpole.yaml, dqn{'; --quick: 10k steps' if args.quick else ''}):")
        print(f"  {REJAX_CARTPOLE_DQN}")
    if not args.skip_sb3:
        print(f"SB3 config (rl-baselines3-zoo hyperparams/dqn.yml{'; --quick: 3k steps' if args.quick else ''}):")
        print(f"  {SB3_ZOO_CARTPOLE}")

    # XLA's one-time initialisation (LLVM and the CPU client) happens at the first compile in a
    # process; do it here so that it is not charged to whichever library is timed first.
    jax.block_until_ready(jax.jit(lambda x: x + 1.0)(jnp.float32(1.0)))
    rows = []
    print("\ntraining jrl, 1 seed ...", flush=True)
    rows.append(ours := bench_jrl(config, gym_episodes))
    print(f"training jrl, 1 seed and {NUM_SEEDS} seeds vmapped, without early stopping ...", flush=True)
    seeds = bench_jrl_seeds(config, NUM_SEEDS)
    if not args.skip_rejax:
        print("training rejax ...", flush=True)
        rows.append(bench_rejax(args.quick, gym_episodes))
    if not args.skip_sb3:
        print("training Stable-Baselines3 ...", flush=True)
        rows.append(bench_sb3(args.quick, gym_episodes))

    if args.quick:
        print("\n*** --quick: NOT results (shortened runs) ***")
    print_table(rows)
    print(
        f"(greedy returns: mean of {EVAL_EPISODES} episodes in the library's own CartPole, {gym_episodes} in Gymnasium's)"
    )

    print(f"\njrl's ratios{' (--quick: NOT results)' if args.quick else ''}:")
    for r in rows[1:]:
        target = TARGET_REJAX if r.library == "rejax" else TARGET_SB3
        ratio = r.total_s / ours.total_s
        print(
            f"  {r.library} total / jrl total = {ratio:.2f}x (target >= {target:.0f}x: "
            f"{'met' if ratio >= target else 'not met'})"
        )
    run_ratio = seeds["run_s"] / seeds["one_run_s"]
    total_ratio = (seeds["compile_s"] + seeds["run_s"]) / (seeds["one_compile_s"] + seeds["one_run_s"])
    returns = seeds["returns"]
    print(
        f"  {NUM_SEEDS} vmapped seeds / 1 seed: run {run_ratio:.2f}x (target <= {TARGET_SEEDS}x: "
        f"{'met' if run_ratio <= TARGET_SEEDS else 'not met'}; rejax measured {REJAX_SEEDS_MEASURED}x), "
        f"total with compile {total_ratio:.2f}x; full runs (no early stop): 1 seed compile "
        f"{seeds['one_compile_s']:.1f} s, run {seeds['one_run_s']:.1f} s; {NUM_SEEDS} seeds compile "
        f"{seeds['compile_s']:.1f} s, run {seeds['run_s']:.1f} s"
    )
    print(
        f"  {NUM_SEEDS} seeds' greedy returns (jrl CartPole, {EVAL_EPISODES} episodes each): "
        f"{', '.join(f'{x:.1f}' for x in returns)}; {int(np.sum(returns >= SOLVED))}/{NUM_SEEDS} >= {SOLVED:.0f}"
    )
    print(f"\nbenchmark wall time: {time.perf_counter() - wall_start:.0f} s")


if __name__ == "__main__":
    main()
