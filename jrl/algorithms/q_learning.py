"""Tabular Q-learning (and SARSA, Expected SARSA, Double Q-learning), compiled end to end.

``make_train(config, env, env_params) -> train(key, hyperparams=None)``: one ``lax.scan`` under
``jit`` steps ``num_envs`` environments ``num_steps`` times, choosing epsilon-greedy actions and
updating one shared Q-table every step, and logs metrics every ``log_interval`` steps.

How many environments update one table in the same step (a design decision, see
``docs/q_learning.md``): every environment computes its TD error against the same pre-step table;
the errors that land on the same ``(s, a)`` are **averaged**, and the table moves by ``alpha``
times that mean::

    Q(s, a) += alpha * mean_{envs i with (s_i, a_i) = (s, a)} [r_i + gamma * boot_i - Q(s, a)]

This is the ordinary update with a lower-variance sample of the same expected target, so it keeps
Q-learning's fixed point Q* and its step-size conditions; summing instead would multiply the step
by the visit count (thousands with 16,384 environments on a 16-state task) and diverge.

Bootstrapping: ``boot_i`` is computed at ``info["final_observation"]`` and dropped only when the
transition *terminated*; a *truncated* transition (time limit) bootstraps as usual.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl._numerics import rounded
from jrl._validation import check_choice, check_float, check_int, check_key
from jrl.algorithms.common import divisor_closest_to, epsilon_greedy, linear_epsilon, replace_config
from jrl.envs.tabular import TabularEnv, TabularParams, select_index
from jrl.planning import policy_evaluation

__all__ = [
    "ALGORITHMS",
    "QLearningConfig",
    "QLearningHyperparams",
    "QLearningResult",
    "default_config",
    "epsilon_greedy",
    "greedy_policy",
    "hyperparam_grid",
    "make_train",
]

ALGORITHMS = ("q_learning", "sarsa", "expected_sarsa", "double_q_learning")


@struct.dataclass
class QLearningHyperparams:
    """The numeric hyperparameters that ``train`` takes as data, so ``vmap`` can sweep them.

    All float32 scalars (or ``[G]`` for a grid): ``alpha`` step size, ``gamma`` discount,
    ``epsilon_start``/``epsilon_end`` the exploration schedule's ends.
    """

    alpha: jax.Array
    gamma: jax.Array
    epsilon_start: jax.Array
    epsilon_end: jax.Array


@dataclasses.dataclass(frozen=True)
class QLearningConfig:
    """Settings of a tabular run; validated on construction and on ``replace``.

    Attributes:
        num_envs: parallel environments feeding the one Q-table (>= 1).
        num_steps: steps of every environment; ``num_envs * num_steps`` transitions in all.
        alpha: step size, in (0, 1].
        gamma: discount, in [0, 1].
        epsilon_start, epsilon_end: exploration rate, in [0, 1], decayed linearly from start to end
            over the first ``epsilon_decay_fraction`` of the steps, then held.
        epsilon_decay_fraction: in [0, 1]; 0 means ``epsilon_end`` from the first step.
        algorithm: ``"q_learning"``, ``"sarsa"``, ``"expected_sarsa"`` or ``"double_q_learning"``.
        q_init: initial value of every table entry (optimistic initialization if high).
        log_interval: steps between metric records; must divide ``num_steps``. ``None`` picks the
            divisor of ``num_steps`` that gives closest to 100 records.
    """

    num_envs: int = 1024
    num_steps: int = 10_000
    alpha: float = 0.1
    gamma: float = 0.99
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_fraction: float = 0.5
    algorithm: str = "q_learning"
    q_init: float = 0.0
    log_interval: int | None = None

    def __post_init__(self) -> None:
        check_int("num_envs", self.num_envs, 1, 2**24)
        check_int("num_steps", self.num_steps, 1, 2**31 - 1)
        check_float("alpha", self.alpha, 0.0, 1.0, low_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_float("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_float("epsilon_decay_fraction", self.epsilon_decay_fraction, 0.0, 1.0)
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_float("q_init", self.q_init, -1e30, 1e30)
        if self.log_interval is not None:
            check_int("log_interval", self.log_interval, 1, self.num_steps)
            if self.num_steps % self.log_interval:
                raise ValueError(
                    f"log_interval={self.log_interval} must divide num_steps={self.num_steps} "
                    "(or be None to choose one)"
                )

    def replace(self, **changes: Any) -> QLearningConfig:
        """A copy with ``changes`` applied (and validated)."""
        return replace_config(self, changes)

    def resolved_log_interval(self) -> int:
        """``log_interval``, or the divisor of ``num_steps`` giving closest to 100 records."""
        if self.log_interval is not None:
            return self.log_interval
        return divisor_closest_to(self.num_steps, 100)

    def hyperparams(self) -> QLearningHyperparams:
        """This config's numeric hyperparameters as a pytree of float32 scalars."""
        return QLearningHyperparams(
            alpha=jnp.float32(self.alpha),
            gamma=jnp.float32(self.gamma),
            epsilon_start=jnp.float32(self.epsilon_start),
            epsilon_end=jnp.float32(self.epsilon_end),
        )


def hyperparam_grid(config: QLearningConfig, **axes: Sequence[float]) -> QLearningHyperparams:
    """Every combination of the given values (Cartesian product), stacked: leaves float32 ``[G]``.

    ``hyperparam_grid(config, alpha=[0.05, 0.1], gamma=[0.9, 0.99])`` has G = 4, in row-major order
    of the keywords. Every combination is validated like a config. Train the grid in one call with
    ``jax.vmap(train, in_axes=(None, 0))(key, grid)`` (or per-member keys with ``in_axes=0``).
    """
    names = [f.name for f in dataclasses.fields(QLearningHyperparams)]
    unknown = sorted(set(axes) - set(names))
    if unknown:
        raise TypeError(f"hyperparam_grid sweeps only {names}; got {unknown}")
    if not axes:
        raise ValueError("hyperparam_grid needs at least one axis, e.g. alpha=[0.05, 0.1]")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise TypeError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
    members = [
        config.replace(**dict(zip(axes, combo, strict=True))).hyperparams()
        for combo in itertools.product(*axes.values())
    ]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *members)


@struct.dataclass
class QLearningResult:
    """What ``train`` returns.

    Attributes:
        q_table: float32 ``[S, A]`` (Double Q-learning: the mean of its two tables).
        metrics: dict of arrays ``[num_logs]``, one entry per ``log_interval`` steps:
            ``step`` (steps per environment so far; environment steps = step * num_envs),
            ``epsilon``, ``episode_return`` / ``episode_length`` (mean undiscounted return and
            length of the episodes that finished in the interval, NaN if none did),
            ``episodes`` (how many finished), ``td_error`` (mean absolute TD error),
            ``greedy_value`` (exact discounted value of the greedy policy from the initial
            distribution, from the model), ``q_finite`` (every table entry finite).
    """

    q_table: jax.Array
    metrics: dict


def _epsilon_greedy_probs(q_rows: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Action probabilities of ``epsilon_greedy``: float ``[N, A]`` (ties share the greedy mass)."""
    is_max = q_rows == jnp.max(q_rows, axis=-1, keepdims=True)
    greedy = is_max / jnp.sum(is_max, axis=-1, keepdims=True)
    return epsilon / q_rows.shape[-1] + rounded((1.0 - epsilon) * greedy)


def _mean_update(q: jax.Array, index: jax.Array, delta: jax.Array, weight: jax.Array, alpha: jax.Array) -> jax.Array:
    """``q[i] += alpha * (weighted mean of delta over rows with index i)``; ``q`` float ``[S, A]``."""
    size = q.size
    sums = jnp.zeros(size, q.dtype).at[index].add(delta * weight)
    counts = jnp.zeros(size, q.dtype).at[index].add(weight)
    return q + rounded(alpha * (sums / jnp.maximum(counts, 1.0)).reshape(q.shape))


@struct.dataclass
class _Runner:
    q_a: jax.Array  # [S, A]
    q_b: jax.Array  # [S, A]; Double Q-learning's second table (unused otherwise)
    obs: jax.Array  # [N]
    env_state: Any
    action: jax.Array  # [N]; SARSA's already-chosen next action
    episode_return: jax.Array  # [N]
    episode_length: jax.Array  # [N]


def make_train(config: QLearningConfig, env: TabularEnv, env_params: TabularParams) -> Callable[..., QLearningResult]:
    """Validate everything on the host, then return ``train(key, hyperparams=None) -> QLearningResult``.

    ``hyperparams`` (a ``QLearningHyperparams``) defaults to ``config.hyperparams()``; pass it to
    sweep alpha, gamma and epsilon with ``vmap``. ``train`` is pure: ``jax.jit(train)(key)``.

    Raises:
        TypeError: ``config`` is not a ``QLearningConfig``, or ``env`` is not tabular (Q-learning
            needs a finite state space; use ``jrl.algorithms.dqn`` for the others).
    """
    if not isinstance(config, QLearningConfig):
        raise TypeError(f"config must be a QLearningConfig, got {type(config).__name__}")
    if not isinstance(env, TabularEnv) or not isinstance(env_params, TabularParams):
        raise TypeError(
            f"tabular Q-learning needs a tabular environment (finite states with an exact model, "
            f"env.mdp(params)); got {type(env).__name__} with {type(env_params).__name__}. "
            "Use jrl.algorithms.dqn for large or continuous state spaces"
        )
    if env_params.mdp.num_states != env.num_states or env_params.mdp.num_actions != env.num_actions:
        raise ValueError(
            f"env_params' model is [{env_params.mdp.num_states}, {env_params.mdp.num_actions}] states x actions "
            f"but env is [{env.num_states}, {env.num_actions}]: params from another environment?"
        )
    num_envs, num_actions = config.num_envs, env.num_actions
    log_interval = config.resolved_log_interval()
    num_logs = config.num_steps // log_interval
    decay_steps = config.epsilon_decay_fraction * config.num_steps  # 0: epsilon_end throughout
    algorithm = config.algorithm
    double = algorithm == "double_q_learning"
    # Uniforms per environment per step: action, transition, reset, then SARSA's action at the
    # final observation or Double Q-learning's coin.
    num_uniforms = 4 if algorithm in ("sarsa", "double_q_learning") else 3

    def epsilon_at(hp: QLearningHyperparams, t: jax.Array) -> jax.Array:
        return linear_epsilon(hp.epsilon_start, hp.epsilon_end, decay_steps, t)

    def bootstrap(runner, final_obs, next_obs, done, epsilon_next, u):
        """Bootstrap values at the final observations, and the action carried to the next step
        (SARSA's already-chosen action; unused otherwise). ``[N]`` each."""
        q_next = runner.q_a[final_obs]
        if algorithm == "q_learning":
            return jnp.max(q_next, axis=-1), runner.action
        if algorithm == "expected_sarsa":
            return jnp.sum(rounded(_epsilon_greedy_probs(q_next, epsilon_next) * q_next), axis=-1), runner.action
        # SARSA: the action the agent takes next, at next_obs; after a reset that action belongs to
        # the new episode, so the bootstrap uses a fresh draw at final_obs instead.
        next_action = epsilon_greedy(runner.q_a[next_obs], epsilon_next, u[0])
        boot_action = jnp.where(done, epsilon_greedy(q_next, epsilon_next, u[3]), next_action)
        return select_index(boot_action, q_next), next_action

    def env_step(hp, runner, t, key):
        # [num_uniforms, N]: contiguous rows are markedly faster on CPU than [N, num_uniforms] columns.
        u = jax.random.uniform(key, (num_uniforms, num_envs))
        epsilon = epsilon_at(hp, t)
        rows_a = runner.q_a[runner.obs]  # [N, A], gathered once: gathers are the costly part on CPU
        rows_behave = rows_a + runner.q_b[runner.obs] if double else rows_a
        if algorithm == "sarsa":
            action = runner.action
        else:
            action = epsilon_greedy(rows_behave, epsilon, u[0])
        next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
            env.step_from_uniforms, in_axes=(0, 0, 0, 0, None)
        )(u[1], u[2], runner.env_state, action, env_params)
        final_obs = info["final_observation"]
        done = terminated | truncated
        epsilon_next = epsilon_at(hp, t + 1)
        index = runner.obs * num_actions + action
        not_terminal = 1.0 - terminated.astype(jnp.float32)

        if double:
            coin = u[3] < 0.5  # True: update table A, evaluated by B
            q_upd = jnp.where(coin[:, None], rows_a, runner.q_b[runner.obs])
            sel = jnp.where(coin[:, None], runner.q_a[final_obs], runner.q_b[final_obs])
            ev = jnp.where(coin[:, None], runner.q_b[final_obs], runner.q_a[final_obs])
            boot = jnp.take_along_axis(ev, jnp.argmax(sel, axis=-1)[:, None], axis=-1)[:, 0]
            q_sa = select_index(action, q_upd)
            delta = (reward + rounded(hp.gamma * not_terminal * boot)) - q_sa
            weight_a = coin.astype(jnp.float32)
            q_a = _mean_update(runner.q_a, index, delta, weight_a, hp.alpha)
            q_b = _mean_update(runner.q_b, index, delta, 1.0 - weight_a, hp.alpha)
            next_action = runner.action
        else:
            boot, next_action = bootstrap(runner, final_obs, next_obs, done, epsilon_next, u)
            q_sa = select_index(action, rows_a)
            delta = (reward + rounded(hp.gamma * not_terminal * boot)) - q_sa
            q_a = _mean_update(runner.q_a, index, delta, jnp.ones_like(delta), hp.alpha)
            q_b = runner.q_b

        episode_return = runner.episode_return + reward
        episode_length = runner.episode_length + 1
        stats = jnp.stack(
            [
                jnp.sum(jnp.where(done, episode_return, 0.0)),
                jnp.sum(jnp.where(done, episode_length, 0).astype(jnp.float32)),
                jnp.sum(done.astype(jnp.float32)),
                jnp.mean(jnp.abs(delta)),
            ]
        )
        runner = _Runner(
            q_a=q_a,
            q_b=q_b,
            obs=next_obs,
            env_state=env_state,
            action=next_action,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        return runner, stats

    def train(key: jax.Array, hyperparams: QLearningHyperparams | None = None) -> QLearningResult:
        check_key("key", key)
        hp = config.hyperparams() if hyperparams is None else hyperparams
        key_init, key_loop = jax.random.split(key)
        u0 = jax.random.uniform(key_init, (2, num_envs))
        obs, env_state = jax.vmap(env.reset_from_uniform, in_axes=(0, None))(u0[0], env_params)
        q0 = jnp.full((env.num_states, num_actions), config.q_init, jnp.float32)
        q_b0 = q0 if double else jnp.zeros((1, 1), jnp.float32)  # keep the carry small when unused
        first_action = epsilon_greedy(q0[obs], epsilon_at(hp, jnp.int32(0)), u0[1])
        runner = _Runner(
            q_a=q0,
            q_b=q_b0,
            obs=obs,
            env_state=env_state,
            action=first_action,
            episode_return=jnp.zeros(num_envs, jnp.float32),
            episode_length=jnp.zeros(num_envs, jnp.int32),
        )

        def inner(carry, t):
            runner, stats = carry
            runner, step_stats = env_step(hp, runner, t, jax.random.fold_in(key_loop, t))
            return (runner, stats + step_stats), None

        def outer(runner, log_index):
            steps = log_index * log_interval + jnp.arange(log_interval, dtype=jnp.int32)
            (runner, stats), _ = jax.lax.scan(inner, (runner, jnp.zeros(4, jnp.float32)), steps)
            q = 0.5 * (runner.q_a + runner.q_b) if double else runner.q_a
            greedy = jnp.argmax(q, axis=-1)
            values = policy_evaluation(env_params.mdp, greedy, hp.gamma)
            finished = stats[2]
            metrics = {
                "step": (log_index + 1) * log_interval,
                "epsilon": epsilon_at(hp, (log_index + 1) * log_interval - 1),
                "episode_return": jnp.where(finished > 0, stats[0] / finished, jnp.nan),
                "episode_length": jnp.where(finished > 0, stats[1] / finished, jnp.nan),
                "episodes": finished.astype(jnp.int32),
                "td_error": stats[3] / log_interval,
                # An elementwise product and a sum, not a dot: batched and unbatched dots run
                # different kernels and round differently.
                "greedy_value": jnp.sum(rounded(env_params.mdp.initial_distribution * values)),
                "q_finite": jnp.all(jnp.isfinite(q)),
            }
            return runner, metrics

        runner, metrics = jax.lax.scan(outer, runner, jnp.arange(num_logs, dtype=jnp.int32))
        q = 0.5 * (runner.q_a + runner.q_b) if double else runner.q_a
        return QLearningResult(q_table=q, metrics=metrics)

    return train


def greedy_policy(result: QLearningResult) -> tuple[Callable, jax.Array]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the greedy action of the learned table
    (first maximal action on ties). ``policy(q_table, obs, key) -> int32 action``."""
    if not isinstance(result, QLearningResult):
        raise TypeError(f"greedy_policy needs a QLearningResult, got {type(result).__name__}")
    if result.q_table.ndim != 2:
        raise ValueError(
            f"result.q_table must be [S, A], got shape {result.q_table.shape}; "
            "for vmapped results pick one member first, e.g. jax.tree.map(lambda x: x[0], results)"
        )
    return _greedy_action, result.q_table


def _greedy_action(q_table: jax.Array, obs: jax.Array, key: jax.Array) -> jax.Array:
    del key
    return jnp.argmax(q_table[obs]).astype(jnp.int32)


# Tuned per registered tabular environment by experiments/tune_q_learning.py (docs/q_learning.md).
# Budget and gamma fixed per environment; alpha and epsilon_end chosen by the sweep (3 seeds).
_DEFAULTS: dict[str, dict] = {
    "FrozenLake-v1": dict(num_envs=1024, num_steps=2000, gamma=0.99, alpha=0.1, epsilon_end=0.1),
    "FrozenLake8x8-v1": dict(num_envs=1024, num_steps=5000, gamma=0.99, alpha=0.05, epsilon_end=0.05),
    "CliffWalking-v1": dict(num_envs=256, num_steps=2000, gamma=0.99, alpha=0.5, epsilon_end=0.05),
    "CliffWalkingSlippery-v1": dict(num_envs=1024, num_steps=5000, gamma=0.99, alpha=0.05, epsilon_end=0.05),
    "Taxi-v4": dict(num_envs=1024, num_steps=5000, gamma=0.99, alpha=0.5, epsilon_end=0.05),
    "RandomMDP-v0": dict(num_envs=256, num_steps=2000, gamma=0.9, alpha=0.05, epsilon_end=0.3),
}


def default_config(env_id: str) -> QLearningConfig:
    """Tuned settings for a registered tabular environment (see ``docs/q_learning.md``)."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"no tuned Q-learning config for {env_id!r}; tuned ids: {sorted(_DEFAULTS)}")
    return QLearningConfig(**_DEFAULTS[env_id])
