"""The training scaffolding every algorithm shares: the logging block, in-loop evaluation, early
stopping at ``stop_return`` and the chunked ``run`` scan.

An algorithm supplies one training iteration and how it turns an interval into metrics;
``make_run`` builds ``run(state, num_logs) -> (state, metrics)`` around them::

    run = make_run(
        iteration,           # (state, t) -> (state, stats [K]): iteration t (a global counter)
        num_stats=K,         # the stats are float32 sums over the interval's iterations
        log_interval=config.resolved_log_interval(),
        evaluate=in_loop_evaluation(env, env_params, config.eval_episodes, policy, policy_params),
        record=record,       # (state, Interval) -> (state, metrics): the algorithm's own metrics
        stop_return=config.stop_return,
    )

One logging block runs ``log_interval`` iterations in a ``lax.scan``, evaluates the greedy policy,
lets ``record`` build the interval's metrics (``step`` and ``eval_return`` are added here) and
advances ``state.log_index``. ``run`` scans ``num_logs`` blocks, so running the blocks in chunks
(``run(state, 2)`` then ``run(state, 3)``) gives the same bits as ``run(state, 5)``.

The state is any ``flax.struct`` dataclass with an int32 ``log_index``, and with ``eval_key`` for
an in-loop evaluation (interval ``i`` draws its episodes with ``fold_in(eval_key, i)``) and a bool
``stopped`` for early stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jrl._validation import check_int
from jrl.envs.core import Environment
from jrl.evaluate import evaluate as evaluate_policy
from jrl.parallel import SINGLE, DataParallel

__all__ = ["Interval", "in_loop_evaluation", "make_run", "mean_or_nan"]


class Interval(NamedTuple):
    """What one logging interval produced, for the algorithm's ``record``.

    Attributes:
        step: int32, iterations done at the interval's end (``(log_index + 1) * log_interval``).
        stats: float32 ``[K]``, the iterations' stats summed over the interval (zeros if skipped),
            and over the devices of a data-parallel run (``DataParallel.sum``).
        eval_return: float32, mean return of the in-loop evaluation (NaN without one, or skipped);
            in a data-parallel run, the mean over devices of each device's own evaluation.
        skipped: bool, the interval was not run because ``stop_return`` had been reached before
            (always False without early stopping).
    """

    step: jax.Array
    stats: jax.Array
    eval_return: jax.Array
    skipped: jax.Array


def mean_or_nan(total: jax.Array, count: jax.Array) -> jax.Array:
    """``total / count``, NaN where ``count`` is 0 (a mean over no episodes)."""
    return jnp.where(count > 0, total / count, jnp.nan)


def in_loop_evaluation(
    env: Environment,
    env_params: Any,
    num_episodes: int,
    policy: Callable[[Any, jax.Array, jax.Array], jax.Array],
    policy_params: Callable[[Any], Any],
    batched: bool = False,
) -> Callable[[Any], jax.Array] | None:
    """``evaluate(state) -> float32``: the mean return of ``num_episodes`` episodes of ``policy``
    (``jrl.evaluate``, with ``batched``) with ``policy_params(state)``, drawn with
    ``fold_in(state.eval_key, state.log_index)``; ``None`` when ``num_episodes`` is 0 (the
    ``eval_return`` metric is NaN)."""
    if num_episodes == 0:
        return None

    def evaluate(state: Any) -> jax.Array:
        key = jax.random.fold_in(state.eval_key, state.log_index)
        params = policy_params(state)
        return jnp.mean(
            evaluate_policy(key, policy, params, env, env_params, num_episodes=num_episodes, batched=batched)
        )

    return evaluate


def make_run(
    iteration: Callable[[Any, jax.Array], tuple[Any, jax.Array]],
    num_stats: int,
    log_interval: int,
    evaluate: Callable[[Any], jax.Array] | None,
    record: Callable[[Any, Interval], tuple[Any, dict]],
    stop_return: float | None = None,
    parallel: DataParallel = SINGLE,
) -> Callable[[Any, int], tuple[Any, dict]]:
    """``run(state, num_logs) -> (state, metrics)``: ``num_logs`` logging blocks (see the module
    docstring); metrics are ``record``'s dict plus ``step`` and ``eval_return``, arrays ``[num_logs]``.

    With ``stop_return``, a block whose evaluation reaches it sets ``state.stopped``, and every later
    block is skipped: its iterations and evaluation do not run (under ``vmap``, a stopped member's
    block runs with the others and is dropped), ``Interval.skipped`` is True, its stats zeros and
    its ``eval_return`` NaN.

    With ``parallel`` over several devices, each device runs the blocks on its shard; the
    interval's stats are added and its evaluations averaged over the devices before ``record`` and
    the ``stop_return`` test, so every device records, stops and keeps the same.
    """

    def train_block(state: Any) -> tuple[Any, jax.Array, jax.Array]:
        """``log_interval`` iterations, then the evaluation: (state, stats [K], eval_return)."""

        def step(carry: tuple, t: jax.Array) -> tuple:
            state, stats = carry
            state, increment = iteration(state, t)
            return (state, stats + increment), None

        steps = state.log_index * log_interval + jnp.arange(log_interval, dtype=jnp.int32)
        (state, stats), _ = jax.lax.scan(step, (state, jnp.zeros(num_stats, jnp.float32)), steps)
        eval_return = jnp.float32(jnp.nan) if evaluate is None else evaluate(state)
        return state, stats, eval_return

    def skip_block(state: Any) -> tuple[Any, jax.Array, jax.Array]:
        return state, jnp.zeros(num_stats, jnp.float32), jnp.float32(jnp.nan)

    @jax.custom_batching.custom_vmap
    def train_unless_stopped(state: Any) -> tuple[Any, jax.Array, jax.Array]:
        """``train_block``, or nothing once ``stop_return`` was reached: one run skips the rest."""
        return jax.lax.cond(state.stopped, skip_block, train_block, state)

    @train_unless_stopped.def_vmap
    def _train_unless_stopped_batched(axis_size: int, in_batched: list, state: Any) -> tuple:
        # Under vmap every member trains and a stopped member's block is dropped afterwards.
        # vmap's own rule for a cond with a batched predicate would broadcast every operand, the
        # shared interval counter too, turning an algorithm's "learn now?" cond into a select that
        # runs both sides; and it made a member's numbers depend on how many members ran beside it.
        (batched,) = in_batched
        in_axes = jax.tree_util.tree_map(lambda b: 0 if b else None, batched)
        trained, stats, eval_return = jax.vmap(train_block, in_axes=(in_axes,))(state)
        stopped = state.stopped if batched.stopped else jnp.broadcast_to(state.stopped, (axis_size,))

        def keep(old: jax.Array, new: jax.Array, old_batched: bool) -> jax.Array:
            old = old if old_batched else jnp.broadcast_to(old, new.shape)
            return jnp.where(stopped.reshape((axis_size,) + (1,) * (new.ndim - 1)), old, new)

        out = jax.tree_util.tree_map(keep, state, trained, batched).replace(log_index=state.log_index)
        stats = jnp.where(stopped[:, None], 0.0, stats)
        eval_return = jnp.where(stopped, jnp.nan, eval_return)
        out_batched = jax.tree_util.tree_map(lambda _: True, batched).replace(log_index=batched.log_index)
        return (out, stats, eval_return), (out_batched, True, True)

    def log_block(state: Any, _: Any) -> tuple[Any, dict]:
        if stop_return is None:
            skipped = jnp.bool_(False)
            state, stats, eval_return = train_block(state)
            stats, eval_return = parallel.sum(stats), parallel.mean(eval_return)
        else:
            skipped = state.stopped
            state, stats, eval_return = train_unless_stopped(state)
            stats, eval_return = parallel.sum(stats), parallel.mean(eval_return)
            state = state.replace(stopped=state.stopped | (eval_return >= stop_return))
        step = (state.log_index + 1) * log_interval
        state, metrics = record(state, Interval(step, stats, eval_return, skipped))
        metrics = {"step": step, "eval_return": eval_return, **metrics}
        return state.replace(log_index=state.log_index + 1), metrics

    def run(state: Any, num_logs: int) -> tuple[Any, dict]:
        check_int("num_logs", num_logs, 1)
        return jax.lax.scan(log_block, state, None, length=num_logs)

    return run
