"""What the gymnax and Gymnasium-functional wrappers share: foreign spaces as jrl spaces.

Both libraries' spaces are read by duck typing (``n`` for a discrete space, ``low``/``high``/
``shape``/``dtype`` for a box), so neither library is imported here.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jrl.spaces import Box, Discrete, Space

__all__ = ["as_space_dtype", "jrl_space"]


def jrl_space(space: Any, what: str) -> Space:
    """The jrl space of a gymnax or Gymnasium ``Discrete``/``Box`` space.

    A ``Discrete(n)`` (Gymnasium's with ``start == 0``) becomes ``Discrete(n)``. A ``Box`` keeps
    its shape and bounds; one of a non-float dtype (MinAtar's bool images, uint8 pixels) becomes a
    float32 ``Box``, and the wrapper casts its values (``as_space_dtype``), since jrl's ``Box``
    holds real vectors.

    Raises:
        ValueError: any other space (``Tuple``, ``Dict``, ``MultiDiscrete``, a ``Discrete`` with a
            non-zero ``start``), naming ``what`` (e.g. ``"Catch-bsuite observation space"``).
    """
    n = getattr(space, "n", None)
    shape = tuple(getattr(space, "shape", None) or ())
    if n is not None and shape == () and not hasattr(space, "low"):
        start = int(np.asarray(getattr(space, "start", 0)))
        if start != 0:
            raise ValueError(f"{what}: {space!r} starts at {start}; jrl's Discrete(n) holds 0..n-1")
        return Discrete(int(n))
    if hasattr(space, "low") and hasattr(space, "high") and hasattr(space, "shape"):
        dtype = np.dtype(space.dtype)
        box_dtype = dtype if dtype.kind == "f" else np.dtype(np.float32)
        low = np.asarray(space.low, dtype=np.float64).astype(box_dtype)
        high = np.asarray(space.high, dtype=np.float64).astype(box_dtype)
        return Box(low, high, tuple(int(d) for d in space.shape), jnp.dtype(box_dtype))
    raise ValueError(
        f"{what}: {space!r} has no jrl counterpart; the wrappers convert Discrete and Box spaces "
        "(flatten a Tuple or Dict space in the foreign environment first)"
    )


def as_space_dtype(x: Any, space: Space) -> Any:
    """``x`` as ``space``'s dtype (int32 for ``Discrete``, the box dtype for ``Box``)."""
    return jnp.asarray(x).astype(space.dtype)
