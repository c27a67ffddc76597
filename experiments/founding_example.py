"""The classic 10-state Q-learning example (the one jrl was founded on), made to run and checked against Q*.

The document trains a Q-table on a 10-state, 2-action problem with a random reward table
``rewards[10, 2]``, alpha 0.1 and gamma 0.9, for 1000 one-step "episodes": a random state, a random
action, a random next state, one Q-learning update. jrl names that problem ``RandomMDP-v0`` and
knows its exact optimal values, so every learned table here is scored by ``max |Q - Q*|``.

Part 1  the document's exact setting: one environment, 1000 steps, uniformly random actions.
Part 2  the same per-environment budget with thousands of parallel copies feeding one table
        (jrl averages the TD errors that land on the same (s, a) in a step), several seeds in
        one compiled call (``jax.vmap`` over keys).
Part 3  the document's advice to choose alpha and gamma "by experiment", as one compiled call over
        an alpha x gamma grid (``q_learning.hyperparam_grid``), each member scored against
        Q*(gamma).

    python experiments/founding_example.py            # full run (about a minute on 2 CPU cores)
    python experiments/founding_example.py --quick    # smoke run (seconds)

Tables are printed and written as CSV files to ``--out``
(default ``experiments/results/founding_example/``). Every random number comes from ``--seed``:
the same seed gives the same tables (the timing columns aside). It picks the reward table, and
training follows ``jrl.experiment``'s key rule: seed ``s`` trains with ``jax.random.key(s)``, Parts 1
and 3 with seed ``--seed``, Part 2's rows with seeds ``--seed .. --seed + N - 1``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment import timed, train_key, train_keys, write_csv

NUM_STATES, NUM_ACTIONS = 10, 2
ACTION_NAMES = ("left", "right")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "founding_example"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer configurations, a smoke run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the reward table and every training key")
    parser.add_argument(
        "--seeds", type=int, default=None, help="training seeds per Part 2 row (default 4; 2 with --quick)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the CSV tables")
    args = parser.parse_args()
    if args.seeds is None:
        args.seeds = 2 if args.quick else 4
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if not 0 <= args.seed < 2**31:
        parser.error("--seed must be in [0, 2**31)")
    return args


def why_the_printed_code_fails() -> str:
    """Run the document's reward lookup (``rewards[state][action]`` with ``action`` a *name*)."""
    rng = np.random.default_rng(0)
    rewards = rng.random((10, 2))
    state = rng.choice(np.arange(10))
    action = rng.choice(["left", "right"])  # a numpy str_, as in the document
    try:
        rewards[state][action]
    except IndexError as err:
        return f"IndexError: {err}"
    return "(no error?)"


def part1(args, env, env_params, q_star, base_config, key) -> np.ndarray:
    print("=" * 78)
    print("Part 1: the founding document's example, exactly")
    print("=" * 78)
    print(
        "As printed, the document's code stops at its first update. It draws the action as a\n"
        "name, np.random.choice(['left', 'right']), and then looks the reward up with that name:\n"
        f"    rewards[state][action]  ->  {why_the_printed_code_fails()}\n"
        "The action must be an index (0 = left, 1 = right). The document also draws the next\n"
        "state uniformly whatever the action was. That makes the problem a random MDP whose action\n"
        "only picks the reward. jrl's RandomMDP-v0 is that problem, made exact:"
    )
    mdp = env.mdp(env_params)
    same_next = bool(
        np.array_equal(np.asarray(mdp.transition_probs[:, 0]), np.asarray(mdp.transition_probs[:, 1]))
        and np.array_equal(np.asarray(mdp.next_states[:, 0]), np.asarray(mdp.next_states[:, 1]))
    )
    print(
        f'  jrl.make("RandomMDP-v0", max_episode_steps=1, seed={args.seed}): {env.num_states} states, '
        f"{env.num_actions} actions,\n"
        f"  rewards R[s, a] ~ U[0, 1) from the seed, next state uniform over all {env.num_states} states "
        f"(the same for both actions: {same_next}).\n"
        "  Every step is a one-step episode. The time limit truncates it, so the update bootstraps\n"
        "  from the next state, as the document's update does. The next episode starts in a fresh\n"
        "  uniformly random state."
    )
    print(
        f"  Training: {base_config.num_envs} env x {base_config.num_steps} steps, alpha={base_config.alpha}, "
        f"gamma={base_config.gamma}, epsilon=1 (uniformly random actions)."
    )
    train = q_learning.make_train(base_config, env, env_params)
    result, compile_s, run_s = timed(train, key)
    q = np.asarray(result.q_table)
    qs = np.asarray(q_star)
    episodes = int(np.sum(result.metrics["episodes"]))
    print(f"  compile {compile_s:.2f} s, run {run_s * 1e3:.1f} ms, one-step episodes finished: {episodes}\n")

    print(f"  {'state':>5} | {'Q(s,left)':>9} {'Q*(s,left)':>10} | {'Q(s,right)':>10} {'Q*(s,right)':>11}")
    for s in range(env.num_states):
        print(f"  {s:>5} | {q[s, 0]:>9.3f} {qs[s, 0]:>10.3f} | {q[s, 1]:>10.3f} {qs[s, 1]:>11.3f}")
    err = np.abs(q - qs)
    print(
        f"\n  max |Q - Q*| = {err.max():.3f}  (Q* ranges over [{qs.min():.2f}, {qs.max():.2f}])\n"
        "  Q starts at 0, and each (s, a) gets only about 1000 / 20 = 50 updates. Each update of a\n"
        "  pair shrinks the starting error by a factor of about 1 - alpha (1 - gamma) = 0.99, and\n"
        "  0.99^50 = 0.6. So 1000 one-step episodes leave most of the error (Q* is about 7) in\n"
        "  place. Part 2 shows what parallel copies change."
    )
    path = write_csv(
        args.out / "part1_q_table.csv",
        [
            {
                "state": s,
                "action": a,
                "action_name": ACTION_NAMES[a] if a < len(ACTION_NAMES) else str(a),
                "q_learned": float(q[s, a]),
                "q_star": float(qs[s, a]),
                "abs_error": float(err[s, a]),
            }
            for s in range(env.num_states)
            for a in range(env.num_actions)
        ],
    )
    print(f"  wrote {path}")
    return q


def part2(args, env, env_params, q_star, base_config, keys, q_part1) -> None:
    print()
    print("=" * 78)
    print("Part 2: what thousands of parallel copies do to the error")
    print("=" * 78)
    env_counts = [1, 16, 256] if args.quick else [1, 16, 256, 4096]
    step_counts = [1000] if args.quick else [1000, 10_000]
    print(
        f"  Every row: {args.seeds} seeds trained in one call, jax.jit(jax.vmap(train))(keys). Each\n"
        "  step, the TD errors of all environments that visited the same (s, a) are averaged, and\n"
        "  the table moves by alpha times that mean.\n"
        "  max |Q - Q*| is shown as the mean over seeds [min, max]. Times: compile, then one run."
    )
    header = (
        f"  {'steps/env':>9} {'envs':>6} {'env steps':>11} | {'max |Q - Q*|':>12} {'[min, max] over seeds':>22} | "
        f"{'compile s':>9} {'run s':>7} {'M steps/s':>9}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    rows = []
    member0 = "was not run"
    q_star = jnp.asarray(q_star)
    for num_steps in step_counts:
        for num_envs in env_counts:
            # One metrics record per run: this experiment scores only the final table.
            config = base_config.replace(num_envs=num_envs, num_steps=num_steps, log_interval=num_steps)
            train = q_learning.make_train(config, env, env_params)

            def errors(keys, train=train):
                q = jax.vmap(train)(keys).q_table  # [seeds, S, A]
                return jnp.max(jnp.abs(q - q_star), axis=(1, 2)), q

            (err, q_tables), compile_s, run_s = timed(errors, keys)
            err = np.asarray(err)
            total = num_envs * num_steps
            rate = total * args.seeds / run_s / 1e6
            print(
                f"  {num_steps:>9} {num_envs:>6} {total:>11,} | {err.mean():>12.4f} "
                f"{f'[{err.min():.4f}, {err.max():.4f}]':>22} | {compile_s:>9.2f} {run_s:>7.3f} {rate:>9.2f}"
            )
            rows.append(
                {
                    "num_steps": num_steps,
                    "num_envs": num_envs,
                    "env_steps_per_seed": total,
                    "seeds": args.seeds,
                    "max_abs_error_mean": float(err.mean()),
                    "max_abs_error_std": float(err.std()),
                    "max_abs_error_min": float(err.min()),
                    "max_abs_error_max": float(err.max()),
                    "compile_s": round(compile_s, 3),
                    "run_s": round(run_s, 4),
                }
            )
            if num_envs == base_config.num_envs and num_steps == base_config.num_steps:
                gap = float(np.abs(np.asarray(q_tables[0]) - q_part1).max())
                member0 = (
                    "equals it bit for bit"
                    if gap == 0.0
                    else f"differs from it by at most {gap:.1e}\n  (float32 rounding: XLA compiles the batched program differently)"
                )
    print(
        f"\n  Seed {args.seed} of the (1 env, 1000 steps) row uses Part 1's key. Its table " + member0 + ".\n"
        "  Averaging the TD errors of N environments does not give N times more updates. It gives\n"
        "  each update a target whose variance is N times smaller. Once N is well above the 20\n"
        "  (s, a) pairs, every pair is updated at every step. The starting error then falls like\n"
        "  0.99^steps (0.99^1000 = 4e-5), so it is gone after 1000 steps. What remains is the noise\n"
        "  floor of a constant alpha. Once each pair gets more than one visit per step, that floor\n"
        "  shrinks like 1 / sqrt(visits per (s, a) per step): 256 envs give about 13 visits, 4096\n"
        "  envs about 205. 16 envs give about 0.8, so at 10000 steps they do about as well as 1 env.\n"
        "  More steps do not lower the floor. To lower it, use a smaller alpha or more environments."
    )
    print(f"  wrote {write_csv(args.out / 'part2_parallel_envs.csv', rows)}")


def part3(args, env, env_params, base_config, key) -> None:
    print()
    print("=" * 78)
    print("Part 3: choosing alpha and gamma 'by experiment', as one compiled call")
    print("=" * 78)
    alphas = [0.01, 0.03, 0.1, 0.3, 1.0]
    gammas = [0.5, 0.9, 0.99]
    num_envs = 16 if args.quick else 256
    config = base_config.replace(num_envs=num_envs, num_steps=1000, log_interval=1000)
    grid = q_learning.hyperparam_grid(config, alpha=alphas, gamma=gammas)  # leaves [G], row-major
    train = q_learning.make_train(config, env, env_params)
    sweep = jax.vmap(train, in_axes=(None, 0))  # one key for all members: common random numbers
    result, compile_s, run_s = timed(sweep, key, grid)
    mdp = env.mdp(env_params)
    q_stars = {g: np.asarray(jrl.planning.value_iteration(mdp, g)) for g in gammas}
    print(
        f"  {len(alphas)} alphas x {len(gammas)} gammas = {len(alphas) * len(gammas)} agents, each "
        f"{num_envs} envs x {config.num_steps} steps, epsilon=1.\n"
        f"  One call: jax.jit(jax.vmap(train, in_axes=(None, 0)))(key, grid); compile {compile_s:.2f} s, "
        f"run {run_s:.2f} s.\n"
        "  Each member is scored against Q* for its own gamma (jrl.planning.value_iteration):\n"
        "  max |Q - Q*(gamma)|, and in brackets that error relative to max |Q*(gamma)|."
    )
    print("  " + f"{'alpha':>6} | " + " | ".join(f"{f'gamma={g}':>18}" for g in gammas))
    rows = []
    errors = np.zeros((len(alphas), len(gammas)))
    for i, (alpha, gamma) in enumerate(zip(np.asarray(grid.alpha), np.asarray(grid.gamma), strict=True)):
        # hyperparam_grid stores float32; map back to the exact Python values swept.
        a_idx, g_idx = divmod(i, len(gammas))
        assert np.isclose(alpha, alphas[a_idx]) and np.isclose(gamma, gammas[g_idx])
        qs = q_stars[gammas[g_idx]]
        err = float(np.abs(np.asarray(result.q_table[i]) - qs).max())
        errors[a_idx, g_idx] = err
        rows.append(
            {
                "alpha": alphas[a_idx],
                "gamma": gammas[g_idx],
                "num_envs": num_envs,
                "num_steps": config.num_steps,
                "max_abs_error": err,
                "max_abs_q_star": float(np.abs(qs).max()),
                "relative_error": err / float(np.abs(qs).max()),
            }
        )
    for a_idx, alpha in enumerate(alphas):
        cells = [
            f"{errors[a_idx, g]:>8.4f} ({errors[a_idx, g] / np.abs(q_stars[gm]).max():>6.1%})"
            for g, gm in enumerate(gammas)
        ]
        print(f"  {alpha:>6} | " + " | ".join(f"{c:>18}" for c in cells))
    best = [alphas[int(np.argmin(errors[:, g]))] for g in range(len(gammas))]
    print(
        "  best alpha per gamma: " + ", ".join(f"gamma={g}: {a}" for g, a in zip(gammas, best, strict=True)) + "\n"
        "  A larger gamma means a longer horizon, and the starting error then decays only like\n"
        "  (1 - alpha (1 - gamma))^updates. In 1000 steps, small alphas fall far short of Q*(0.99).\n"
        "  Large alphas swap that bias for noise, and averaging over more environments reduces\n"
        "  the noise. No single alpha is best for every gamma, which is why sweeping pays."
    )
    print(f"  wrote {write_csv(args.out / 'part3_alpha_gamma.csv', rows)}")


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    mode = "quick" if args.quick else "full"
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; seed {args.seed}; {mode} run\n")
    env, env_params = jrl.make("RandomMDP-v0", max_episode_steps=1, seed=args.seed)
    mdp = env.mdp(env_params)
    gamma = 0.9
    q_star = jrl.planning.value_iteration(mdp, gamma)
    # RandomMDP's closed form: Q*(s, a) = R[s, a] + gamma / (1 - gamma) * mean_s' max_a' R[s', a'].
    reward = np.asarray(mdp.rewards[:, :, 0], np.float64)
    closed_form = reward + gamma / (1 - gamma) * reward.max(axis=1).mean()
    assert np.allclose(np.asarray(q_star), closed_form, atol=1e-5), "value iteration disagrees with the closed form"

    base_config = q_learning.QLearningConfig(
        num_envs=1,
        num_steps=1000,
        alpha=0.1,
        gamma=gamma,
        epsilon_start=1.0,
        epsilon_end=1.0,
        epsilon_decay_fraction=0.0,
    )
    # The key rule (jrl.experiment): seed s trains with key(s). Part 2's seeds start at --seed, so
    # its first is Part 1's run; Part 3's agents all share that key (common random numbers).
    q_part1 = part1(args, env, env_params, q_star, base_config, train_key(args.seed))
    part2(args, env, env_params, q_star, base_config, train_keys(range(args.seed, args.seed + args.seeds)), q_part1)
    part3(args, env, env_params, base_config, train_key(args.seed))
    print(f"\ntotal wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
