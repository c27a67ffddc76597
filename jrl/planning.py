"""Exact solvers for tabular models: ground truth for tests, experiments and training metrics.

Values are expected *discounted* returns with the episode ending at terminal outcomes; time limits
are not part of the model (as in the usual definition of Q* for a time-limited task).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jrl._numerics import rounded
from jrl._validation import check_float, check_int
from jrl.envs.tabular import TabularMDP

__all__ = ["bellman_backup", "finite_horizon_optimal_values", "policy_evaluation", "policy_q_values", "value_iteration"]


def _host_model(mdp: TabularMDP):
    probs = np.asarray(mdp.transition_probs, np.float64)
    # float32 1/3 + 1/3 + 1/3 is 1 + 3e-8: renormalized, undiscounted values cannot creep upward.
    probs = probs / probs.sum(axis=-1, keepdims=True)
    return (
        probs,
        np.asarray(mdp.next_states),
        np.asarray(mdp.rewards, np.float64),
        np.asarray(mdp.terminals, bool),
    )


def bellman_backup(mdp: TabularMDP, values: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """``Q(s, a) = sum_k p_k (r_k + gamma (1 - terminal_k) V(s'_k))``: float ``[S, A]`` from ``V [S]``."""
    continuation = jnp.where(mdp.terminals, 0.0, values[mdp.next_states])
    return jnp.sum(mdp.transition_probs * (mdp.rewards + gamma * continuation), axis=-1)


def value_iteration(mdp: TabularMDP, gamma: float, tol: float = 1e-8, max_iters: int = 1_000_000) -> jax.Array:
    """Optimal action values Q*: float32 ``[S, A]``.

    Runs on the host in float64 until successive iterates differ by at most ``tol`` (max norm),
    so the float32 result is exact to float32 rounding for ``gamma < 1``. ``gamma = 1`` is allowed
    when every policy's returns are bounded; otherwise the iteration does not converge and a
    ``ValueError`` says so.
    """
    gamma = check_float("gamma", gamma, 0.0, 1.0)
    check_float("tol", tol, 0.0, 1.0, low_open=True)
    check_int("max_iters", max_iters, 1)
    p, ns, r, term = _host_model(mdp)
    expected_reward = np.sum(p * r, axis=-1)
    q = np.zeros(p.shape[:2])
    for _ in range(max_iters):
        v = q.max(axis=1)
        q_new = expected_reward + gamma * np.sum(p * np.where(term, 0.0, v[ns]), axis=-1)
        delta = np.max(np.abs(q_new - q))
        q = q_new
        if delta <= tol:
            return jnp.asarray(q, jnp.float32)
    raise ValueError(
        f"value_iteration did not converge to tol={tol} in max_iters={max_iters} (last change {delta:.3g}); "
        "with gamma=1 the optimal values may be unbounded"
    )


def finite_horizon_optimal_values(mdp: TabularMDP, horizon: int) -> np.ndarray:
    """The best expected *undiscounted* return within ``horizon`` steps from each state: float64
    ``[S]``, by backward induction on the host (the optimum over all policies, time-dependent ones
    included, so an upper bound on what a stationary greedy policy earns within a time limit).

    ``initial_distribution @ finite_horizon_optimal_values(mdp, max_steps)`` is the best expected
    episode return under a time limit of ``max_steps``; the scale for scoring a learned policy.
    """
    horizon = check_int("horizon", horizon, 0, 10**7)
    p, ns, r, term = _host_model(mdp)
    expected_reward = np.sum(p * r, axis=-1)
    continuing = np.where(term, 0.0, p)
    values = np.zeros(p.shape[0])
    for _ in range(horizon):
        new = (expected_reward + np.sum(continuing * values[ns], axis=-1)).max(axis=1)
        if np.array_equal(new, values):  # every optimal episode ends within the steps taken
            break
        values = new
    return values


def policy_evaluation(mdp: TabularMDP, policy: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """Exact state values of a policy: float32 ``[S]``. Pure JAX (works under ``jit``/``vmap``).

    ``policy`` is either deterministic, int ``[S]`` (action per state), or stochastic, float
    ``[S, A]`` (probabilities per state). Solves ``(I - gamma P_pi) V = r_pi`` directly. With
    ``gamma = 1`` the system is singular when the policy can avoid termination forever, and the
    result is meaningless (infinite, NaN or huge).
    """
    num_states, num_actions = mdp.transition_probs.shape[:2]
    if jnp.issubdtype(jnp.asarray(policy).dtype, jnp.integer):
        probs = jax.nn.one_hot(policy, num_actions, dtype=jnp.float32)
    else:
        probs = jnp.asarray(policy, jnp.float32)
    # Outcome weights under the policy: [S, A, K] -> transitions into next states, terminals cut.
    # Products are materialized before the sums (see jrl._numerics.rounded): the same bits with and
    # without vmap, whatever XLA fuses.
    weights = rounded(probs[:, :, None] * mdp.transition_probs)
    r_pi = jnp.sum(rounded(weights * mdp.rewards), axis=(1, 2))
    continuing = jnp.where(mdp.terminals, 0.0, weights)
    p_pi = jnp.zeros((num_states, num_states), jnp.float32)
    p_pi = p_pi.at[jnp.arange(num_states)[:, None, None], mdp.next_states].add(continuing)
    return jnp.linalg.solve(jnp.eye(num_states) - rounded(gamma * p_pi), r_pi)


def policy_q_values(mdp: TabularMDP, policy: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """Exact action values of a policy, float32 ``[S, A]`` (one backup of its state values)."""
    return bellman_backup(mdp, policy_evaluation(mdp, policy, gamma), gamma)
