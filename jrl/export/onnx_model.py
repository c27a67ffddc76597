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

A text model (``jrl.export.text.TextExport``) becomes its greedy decoding loop (an ONNX ``Loop``):
inputs ``tokens`` int32 ``[B, L]`` (each prompt left-aligned, the rest the end token),
``prompt_lengths`` int32 ``[B]`` and ``max_new_tokens`` (an int32 scalar), output ``generated``
``[B, L]``; metadata ``jrl_format`` (``jrl-onnx-text 1``) and ``jrl_text`` (the model's spec, with
the vocabulary that encodes prompts and decodes the tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

from jrl._extras import install_hint
from jrl.export.numpy_policy import NumpyQPolicy
from jrl.export.stablehlo import input_dtype, policy_function, text_arguments
from jrl.export.text import TextExport, generate_function

__all__ = ["FORMAT", "FORMAT_VERSION", "TEXT_FORMAT", "export_onnx"]

FORMAT = "jrl-onnx-policy"
FORMAT_VERSION = 1
TEXT_FORMAT = "jrl-onnx-text"


def export_onnx(model: NumpyQPolicy | TextExport, path: str | Path) -> Path:
    """Write ``model`` (a policy, or a text model's greedy decoding) as an ONNX model at ``path``
    (module docstring)."""
    try:
        import jax2onnx
    except ImportError as err:
        raise ImportError(f"exporting to ONNX needs jax2onnx, jrl's 'onnx' extra: {install_hint('onnx')}") from err
    import jax

    (batch,) = jax.export.symbolic_shape("B")  # any batch size
    if isinstance(model, TextExport):
        function, arguments = generate_function(model), text_arguments(model, batch)
        names = (["tokens", "prompt_lengths", "max_new_tokens"], ["generated"])
        metadata = (("jrl_format", f"{TEXT_FORMAT} {FORMAT_VERSION}"), ("jrl_text", json.dumps(model.spec)))
    else:
        function = policy_function(model)
        arguments = [jax.ShapeDtypeStruct((batch, *model.spec["obs_shape"]), input_dtype(model.spec))]
        names = (["obs"], ["outputs", "actions"])
        metadata = (("jrl_format", f"{FORMAT} {FORMAT_VERSION}"), ("jrl_policy", json.dumps(model.spec)))
    onnx_model = jax2onnx.to_onnx(
        function, arguments, model_name="jrl_model", input_names=names[0], output_names=names[1]
    )
    for key, value in metadata:
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    path = Path(path)
    path.write_bytes(onnx_model.SerializeToString())
    return path
