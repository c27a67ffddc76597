"""Q-networks (Flax linen): an MLP for vector observations, a small CNN for grid observations,
either with a plain or a dueling head."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["NETWORKS", "QNetwork"]

NETWORKS = ("mlp", "cnn")


class QNetwork(nn.Module):
    """Q-values ``float32 [A]`` for one observation (``[D]`` for ``mlp``, ``[H, W, C]`` for ``cnn``).

    Attributes:
        num_actions: A.
        kind: ``"mlp"`` or ``"cnn"`` (two 3x3 convolutions, 16 and 32 channels, then the MLP).
        hidden_sizes: widths of the fully connected layers.
        dueling: ``Q = V + (Adv - mean(Adv))`` from separate value and advantage heads.
        input_scale: ``None``, or ``(low, span)`` (flat tuples, one entry per observation
            element): the input becomes ``2 * (obs - low) / span - 1``, i.e. ``[low, high]`` maps
            to ``[-1, 1]``.
    """

    num_actions: int
    kind: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    dueling: bool = False
    input_scale: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        if self.input_scale is not None:
            low, span = (jnp.asarray(v, jnp.float32).reshape(x.shape) for v in self.input_scale)
            x = 2.0 * (x - low) / span - 1.0
        if self.kind == "cnn":
            x = nn.relu(nn.Conv(16, (3, 3))(x))
            x = nn.relu(nn.Conv(32, (3, 3))(x))
        x = x.reshape(-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        if not self.dueling:
            return nn.Dense(self.num_actions)(x)
        advantage = nn.Dense(self.num_actions)(x)
        value = nn.Dense(1)(x)
        return value + advantage - jnp.mean(advantage)
