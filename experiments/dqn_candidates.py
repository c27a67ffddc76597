"""How ``dqn.default_config`` was chosen for each classic-control environment: named candidate
configs, each trained on several seeds (vmapped, one compiled call per candidate) and scored by
the final greedy policy's mean return over 100 fresh episodes (``jrl.evaluate``). Keys follow
``jrl.experiment``'s rule: seed ``s`` trains with ``key(s)`` and is evaluated with ``evaluation_key(s)``.

Every candidate run appends rows to ``experiments/results/dqn_candidates.csv`` (env_id, candidate,
seed, final_return: the returned parameters over 100 episodes, last_eval_return: the in-loop
evaluation of the last parameters, seconds_for_group, nonfinite_updates), replacing earlier rows
of the same env and candidate; ``--summarize`` prints the table from the CSV without training.

    python experiments/dqn_candidates.py CartPole-v1 --candidates default   # one candidate
    python experiments/dqn_candidates.py Acrobot-v1                         # all of an env's
    python experiments/dqn_candidates.py --summarize

The candidates are written out below in full so each row of the CSV can be re-run; ``default``
is whatever ``dqn.default_config(env_id)`` is now (docs/dqn.md says which candidate it came from).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import jrl
from jrl.algorithms import dqn
from jrl.experiment import evaluation_key, read_csv, train_seeds, write_csv

OUT = "experiments/results/dqn_candidates.csv"
FIELDS = ["env_id", "candidate", "seed", "final_return", "last_eval_return", "seconds_for_group", "nonfinite_updates"]

# CartPole: the tune_dqn.py sweep's best setting (200k steps, squared loss, hard copies every 50
# iterations, double DQN, lr 1e-3), then the same with best-evaluation selection / lr decay.
CARTPOLE = dict(
    num_envs=10, num_steps=20_000, buffer_size=10_000, batch_size=128, learning_starts=10_000, tau=1.0,
    target_update_interval=50, double_dqn=True, loss="mse", learning_rate=1e-3, hidden_sizes=(120, 84),
    epsilon_end=0.05, epsilon_decay_fraction=0.5, eval_episodes=16, log_interval=1000,
)  # fmt: skip
# Acrobot and MountainCar: rl-baselines3-zoo's DQN settings, translated to parallel environments
# (SB3 counts target updates and training frequency in environment steps, jrl in iterations).
ACROBOT = dict(
    num_envs=8, num_steps=12_500, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=1000,
    gamma=0.99, target_update_interval=125, updates_per_iteration=1, epsilon_end=0.1, epsilon_decay_fraction=0.12,
    hidden_sizes=(64, 64), loss="huber", double_dqn=False, eval_episodes=8, log_interval=500,
)  # fmt: skip
MOUNTAIN_CAR = dict(
    num_envs=16, num_steps=7_500, learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000,
    gamma=0.98, target_update_interval=38, updates_per_iteration=8, epsilon_end=0.07, epsilon_decay_fraction=0.2,
    hidden_sizes=(64, 64), loss="huber", double_dqn=False, eval_episodes=8, log_interval=500,
)  # fmt: skip
# RandomLake: a CNN on the [8, 8, 3] one-hot grid. On CPU a CNN gradient step inside the compiled
# loop costs about 0.1 s (XLA's convolution gradients are slow inside loops), so these runs are
# sized by gradient steps: about 600 per seed, 60-90 s. Many parallel environments, each holding
# one map at a time, keep the buffer varied; the final parameters are the best in-loop evaluation.
RANDOM_LAKE = dict(
    network="cnn", hidden_sizes=(64,), num_envs=32, num_steps=1_200, buffer_size=38_400, batch_size=64,
    learning_starts=3_200, train_interval=2, updates_per_iteration=1, target_update_interval=50, tau=1.0,
    double_dqn=True, loss="mse", learning_rate=1e-3, gamma=0.99, epsilon_start=1.0, epsilon_end=0.05,
    epsilon_decay_fraction=0.5, eval_episodes=32, log_interval=60, anneal_lr=True, keep_best=True,
)  # fmt: skip
LAKE_OPTIMISTIC = dict(
    num_envs=64, num_steps=30_000, buffer_size=192_000, learning_starts=6_400, train_interval=1, batch_size=32,
    eval_episodes=64, log_interval=2_500, conv_features=(16, 16), n_step=8, q_init=1.0,
)  # fmt: skip
# Little random exploration for MountainCar (see the candidates that use it).
LOW_EPSILON = dict(epsilon_start=0.1, epsilon_end=0.01, epsilon_decay_fraction=0.1)
CANDIDATES: dict[str, dict[str, dict]] = {
    "CartPole-v1": {
        "sweep_best": CARTPOLE,
        "sweep_best_keep_best": dict(CARTPOLE, keep_best=True),
        # selection and early stopping on 100-episode in-loop evaluations (the solve criterion's
        # own size), a smaller network (about 40% less time per gradient step)
        "mlp64_eval100_stop500": dict(
            CARTPOLE, hidden_sizes=(64, 64), eval_episodes=100, keep_best=True, stop_return=500.0
        ),
        "eval100_stop500": dict(CARTPOLE, eval_episodes=100, keep_best=True, stop_return=500.0),
        # the same with twice the budget: experiments/tune_defaults/dqn/CartPole-v1.toml's choice
        "mlp64_eval100_stop500_40k": dict(
            CARTPOLE, hidden_sizes=(64, 64), eval_episodes=100, keep_best=True, stop_return=500.0, num_steps=40_000
        ),
    },
    "Acrobot-v1": {
        "zoo": ACROBOT,
        "zoo_anneal": dict(ACROBOT, anneal_lr=True),
        "zoo_anneal_keep_best": dict(ACROBOT, anneal_lr=True, keep_best=True),
        # the zoo takes one gradient step per environment step; these take 1/2 and 1
        "u4_anneal": dict(ACROBOT, updates_per_iteration=4, target_update_interval=32, anneal_lr=True),
        "u8_anneal": dict(ACROBOT, updates_per_iteration=8, target_update_interval=32, anneal_lr=True),
    },
    "MountainCar-v0": {
        "zoo": MOUNTAIN_CAR,
        "zoo_anneal": dict(MOUNTAIN_CAR, anneal_lr=True),
        "zoo_anneal_keep_best": dict(MOUNTAIN_CAR, anneal_lr=True, keep_best=True),
        # more environments in parallel: more varied exploration for the same gradient steps
        "e64_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            num_envs=64,
            num_steps=5_000,
            buffer_size=51_200,
            learning_starts=6_400,
            target_update_interval=10,
            anneal_lr=True,
            keep_best=True,
        ),
        "long_anneal_keep_best": dict(MOUNTAIN_CAR, num_steps=15_000, anneal_lr=True, keep_best=True),
        # position and velocity rescaled to [-1, 1] from the observation bounds (velocity spans
        # 0.14, position 1.8: unscaled, the network barely sees velocity at first)
        "scaled_anneal_keep_best": dict(MOUNTAIN_CAR, scale_observations=True, anneal_lr=True, keep_best=True),
        "scaled_anneal": dict(MOUNTAIN_CAR, scale_observations=True, anneal_lr=True),
        # little random exploration: the optimistic start (Q near 0, true values near -50) drives
        # the greedy policy toward rarely visited, high-energy states; random actions break pumping
        "low_eps_g99_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            gamma=0.99,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
        ),
        "low_eps_g99_long_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            gamma=0.99,
            num_steps=15_000,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
            log_interval=1000,
        ),
        "low_eps_g99_long_mse_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            gamma=0.99,
            num_steps=15_000,
            loss="mse",
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
            eval_episodes=32,
            log_interval=1000,
        ),
        "low_eps_g99_long_mse_double_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            gamma=0.99,
            num_steps=15_000,
            loss="mse",
            double_dqn=True,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
            eval_episodes=32,
            log_interval=1000,
        ),
        "low_eps_g99_long_mse_double_anneal_keep_best_eval100": dict(
            MOUNTAIN_CAR,
            gamma=0.99,
            num_steps=15_000,
            loss="mse",
            double_dqn=True,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
            eval_episodes=100,
            log_interval=500,
        ),
        "low_eps_long_mse_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            num_steps=15_000,
            loss="mse",
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
            eval_episodes=32,
            log_interval=1000,
        ),
        "low_eps_long_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            num_steps=15_000,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
            eval_episodes=32,
            log_interval=1000,
        ),
        "e64_low_eps_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            num_envs=64,
            num_steps=5_000,
            buffer_size=51_200,
            learning_starts=6_400,
            target_update_interval=10,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
        ),
        "low_eps_anneal_keep_best": dict(
            MOUNTAIN_CAR,
            **LOW_EPSILON,
            anneal_lr=True,
            keep_best=True,
        ),
    },
    "RandomLake-v0": {
        "cnn64_e32_anneal_keep_best": RANDOM_LAKE,
        # the same cost: twice the gradient steps on half the batch, one per iteration, and more
        # random exploration (a uniform random policy reaches the goal in about 0.1% of episodes)
        "cnn64_b32_explore_anneal_keep_best": dict(
            RANDOM_LAKE,
            batch_size=32,
            train_interval=1,
            target_update_interval=100,
            epsilon_end=0.1,
            epsilon_decay_fraction=0.9,
        ),
        # Optimism and n-step returns (scratch runs, seed 0: without both, the success rate stayed
        # below 0.1). q_init=1 (no return exceeds 1) makes stepping into a hole the first thing
        # learned, so exploration survives long enough to find the goal; 8-step returns carry
        # the goal's reward 8 cells back per backup. Smaller convolutions (16, 16) halve the
        # gradient step's cost; 64 environments, 30k iterations (1.92M environment steps). Gamma
        # 0.99 instead of 0.9 reached 0.44 (a scratch run, seed 0; docs/dqn.md).
        "n8_q1_g09": dict(RANDOM_LAKE, **LAKE_OPTIMISTIC, gamma=0.9),
        # selection on 256-episode evaluations twice as often (64 episodes leave the chosen
        # parameters' success rate uncertain by about +-0.04)
        "n8_q1_g09_eval256": dict(RANDOM_LAKE, **LAKE_OPTIMISTIC)
        | dict(gamma=0.9, eval_episodes=256, log_interval=1_250),
    },
}


# n-step returns on the MountainCar default: a reward sequence of -1s and the goal's end reach
# the states that built up speed n times faster.
_MC_DEFAULT = CANDIDATES["MountainCar-v0"]["low_eps_g99_long_mse_double_anneal_keep_best_eval100"]
CANDIDATES["MountainCar-v0"]["default_n3"] = dict(_MC_DEFAULT, n_step=3)
CANDIDATES["MountainCar-v0"]["default_n5"] = dict(_MC_DEFAULT, n_step=5)
# More data for the default: 1.5x the iterations, or twice the environments per iteration.
CANDIDATES["MountainCar-v0"]["default_long"] = dict(_MC_DEFAULT, num_steps=22_500)
CANDIDATES["MountainCar-v0"]["default_e32"] = dict(_MC_DEFAULT, num_envs=32, buffer_size=9_984)
# Keeping more of the past: a buffer of 50k transitions (3,125 iterations) instead of 10k (625), so
# that the rare goal-reaching episodes stay in replay longer; and a dueling head, or a smaller
# learning rate, for a steadier refinement once the goal is found.
CANDIDATES["MountainCar-v0"]["default_buf50k"] = dict(_MC_DEFAULT, buffer_size=50_000)
CANDIDATES["MountainCar-v0"]["default_dueling"] = dict(_MC_DEFAULT, dueling=True)
CANDIDATES["MountainCar-v0"]["default_lr2e3"] = dict(_MC_DEFAULT, learning_rate=2e-3)
# The best of experiments/tune_defaults/dqn/MountainCar-v0-budget.toml (seeds 0-15: 14 of 16 at
# -120, mean -108.9): twice the iterations, and more random exploration at the start.
CANDIDATES["MountainCar-v0"]["budget30k_eps03"] = dict(_MC_DEFAULT, num_steps=30_000, epsilon_start=0.3)

# The candidate each ``dqn.default_config`` is (tests/test_dqn.py checks they stay equal).
CHOSEN = {
    "CartPole-v1": "mlp64_eval100_stop500_40k",
    "Acrobot-v1": "u4_anneal",
    "MountainCar-v0": "budget30k_eps03",
    "RandomLake-v0": "n8_q1_g09",
}


def config_for(env_id: str, candidate: str) -> dqn.DQNConfig:
    if candidate == "default":
        return dqn.default_config(env_id)
    return dqn.DQNConfig(**CANDIDATES[env_id][candidate])


def run(env_id: str, candidate: str, seeds: list[int]) -> list[dict]:
    """Train ``candidate`` on ``seeds`` in one vmapped call; one row per seed."""
    env, env_params = jrl.make(env_id)
    config = config_for(env_id, candidate)
    trained = train_seeds(dqn.make_train(config, env, env_params), seeds)
    # The recorded seconds_for_group always included compilation: keep the column comparable.
    seconds = trained.compile_seconds + trained.run_seconds
    rows = []
    for i, seed in enumerate(seeds):
        member = jax.tree.map(lambda x, i=i: x[i], trained.output)
        policy, policy_params = dqn.greedy_policy(config, env, env_params, member)
        returns = jrl.evaluate(evaluation_key(seed), policy, policy_params, env, env_params, num_episodes=100)
        final = float(returns.mean())
        rows.append(
            dict(
                env_id=env_id,
                candidate=candidate,
                seed=seed,
                final_return=round(final, 2),
                last_eval_return=round(float(member.metrics["eval_return"][-1]), 2),
                seconds_for_group=round(seconds, 1),
                nonfinite_updates=int(member.metrics["nonfinite_updates"].sum()),
            )
        )
    return rows


def summarize(rows: list[dict]) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["env_id"], r["candidate"]), []).append(r)
    print(f"{'env':16} {'candidate':24} {'seeds':>5} {'mean':>8} {'min':>8}  final returns (100 episodes)")
    for (env_id, candidate), group in groups.items():
        finals = np.array([float(r["final_return"]) for r in group])
        digits = 1 if np.max(np.abs(finals)) >= 10 else 3  # RandomLake's returns are success rates
        print(
            f"{env_id:16} {candidate:24} {len(group):>5} {finals.mean():>8.{digits}f} {finals.min():>8.{digits}f}  "
            + " ".join(f"{x:.{digits}f}" for x in finals)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_id", nargs="?", choices=sorted(CANDIDATES))
    parser.add_argument(
        "--candidates", help="comma-separated names (default: all of the env's; 'default' is dqn.default_config)"
    )
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1 (default 8)")
    parser.add_argument("--summarize", action="store_true", help="print the recorded table; no training")
    args = parser.parse_args()
    if args.summarize or args.env_id is None:
        summarize(read_csv(OUT))
        return
    names = args.candidates.split(",") if args.candidates else list(CANDIDATES[args.env_id])
    for name in names:
        if name != "default" and name not in CANDIDATES[args.env_id]:
            parser.error(f"unknown candidate {name!r} for {args.env_id}; known: {sorted(CANDIDATES[args.env_id])}")
    for name in names:
        rows = run(args.env_id, name, list(range(args.seeds)))
        kept = [r for r in read_csv(OUT) if (r["env_id"], r["candidate"]) != (args.env_id, name)]
        write_csv(OUT, kept + rows, FIELDS)
        finals = [r["final_return"] for r in rows]
        d = 1 if max(abs(x) for x in finals) >= 10 else 3
        print(f"{args.env_id} {name}: mean {np.mean(finals):.{d}f}, min {min(finals):.{d}f}: {finals}", flush=True)
    summarize(read_csv(OUT))


if __name__ == "__main__":
    main()
