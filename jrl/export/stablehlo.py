"""An exported policy as a StableHLO program (``jax.export``), which needs nothing beyond JAX.

``export_stablehlo(policy, path)`` traces the policy's forward pass (``numpy_policy.forward`` with
``jax.numpy``, the weights as constants: int8 ones stay int8 in the program) for a batch of any
size, and writes ``jax.export``'s serialization to ``path`` with a JSON description beside it
(``path`` + ``.json``: this format's name and version, and the policy's spec). ``load_stablehlo``
reads both back (``jax.export.deserialize``: a StableHLO module, no Python code) into a
``StableHLOPolicy``, whose ``act(obs [B, ...])`` returns the greedy actions and ``q_values`` the
network's outputs, as ``NumpyQPolicy`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jrl.export.numpy_policy import NumpyQPolicy, forward, greedy

__all__ = ["FORMAT", "FORMAT_VERSION", "StableHLOPolicy", "export_stablehlo", "load_stablehlo", "policy_function"]

FORMAT = "jrl-stablehlo-policy"
FORMAT_VERSION = 1


def policy_function(policy: NumpyQPolicy):
    """``f(obs [B, *obs_shape]) -> (outputs float32 [B, A], actions)``: the forward pass and the
    greedy action of ``policy`` in ``jax.numpy``, its arrays as stored (quantized kernels stay so)."""
    arrays = {name: jnp.asarray(a) for name, a in policy.arrays.items()}
    spec = policy.spec

    def conv3x3(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
        # XLA's convolution (an ONNX Conv node), not patches: the same sums, a smaller program.
        dims = ("NHWC", "HWIO", "NHWC")
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=dims) + bias

    def act(obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        outputs = forward(spec, arrays, obs, jnp, conv3x3)
        actions = greedy(spec, arrays, outputs, jnp)
        return outputs, actions if policy.continuous else actions.astype(jnp.int32)

    return act


def input_dtype(spec: dict) -> np.dtype:
    """What the exported program takes: int32 indices for one-hot inputs, float32 otherwise."""
    return np.dtype(np.int32) if spec["one_hot"] is not None else np.dtype(np.float32)


def export_stablehlo(policy: NumpyQPolicy, path: str | Path) -> Path:
    """Write ``policy`` as a StableHLO program (``path``) and its description (``path.json``)."""
    path = Path(path)
    (batch,) = jax.export.symbolic_shape("batch")
    obs = jax.ShapeDtypeStruct((batch, *policy.spec["obs_shape"]), input_dtype(policy.spec))
    exported = jax.export.export(jax.jit(policy_function(policy)))(obs)
    path.write_bytes(exported.serialize())
    description = {"format": FORMAT, "version": FORMAT_VERSION, "policy": policy.spec}
    Path(f"{path}.json").write_text(json.dumps(description, indent=1, sort_keys=True) + "\n")
    return path


class StableHLOPolicy:
    """A policy read back from ``export_stablehlo``'s files.

    Attributes:
        spec: the policy's spec (as ``NumpyQPolicy.spec``).
        exported: the ``jax.export.Exported`` program.
    """

    def __init__(self, spec: dict, exported: jax.export.Exported) -> None:
        self.spec = spec
        self.exported = exported

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The network's outputs ``float32 [B, A]``."""
        return np.asarray(self.exported.call(np.asarray(obs, input_dtype(self.spec)))[0])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions ``[B]`` (int) or ``[B, *action_shape]`` (float32)."""
        return np.asarray(self.exported.call(np.asarray(obs, input_dtype(self.spec)))[1])


def load_stablehlo(path: str | Path) -> StableHLOPolicy:
    """Read ``path`` and ``path.json`` (``ValueError`` naming what is wrong)."""
    path = Path(path)
    try:
        description = json.loads(Path(f"{path}.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}.json: not a {FORMAT} description ({err})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ValueError(f"{path}.json: not a {FORMAT} description")
    if description.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}.json: {FORMAT} version {description.get('version')!r}; this jrl reads {FORMAT_VERSION}"
        )
    try:
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception as err:  # a damaged or foreign file: whatever the flatbuffer reader raises
        raise ValueError(f"{path}: not a serialized jax.export program ({type(err).__name__}: {err})") from None
    return StableHLOPolicy(description["policy"], exported)
