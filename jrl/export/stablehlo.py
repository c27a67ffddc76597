"""An exported policy as a StableHLO program (``jax.export``), which needs nothing beyond JAX.

``export_stablehlo(policy, path)`` traces the policy's forward pass (``numpy_policy.forward`` with
``jax.numpy``, the weights as constants: int8 ones stay int8 in the program) for a batch of any
size, and writes ``jax.export``'s serialization to ``path`` with a JSON description beside it
(``path`` + ``.json``: this format's name and version, and the policy's spec). ``load_stablehlo``
reads both back (``jax.export.deserialize``: a StableHLO module, no Python code) into a
``StableHLOPolicy``, whose ``act(obs [B, ...])`` returns the greedy actions and ``q_values`` the
network's outputs, as ``NumpyQPolicy`` does.

A text model (``jrl.export.text.TextExport``) is exported as its greedy decoding program
(``text.generate_function``): ``(tokens int32 [B, L], prompt_lengths int32 [B], max_new_tokens
int32 []) -> tokens int32 [B, L]``, described as ``jrl-stablehlo-text`` with the model's spec (its
vocabulary included, to encode prompts and decode the tokens); ``load_stablehlo`` reads it back as a
``StableHLOText``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl.export.numpy_policy import NumpyQPolicy, forward, greedy
from jrl.export.text import TextExport, generate_function, is_text_spec

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TEXT_FORMAT",
    "StableHLOPolicy",
    "StableHLOText",
    "export_stablehlo",
    "load_stablehlo",
    "policy_function",
    "text_arguments",
]

FORMAT = "jrl-stablehlo-policy"
FORMAT_VERSION = 1
#: The description's format of a text model's decoding program (its version is ``FORMAT_VERSION``).
TEXT_FORMAT = "jrl-stablehlo-text"


def _as_bfloat16(bits: np.ndarray) -> np.ndarray:
    import ml_dtypes  # JAX's own dependency

    return bits.view(ml_dtypes.bfloat16)


def policy_function(policy: NumpyQPolicy):
    """``f(obs [B, *obs_shape]) -> (outputs float32 [B, A], actions)``: the forward pass and the
    greedy action of ``policy`` in ``jax.numpy``, its arrays as stored (quantized kernels stay so)."""
    # bfloat16 bits become bfloat16 constants (every converter has the type; few have a bitcast).
    arrays = {name: jnp.asarray(_as_bfloat16(a) if a.dtype == np.uint16 else a) for name, a in policy.arrays.items()}
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


def text_arguments(export: TextExport, batch: Any) -> list[jax.ShapeDtypeStruct]:
    """The abstract inputs of a text model's decoding program: ``tokens [batch, L]``,
    ``prompt_lengths [batch]`` (int32) and ``max_new_tokens`` (an int32 scalar)."""
    length = export.config.context_length
    return [
        jax.ShapeDtypeStruct((batch, length), np.int32),
        jax.ShapeDtypeStruct((batch,), np.int32),
        jax.ShapeDtypeStruct((), np.int32),
    ]


def export_stablehlo(model: NumpyQPolicy | TextExport, path: str | Path) -> Path:
    """Write ``model`` (a policy, or a text model's greedy decoding) as a StableHLO program
    (``path``) and its description (``path.json``)."""
    path = Path(path)
    (batch,) = jax.export.symbolic_shape("batch")
    if isinstance(model, TextExport):
        function, arguments = generate_function(model), text_arguments(model, batch)
        description = {"format": TEXT_FORMAT, "version": FORMAT_VERSION, "model": model.spec}
    else:
        function = policy_function(model)
        arguments = [jax.ShapeDtypeStruct((batch, *model.spec["obs_shape"]), input_dtype(model.spec))]
        description = {"format": FORMAT, "version": FORMAT_VERSION, "policy": model.spec}
    exported = jax.export.export(jax.jit(function))(*arguments)
    path.write_bytes(exported.serialize())
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
        self._call = jax.jit(exported.call)  # compiled once per batch size: a tenth of the time per call

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The network's outputs ``float32 [B, A]``."""
        return np.asarray(self._call(np.asarray(obs, input_dtype(self.spec)))[0])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions ``[B]`` (int) or ``[B, *action_shape]`` (float32)."""
        return np.asarray(self._call(np.asarray(obs, input_dtype(self.spec)))[1])


class StableHLOText:
    """A text model's greedy decoding read back from ``export_stablehlo``'s files.

    Attributes:
        spec: the model's spec (``jrl.export.text.TextExport.spec``: its config and vocabulary).
        exported: the ``jax.export.Exported`` program.
    """

    def __init__(self, spec: dict, exported: jax.export.Exported) -> None:
        self.spec = spec
        self.exported = exported
        self._call = jax.jit(exported.call)

    def __call__(self, tokens: np.ndarray, prompt_lengths: np.ndarray, max_new_tokens: int) -> np.ndarray:
        """``tokens`` int32 ``[B, L]`` continued greedily (``jrl.export.text.generate_function``)."""
        arguments = (np.asarray(tokens, np.int32), np.asarray(prompt_lengths, np.int32), np.int32(max_new_tokens))
        return np.asarray(self._call(*arguments))


def load_stablehlo(path: str | Path) -> StableHLOPolicy | StableHLOText:
    """Read ``path`` and ``path.json`` (``ValueError`` naming what is wrong): a policy's program as
    a ``StableHLOPolicy``, a text model's as a ``StableHLOText``."""
    path = Path(path)
    try:
        description = json.loads(Path(f"{path}.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}.json: not a {FORMAT} description ({err})") from None
    if not isinstance(description, dict) or description.get("format") not in (FORMAT, TEXT_FORMAT):
        raise ValueError(f"{path}.json: not a {FORMAT} or {TEXT_FORMAT} description")
    if description.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}.json: {description['format']} version {description.get('version')!r}; this jrl reads {FORMAT_VERSION}"
        )
    try:
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception as err:  # a damaged or foreign file: whatever the flatbuffer reader raises
        raise ValueError(f"{path}: not a serialized jax.export program ({type(err).__name__}: {err})") from None
    if description["format"] == TEXT_FORMAT:
        spec = description.get("model")
        if not is_text_spec(spec):
            raise ValueError(f"{path}.json: its 'model' is not a {TEXT_FORMAT} model spec")
        return StableHLOText(spec, exported)
    return StableHLOPolicy(description["policy"], exported)
