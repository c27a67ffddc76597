"""An exported policy as an ONNX model (``jax2onnx``), for ONNX Runtime and every runtime that reads
ONNX (the ``onnx`` extra).

``export_onnx(policy, path)`` converts the same JAX function the StableHLO export traces
(``stablehlo.policy_function``: the forward pass, weights as constants, int8 kernels kept int8 and
dequantized in the graph) for a batch of any size. The model has one input, ``obs`` ``[B,
*obs_shape]`` (float32, or int32 indices for a one-hot input), and two outputs, ``outputs`` (the
network's Q-values, logits or action means ``float32 [B, A]``) and ``actions`` (the greedy actions:
int32 ``[B]``, or float32 ``[B, *action_shape]``). It describes itself in its metadata:
``jrl_format`` (this format's name and version) and ``jrl_policy`` (the policy's spec, JSON).
Running it needs ``onnxruntime`` and NumPy only (``experiments/onnx_cartpole.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from jrl._extras import install_hint
from jrl.export.numpy_policy import NumpyQPolicy
from jrl.export.stablehlo import input_dtype, policy_function

__all__ = ["FORMAT", "FORMAT_VERSION", "export_onnx"]

FORMAT = "jrl-onnx-policy"
FORMAT_VERSION = 1


def export_onnx(policy: NumpyQPolicy, path: str | Path) -> Path:
    """Write ``policy`` as an ONNX model at ``path`` (module docstring)."""
    try:
        import jax2onnx
    except ImportError as err:
        raise ImportError(f"exporting to ONNX needs jax2onnx, jrl's 'onnx' extra: {install_hint('onnx')}") from err
    import jax

    (batch,) = jax.export.symbolic_shape("B")  # any batch size
    obs = jax.ShapeDtypeStruct((batch, *policy.spec["obs_shape"]), input_dtype(policy.spec))
    model = jax2onnx.to_onnx(
        policy_function(policy),
        [obs],
        model_name="jrl_policy",
        input_names=["obs"],
        output_names=["outputs", "actions"],
    )
    for key, value in (("jrl_format", f"{FORMAT} {FORMAT_VERSION}"), ("jrl_policy", json.dumps(policy.spec))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path
