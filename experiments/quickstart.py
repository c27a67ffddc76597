"""The main demo: tabular Q-learning on slippery FrozenLake, checked against the exact optimum.

    python3 experiments/quickstart.py

1. Trains ``q_learning.default_config("FrozenLake-v1")`` (1,024 environments x 2,000 steps, one
   compiled call) and prints the learning curve: the exact value of the greedy policy against the
   optimal value from value iteration.
2. Evaluates the learned greedy policy in 10,000 parallel episodes with ``jrl.evaluate``.
3. Trains a 4 x 4 grid of (alpha, epsilon_end) x 2 seeds (256 environments each) in one
   vmapped call and prints each member's final regret.

Keys follow ``jrl.experiment``'s rule: seed ``s`` trains with ``key(s)`` and is evaluated with
``evaluation_key(s)``. Parts 1 and 2 use seed 0; the sweep, seeds 0 and 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.algorithms import q_learning
from jrl.experiment import evaluation_key, timed, train_key, train_keys


def main() -> None:
    env, params = jrl.make("FrozenLake-v1", is_slippery=True)
    config = q_learning.default_config("FrozenLake-v1")
    q_star = jrl.planning.value_iteration(env.mdp(params), config.gamma)
    v_star = float(jnp.dot(params.mdp.initial_distribution, q_star.max(axis=1)))
    print(f"FrozenLake-v1 (slippery): {env.num_states} states, {env.num_actions} actions")
    print(f"config: {config}")

    result, compile_s, run_s = timed(q_learning.make_train(config, env, params), train_key(0))
    steps = config.num_envs * config.num_steps
    print(f"trained {steps:,} environment steps in {compile_s + run_s:.2f} s (compile included)\n")
    print(f"{'env steps':>12} {'epsilon':>8} {'episode return':>15} {'greedy value':>13} {'optimal':>8}")
    metrics = jax.device_get(result.metrics)
    for i in range(0, len(metrics["step"]), len(metrics["step"]) // 10):
        print(
            f"{int(metrics['step'][i]) * config.num_envs:>12,} {metrics['epsilon'][i]:>8.3f} "
            f"{metrics['episode_return'][i]:>15.3f} {metrics['greedy_value'][i]:>13.4f} {v_star:>8.4f}"
        )
    final = float(metrics["greedy_value"][-1])
    print(f"final greedy policy: {final:.4f} = {100 * final / v_star:.1f}% of the optimal value (gamma {config.gamma})")

    policy, policy_params = q_learning.greedy_policy(result)
    returns = jrl.evaluate(evaluation_key(0), policy, policy_params, env, params, num_episodes=10_000)
    print(f"greedy policy over 10,000 episodes (time limit 100): success rate {float(returns.mean()):.3f}\n")

    sweep_config = config.replace(num_envs=256)
    steps = sweep_config.num_envs * sweep_config.num_steps
    grid = q_learning.hyperparam_grid(sweep_config, alpha=[0.02, 0.05, 0.1, 0.3], epsilon_end=[0.01, 0.05, 0.1, 0.3])
    members = grid.alpha.shape[0]
    grid = jax.tree.map(lambda x: jnp.repeat(x, 2), grid)  # two seeds per setting, 0 and 1
    sweep = jax.vmap(q_learning.make_train(sweep_config, env, params))
    results, compile_s, run_s = timed(sweep, train_keys([0, 1] * members), grid)
    regret = np.asarray((v_star - results.metrics["greedy_value"][:, -1]) / v_star)
    # No policy beats the optimum: a regret below zero is float32 rounding of two equal values
    # computed along different paths (printed as -0.0000 before), so it is shown as 0.
    assert regret.min() > -1e-5, regret.min()
    regret = np.maximum(regret, 0.0)
    print(
        f"sweep: {2 * members} agents ({2 * members * steps:,} environment steps) in one call, {compile_s + run_s:.1f} s"
    )
    print(f"{'alpha':>6} {'eps_end':>8} {'regret seed 0':>14} {'regret seed 1':>14}")
    for i in range(members):
        print(
            f"{float(grid.alpha[2 * i]):>6.2f} {float(grid.epsilon_end[2 * i]):>8.2f} "
            f"{float(regret[2 * i]):>14.4f} {float(regret[2 * i + 1]):>14.4f}"
        )


if __name__ == "__main__":
    main()
