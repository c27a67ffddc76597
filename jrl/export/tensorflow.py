"""An exported policy as a TensorFlow SavedModel (``jax2tf``), for TensorFlow Serving, TFLite
converters and every Python that has TensorFlow and no JAX (the ``tf`` extra).

``export_tf(policy, path)`` converts the function the StableHLO and ONNX exports trace
(``stablehlo.policy_function``: the forward pass, weights as constants, int8 kernels kept int8 and
dequantized in the graph) with ``jax.experimental.jax2tf`` (native serialization: the graph holds
the StableHLO program in one ``XlaCallModule`` op, lowered for CPU and CUDA) for a batch of any size,
and writes a SavedModel directory at ``path`` (suffix ``.savedmodel``). Loaded with
``tf.saved_model.load(path)``, the model has:

- ``act(obs)`` and the ``serving_default`` signature (the same function): ``obs`` ``[B,
  *obs_shape]`` (float32, or int32 indices for a one-hot input) to a dict of ``outputs`` (the
  network's Q-values, logits or action means, ``float32 [B, A]``) and ``actions`` (the greedy
  actions: int32 ``[B]``, or float32 ``[B, *action_shape]``);
- ``jrl_format()``: this format's name and version, ``b"jrl-tf-policy 1"``;
- ``jrl_policy()``: the policy's spec as JSON (``NumpyQPolicy.spec``).

``load_tf(path)`` reads it back into a ``TFPolicy`` (``q_values(obs)``, ``policy(obs)`` and
``spec``, as ``load_policy``'s readers), refusing with a one-line ``ValueError`` a directory that
is not a jrl SavedModel, another version, or a damaged one. Importing this module imports neither
TensorFlow nor ``jax2tf``: each function imports them when called.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from jrl._extras import install_hint
from jrl.export.numpy_policy import NumpyQPolicy

__all__ = ["FORMAT", "FORMAT_VERSION", "SUFFIX", "TFPolicy", "export_tf", "load_tf"]

FORMAT = "jrl-tf-policy"
FORMAT_VERSION = 1
#: The suffix of the SavedModel directory ``jrl export --format tf`` writes.
SUFFIX = ".savedmodel"
#: Where the program runs: jax2tf lowers it once per platform, and TensorFlow picks the one it runs on.
PLATFORMS = ("cpu", "cuda")


def _tensorflow() -> Any:
    """TensorFlow, or an ``ImportError`` naming the extra."""
    # TensorFlow's C++ start-up notes (CPU instructions, oneDNN) go to stderr on import; a user's
    # own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(f"a TensorFlow SavedModel needs TensorFlow, jrl's 'tf' extra: {install_hint('tf')}") from err
    return tf


def export_tf(policy: NumpyQPolicy, path: str | Path) -> Path:
    """Write ``policy`` as a SavedModel directory at ``path`` (module docstring); ``ValueError``
    if ``path`` does not end in ``.savedmodel`` or exists and is not an empty directory."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"a tf export is a directory named *{SUFFIX}, got {str(path)!r}")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} exists and is not an empty directory: a SavedModel is written into a new one")
    tf = _tensorflow()
    from jax.experimental import jax2tf

    from jrl.export.stablehlo import input_dtype, policy_function

    obs_shape = tuple(policy.spec["obs_shape"])
    converted = jax2tf.convert(
        policy_function(policy),
        polymorphic_shapes=[f"(b, {', '.join(['_'] * len(obs_shape))})" if obs_shape else "(b,)"],
        with_gradient=False,
        native_serialization_platforms=PLATFORMS,
    )
    dtype = tf.int32 if input_dtype(policy.spec) == np.int32 else tf.float32

    def act(obs: Any) -> dict:
        outputs, actions = converted(obs)
        return {"outputs": outputs, "actions": actions}

    description = json.dumps(policy.spec, sort_keys=True)
    module = tf.Module()
    module.act = tf.function(
        act, autograph=False, input_signature=[tf.TensorSpec([None, *obs_shape], dtype, name="obs")]
    )
    module.jrl_format = tf.function(lambda: tf.constant(f"{FORMAT} {FORMAT_VERSION}"), input_signature=[])
    module.jrl_policy = tf.function(lambda: tf.constant(description), input_signature=[])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.act})
    return path


class TFPolicy:
    """A policy read back from ``export_tf``'s SavedModel.

    Attributes:
        spec: the policy's spec (as ``NumpyQPolicy.spec``).
        model: what ``tf.saved_model.load`` returned (``model.act(obs)``, the signatures).
    """

    def __init__(self, spec: dict, model: Any) -> None:
        self.spec = spec
        self.model = model

    def _run(self, obs: np.ndarray) -> dict:
        dtype = np.int32 if self.spec["one_hot"] is not None else np.float32
        return self.model.act(np.asarray(obs, dtype))

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The network's outputs ``float32 [B, A]`` for observations ``[B, *obs_shape]``."""
        return self._run(obs)["outputs"].numpy()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions ``int32 [B]``, or ``float32 [B, *action_shape]`` for a continuous action."""
        return self._run(obs)["actions"].numpy()


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def load_tf(path: str | Path) -> TFPolicy:
    """Read a SavedModel ``export_tf`` wrote; ``ValueError`` (one line, naming ``path``) for a
    directory that is not one (no SavedModel, a damaged one, no jrl description, another version)."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ValueError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    tf = _tensorflow()
    try:
        model = tf.saved_model.load(str(path))
    except Exception as err:  # a damaged protobuf or variables file: whatever TensorFlow raises
        raise ValueError(f"{path}: not a readable SavedModel ({_one_line(err)})") from None
    if not all(hasattr(model, name) for name in ("act", "jrl_format", "jrl_policy")):
        raise ValueError(f"{path}: not a {FORMAT} SavedModel (no jrl_format, jrl_policy and act)")
    name, _, version = model.jrl_format().numpy().decode().partition(" ")
    if name != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} SavedModel ({name!r})")
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{path}: {FORMAT} version {version!r}; this jrl reads {FORMAT_VERSION}")
    try:
        spec = json.loads(model.jrl_policy().numpy().decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: its policy description is not JSON ({err})") from None
    if not isinstance(spec, dict) or not {"obs_shape", "one_hot", "num_actions"} <= set(spec):
        raise ValueError(f"{path}: its policy description is not a jrl policy spec")
    return TFPolicy(spec, model)
