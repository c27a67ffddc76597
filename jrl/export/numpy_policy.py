"""A DQN greedy policy that runs with NumPy alone (no JAX, no jrl: this file imports only NumPy and
the standard library, so it can be copied next to any program that has NumPy).

``NumpyQPolicy.load("policy.npz")`` reads what ``jrl.export.export_numpy`` wrote (NumPy's ``.npz``,
read with ``allow_pickle=False``: arrays and one JSON string, nothing executed);
``policy(obs)`` maps a batch of observations ``[B, *obs_shape]`` (or ``[B]`` indices for a
``Discrete`` observation space) to greedy actions ``int64 [B]``, ``policy.q_values(obs)`` to the
Q-values ``float32 [B, A]``. The forward pass is jrl's ``QNetwork``: optional one-hot input or
rescaling to ``[-1, 1]``, 3x3 "SAME" convolutions with ReLU, ReLU dense layers (each hidden layer
optionally followed by a LayerNorm before its ReLU: PQN's network), then a plain or a dueling head.
PPO's actor is the same with tanh instead of ReLU (spec ``activation``) and logits for Q-values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "jrl-numpy-q-policy"
FORMAT_VERSION = 1
#: The version of a file whose hidden layers have LayerNorms (spec ``layer_norm``) or tanh
#: activations (spec ``activation``), which a reader of version 1 alone would run without them
#: (or with ReLU); networks without keep writing version 1.
LAYER_NORM_VERSION = 2
LAYER_NORM_EPSILON = 1e-6  # flax.linen.LayerNorm's default


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``[B, H, W, C]`` -> ``[B, H, W, F]``: zero-padded 3x3 convolution as patches times a matrix."""
    _, height, width, channels = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = np.concatenate(
        [padded[:, di : di + height, dj : dj + width] for di in range(3) for dj in range(3)], axis=-1
    )
    return patches @ kernel.reshape(9 * channels, -1) + bias


def _layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Normalise over the last axis, then scale and shift (``flax.linen.LayerNorm``'s formula)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = np.maximum(np.square(x).mean(axis=-1, keepdims=True) - np.square(mean), 0.0)
    return (x - mean) / np.sqrt(var + np.float32(LAYER_NORM_EPSILON)) * scale + bias


class NumpyQPolicy:
    """Greedy actions of an exported Q-network (see the module docstring).

    Attributes:
        spec: the network's description (``kind``, ``dueling``, ``one_hot``, ``num_convs``,
            ``num_hidden``, ``num_actions``, ``obs_shape``).
        arrays: the parameters by name (``conv{i}/kernel``, ``dense{i}/bias``, ``head/kernel``,
            ``advantage/kernel``, ``value/bias``, ``scale/low``, ...), float32.
    """

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray]) -> None:
        newer = spec.get("layer_norm", False) or spec.get("activation", "relu") != "relu"
        version = LAYER_NORM_VERSION if newer else FORMAT_VERSION
        if spec.get("format") != FORMAT or spec.get("version") != version:
            raise ValueError(f"not a {FORMAT} v{version} policy: {spec.get('format')!r} v{spec.get('version')!r}")
        self.spec = spec
        self.arrays = {name: np.asarray(a, np.float32) for name, a in arrays.items()}

    @classmethod
    def load(cls, path: str | Path) -> NumpyQPolicy:
        """Read a policy ``export_numpy(...).save(path)`` wrote."""
        with np.load(path, allow_pickle=False) as data:
            if "spec" not in data.files:
                raise ValueError(f"{path}: not an exported jrl policy (no 'spec' entry)")
            spec = json.loads(str(data["spec"]))
            return cls(spec, {name: data[name] for name in data.files if name != "spec"})

    def save(self, path: str | Path) -> None:
        """Write the policy as ``.npz`` (arrays and the JSON spec)."""
        np.savez(path, spec=np.array(json.dumps(self.spec, sort_keys=True)), **self.arrays)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``float32 [B, A]`` of a batch of observations."""
        spec, p = self.spec, self.arrays
        obs = np.asarray(obs)
        expected = tuple(spec["obs_shape"])
        if obs.shape[1:] != expected:
            raise ValueError(f"observations must have shape [B, {', '.join(map(str, expected))}], got {obs.shape}")
        if spec["one_hot"] is not None:
            if (
                not np.issubdtype(obs.dtype, np.integer)
                or obs.min(initial=0) < 0
                or obs.max(initial=0) >= spec["one_hot"]
            ):
                raise ValueError(f"observations must be integers in [0, {spec['one_hot']}), got {obs!r:.80}")
            x = np.eye(spec["one_hot"], dtype=np.float32)[obs]
        else:
            x = obs.astype(np.float32)
        if "scale/low" in p:
            x = 2.0 * (x - p["scale/low"].reshape(expected)) / p["scale/span"].reshape(expected) - 1.0
        act = np.tanh if spec.get("activation", "relu") == "tanh" else (lambda y: np.maximum(y, 0.0))
        for i in range(spec["num_convs"]):
            x = act(self._normalized(f"conv{i}", _conv3x3(x, p[f"conv{i}/kernel"], p[f"conv{i}/bias"])))
        x = x.reshape(x.shape[0], -1)
        for i in range(spec["num_hidden"]):
            x = act(self._normalized(f"dense{i}", x @ p[f"dense{i}/kernel"] + p[f"dense{i}/bias"]))
        if not spec["dueling"]:
            return x @ p["head/kernel"] + p["head/bias"]
        advantage = x @ p["advantage/kernel"] + p["advantage/bias"]
        value = x @ p["value/kernel"] + p["value/bias"]
        return value + advantage - advantage.mean(axis=-1, keepdims=True)

    def _normalized(self, name: str, x: np.ndarray) -> np.ndarray:
        """Layer ``name``'s output through its LayerNorm (spec ``layer_norm``), or unchanged."""
        if not self.spec.get("layer_norm", False):
            return x
        return _layer_norm(x, self.arrays[f"{name}/norm_scale"], self.arrays[f"{name}/norm_bias"])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions ``int64 [B]`` (the lowest index among equal Q-values, as ``argmax``)."""
        return np.argmax(self.q_values(obs), axis=-1)
