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

A text model (``jrl.export.text.TextExport``) becomes a SavedModel whose ``generate`` signature
takes a batch of prompt strings and returns the generated strings, prompt included (as ``jrl
generate`` prints them): the tokenisation (a lookup table of the vocabulary's strings), the
decoding loop (``text.generate_function``: greedy, with ``logits + beta * Q`` where the model has a
Q-head) and the detokenisation are all in the graph, so ``tf.saved_model.load(path).generate(
tf.constant(["3", "7 1"]))`` runs in a Python with TensorFlow alone. ``sample(prompts, seed,
temperature)`` draws instead (the draws of ``jrl.text.generate`` with ``key(seed)``);
``generate_tokens(tokens, prompt_lengths, max_new_tokens)`` is the decoding on token ids;
``jrl_format()`` is ``b"jrl-tf-text 1"`` and ``jrl_text()`` the model's spec. A prompt with a
piece outside the vocabulary, or too long for the buffer, raises TensorFlow's
``InvalidArgumentError`` naming the fault.

``load_tf(path)`` reads a policy back into a ``TFPolicy`` (a text model into a ``TFText``) (``q_values(obs)``, ``policy(obs)`` and
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
from jrl.export.text import TextExport, is_text_spec

__all__ = ["FORMAT", "FORMAT_VERSION", "SUFFIX", "TEXT_FORMAT", "TFPolicy", "TFText", "export_tf", "load_tf"]

FORMAT = "jrl-tf-policy"
FORMAT_VERSION = 1
#: A text model's SavedModel (its version is ``FORMAT_VERSION``).
TEXT_FORMAT = "jrl-tf-text"
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


def export_tf(policy: NumpyQPolicy | TextExport, path: str | Path) -> Path:
    """Write ``policy`` (or a text model) as a SavedModel directory at ``path`` (module docstring);
    ``ValueError`` if ``path`` does not end in ``.savedmodel`` or exists and is not an empty directory."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"a tf export is a directory named *{SUFFIX}, got {str(path)!r}")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} exists and is not an empty directory: a SavedModel is written into a new one")
    tf = _tensorflow()
    if isinstance(policy, TextExport):
        return _export_text(tf, policy, path)
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


def _text_io(tf: Any, module: Any, vocab: dict, length: int) -> tuple:
    """``(encode, decode)``: prompt strings ``[B]`` to ``(tokens int32 [B, L], prompt_lengths [B])``
    as ``Vocabulary.encode`` splits them, and a filled buffer ``[B, L]`` back to strings (``bos``
    skipped, up to the first end token, joined by the separator), as ``Vocabulary.decode``."""
    strings, end_id, bos_id, separator = vocab["strings"], vocab["end_id"], vocab["bos_id"], vocab["separator"]
    content = [(text, i) for i, text in enumerate(strings) if i not in (end_id, bos_id)]
    keys = tf.constant([text for text, _ in content])
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.constant([i for _, i in content], tf.int32)), -1
    )
    module.strings = tf.constant(strings)

    def encode(prompts: Any) -> tuple:
        if separator == "":
            pieces = tf.strings.unicode_split(prompts, "UTF-8")
        elif separator.strip() == "":
            pieces = tf.strings.split(prompts)  # at runs of whitespace, as str.split()
        else:
            pieces = tf.strings.split(prompts, separator)
            pieces = tf.ragged.boolean_mask(pieces, pieces != "")
        ids = tf.ragged.map_flat_values(module.table.lookup, pieces)
        checks = [
            tf.debugging.assert_non_negative(
                ids.flat_values, message="a prompt holds a piece that is not a prompt token"
            )
        ]
        if bos_id is not None:
            ids = tf.concat([tf.fill([tf.shape(prompts)[0], 1], bos_id), ids], axis=1)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        checks.append(tf.debugging.assert_positive(lengths, message="a prompt is empty and the vocabulary has no bos"))
        checks.append(
            tf.debugging.assert_less_equal(lengths, length - 1, message=f"a prompt has more than {length - 1} tokens")
        )
        with tf.control_dependencies(checks):
            return ids.to_tensor(default_value=end_id, shape=[None, length]), lengths

    def decode(tokens: Any) -> Any:
        is_end = tokens == end_id
        first_end = tf.argmax(tf.cast(is_end, tf.int32), axis=1, output_type=tf.int32)
        rows = tf.RaggedTensor.from_tensor(tokens, lengths=tf.where(tf.reduce_any(is_end, axis=1), first_end, length))
        if bos_id is not None:
            rows = tf.ragged.boolean_mask(rows, rows != bos_id)
        return tf.strings.reduce_join(tf.gather(module.strings, rows), axis=1, separator=separator)

    return encode, decode


def _export_text(tf: Any, export: TextExport, path: Path) -> Path:
    """A text model's SavedModel (module docstring)."""
    from jax.experimental import jax2tf

    from jrl.export.text import generate_function

    length = export.config.context_length
    shapes = [f"(b, {length})", "(b,)", "()"]

    def converted(sample: bool) -> Any:
        arguments = [*shapes, "()", "()"] if sample else shapes
        function = generate_function(export, sample=sample)
        return jax2tf.convert(
            function, polymorphic_shapes=arguments, with_gradient=False, native_serialization_platforms=PLATFORMS
        )

    greedy, sampled = converted(False), converted(True)
    module = tf.Module()
    encode, decode = _text_io(tf, module, export.spec["vocabulary"], length)
    prompts = tf.TensorSpec([None], tf.string, name="prompts")

    def generate(prompts: Any) -> Any:
        tokens, lengths = encode(prompts)  # as many new tokens as the longest prompt leaves room for
        return decode(greedy(tokens, lengths, length - tf.reduce_max(lengths)))

    def sample(prompts: Any, seed: Any, temperature: Any) -> Any:
        tokens, lengths = encode(prompts)
        return decode(sampled(tokens, lengths, length - tf.reduce_max(lengths), seed, temperature))

    token_specs = [
        tf.TensorSpec([None, length], tf.int32, name="tokens"),
        tf.TensorSpec([None], tf.int32, name="prompt_lengths"),
        tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    ]
    scalars = [tf.TensorSpec([], tf.int32, name="seed"), tf.TensorSpec([], tf.float32, name="temperature")]
    module.generate = tf.function(generate, autograph=False, input_signature=[prompts])
    module.sample = tf.function(sample, autograph=False, input_signature=[prompts, *scalars])
    module.generate_tokens = tf.function(greedy, autograph=False, input_signature=token_specs)
    description = json.dumps(export.spec, sort_keys=True)
    module.jrl_format = tf.function(lambda: tf.constant(f"{TEXT_FORMAT} {FORMAT_VERSION}"), input_signature=[])
    module.jrl_text = tf.function(lambda: tf.constant(description), input_signature=[])
    signatures = {"serving_default": module.generate, "generate": module.generate, "sample": module.sample}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


class TFText:
    """A text model read back from ``export_tf``'s SavedModel.

    Attributes:
        spec: the model's spec (``jrl.export.text.TextExport.spec``).
        model: what ``tf.saved_model.load`` returned (``model.generate(prompts)``, ...).
    """

    def __init__(self, spec: dict, model: Any) -> None:
        self.spec = spec
        self.model = model

    def generate(self, prompts: list[str]) -> list[str]:
        """Greedy texts (prompt and continuation) of the prompts."""
        return [text.decode() for text in self.model.generate(np.array(prompts, dtype=object)).numpy()]

    def sample(self, prompts: list[str], seed: int, temperature: float = 1.0) -> list[str]:
        """Texts drawn at ``temperature`` with the key ``jax.random.key(seed)``."""
        drawn = self.model.sample(np.array(prompts, dtype=object), np.int32(seed), np.float32(temperature))
        return [text.decode() for text in drawn.numpy()]


class TFPolicy:
    """A policy read back from ``export_tf``'s SavedModel.

    Attributes:
        spec: the policy's spec (as ``NumpyQPolicy.spec``).
        model: what ``tf.saved_model.load`` returned (``model.act(obs)``, the signatures).
    """

    def __init__(self, spec: dict, model: Any) -> None:
        self.spec = spec
        self.model = model
        # The signature is one concrete function: calling it skips the matching of inputs against
        # traces that the restored ``act`` does first, half the time of a call at batch 1
        # (benchmarks/export_latency.py).
        self._serve = model.signatures["serving_default"]

    def _run(self, obs: np.ndarray) -> dict:
        dtype = np.int32 if self.spec["one_hot"] is not None else np.float32
        return self._serve(obs=np.asarray(obs, dtype))

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The network's outputs ``float32 [B, A]`` for observations ``[B, *obs_shape]``."""
        return self._run(obs)["outputs"].numpy()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions ``int32 [B]``, or ``float32 [B, *action_shape]`` for a continuous action."""
        return self._run(obs)["actions"].numpy()


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def load_tf(path: str | Path) -> TFPolicy | TFText:
    """Read a SavedModel ``export_tf`` wrote: a policy's as a ``TFPolicy``, a text model's as a
    ``TFText``; ``ValueError`` (one line, naming ``path``) for a directory that is not one (no
    SavedModel, a damaged one, no jrl description, another version)."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ValueError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    tf = _tensorflow()
    try:
        model = tf.saved_model.load(str(path))
    except Exception as err:  # a damaged protobuf or variables file: whatever TensorFlow raises
        raise ValueError(f"{path}: not a readable SavedModel ({_one_line(err)})") from None
    if not hasattr(model, "jrl_format"):
        raise ValueError(f"{path}: not a {FORMAT} or {TEXT_FORMAT} SavedModel (no jrl_format)")
    name, _, version = model.jrl_format().numpy().decode().partition(" ")
    text = name == TEXT_FORMAT
    needed = ("generate", "jrl_text") if text else ("act", "jrl_policy")
    if name not in (FORMAT, TEXT_FORMAT) or not all(hasattr(model, attribute) for attribute in needed):
        raise ValueError(f"{path}: not a {FORMAT} or {TEXT_FORMAT} SavedModel ({name!r})")
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{path}: {name} version {version!r}; this jrl reads {FORMAT_VERSION}")
    try:
        spec = json.loads((model.jrl_text if text else model.jrl_policy)().numpy().decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: its description is not JSON ({err})") from None
    if text:
        if not is_text_spec(spec):
            raise ValueError(f"{path}: its description is not a jrl text model spec")
        return TFText(spec, model)
    if not isinstance(spec, dict) or not {"obs_shape", "one_hot", "num_actions"} <= set(spec):
        raise ValueError(f"{path}: its policy description is not a jrl policy spec")
    if "serving_default" not in model.signatures:
        raise ValueError(f"{path}: a {FORMAT} SavedModel without its serving_default signature")
    return TFPolicy(spec, model)
