"""Pieces every training loop shares: epsilon-greedy exploration, its schedule, config helpers."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jrl._numerics import rounded

__all__ = ["divisor_closest_to", "epsilon_greedy", "linear_epsilon", "replace_config"]


def epsilon_greedy(q_rows: jax.Array, epsilon: jax.Array, u: jax.Array) -> jax.Array:
    """Epsilon-greedy actions with uniformly random tie-breaking, from one uniform per row.

    ``u < epsilon`` explores (action ``floor(u / epsilon * A)``); otherwise ``(u - epsilon) /
    (1 - epsilon)``, again uniform on [0, 1), picks among the actions tied for the maximum.
    ``q_rows``: float ``[N, A]``; ``epsilon``: scalar; ``u``: ``[N]`` in [0, 1). Returns int32 ``[N]``.
    """
    num_actions = q_rows.shape[-1]
    # Loops over the (small, static) action axis: column-wise ops on [N] vectors vectorize well on
    # CPU, where reductions over a short minor axis, argmax and cumsum (reduce-window) do not.
    columns = [q_rows[..., j] for j in range(num_actions)]
    best = functools.reduce(jnp.maximum, columns)
    is_max = [(c == best).astype(jnp.int32) for c in columns]
    num_max = functools.reduce(jnp.add, is_max)
    u_greedy = (u - epsilon) / jnp.maximum(1.0 - epsilon, 1e-30)
    pick = jnp.minimum(jnp.floor(u_greedy * num_max).astype(jnp.int32), num_max - 1)
    # The pick-th (0-based) maximal action: the last index whose running count of maxima is <= pick.
    greedy_action = jnp.zeros_like(pick)
    seen = jnp.zeros_like(pick)
    for j in range(1, num_actions):
        seen = seen + is_max[j - 1]
        greedy_action = jnp.where(seen <= pick, j, greedy_action)
    random_action = jnp.floor(u / jnp.maximum(epsilon, 1e-30) * num_actions).astype(jnp.int32)
    return jnp.where(u < epsilon, jnp.minimum(random_action, num_actions - 1), greedy_action)


def linear_epsilon(start: jax.Array, end: jax.Array, decay_steps: float, t: jax.Array) -> jax.Array:
    """Epsilon at step ``t``: linear from ``start`` to ``end`` over ``decay_steps`` steps, then
    ``end``; ``decay_steps == 0`` means ``end`` from the first step. float32, shaped like ``t``."""
    if decay_steps == 0:
        return jnp.broadcast_to(end, jnp.shape(t)).astype(jnp.float32)
    frac = jnp.minimum(t.astype(jnp.float32) / decay_steps, 1.0)
    return start + rounded(frac * (end - start))


def replace_config(config: Any, changes: dict) -> Any:
    """``dataclasses.replace`` that names unknown fields (``TypeError``) and re-validates."""
    unknown = set(changes) - {f.name for f in dataclasses.fields(config)}
    if unknown:
        raise TypeError(f"{type(config).__name__} has no field(s) {sorted(unknown)}")
    return dataclasses.replace(config, **changes)


def divisor_closest_to(n: int, records: int) -> int:
    """The divisor ``d`` of ``n`` for which ``n // d`` is closest to ``records`` (ties: smaller d)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return min(small + [n // d for d in small], key=lambda d: (abs(n // d - records), d))
