"""An on-device replay buffer: fixed-capacity ring arrays, written and sampled inside ``jit``.

Insertion writes a contiguous block of ``num_envs`` transitions (``capacity`` is a multiple of
``num_envs``, so a block never wraps); sampling draws ``batch_size`` uniform indices and gathers
them, so its cost is O(batch_size) whatever the capacity.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

__all__ = ["ReplayBuffer", "replay_add", "replay_init", "replay_sample", "sequence_indices"]


@struct.dataclass
class ReplayBuffer:
    """Ring storage. ``data`` is a pytree of arrays ``[capacity, ...]``; ``position`` is the next
    write index and ``size`` how many entries are filled (both int32 scalars)."""

    data: Any
    position: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return jax.tree_util.tree_leaves(self.data)[0].shape[0]


def replay_init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer shaped like one ``example`` transition (a pytree of arrays)."""
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data=data, position=jnp.int32(0), size=jnp.int32(0))


def replay_add(buffer: ReplayBuffer, batch: Any) -> ReplayBuffer:
    """Write a block of transitions (leaves ``[B, ...]``, ``capacity % B == 0``) at ``position``."""
    block = jax.tree_util.tree_leaves(batch)[0].shape[0]
    data = jax.tree_util.tree_map(
        lambda store, new: jax.lax.dynamic_update_slice_in_dim(store, new.astype(store.dtype), buffer.position, 0),
        buffer.data,
        batch,
    )
    capacity = buffer.capacity
    return ReplayBuffer(
        data=data,
        position=(buffer.position + block) % capacity,
        size=jnp.minimum(buffer.size + block, capacity),
    )


def replay_sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Any:
    """``batch_size`` transitions drawn uniformly with replacement from the filled part."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree_util.tree_map(lambda store: store[index], buffer.data)


def sequence_indices(buffer: ReplayBuffer, key: jax.Array, batch_size: int, length: int, stride: int) -> jax.Array:
    """Storage indices of ``batch_size`` runs of ``length`` entries, int32 ``[batch_size, length]``.

    Row ``b`` is ``start_b + k * stride`` (mod capacity) for ``k = 0 .. length - 1``: with blocks of
    ``stride = num_envs`` transitions per write, that is one environment's ``length`` consecutive
    transitions. The starts are uniform, with replacement, over the filled entries whose whole run
    is written (so the newest ``length - 1`` blocks start none); the caller makes sure at least
    ``length`` blocks are stored. Cost O(batch_size * length), whatever the capacity.
    """
    capacity = buffer.capacity
    startable = jnp.maximum(buffer.size - (length - 1) * stride, 1)
    oldest = (buffer.position - buffer.size) % capacity
    offset = jax.random.randint(key, (batch_size,), 0, startable)
    steps = jnp.arange(length, dtype=jnp.int32) * stride
    return ((oldest + offset)[:, None] + steps[None, :]) % capacity
