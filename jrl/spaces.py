"""Observation and action spaces: ``Discrete``, ``Box`` and ``Tokens``.

Spaces are small immutable descriptions. ``sample`` and ``contains`` are pure JAX
functions (usable under ``jit`` and ``vmap``); ``check`` is the host-side validator
that raises a clear error for a bad concrete value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Box", "Discrete", "Space", "Tokens"]


class Space:
    """Base class of all spaces."""

    shape: tuple[int, ...]
    dtype: Any

    def sample(self, key: jax.Array) -> jax.Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def contains(self, x: Any) -> jax.Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, x: Any, what: str = "value") -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _as_concrete_array(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as err:  # e.g. a tracer: contains() is the traced counterpart
        raise TypeError(f"{what} must be a concrete numeric array, got {type(x).__name__}") from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype} ({x!r})")
    return arr


@dataclasses.dataclass(frozen=True)
class Discrete(Space):
    """The integers ``0 <= x < n`` (scalar, int32).

    Args:
        n: number of elements, ``n >= 1``.
    """

    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"Discrete(n): n must be an int >= 1, got {self.n!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> Any:
        return jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniformly random element: int32 scalar."""
        return jax.random.randint(key, (), 0, self.n, dtype=jnp.int32)

    def contains(self, x: Any) -> jax.Array:
        """Whether ``x`` is an element (bool scalar; ``False`` for out-of-range or non-integral values)."""
        x = jnp.asarray(x)
        if x.shape != ():
            return jnp.asarray(False)
        integral = jnp.floor(x) == x if jnp.issubdtype(x.dtype, jnp.floating) else True
        return jnp.logical_and(integral, jnp.logical_and(x >= 0, x < self.n))

    def __repr__(self) -> str:
        return f"Discrete({self.n})"

    def check(self, x: Any, what: str = "value") -> None:
        """Raise ``TypeError``/``ValueError`` naming ``x`` unless it is an element (host side, concrete ``x``)."""
        arr = _as_concrete_array(x, what)
        if arr.shape != ():
            raise ValueError(f"{what} must be a scalar element of Discrete({self.n}), got shape {arr.shape}")
        if arr.dtype.kind == "f" and float(arr) != np.floor(float(arr)):
            raise ValueError(f"{what}={arr.item()!r} is not an integer; Discrete({self.n}) holds 0..{self.n - 1}")
        if not 0 <= arr.item() < self.n:
            raise ValueError(f"{what}={arr.item()!r} is out of range; Discrete({self.n}) holds 0..{self.n - 1}")


@dataclasses.dataclass(frozen=True, eq=False)
class Box(Space):
    """Real vectors with elementwise bounds ``low <= x <= high``.

    Args:
        low, high: bounds, broadcastable to ``shape`` (``-inf``/``inf`` for unbounded).
        shape: the element shape.
        dtype: the element dtype (default float32).
    """

    low: Any
    high: Any
    shape: tuple[int, ...]
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        if not jnp.issubdtype(self.dtype, jnp.floating):
            raise TypeError(f"Box holds real vectors: dtype must be a float dtype, got {np.dtype(self.dtype).name}")
        shape = tuple(int(d) for d in self.shape)
        low = np.broadcast_to(np.asarray(self.low, dtype=self.dtype), shape)
        high = np.broadcast_to(np.asarray(self.high, dtype=self.dtype), shape)
        if np.any(low > high):
            raise ValueError(f"Box: low must be <= high elementwise, got low={low}, high={high}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform in bounded dimensions, standard normal in unbounded ones."""
        low, high = jnp.asarray(self.low), jnp.asarray(self.high)
        k_u, k_n = jax.random.split(key)
        bounded = jnp.isfinite(low) & jnp.isfinite(high)
        uniform = jax.random.uniform(
            k_u, self.shape, self.dtype, jnp.where(bounded, low, 0), jnp.where(bounded, high, 1)
        )
        normal = jax.random.normal(k_n, self.shape, self.dtype)
        return jnp.where(bounded, uniform, jnp.clip(normal, low, high)).astype(self.dtype)

    def contains(self, x: Any) -> jax.Array:
        """Whether ``x`` has this shape and lies within the bounds (bool scalar)."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high))

    def check(self, x: Any, what: str = "value") -> None:
        """Raise ``TypeError``/``ValueError`` naming ``x`` unless it is an element (host side)."""
        arr = _as_concrete_array(x, what)
        if arr.shape != self.shape:
            raise ValueError(f"{what} must have shape {self.shape}, got {arr.shape}")
        if not np.all((arr >= self.low) & (arr <= self.high)):
            raise ValueError(f"{what}={arr} is outside the bounds [{self.low}, {self.high}]")

    def __repr__(self) -> str:
        """As Gymnasium prints a Box: a scalar bound when it is uniform, else every bound."""

        def bound(b: np.ndarray) -> str:
            return str(b.min()) if b.size and np.all(b == b.min()) else str(b)

        return f"Box({bound(self.low)}, {bound(self.high)}, {self.shape}, {np.dtype(self.dtype).name})"


@dataclasses.dataclass(frozen=True)
class Tokens(Space):
    """Token buffers: int32 vectors of shape ``(length,)``, each entry ``0 <= x < n``.

    The observation space of the text environments (``jrl.envs.tokens``): a fixed-size buffer of
    token ids from a vocabulary of ``n`` tokens.

    Args:
        n: vocabulary size, ``n >= 1``.
        length: buffer length, ``length >= 1``.
    """

    n: int
    length: int

    def __post_init__(self) -> None:
        for name in ("n", "length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Tokens(n, length): {name} must be an int >= 1, got {value!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.length),)

    @property
    def dtype(self) -> Any:
        return jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        """Each entry uniform on ``0..n-1``, independently: int32 ``[length]``."""
        return jax.random.randint(key, self.shape, 0, self.n, dtype=jnp.int32)

    def contains(self, x: Any) -> jax.Array:
        """Whether ``x`` is an element (bool scalar; ``False`` for another shape, or any entry out of
        range or non-integral)."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        integral = jnp.all(jnp.floor(x) == x) if jnp.issubdtype(x.dtype, jnp.floating) else True
        return jnp.logical_and(integral, jnp.all((x >= 0) & (x < self.n)))

    def __repr__(self) -> str:
        return f"Tokens({self.n}, {self.length})"

    def check(self, x: Any, what: str = "value") -> None:
        """Raise ``TypeError``/``ValueError`` naming ``x`` and its first bad entry unless it is an
        element (host side, concrete ``x``)."""
        arr = _as_concrete_array(x, what)
        if arr.shape != self.shape:
            raise ValueError(f"{what} must have shape {self.shape} ({self!r}), got shape {arr.shape}")
        bad = np.flatnonzero(np.floor(arr) != arr) if arr.dtype.kind == "f" else np.array([], int)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{what}[{i}]={arr[i].item()!r} is not an integer; {self!r} holds ids 0..{self.n - 1}")
        bad = np.flatnonzero((arr < 0) | (arr >= self.n))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{what}[{i}]={arr[i].item()!r} is out of range; {self!r} holds ids 0..{self.n - 1}")
