"""Tabular Q-learning throughput: jrl against what a user would otherwise write, in the same run.

FrozenLake-v1 4x4, slippery. Every implementation runs the same algorithm: epsilon-greedy
(epsilon 0.1, random tie-breaking) Q-learning, alpha 0.1, gamma 0.99, with the TD errors of all
environments that visit the same (s, a) in a step averaged (jrl's rule), bootstrapping from the
final observation on truncation. Throughput is environment steps per second, compile time
excluded and reported on its own (best of ``--repeats`` timed runs).

    python benchmarks/tabular_q_learning.py            # the full table (a few minutes on 2 cores)
    python benchmarks/tabular_q_learning.py --quick    # a smoke run

Baselines (``pip install -e ".[bench]"``):
- ``gymnasium``: Gymnasium's ``FrozenLake-v1`` in ``gymnasium.vector.SyncVectorEnv`` (same-step
  auto-reset) with the update in NumPy; for one environment, the plain Python loop.
- ``gymnax``: gymnax's own ``FrozenLake-misc`` with one PRNG key per environment, ``vmap`` +
  ``lax.scan``: the straightforward JAX loop.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment import timed, train_key, train_keys

ALPHA, GAMMA, EPSILON = 0.1, 0.99, 0.1


def best_time(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls of a plain Python loop (the Gymnasium baselines: nothing
    compiles, so ``timed`` does not apply)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def steps_for(num_envs: int, budget: float) -> int:
    """Steps per env so each timed run does about ``budget`` environment steps (multiple of 10)."""
    return max(10, int(budget / num_envs) // 10 * 10)


# --- jrl --------------------------------------------------------------------------------------
def bench_jrl(num_envs: int, num_steps: int, repeats: int) -> dict:
    env, params = jrl.make("FrozenLake-v1", is_slippery=True)
    config = q_learning.QLearningConfig(
        num_envs=num_envs,
        num_steps=num_steps,
        alpha=ALPHA,
        gamma=GAMMA,
        epsilon_start=EPSILON,
        epsilon_end=EPSILON,
        log_interval=num_steps // 10,
    )
    _, compile_s, seconds = timed(q_learning.make_train(config, env, params), train_key(0), repeats=repeats)
    return {"compile_s": compile_s, "steps_per_s": num_envs * num_steps / seconds}


def bench_jrl_grid(num_agents: int, num_envs: int, num_steps: int, repeats: int) -> dict:
    """A 16 x 16 grid over alpha and epsilon trained in one vmapped call, against the same
    compiled single-agent function called once per grid member."""
    env, params = jrl.make("FrozenLake-v1", is_slippery=True)
    config = q_learning.QLearningConfig(
        num_envs=num_envs, num_steps=num_steps, gamma=GAMMA, log_interval=num_steps // 10
    )
    side = round(num_agents**0.5)
    grid = q_learning.hyperparam_grid(
        config,
        alpha=np.linspace(0.02, 0.5, side).tolist(),
        epsilon_start=np.linspace(0.05, 1.0, side).tolist(),
    )
    train = q_learning.make_train(config, env, params)
    keys = train_keys(range(side * side))  # grid member i is seed i
    _, compile_s, seconds = timed(jax.vmap(train), keys, grid, repeats=repeats)
    # The loop is many calls of one compiled function, not one call: timed by hand.
    single = jax.jit(train).lower(keys[0], jax.tree.map(lambda x: x[0], grid)).compile()
    members = [jax.tree.map(lambda x, i=i: x[i], grid) for i in range(side * side)]
    single(keys[0], members[0]).q_table.block_until_ready()
    start = time.perf_counter()
    for i in range(side * side):
        out = single(keys[i], members[i])
    out.q_table.block_until_ready()
    loop_s = time.perf_counter() - start
    total = side * side * num_envs * num_steps
    return {"compile_s": compile_s, "steps_per_s": total / seconds, "loop_steps_per_s": total / loop_s}


# --- gymnax: the straightforward JAX loop -----------------------------------------------------
def bench_gymnax(num_envs: int, num_steps: int, repeats: int) -> dict:
    import gymnax

    env, params = gymnax.make("FrozenLake-misc")
    num_states, num_actions = 16, 4

    def policy(key, q_row):
        k_explore, k_random, k_tie = jax.random.split(key, 3)
        # Random tie-breaking: the maximal action with the largest random score.
        greedy = jnp.argmax(jnp.where(q_row == q_row.max(), jax.random.uniform(k_tie, (num_actions,)), -1.0))
        random_action = jax.random.randint(k_random, (), 0, num_actions)
        return jnp.where(jax.random.uniform(k_explore) < EPSILON, random_action, greedy)

    def step(carry, key):
        q, obs, state = carry
        k_act, k_env = jax.random.split(key)
        actions = jax.vmap(policy)(jax.random.split(k_act, num_envs), q[obs])
        next_obs, state, reward, terminated, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, num_envs), state, actions, params
        )
        # gymnax keeps no final observation; a user recomputes it from the pre-reset position
        # by stepping again without reset would cost more, so bootstrap from next_obs where not
        # done and use zero for terminated (FrozenLake has no time-limit bootstrapping issue on
        # terminal tiles): the same arithmetic cost as jrl's update.
        target = reward + GAMMA * (1.0 - terminated) * q[next_obs].max(-1)
        index = obs * num_actions + actions
        delta = target - q.reshape(-1)[index]
        sums = jnp.zeros(num_states * num_actions).at[index].add(delta)
        counts = jnp.zeros(num_states * num_actions).at[index].add(1.0)
        q = q + ALPHA * (sums / jnp.maximum(counts, 1.0)).reshape(q.shape)
        return (q, next_obs, state), None

    def run(key):
        k_reset, k_steps = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)
        q = jnp.zeros((num_states, num_actions))
        return jax.lax.scan(step, (q, obs, state), jax.random.split(k_steps, num_steps))[0][0]

    _, compile_s, seconds = timed(run, jax.random.key(0), repeats=repeats)
    return {"compile_s": compile_s, "steps_per_s": num_envs * num_steps / seconds}


# --- Gymnasium SyncVectorEnv + NumPy ----------------------------------------------------------
def bench_gymnasium_loop(num_steps: int, repeats: int) -> dict:
    """One environment: the plain Python loop a user writes (no vector wrapper)."""
    import gymnasium as gym

    env = gym.make("FrozenLake-v1", is_slippery=True)
    rng = np.random.default_rng(0)
    q = np.zeros((16, 4))
    obs, _ = env.reset(seed=0)

    def run():
        nonlocal obs
        for _ in range(num_steps):
            row = q[obs]
            if rng.random() < EPSILON:
                action = int(rng.integers(4))
            else:
                action = int(rng.choice(np.flatnonzero(row == row.max())))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            target = reward + (0.0 if terminated else GAMMA * q[next_obs].max())
            q[obs, action] += ALPHA * (target - q[obs, action])
            obs = env.reset()[0] if terminated or truncated else next_obs
        return 0

    seconds = best_time(run, repeats)
    return {"compile_s": float("nan"), "steps_per_s": num_steps / seconds}


def bench_gymnasium(num_envs: int, num_steps: int, repeats: int) -> dict:
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("FrozenLake-v1", is_slippery=True) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    rng = np.random.default_rng(0)
    q = np.zeros((16, 4))
    obs, _ = envs.reset(seed=0)

    def run():
        nonlocal obs, q
        for _ in range(num_steps):
            rows = q[obs]
            # Vectorized random tie-breaking: the maximal action with the largest random score.
            greedy = np.argmax(np.where(rows == rows.max(1, keepdims=True), rng.random(rows.shape), -1.0), axis=1)
            actions = np.where(rng.random(num_envs) < EPSILON, rng.integers(0, 4, num_envs), greedy)
            next_obs, reward, terminated, _, info = envs.step(actions)
            final = np.where(
                info.get("_final_obs", np.zeros(num_envs, bool)), info.get("final_obs", next_obs), next_obs
            )
            final = final.astype(np.int64)
            target = reward + GAMMA * (1.0 - terminated) * q[final].max(1)
            index = obs * 4 + actions
            delta = target - q.reshape(-1)[index]
            sums, counts = np.zeros(64), np.zeros(64)
            np.add.at(sums, index, delta)
            np.add.at(counts, index, 1.0)
            q = q + ALPHA * (sums / np.maximum(counts, 1.0)).reshape(16, 4)
            obs = next_obs
        return 0

    seconds = best_time(run, repeats)
    envs.close()
    return {"compile_s": float("nan"), "steps_per_s": num_envs * num_steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small budgets, a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    budget = 2e6 if args.quick else 3e7
    gym_budget = 2e4 if args.quick else 3e5
    sizes = [1, 64, 1024, 4096, 16384]
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s))")
    print(
        f"{'N envs':>7} | {'jrl M steps/s':>13} | {'gymnax M/s':>10} | {'Gymnasium k/s':>13} | "
        f"{'jrl/gymnax':>10} | {'jrl/Gymnasium':>13} | {'compile jrl s':>13} | {'compile gymnax s':>16}"
    )
    for n in sizes:
        # One-env loops are dominated by per-step overhead: give them fewer steps.
        steps = steps_for(n, budget / (100 if n == 1 else 1))
        ours = bench_jrl(n, steps, args.repeats)
        theirs = bench_gymnax(n, steps, args.repeats)
        if n == 1:
            gym = bench_gymnasium_loop(int(gym_budget / 3), 1)
        else:
            gym = bench_gymnasium(n, max(2, int(gym_budget / n)), 1)
        print(
            f"{n:>7} | {ours['steps_per_s'] / 1e6:>13.2f} | {theirs['steps_per_s'] / 1e6:>10.2f} | "
            f"{gym['steps_per_s'] / 1e3:>13.1f} | {ours['steps_per_s'] / theirs['steps_per_s']:>10.2f} | "
            f"{ours['steps_per_s'] / gym['steps_per_s']:>13.0f} | {ours['compile_s']:>13.2f} | {theirs['compile_s']:>16.2f}",
            flush=True,
        )
    grid = bench_jrl_grid(256, 64, steps_for(256 * 64, budget), args.repeats)
    print(
        f"\ngrid of 256 agents (16 alpha x 16 epsilon, 64 envs each), one vmapped call: "
        f"{grid['steps_per_s'] / 1e6:.2f} M steps/s, compile {grid['compile_s']:.2f} s; "
        f"the same 256 configs one call each: {grid['loop_steps_per_s'] / 1e6:.2f} M steps/s "
        f"(vmapped/looped = {grid['steps_per_s'] / grid['loop_steps_per_s']:.1f}x)"
    )


if __name__ == "__main__":
    main()
