"""Tabular Q-learning (and SARSA, Expected SARSA, Double Q-learning), compiled end to end.

``make_algorithm(config, env, env_params)`` gives the ``init`` / ``run`` / ``result`` functions
every jrl algorithm has (``jrl.algorithms.common``); ``make_train(config, env, env_params) ->
train(key, hyperparams=None)`` is all of it in one call. Under ``jit`` one ``lax.scan`` steps
``num_envs`` environments ``num_steps`` times, choosing epsilon-greedy actions and updating one
shared Q-table every step, and logs metrics every ``log_interval`` steps.

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

Data parallel (``parallel``, ``jrl train --devices N``): each device steps ``num_envs / N``
environments with its own random stream; the per-``(s, a)`` sums of TD errors and their counts are
added over the devices (``lax.psum``) before the mean is taken, so the table every device keeps
moves exactly as one device's would with all the environments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl._numerics import rounded
from jrl._validation import check_choice, check_float, check_int, check_key
from jrl.algorithms.common import (
    Algorithm,
    Config,
    _runtime_values,
    check_finite,
    epsilon_greedy,
    hyperparam_grid,
    linear_epsilon,
    train_function,
)
from jrl.algorithms.training import Interval, in_loop_evaluation, make_run, mean_or_nan
from jrl.envs.core import Environment
from jrl.envs.tabular import TabularEnv, TabularParams, select_index
from jrl.parallel import SINGLE, DataParallel
from jrl.planning import policy_evaluation

__all__ = [
    "ALGORITHMS",
    "METRICS",
    "QLearningConfig",
    "QLearningHyperparams",
    "QLearningResult",
    "QLearningState",
    "check_env",
    "check_finite",
    "default_config",
    "epsilon_greedy",
    "epsilon_greedy_probs",
    "greedy_policy",
    "greedy_table",
    "hyperparam_grid",
    "make_algorithm",
    "make_train",
    "tuned_env_ids",
]

ALGORITHMS = ("q_learning", "sarsa", "expected_sarsa", "double_q_learning")
#: Every metric a run logs (``QLearningResult``): the shared ones (``common.METRICS``) with the
#: exploration rate ``epsilon`` after ``env_steps``, then this algorithm's own.
METRICS = (
    "step",
    "env_steps",
    "epsilon",
    "episode_return",
    "episodes",
    "eval_return",
    "finite",
    "episode_length",
    "td_error",
    "greedy_value",
)


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
class QLearningConfig(Config):
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
        eval_episodes: greedy episodes run with ``jrl.evaluate`` at the end of every logging
            interval (the ``eval_return`` metric); 0 (the default) skips them (``eval_return``
            NaN: the exact ``greedy_value`` is usually the better measure for a tabular model).
    """

    HYPERPARAMS = QLearningHyperparams
    DEFAULT_RECORDS = 100

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
    eval_episodes: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("num_envs", self.num_envs, 1, 2**24)
        check_int("num_steps", self.num_steps, 1, 2**31 - 1)
        check_float("alpha", self.alpha, 0.0, 1.0, low_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_float("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_float("epsilon_decay_fraction", self.epsilon_decay_fraction, 0.0, 1.0)
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_float("q_init", self.q_init, -1e30, 1e30)
        self._check_log_interval()
        check_int("eval_episodes", self.eval_episodes, 0, 2**20)


@struct.dataclass
class QLearningResult:
    """What ``train`` returns.

    Attributes:
        q_table: float32 ``[S, A]`` (Double Q-learning: the mean of its two tables).
        metrics: dict of arrays ``[num_logs]``, one entry per ``log_interval`` steps: the shared
            ones (``jrl.algorithms.common.METRICS``: ``step``, ``env_steps``, ``episode_return``,
            ``episodes``, ``eval_return``, ``finite`` = every table entry finite), ``epsilon`` (the
            exploration rate of the interval's last step) and ``episode_length`` (mean length of the episodes that ended in the
            interval, NaN if none did), ``td_error`` (mean absolute TD error), ``greedy_value``
            (exact discounted value of the greedy policy from the initial distribution, from the
            model).
    """

    q_table: jax.Array
    metrics: dict


def epsilon_greedy_probs(q_rows: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Action probabilities of ``epsilon_greedy``: float ``[N, A]`` (ties share the greedy mass)."""
    is_max = q_rows == jnp.max(q_rows, axis=-1, keepdims=True)
    greedy = is_max / jnp.sum(is_max, axis=-1, keepdims=True)
    return epsilon / q_rows.shape[-1] + rounded((1.0 - epsilon) * greedy)


def _mean_update(
    q: jax.Array,
    index: jax.Array,
    delta: jax.Array,
    weight: jax.Array,
    alpha: jax.Array,
    parallel: DataParallel = SINGLE,
) -> jax.Array:
    """``q[i] += alpha * (weighted mean of delta over rows with index i)``; ``q`` float ``[S, A]``.
    Over several devices the sums and counts are every device's together (``parallel.sum``)."""
    size = q.size
    sums = jnp.zeros(size, q.dtype).at[index].add(delta * weight)
    counts = jnp.zeros(size, q.dtype).at[index].add(weight)
    sums, counts = parallel.sum((sums, counts))
    return q + rounded(alpha * (sums / jnp.maximum(counts, 1.0)).reshape(q.shape))


@struct.dataclass
class QLearningState:
    """Everything a tabular run needs to continue (``N = num_envs``).

    Attributes:
        q_a: float32 ``[S, A]``, the Q-table (Double Q-learning: its first table).
        q_b: float32 ``[S, A]``, Double Q-learning's second table (``[1, 1]`` and unused otherwise).
        obs: int32 ``[N]``, every environment's current observation.
        env_state: the environments' states (leaves ``[N, ...]``).
        action: int32 ``[N]``, SARSA's already-chosen next action (unused otherwise).
        episode_return, episode_length: ``[N]`` float32 / int32, of the episodes under way.
        key: the loop's key; step ``t`` uses ``fold_in(key, t)``.
        eval_key: the in-loop evaluations' key; interval ``i`` uses ``fold_in(eval_key, i)``.
        hyperparams: ``QLearningHyperparams`` (float32 scalars).
        log_index: int32, logging intervals done (step = log_index * log_interval).
    """

    q_a: jax.Array
    q_b: jax.Array
    obs: jax.Array
    env_state: Any
    action: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    key: jax.Array
    eval_key: jax.Array
    hyperparams: QLearningHyperparams
    log_index: jax.Array


def _check_setup(config: QLearningConfig, env: TabularEnv, env_params: TabularParams) -> None:
    """``TypeError``/``ValueError`` unless ``config`` is a ``QLearningConfig`` and ``env`` a tabular
    environment whose ``env_params`` model fits it."""
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


def _double_update(
    state: QLearningState,
    rows_a: jax.Array,
    final_obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    not_terminal: jax.Array,
    coin: jax.Array,
    parallel: DataParallel = SINGLE,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Double Q-learning's step: where ``coin`` (bool ``[N]``) table A moves towards ``r + gamma
    B(s', argmax A(s'))``, elsewhere B with the roles swapped. Returns (q_a, q_b, delta ``[N]``)."""
    hp = state.hyperparams
    q_upd = jnp.where(coin[:, None], rows_a, state.q_b[state.obs])
    sel = jnp.where(coin[:, None], state.q_a[final_obs], state.q_b[final_obs])
    ev = jnp.where(coin[:, None], state.q_b[final_obs], state.q_a[final_obs])
    boot = jnp.take_along_axis(ev, jnp.argmax(sel, axis=-1)[:, None], axis=-1)[:, 0]
    q_sa = select_index(action, q_upd)
    delta = (reward + rounded(hp.gamma * not_terminal * boot)) - q_sa
    weight_a = coin.astype(jnp.float32)
    index = state.obs * state.q_a.shape[1] + action
    q_a = _mean_update(state.q_a, index, delta, weight_a, hp.alpha, parallel)
    q_b = _mean_update(state.q_b, index, delta, 1.0 - weight_a, hp.alpha, parallel)
    return q_a, q_b, delta


#: Capability: ``make_algorithm`` takes ``parallel`` (``jrl train --devices N``).
DATA_PARALLEL = True


def make_algorithm(
    config: QLearningConfig, env: TabularEnv, env_params: TabularParams, parallel: DataParallel = SINGLE
) -> Algorithm:
    """Validate everything on the host, then return the ``Algorithm`` (``init``, ``run``,
    ``result``; see ``jrl.algorithms.common``) of this config on this environment. All three are
    pure: jit ``run`` with ``static_argnums=1`` (the number of intervals). With ``parallel`` over
    several devices they are one device's program, run under ``shard_map`` (module docstring).

    Raises:
        TypeError: ``config`` is not a ``QLearningConfig``, or ``env`` is not tabular (Q-learning
            needs a finite state space; use ``jrl.algorithms.dqn`` for the others).
    """
    _check_setup(config, env, env_params)
    num_envs, num_actions = parallel.shard("num_envs", config.num_envs), env.num_actions
    log_interval = config.resolved_log_interval()
    decay_steps = config.epsilon_decay_fraction * config.num_steps  # 0: epsilon_end throughout
    algorithm = config.algorithm
    double = algorithm == "double_q_learning"
    # Uniforms per environment per step: action, transition, reset, then SARSA's action at the
    # final observation or Double Q-learning's coin.
    num_uniforms = 4 if algorithm in ("sarsa", "double_q_learning") else 3

    def epsilon_at(hp: QLearningHyperparams, t: jax.Array) -> jax.Array:
        return linear_epsilon(hp.epsilon_start, hp.epsilon_end, decay_steps, t)

    def bootstrap(state, final_obs, next_obs, done, epsilon_next, u):
        """Bootstrap values at the final observations, and the action carried to the next step
        (SARSA's already-chosen action; unused otherwise). ``[N]`` each."""
        q_next = state.q_a[final_obs]
        if algorithm == "q_learning":
            return jnp.max(q_next, axis=-1), state.action
        if algorithm == "expected_sarsa":
            return jnp.sum(rounded(epsilon_greedy_probs(q_next, epsilon_next) * q_next), axis=-1), state.action
        # SARSA: the action the agent takes next, at next_obs; after a reset that action belongs to
        # the new episode, so the bootstrap uses a fresh draw at final_obs instead.
        next_action = epsilon_greedy(state.q_a[next_obs], epsilon_next, u[0])
        boot_action = jnp.where(done, epsilon_greedy(q_next, epsilon_next, u[3]), next_action)
        return select_index(boot_action, q_next), next_action

    def env_step(state: QLearningState, t: jax.Array) -> tuple[QLearningState, jax.Array]:
        hp = state.hyperparams
        # [num_uniforms, N]: contiguous rows are markedly faster on CPU than [N, num_uniforms] columns.
        u = jax.random.uniform(jax.random.fold_in(state.key, t), (num_uniforms, num_envs))
        epsilon = epsilon_at(hp, t)
        rows_a = state.q_a[state.obs]  # [N, A], gathered once: gathers are the costly part on CPU
        rows_behave = rows_a + state.q_b[state.obs] if double else rows_a
        if algorithm == "sarsa":
            action = state.action
        else:
            action = epsilon_greedy(rows_behave, epsilon, u[0])
        next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
            env.step_from_uniforms, in_axes=(0, 0, 0, 0, None)
        )(u[1], u[2], state.env_state, action, env_params)
        final_obs = info["final_observation"]
        done = terminated | truncated
        epsilon_next = epsilon_at(hp, t + 1)
        index = state.obs * num_actions + action
        not_terminal = 1.0 - terminated.astype(jnp.float32)

        if double:
            q_a, q_b, delta = _double_update(
                state, rows_a, final_obs, action, reward, not_terminal, u[3] < 0.5, parallel
            )
            next_action = state.action
        else:
            boot, next_action = bootstrap(state, final_obs, next_obs, done, epsilon_next, u)
            q_sa = select_index(action, rows_a)
            delta = (reward + rounded(hp.gamma * not_terminal * boot)) - q_sa
            q_a = _mean_update(state.q_a, index, delta, jnp.ones_like(delta), hp.alpha, parallel)
            q_b = state.q_b

        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        stats = jnp.stack(
            [
                jnp.sum(jnp.where(done, episode_return, 0.0)),
                jnp.sum(jnp.where(done, episode_length, 0).astype(jnp.float32)),
                jnp.sum(done.astype(jnp.float32)),
                jnp.mean(jnp.abs(delta)),
            ]
        )
        state = state.replace(
            q_a=q_a,
            q_b=q_b,
            obs=next_obs,
            env_state=env_state,
            action=next_action,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        return state, stats

    def init(key: jax.Array, hyperparams: QLearningHyperparams | None = None) -> QLearningState:
        check_key("key", key)
        hp = _runtime_values(config.hyperparams() if hyperparams is None else hyperparams)
        key_init, key_loop = (parallel.device_key(k) for k in jax.random.split(key))
        u0 = jax.random.uniform(key_init, (2, num_envs))
        obs, env_state = jax.vmap(env.reset_from_uniform, in_axes=(0, None))(u0[0], env_params)
        q0 = jnp.full((env.num_states, num_actions), config.q_init, jnp.float32)
        q_b0 = q0 if double else jnp.zeros((1, 1), jnp.float32)  # keep the state small when unused
        return QLearningState(
            q_a=q0,
            q_b=q_b0,
            obs=obs,
            env_state=env_state,
            action=epsilon_greedy(q0[obs], epsilon_at(hp, jnp.int32(0)), u0[1]),
            episode_return=jnp.zeros(num_envs, jnp.float32),
            episode_length=jnp.zeros(num_envs, jnp.int32),
            key=key_loop,
            # Its own stream: key_init is consumed by u0 above, key_loop by fold_in(key_loop, t).
            eval_key=jax.random.fold_in(key_init, 1),
            hyperparams=hp,
            log_index=jnp.int32(0),
        )

    def q_table(state: QLearningState) -> jax.Array:
        return 0.5 * (state.q_a + state.q_b) if double else state.q_a

    def record(state: QLearningState, interval: Interval) -> tuple[QLearningState, dict]:
        """The interval's metrics (``METRICS``; ``step`` and ``eval_return`` come from ``make_run``)."""
        q = q_table(state)
        values = policy_evaluation(env_params.mdp, jnp.argmax(q, axis=-1), state.hyperparams.gamma)
        returns, lengths, finished, td_errors = interval.stats
        metrics = {
            "env_steps": interval.step.astype(jnp.float32) * config.num_envs,
            "epsilon": epsilon_at(state.hyperparams, interval.step - 1),
            "episode_return": mean_or_nan(returns, finished),
            "episodes": finished.astype(jnp.int32),
            "finite": jnp.all(jnp.isfinite(q)),
            "episode_length": mean_or_nan(lengths, finished),
            # Each device's mean |delta| per step, added over devices by make_run: their mean.
            "td_error": td_errors / (log_interval * parallel.count),
            # An elementwise product and a sum, not a dot: batched and unbatched dots run
            # different kernels and round differently.
            "greedy_value": jnp.sum(rounded(env_params.mdp.initial_distribution * values)),
        }
        return state, metrics

    run = make_run(
        env_step,
        num_stats=4,
        log_interval=log_interval,
        evaluate=in_loop_evaluation(env, env_params, config.eval_episodes, _greedy_action, q_table),
        record=record,
        parallel=parallel,
    )

    def result(state: QLearningState, metrics: dict) -> QLearningResult:
        return QLearningResult(q_table=q_table(state), metrics=metrics)

    return Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def make_train(config: QLearningConfig, env: TabularEnv, env_params: TabularParams) -> Callable[..., QLearningResult]:
    """Validate everything on the host, then return ``train(key, hyperparams=None) -> QLearningResult``.

    ``hyperparams`` (a ``QLearningHyperparams``) defaults to ``config.hyperparams()``; pass it to
    sweep alpha, gamma and epsilon with ``vmap``. ``train`` is pure: ``jax.jit(train)(key)``. It is
    ``make_algorithm``'s ``init``, one ``run`` over every logging interval, and ``result``.

    Raises:
        TypeError: ``config`` is not a ``QLearningConfig``, or ``env`` is not tabular (Q-learning
            needs a finite state space; use ``jrl.algorithms.dqn`` for the others).
    """
    return train_function(make_algorithm(config, env, env_params))


def greedy_policy(
    config: Any, env: TabularEnv | None = None, env_params: Any = None, result: QLearningResult | None = None
) -> tuple[Callable, jax.Array]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the greedy action of the learned table
    (first maximal action on ties). ``policy(q_table, obs, key) -> int32 action``.

    The signature every jrl algorithm shares is ``greedy_policy(config, env, env_params, result)``;
    a table needs nothing but itself, so ``greedy_policy(result)`` works too.
    """
    if result is None and env is None and env_params is None:
        config, result = None, config
    if not isinstance(result, QLearningResult):
        raise TypeError(f"greedy_policy needs a QLearningResult, got {type(result).__name__}")
    if result.q_table.ndim != 2:
        raise ValueError(
            f"result.q_table must be [S, A], got shape {result.q_table.shape}; "
            "for vmapped results pick one member first, e.g. jax.tree.map(lambda x: x[0], results)"
        )
    if isinstance(env, TabularEnv) and result.q_table.shape != (env.num_states, env.num_actions):
        raise ValueError(
            f"result.q_table has shape {result.q_table.shape} but {env!r} has [{env.num_states}, {env.num_actions}]"
        )
    return _greedy_action, result.q_table


def greedy_table(result: QLearningResult) -> jax.Array:
    """The learned table ``[..., S, A]``; its first maximal action is ``greedy_policy``'s."""
    return result.q_table


def check_env(env: Environment, env_params: Any) -> None:
    """``ValueError`` unless ``env`` is tabular (Q-learning needs a finite model)."""
    del env_params
    if not isinstance(env, TabularEnv):
        raise ValueError(
            "the Q-learning family is tabular: it needs a finite model (a tabular environment); "
            f"{env.env_id or type(env).__name__} is not tabular: use --algo dqn"
        )


def _greedy_action(q_table: jax.Array, obs: jax.Array, key: jax.Array) -> jax.Array:
    del key
    return jnp.argmax(q_table[obs]).astype(jnp.int32)


# Tuned per registered tabular environment: each row is the choice of the sweep
# experiments/tune_defaults/q_learning/<env>.toml (alpha x epsilon_end on seeds 0-7, budget and gamma
# fixed), reported on the held-out seeds 1000-1031 by experiments/tune_defaults/tune_q_learning.py
# (docs/q_learning.md, "Tuned defaults").
_DEFAULTS: dict[str, dict] = {
    "FrozenLake-v1": dict(num_envs=1024, num_steps=2000, gamma=0.99, alpha=0.1, epsilon_end=0.05),
    "FrozenLake8x8-v1": dict(num_envs=1024, num_steps=5000, gamma=0.99, alpha=0.05, epsilon_end=0.3),
    "CliffWalking-v1": dict(num_envs=256, num_steps=2000, gamma=0.99, alpha=0.05, epsilon_end=0.05),
    "CliffWalkingSlippery-v1": dict(num_envs=1024, num_steps=5000, gamma=0.99, alpha=0.05, epsilon_end=0.05),
    "Taxi-v4": dict(num_envs=1024, num_steps=5000, gamma=0.99, alpha=0.5, epsilon_end=0.05),
    "RandomMDP-v0": dict(num_envs=256, num_steps=2000, gamma=0.9, alpha=0.05, epsilon_end=0.05),
    # Not swept: Sutton & Barto's Figure 6.5 settings (one environment, epsilon 0.1 throughout,
    # alpha 0.1, 300 episodes of at most 2 steps); experiments/maximization_bias/ reproduces it.
    "MaximizationBias-v0": dict(num_envs=1, num_steps=600, gamma=1.0, alpha=0.1, epsilon_start=0.1, epsilon_end=0.1),
}


def tuned_env_ids() -> list[str]:
    """The environment ids ``default_config`` has a tuned Q-learning config for, sorted."""
    return sorted(_DEFAULTS)


def default_config(env_id: str) -> QLearningConfig:
    """Tuned settings for a registered tabular environment (see ``docs/q_learning.md``)."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"no tuned Q-learning config for {env_id!r}; tuned ids: {sorted(_DEFAULTS)}")
    return QLearningConfig(**_DEFAULTS[env_id])
