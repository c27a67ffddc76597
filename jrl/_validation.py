"""Host-side argument checks that name the field, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An int (not bool) with ``low <= value <= high``; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]" if low is not None else f"<= {high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def check_float(
    name: str,
    value: Any,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A real number in the interval ``[low, high]`` (``(`` / ``)`` where open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    bad_low = value <= low if low_open else value < low
    bad_high = value >= high if high_open else value > high
    if math.isnan(value) or bad_low or bad_high:
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """A Python or NumPy bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_key(name: str, key: Any) -> None:
    """A single JAX PRNG key: a typed key (``jax.random.key(seed)``, shape ``()``) or a raw uint32
    key (``jax.random.PRNGKey(seed)``, shape ``(2,)`` for the default implementation). Works on
    tracers (it reads only dtype and shape), so it also guards code under ``jit`` and ``vmap``."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{name} must be a single PRNG key, got a batch of keys of shape {shape}; "
                "split keys per call or use jax.vmap over them"
            )
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and shape is not None and len(shape) == 1:
        return
    shown = f"{type(key).__name__} {key!r}" if dtype is None else f"an array of dtype {dtype} and shape {shape}"
    raise TypeError(
        f"{name} must be a JAX PRNG key: pass jax.random.key(seed) (or jax.random.PRNGKey(seed)), got {shown}"
    )
