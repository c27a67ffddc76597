"""Q-networks (Flax linen): an MLP for vector observations, a small CNN for grid observations,
either with a plain or a dueling head; and ``NetworkDescription``, the neutral description of a
trained network's layers that exporters (``jrl.export``) read instead of Flax's parameter names."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["NETWORKS", "Conv3x3", "Layer", "NetworkDescription", "QNetwork"]

NETWORKS = ("mlp", "cnn")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a described network.

    Attributes:
        kind: ``"conv3x3"`` (a 3x3, stride 1, zero-padded convolution of an ``[H, W, C]`` image,
            ``kernel [3, 3, C, F]``), ``"dense"`` (``x @ kernel + bias``, ``kernel [I, O]``) or
            ``"layer_norm"`` (``NetworkDescription.norms``: ``kernel`` the scale, ``[F]``).
        kernel, bias: its arrays (``bias [F]`` or ``[O]``), as the network holds them.
    """

    kind: str
    kernel: Any
    bias: Any


@dataclasses.dataclass(frozen=True)
class NetworkDescription:
    """A trained Q-network (or policy network) described layer by layer, for exporters (no Flax
    names to parse).

    The forward pass of one observation: the input (``one_hot``: an index into a one-hot vector of
    that size; otherwise float32), rescaled by ``input_scale`` if given (``2 * (x - low) / span -
    1``, ``low`` and ``span`` flat, one entry per observation element), then every layer of
    ``body`` followed by ReLU (or ``activation``; the image flattened before the first dense
    layer), then ``head``:
    one dense layer giving the Q-values ``[num_actions]``, or with ``dueling`` an advantage and a
    value layer, ``Q = value + advantage - mean(advantage)``.

    Attributes:
        family: the network's kind as its config names it (``"mlp"``, ``"cnn"``).
        num_actions: the number of Q-values.
        obs_shape: one observation's shape (``()`` for an index).
        one_hot: ``None``, or ``n`` for a ``Discrete(n)`` observation fed one-hot.
        input_scale: ``None``, or ``(low, span)`` (tuples of floats).
        body: the hidden layers in order (convolutions, then dense layers).
        head: ``(q,)``, or ``(advantage, value)`` with ``dueling``.
        dueling: whether the head is dueling.
        norms: ``()``, or one ``"layer_norm"`` layer per ``body`` layer (``kernel`` its scale,
            ``bias`` its offset, both ``[F]``), applied to that layer's output before the ReLU:
            ``(y - mean(y)) / sqrt(var(y) + 1e-6) * kernel + bias`` over the last axis (features,
            or an image's channels at each pixel), as ``flax.linen.LayerNorm`` computes it.
        activation: ``"relu"``, or ``"tanh"`` (PPO's actor, whose head gives logits: their argmax
            is its greedy action), after every ``body`` layer.
        action_bounds: ``None`` (the head's outputs are Q-values or logits; the greedy action is
            their argmax), or ``(low, high)`` (tuples of ``num_actions`` floats): the head's outputs
            are the mean of a continuous action, flat ``[num_actions]``, and the greedy action is
            that mean clipped elementwise to ``[low, high]`` and reshaped to ``action_shape``
            (PPO's Gaussian policy on ``Box`` actions).
        action_shape: the continuous action's shape (``()`` with discrete actions).
    """

    family: str
    num_actions: int
    obs_shape: tuple[int, ...]
    one_hot: int | None
    input_scale: tuple[tuple[float, ...], tuple[float, ...]] | None
    body: tuple[Layer, ...]
    head: tuple[Layer, ...]
    dueling: bool
    norms: tuple[Layer, ...] = ()
    activation: str = "relu"
    action_bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    action_shape: tuple[int, ...] = ()


def _flat_lecun_normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """``lecun_normal`` drawn as the ``[9 C, features]`` matrix and reshaped to ``shape``: the same
    fan-in, the same random bits in the same order, so the same values as drawing ``shape``
    directly, but XLA CPU compiles the 2-D truncated normal several times faster (measured: 0.5 s
    against 3.5 s for a ``[3, 3, 3, 8]`` kernel)."""
    return nn.initializers.lecun_normal()(key, (math.prod(shape[:-1]), shape[-1]), dtype).reshape(shape)


class Conv3x3(nn.Module):
    """A 3x3, stride 1, zero-padded ("SAME") convolution of one ``[H, W, C]`` image, written as
    patch extraction and one matmul: ``[H, W, 9 C] @ [9 C, features]``.

    Same parameters (``kernel [3, 3, C, features]``, ``bias [features]``), initialisation and
    output as ``flax.linen.Conv(features, (3, 3))``. Why not that: inside a ``lax.scan`` (every
    training loop here) XLA CPU computes ``lax.conv``'s kernel gradient tens of times slower than
    this form's matmul (measured: 67 ms vs 1.7 ms per gradient of a 16 -> 32 channel 8x8 layer).
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        height, width, channels = x.shape
        kernel = self.param("kernel", _flat_lecun_normal, (3, 3, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
        # patches[h, w, (di, dj, c)] = padded[h + di, w + dj, c], the kernel's (row, column, channel) order
        patches = jnp.stack([padded[di : di + height, dj : dj + width] for di in range(3) for dj in range(3)], axis=2)
        return patches.reshape(height, width, 9 * channels) @ kernel.reshape(9 * channels, self.features) + bias


class QNetwork(nn.Module):
    """Q-values ``float32 [A]`` for one observation (any shape for ``mlp``, which flattens it, as
    PureJaxRL flattens bsuite's and MinAtar's boards; ``[H, W, C]`` for ``cnn``; an int32 index
    ``0 <= obs < num_inputs`` when ``one_hot``).

    Attributes:
        num_actions: A.
        kind: ``"mlp"`` or ``"cnn"`` (3x3 "SAME" convolutions with ReLU, then the MLP).
        hidden_sizes: widths of the fully connected layers.
        conv_features: the ``cnn``'s output channels, one entry per convolution.
        q_init: the output layer's initial bias (the value head's, when dueling): the initial
            Q-values are about ``q_init`` for every input (optimistic initialisation when it is
            above the values the task can reach; 0 is Flax's default).
        dueling: ``Q = V + (Adv - mean(Adv))`` from separate value and advantage heads.
        one_hot: ``None``, or the number ``n`` of a ``Discrete(n)`` observation space: the index
            enters the network as a one-hot float32 ``[n]`` vector (as Stable-Baselines3 does),
            not as one number whose size would mean nothing.
        input_scale: ``None``, or ``(low, span)`` (flat tuples, one entry per observation
            element): the input becomes ``2 * (obs - low) / span - 1``, i.e. ``[low, high]`` maps
            to ``[-1, 1]``.
        layer_norm: a ``LayerNorm`` after every hidden layer (convolution or dense), before its
            ReLU, as PQN uses (Gallici et al. 2025: it keeps off-policy TD stable without a target
            network).
    """

    num_actions: int
    kind: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    dueling: bool = False
    input_scale: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    conv_features: Sequence[int] = (16, 32)
    q_init: float = 0.0
    one_hot: int | None = None
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = jax.nn.one_hot(obs, self.one_hot) if self.one_hot is not None else obs.astype(jnp.float32)
        if self.input_scale is not None:
            low, span = (jnp.asarray(v, jnp.float32).reshape(x.shape) for v in self.input_scale)
            x = 2.0 * (x - low) / span - 1.0
        if self.kind == "cnn":
            for features in self.conv_features:
                x = nn.relu(self._normalized(Conv3x3(features)(x)))
        x = x.reshape(-1)
        for width in self.hidden_sizes:
            x = nn.relu(self._normalized(nn.Dense(width)(x)))
        bias_init = nn.initializers.constant(self.q_init)
        if not self.dueling:
            return nn.Dense(self.num_actions, bias_init=bias_init)(x)
        advantage = nn.Dense(self.num_actions)(x)
        value = nn.Dense(1, bias_init=bias_init)(x)
        return value + advantage - jnp.mean(advantage)

    def _normalized(self, x: jax.Array) -> jax.Array:
        """``x`` through a ``LayerNorm`` over its last axis with ``layer_norm``; ``x`` itself otherwise."""
        return nn.LayerNorm()(x) if self.layer_norm else x

    def describe(self, params: Any, obs_shape: tuple[int, ...]) -> NetworkDescription:
        """This network with the parameters ``params`` (what ``init`` returned, one network's)
        as a ``NetworkDescription``, for observations of shape ``obs_shape``."""
        tree = params["params"]

        def layer(kind: str, name: str) -> Layer:
            return Layer(kind, tree[name]["kernel"], tree[name]["bias"])

        # Flax names a compact module's submodules by class and creation order (see __call__).
        hidden = len(self.hidden_sizes)
        convs = len(self.conv_features) if self.kind == "cnn" else 0
        body = [layer("conv3x3", f"Conv3x3_{i}") for i in range(convs)]
        body += [layer("dense", f"Dense_{i}") for i in range(hidden)]
        head = [layer("dense", f"Dense_{hidden + i}") for i in range(2 if self.dueling else 1)]
        norms = [
            Layer("layer_norm", tree[f"LayerNorm_{i}"]["scale"], tree[f"LayerNorm_{i}"]["bias"])
            for i in range(len(body) if self.layer_norm else 0)
        ]
        return NetworkDescription(
            family=self.kind,
            num_actions=self.num_actions,
            obs_shape=tuple(obs_shape),
            one_hot=self.one_hot,
            input_scale=self.input_scale,
            body=tuple(body),
            head=tuple(head),
            dueling=self.dueling,
            norms=tuple(norms),
        )
