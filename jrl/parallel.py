"""Device placement: one batch axis spread over devices, on one host or several.

A batch (of sweep members today, of a run's environments or seeds next) is a set of arrays whose
leading axis is the batch. ``device_mesh`` lays the devices out along one named axis;
``padded_size`` rounds a batch up to a multiple of the device count; ``compile_sharded`` compiles
a function of the whole batch so that every device runs exactly the program one device would run
on its slice (``shard_map``, not a sharded ``jit``: the device count cannot change how XLA
compiles, and rounds, one member's numbers); ``put_sharded`` and ``to_host`` move a batch onto
the devices and back. ``memory_budget`` says how many bytes a batch may take, agreed by every
process. With ``jax.distributed`` initialized, ``jax.devices()`` spans every process, and each
process feeds and runs the slices on its own devices.

One training run spread over devices (data parallelism) is described by ``DataParallel``: the
run's environments, replay buffer and batches are split into equal shards, one per device along
the mesh axis ``DEVICES``; every device runs the algorithm's own program on its shard, with its own
keys (``device_key``), and the devices agree through collectives: gradients averaged
(``mean``), counts and sums added (``sum``). With one device every method is the identity, so a
one-device run is today's run, bit for bit.

Fully sharded data parallelism (FSDP, ZeRO-3) keeps a large pytree (a language model's parameters,
its Adam moments, its target and reference copies) split over the same devices instead of whole on
each: ``DataParallel.shard_tree`` cuts it into a ``Sharded`` node, every leaf flattened, padded and split
into ``count`` equal pieces (as PyTorch's FSDP flattens its parameters), each device keeping its
piece; ``gather`` puts the whole pytree together for a forward pass (``lax.all_gather``);
``reduce_gradients`` averages whole gradients over the devices and leaves each device its piece
(``lax.psum_scatter``); ``global_norm`` is the norm over every device's pieces. ``unshard`` gives
the whole arrays back, on the host, out of a run's state with its device axis. A network sharded
layer by layer (one ``Sharded`` node per layer) is gathered one layer at a time:
``call_gathered`` runs a layer on its gathered weights, so that a device holds one layer whole at
a time, and ``value_and_grad`` then differentiates with respect to the pieces.

This module sits just above ``envs``/``spaces``: it imports JAX and NumPy only, so a single
training run can use it as well as a sweep.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "AXIS",
    "DEVICES",
    "SINGLE",
    "DataParallel",
    "Sharded",
    "agree",
    "barrier",
    "broadcast_from_lead",
    "compile_sharded",
    "device_mesh",
    "format_bytes",
    "host_state",
    "is_lead",
    "is_sharded",
    "key_data_shape",
    "memory_budget",
    "padded_size",
    "put_sharded",
    "to_host",
    "tree_bytes",
    "unshard",
]

#: The mesh axis name a batch is split along, unless told otherwise.
AXIS = "members"

#: The mesh axis one training run's devices lie along (``DataParallel``).
DEVICES = "devices"


@functools.partial(jax.tree_util.register_dataclass, data_fields=["shards"], meta_fields=["shapes"])
@dataclasses.dataclass(frozen=True)
class Sharded:
    """One device's piece of a pytree split over the devices (``DataParallel.shard_tree``).

    Attributes:
        shards: the pytree's structure, each leaf this device's piece of the whole leaf flattened
            and zero-padded to a multiple of the device count: ``[ceil(size / count)]`` (with a
            run's seed and device axes in front, ``[devices, seeds, ...]``, outside the program).
        shapes: the whole leaves' shapes, in ``jax.tree_util.tree_leaves(shards)`` order (static).
    """

    shards: Any
    shapes: tuple[tuple[int, ...], ...]


def _is_sharded(node: Any) -> bool:
    return isinstance(node, Sharded)


def is_sharded(tree: Any) -> bool:
    """Whether ``tree`` is a ``Sharded`` node or holds one (a network sharded layer by layer)."""
    return any(isinstance(n, Sharded) for n in jax.tree_util.tree_leaves(tree, is_leaf=_is_sharded))


def _after(tree: Any, anchor: Any) -> Any:
    """``tree`` unchanged in value, but computed after ``anchor`` (any pytree): each floating leaf
    plus ``0.0 *`` an entry of ``anchor``'s first numeric leaf (under ``vmap``, of its first
    example: ``_one_example``). XLA does not fold ``0.0 * x``
    (``x`` may be infinite or NaN), so the dependency survives every pass and every backend;
    it costs one addition per entry of ``tree``. ``tree`` itself where ``anchor`` has no numeric
    leaf."""
    numeric = [
        x
        for x in jax.tree_util.tree_leaves(anchor)
        if hasattr(x, "dtype") and (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer))
    ]
    if not numeric:
        return tree
    zero = _one_example(jnp.ravel(numeric[0])[0].astype(jnp.float32)) * 0.0

    def tied(x: Any) -> Any:
        floating = hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
        return x + zero.astype(x.dtype) if floating else x

    return jax.tree_util.tree_map(tied, tree)


@jax.custom_batching.custom_vmap
def _one_example(x: jax.Array) -> jax.Array:
    """``x`` (a scalar); under ``vmap``, the first example's, unbatched. ``_after``'s anchor: a
    layer called for a batch of examples under ``vmap`` (``jrl.evaluate`` maps a policy over its
    episodes) would otherwise have its unbatched pieces tied to a batched value, so batched, and
    gathered once per example; tied to one example's value it is gathered once for the batch, and
    still after that batch's input to the layer exists."""
    return x


@_one_example.def_vmap
def _one_example_vmap(axis_size: int, in_batched: list, x: jax.Array) -> tuple[jax.Array, bool]:
    del axis_size
    return (x[0] if in_batched[0] else x), False


def _padded_flat(leaf: jax.Array, count: int) -> jax.Array:
    """``leaf`` flattened and zero-padded to a multiple of ``count``."""
    flat = jnp.ravel(leaf)
    return jnp.pad(flat, (0, -flat.shape[0] % count))


def unshard(tree: Any) -> Any:
    """A run's state with a leading device axis (``[devices, ...]`` on every leaf), with every
    ``Sharded`` node replaced by its whole pytree: each leaf's pieces ``[devices, *batch, k]`` put
    back in device order, trimmed and reshaped to ``[1, *batch, *shape]`` (a device axis of one,
    so that the first device's entry of every leaf is the whole state). Other leaves unchanged; on
    the host, outside any program. A tree of ``vmap`` axes (ints) of such a state gives the axes
    of the whole state."""

    def whole(node: Any) -> Any:
        if not isinstance(node, Sharded):
            return node
        leaves, treedef = jax.tree_util.tree_flatten(node.shards)
        full = []
        for pieces, shape in zip(leaves, node.shapes, strict=True):
            if isinstance(pieces, int):  # a tree of vmap axes (a run's ``state_axes``): the same axis
                full.append(pieces)
                continue
            batch = pieces.shape[1:-1]
            flat = jnp.moveaxis(jnp.asarray(pieces), 0, -2).reshape(*batch, -1)
            full.append(flat[..., : math.prod(shape)].reshape(1, *batch, *shape))
        return jax.tree_util.tree_unflatten(treedef, full)

    return jax.tree_util.tree_map(whole, tree, is_leaf=lambda x: isinstance(x, Sharded))


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """One run split over ``count`` devices along the mesh axis ``axis`` (data parallelism).

    An algorithm built with it runs on one device's shard: ``shard(name, value)`` is a field's
    per-device share (``num_envs``, ``batch_size``, ``buffer_size``), and inside the shard-mapped
    program ``device_key`` gives each device its own random stream, ``mean`` averages gradients
    and evaluations over devices (``lax.pmean``) and ``sum`` adds counts and sums (``lax.psum``).
    With ``count == 1`` nothing is split and every method returns its input unchanged.

    Attributes:
        count: devices, >= 1.
        axis: the mesh axis name (``DEVICES``).
    """

    count: int = 1
    axis: str = DEVICES

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"devices must be an integer >= 1, got {self.count!r}")

    @property
    def active(self) -> bool:
        """Whether there is more than one device (collectives run)."""
        return self.count > 1

    def shard(self, name: str, value: int) -> int:
        """``value // count``, one device's share of the config field ``name``; ``ValueError``
        naming the field when ``count`` does not divide it (every device takes an equal share,
        so that the average of the devices' means is the mean of the whole batch)."""
        if value % self.count:
            raise ValueError(
                f"{name}={value} must be a multiple of the number of devices ({self.count}): every device "
                f"takes an equal share; choose {name} = {max(self.count, value - value % self.count)} or another "
                "multiple"
            )
        return value // self.count

    def device_key(self, key: jax.Array) -> jax.Array:
        """``key`` folded with this device's index (``fold_in(key, axis_index)``): each device's
        environments, exploration and samples are its own. ``key`` itself on one device."""
        if not self.active:
            return key
        return jax.random.fold_in(key, jax.lax.axis_index(self.axis))

    def mean(self, tree: Any) -> Any:
        """``tree``'s leaves averaged over the devices (``lax.pmean``): every device gets the same."""
        return jax.lax.pmean(tree, self.axis) if self.active else tree

    def sum(self, tree: Any) -> Any:
        """``tree``'s leaves added over the devices (``lax.psum``): every device gets the same."""
        return jax.lax.psum(tree, self.axis) if self.active else tree

    def shard_tree(self, tree: Any) -> Sharded:
        """This device's piece of the whole pytree ``tree`` (equal on every device): each leaf
        flattened, padded with zeros to a multiple of ``count`` and cut into ``count`` pieces, the
        device keeping piece ``axis_index`` (``[ceil(size / count)]``). Inside the shard-mapped
        program; on one device, the leaves flattened (a single piece)."""
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        index = jax.lax.axis_index(self.axis) if self.active else 0
        pieces = []
        for leaf in leaves:
            flat = _padded_flat(leaf, self.count)
            size = flat.shape[0] // self.count
            pieces.append(jax.lax.dynamic_slice_in_dim(flat, index * size, size))
        shapes = tuple(tuple(int(d) for d in leaf.shape) for leaf in leaves)
        return Sharded(jax.tree_util.tree_unflatten(treedef, pieces), shapes)

    def gather(self, tree: Any) -> Any:
        """``tree`` with every ``Sharded`` node replaced by the whole pytree (its pieces put
        together with ``lax.all_gather`` over the devices, trimmed and reshaped); other leaves
        unchanged. Inside the shard-mapped program."""

        def whole(node: Any) -> Any:
            if not isinstance(node, Sharded):
                return node
            leaves, treedef = jax.tree_util.tree_flatten(node.shards)
            full = []
            for piece, shape in zip(leaves, node.shapes, strict=True):
                flat = jax.lax.all_gather(piece, self.axis, tiled=True) if self.active else piece
                if flat.shape[0] < math.prod(shape):
                    raise ValueError(
                        f"pieces of {piece.shape[0]} entries over {self.count} device(s) cannot hold a leaf of shape "
                        f"{shape}: gather with the DataParallel that sharded them"
                    )
                full.append(flat[: math.prod(shape)].reshape(shape))
            return jax.tree_util.tree_unflatten(treedef, full)

        return jax.tree_util.tree_map(whole, tree, is_leaf=lambda x: isinstance(x, Sharded))

    def reduce_gradients(self, grads: Any, like: Any) -> Any:
        """Whole gradients ``grads`` averaged over the devices. Where ``like`` (the parameters) is
        a ``Sharded`` node, each device gets only its piece of the average (``lax.psum_scatter``
        over the flattened, padded leaves, divided by ``count``: a reduce-scatter moves a 1/count
        share of what an all-reduce does, and the device keeps no whole copy); otherwise ``mean``."""
        if not isinstance(like, Sharded):
            return self.mean(grads)
        leaves, treedef = jax.tree_util.tree_flatten(grads)
        pieces = [
            jax.lax.psum_scatter(_padded_flat(g, self.count), self.axis, tiled=True) / self.count
            if self.active
            else _padded_flat(g, 1)
            for g in leaves
        ]
        return Sharded(jax.tree_util.tree_unflatten(treedef, pieces), like.shapes)

    def call_gathered(self, fn: Callable, node: Any, *args: Any) -> Any:
        """``fn(gather(node), *args)``, with ``node``'s ``Sharded`` pieces gathered for this call
        only (one layer of a network: FSDP's unit); under ``vmap`` over ``args`` (a policy mapped
        over episodes), once for the whole batch. Without ``Sharded`` nodes in ``node``,
        ``fn(node, *args)``.

        The pieces are known from the start, so XLA may gather every layer at once (before the
        first runs, or out of a decoding loop) and hold the whole network again; and it merges
        a backward pass's gather with the forward pass's (common subexpressions: the gathered
        layer then lives from one to the other). So the gather is made to wait, by a data
        dependency (``_after``), for ``args``; a backward pass keeps only the pieces and ``args``
        from this call (it is rematerialised, a ``jax.custom_vjp``) and gathers again once the
        cotangent of the output exists; and the cotangents it passes on wait for this layer's
        gradient pieces, so that each layer's whole gradient is reduce-scattered before the next
        layer's is made. (``lax.optimization_barrier`` would say the same, but XLA's CPU compiler
        drops it before the passes it should stop.)

        The gradient with respect to the pieces is the transpose of the tiled ``lax.all_gather``,
        a ``lax.psum_scatter``: each device receives its piece of the gradient summed over the
        devices (``value_and_grad`` divides by the count). ``fn`` must not close over values
        being differentiated (pass them in ``args``)."""
        if not is_sharded(node):
            return fn(node, *args)

        def run(node: Any, args: tuple) -> Any:
            return fn(self.gather(node), *args)

        @jax.custom_vjp
        def call(node: Any, args: tuple) -> Any:
            return run(_after(node, args), args)

        def forward(node: Any, args: tuple) -> tuple:
            return run(_after(node, args), args), (node, args)

        def backward(saved: tuple, cotangent: Any) -> tuple:
            node, args = saved
            grad_node, grad_args = jax.vjp(run, _after(node, cotangent), args)[1](cotangent)
            return grad_node, _after(grad_args, grad_node)

        call.defvjp(forward, backward)
        return call(node, args)

    def value_and_grad(self, loss_fn: Callable, params: Any, *, has_aux: bool = False) -> tuple:
        """``jax.value_and_grad(loss_fn, has_aux=has_aux)(params)`` of one step over every device:
        the loss and gradients averaged over the devices (``mean``; with ``has_aux``, the aux too).

        Where ``params`` is one ``Sharded`` node, the pass runs on the gathered whole (``gather``),
        the loss alone is averaged (the aux is left as computed) and the gradients are
        reduce-scattered to this device's pieces (``reduce_gradients``). Where ``params`` is a
        pytree holding several ``Sharded`` nodes (a network sharded layer by layer, FSDP's way),
        ``loss_fn`` takes the pieces and gathers each node when it uses it (``call_gathered``):
        the gradients are taken with respect to the pieces, arrive summed over the devices (the
        gathers' transposes reduce-scatter them layer by layer, so no device holds a whole
        gradient) and are divided by the count; other leaves' gradients are averaged (``mean``);
        the loss alone is averaged."""
        if not is_sharded(params):
            return self.mean(jax.value_and_grad(loss_fn, has_aux=has_aux)(params))
        if isinstance(params, Sharded):
            value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(self.gather(params))
            grads = self.reduce_gradients(grads, params)
        else:
            value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params)
            grads = jax.tree_util.tree_map(
                lambda g: (
                    jax.tree_util.tree_map(lambda x: x / self.count, g) if isinstance(g, Sharded) else self.mean(g)
                ),
                grads,
                is_leaf=_is_sharded,
            )
        value = (self.mean(value[0]), value[1]) if has_aux else self.mean(value)
        return value, grads

    def all_finite(self, loss: jax.Array, grads: Any) -> jax.Array:
        """Whether ``loss`` and every gradient are finite (bool scalar). Gradients with ``Sharded``
        pieces (``reduce_gradients``') are checked on every device's piece (``sum``), so that all
        devices skip a step together; whole gradients are the same on every device already."""
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        pieces = any(isinstance(n, Sharded) for n in jax.tree_util.tree_leaves(grads, is_leaf=_is_sharded))
        return self.sum(finite.astype(jnp.int32)) == self.count if pieces else finite

    def global_norm(self, tree: Any) -> jax.Array:
        """The L2 norm of the whole pytree ``tree``: the squares of ``Sharded`` pieces are added
        over the devices (``lax.psum``; the zero padding adds nothing), the other leaves, equal on
        every device, counted once. float32 scalar, equal on every device."""
        nodes = jax.tree_util.tree_leaves(tree, is_leaf=_is_sharded)
        whole = [jnp.sum(jnp.square(x)) for x in nodes if not isinstance(x, Sharded)]
        pieces = [jnp.sum(jnp.square(x)) for n in nodes if isinstance(n, Sharded) for x in jax.tree_util.tree_leaves(n)]
        return jnp.sqrt(sum(whole, jnp.float32(0.0)) + self.sum(sum(pieces, jnp.float32(0.0))))


#: One device: no split, no collectives (every algorithm's default).
SINGLE = DataParallel()


def device_mesh(num_devices: int | None = None, axis: str = AXIS) -> jax.sharding.Mesh:
    """A 1-D mesh over the first ``num_devices`` of ``jax.devices()`` (``None``: all of them,
    every process's when ``jax.distributed`` is initialized), its one axis named ``axis``."""
    devices = jax.devices()[:num_devices] if num_devices else jax.devices()
    return jax.sharding.Mesh(np.asarray(devices), (axis,))


def padded_size(count: int, num_devices: int) -> int:
    """``count`` rounded up to a multiple of ``num_devices`` (every device gets as many members)."""
    return -(-count // num_devices) * num_devices


def _leading(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
    """Leading axis split over the mesh's one axis, the others whole on each device."""
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*mesh.axis_names))


def compile_sharded(function: Callable, mesh: jax.sharding.Mesh, *args: Any) -> jax.stages.Compiled:
    """``function`` compiled for batches split over ``mesh`` along their leading axis.

    Args:
        function: takes arrays (or pytrees of arrays) with a leading batch axis ``[B_local, ...]``
            and returns a pytree of arrays with the same leading axis: it sees one device's slice.
        mesh: a 1-D mesh (``device_mesh``).
        args: one ``jax.ShapeDtypeStruct`` pytree per argument, of the whole batch
            ``[B, ...]``, where ``B`` is a multiple of the mesh's size (``padded_size``).

    Returns the compiled function: it takes global arrays placed by ``put_sharded`` and returns
    global arrays ``[B, ...]`` split the same way (``to_host`` brings them back)."""
    sharded = _leading(mesh)
    abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharded), args)
    spec = jax.sharding.PartitionSpec(*mesh.axis_names)
    per_device = jax.shard_map(function, mesh=mesh, in_specs=tuple(spec for _ in args), out_specs=spec, check_vma=False)
    return jax.jit(per_device, out_shardings=sharded).lower(*abstract).compile()


def put_sharded(array: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
    """The host array ``array`` ``[B, ...]`` as a global array split over ``mesh`` along its
    leading axis; each process places only the slices of its own devices (every process passes
    the whole array)."""
    return jax.make_array_from_callback(array.shape, _leading(mesh), lambda index: array[index])


def to_host(tree: Any) -> Any:
    """Every leaf of ``tree`` (global arrays) as a NumPy array on every process (gathered across
    processes when there are several)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree_util.tree_map(np.asarray, tree)


def host_state(tree: Any) -> Any:
    """``to_host`` for a training state: every leaf on every process, NumPy arrays, and typed
    keys as keys (over their gathered key data). Every process must call it with several."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def is_key(x: Any) -> bool:
        return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)

    leaves, treedef = jax.tree_util.tree_flatten(tree)
    data = [jax.random.key_data(x) if is_key(x) else x for x in leaves]
    data = multihost_utils.process_allgather(data, tiled=True)
    out = [
        jax.random.wrap_key_data(d, impl=jax.random.key_impl(x)) if is_key(x) else np.asarray(d)
        for x, d in zip(leaves, data, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, out)


def is_lead() -> bool:
    """Whether this is process 0, the one that prints and writes (always, in one process)."""
    return jax.process_index() == 0


def agree(problem: str | None, stopped: str) -> str | None:
    """Process 0's ``problem`` (a reason to stop, or ``None``) on every process: where process 0
    found one and this process did not, ``stopped`` (which says that process 0 stopped). Every
    process must call it with several; in one process it is ``problem``. Raising on the answer
    on every process keeps any of them from waiting in a collective for one that stopped."""
    if jax.process_count() > 1:
        found = bool(broadcast_from_lead(np.int32(problem is not None)))
        if found and problem is None:
            problem = stopped
    return problem


def barrier(name: str) -> None:
    """Every process waits here for the others (nothing in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_from_lead(value: Any) -> Any:
    """Process 0's ``value`` (a NumPy scalar or array) on every process; ``value`` itself in a
    single process. Every process must call it (it is a collective)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(value))


def key_data_shape() -> tuple[int, ...]:
    """The shape of ``jax.random.key_data`` of one key under the default PRNG implementation
    (``(2,)`` for threefry): uint32 words per key."""
    return tuple(jax.eval_shape(lambda seed: jax.random.key_data(jax.random.key(seed)), 0).shape)


def tree_bytes(tree: Any) -> int:
    """Bytes the leaves of ``tree`` take (arrays or ``ShapeDtypeStruct``; a typed key counts its
    key data)."""

    def itemsize(dtype: Any) -> int:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return 4 * math.prod(key_data_shape())
        return np.dtype(dtype).itemsize

    return sum(math.prod(x.shape) * itemsize(x.dtype) for x in jax.tree_util.tree_leaves(tree))


def _free_bytes(devices: Sequence[Any]) -> int:
    """Half the free memory: the host's for CPU devices, the accelerators' otherwise."""
    if devices[0].platform == "cpu":
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 4 * 2**30
        return max(free // 2, 2**20)
    total = 0
    for device in devices:
        stats = device.memory_stats() or {}
        total += stats.get("bytes_limit", 16 * 2**30) - stats.get("bytes_in_use", 0)
    return max(total // 2, 2**20)


def memory_budget(devices: Sequence[Any]) -> int:
    """Bytes a batch spread over ``devices`` may take: half the free memory of this process's
    devices among them (the host's for CPU devices), times the number of processes. With several
    processes, process 0's figure (rounded down to MiB) is every process's, so that all of them cut
    the same batches; every process must call it then."""
    budget = _free_bytes([d for d in devices if d.process_index == jax.process_index()])
    budget *= jax.process_count()
    if jax.process_count() > 1:
        # In MiB: without jax_enable_x64 the broadcast is int32, and a budget in bytes overflows it.
        budget = int(broadcast_from_lead(np.int32(min(budget // 2**20, 2**31 - 1)))) * 2**20
    return int(budget)


def format_bytes(num_bytes: float) -> str:
    """A size for people: MiB from 0.1 MiB up (the usual scale of a batch), KiB or bytes below."""
    if num_bytes >= 0.1 * 2**20:
        return f"{num_bytes / 2**20:,.1f} MiB"
    return f"{num_bytes / 2**10:,.1f} KiB" if num_bytes >= 2**10 else f"{int(num_bytes)} bytes"
