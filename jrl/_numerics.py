"""Arithmetic that gives the same bits with and without ``vmap``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rounded(product: jax.Array) -> jax.Array:
    """``product``, rounded to its dtype before anything is added to it.

    XLA on CPU contracts ``a * b + c`` into one fused multiply-add (a single rounding) whenever the
    two ops end up in the same loop, and it fuses a vmapped graph differently from the unbatched
    one, so the same update can round differently with and without ``vmap``. The select below
    (NaN stays NaN) sits between the multiply and the add and keeps the compiler from contracting
    them, so results stay bit-identical. ``lax.optimization_barrier`` does not help here: XLA's CPU
    pipeline removes it before fusion.
    """
    return jnp.where(jnp.isnan(product), jnp.nan, product)
