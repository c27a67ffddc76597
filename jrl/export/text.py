"""Exported text models: a language model alone, or with text Q-learning's Q-head, as one file.

``export_text(model, q_model, beta)`` bundles a ``jrl.text.LanguageModel`` (and optionally the
Q-network of a ``text_q_learning`` run, which decodes with ``logits + beta * Q``) into a
``TextExport``: the parameters as named arrays (``lm/params/blocks_0/qkv/kernel``, ``q/...``) and a
JSON spec that makes the file self-describing (this format's name and version, the model's
``LMConfig``, its vocabulary, ``q_head`` and ``beta``, and how the weights are stored).

``export.quantized("int8")`` stores every matrix as int8 with one scale per output channel, the
channel's largest absolute weight over 127 (absmax, symmetric, round to nearest, as the policies'
``jrl.export.quantize``): a dense kernel ``[I, O]`` has a scale per output column
(``{name}_scale [O]``), the token embedding ``[V, D]`` one per token row (``[V]``: a lookup reads
rows). Biases, LayerNorm parameters, the position embedding and the scales are float16; activations
stay float32 (weight-only quantization). ``"float16"`` stores every array as float16, ``"bfloat16"``
as bfloat16 (float32's range, 8 bits of precision; rounded to nearest even), whose bits the files
hold as ``uint16`` (neither ``.npz`` nor safetensors' NumPy reader has the type; the spec says what
they are).

Where it runs:
- ``models()`` gives float32 ``LanguageModel``\\ s back (dequantized), so ``jrl.text.generate`` and
  ``jrl generate FILE`` decode an export, quantized or not, like any model;
- ``generate_function(export)`` is greedy (or seeded, sampled) decoding over the whole buffer in
  ``jax.numpy`` with the arrays as stored (int8 constants stay int8 and are dequantized inside),
  the function the StableHLO, ONNX and TensorFlow exports trace.

Files: ``.safetensors`` (the spec in the header's metadata) or ``.npz`` (the arrays and a JSON
string, read with ``allow_pickle=False``). Loading refuses a file whose spec or arrays do not
describe the model (a missing or extra array, a shape or dtype the config does not give, a
non-finite weight, an unknown format version), naming the fault; nothing is executed.
"""

from __future__ import annotations

import functools
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jrl.export.numpy_policy import read_spec_and_arrays
from jrl.export.quantize import absmax_int8, bfloat16_bits

__all__ = ["FORMAT", "FORMAT_VERSION", "WEIGHTS", "TextExport", "export_text", "generate_function", "is_text_spec"]

FORMAT = "jrl-text-model"
FORMAT_VERSION = 1
#: How a ``TextExport``'s arrays are stored (spec ``weights``).
WEIGHTS = ("float32", "float16", "bfloat16", "int8")
#: What holds each ``weights``' arrays in a file (int8: the matrices; the rest are float16).
_STORED = {"float32": "float32", "float16": "float16", "bfloat16": "uint16", "int8": "float16"}
_SPEC_KEYS = {"format", "version", "model", "vocabulary", "q_head", "beta", "weights"}
_VOCABULARY_KEYS = {"strings", "end_id", "bos_id", "separator"}


def _is_matrix(name: str, shape: tuple[int, ...]) -> bool:
    """Whether parameter ``name`` is quantized to int8: the dense kernels and the token embedding."""
    return len(shape) == 2 and name.endswith(("/kernel", "token_embedding/embedding"))


def _channel_axis(name: str) -> int:
    """The axis with one scale per entry: a kernel's output columns, the embedding's token rows."""
    return 0 if name.endswith("token_embedding/embedding") else 1


def _bfloat16(bits: np.ndarray) -> np.ndarray:
    """``uint16`` bit patterns as the bfloat16 values they are (``ml_dtypes``, which JAX brings)."""
    import ml_dtypes

    return bits.view(ml_dtypes.bfloat16)


def _params(stored: dict[str, Any], part: str, xp: Any = np) -> dict:
    """The Flax parameters of ``part`` (``"lm"`` or ``"q"``) as float32 ``xp`` arrays: int8 matrices
    times their scales, float16 and bfloat16 (``uint16`` bits) arrays cast. With ``xp = jax.numpy``
    under a trace, the stored arrays become the program's constants as stored (int8 stays int8,
    bfloat16 bfloat16) and are dequantized in it."""
    from flax.traverse_util import unflatten_dict

    flat = {}
    for name in stored:
        if not name.startswith(f"{part}/") or name.endswith("_scale"):
            continue
        array = stored[name]
        value = xp.asarray(_bfloat16(array) if array.dtype == np.uint16 else array).astype(np.float32)
        if f"{name}_scale" in stored:
            scale = xp.asarray(stored[f"{name}_scale"]).astype(np.float32)
            value = value * (scale[:, None] if _channel_axis(name) == 0 else scale[None, :])
        flat[tuple(name[len(part) + 1 :].split("/"))] = value
    return unflatten_dict(flat)


def _vocabulary_spec(config: Any) -> dict[str, Any]:
    """The spec's ``vocabulary`` of a model of ``config`` (an ``LMConfig``): ``model_vocabulary``'s,
    the config's own or its environment id's."""
    from jrl.text.model import model_vocabulary, vocabulary_dict

    return vocabulary_dict(model_vocabulary(config))


class TextExport:
    """An exported language model, with or without its Q-head (see the module docstring).

    Attributes:
        spec: ``format``, ``version``, ``model`` (the ``LMConfig`` as a dict), ``vocabulary``
            (``strings``, ``end_id``, ``bos_id``, ``separator``), ``q_head`` (bool), ``beta``
            (float: the weight of Q in ``logits + beta * Q``; 0 without a Q-head), ``weights``
            (``"float32"``, ``"float16"``, ``"bfloat16"`` or ``"int8"``).
        arrays: the parameters by name (``lm/params/...``, ``q/params/...``; ``{name}_scale`` for
            int8 matrices), as stored (bfloat16 as its ``uint16`` bits).

    Raises:
        ValueError: the spec or arrays do not describe a model (the fault named).
    """

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray]) -> None:
        self.spec = _checked_spec(spec)
        self.arrays = {name: np.asarray(a) for name, a in arrays.items()}
        _check_arrays(self.spec, self.arrays)

    @property
    def config(self) -> Any:
        """The model's ``jrl.text.LMConfig``."""
        from jrl.text.model import LMConfig

        return LMConfig.from_dict(self.spec["model"])

    @property
    def nbytes(self) -> int:
        """Bytes of the stored arrays."""
        return sum(a.nbytes for a in self.arrays.values())

    def params(self, part: str) -> dict:
        """The Flax parameters of ``"lm"`` or ``"q"``, float32 NumPy arrays (dequantized)."""
        return _params(self.arrays, part)

    def models(self) -> tuple[Any, Any, float]:
        """``(language model, Q-model or None, beta)`` as ``jrl.text.LanguageModel``\\ s of float32
        parameters (dequantized where stored int8, float16 or bfloat16), for ``jrl.text.generate``."""
        import jax.numpy as jnp

        from jrl.text.model import LanguageModel

        config = self.config
        lm = LanguageModel(config, _params(self.arrays, "lm", jnp))
        q_model = LanguageModel(config, _params(self.arrays, "q", jnp)) if self.spec["q_head"] else None
        return lm, q_model, float(self.spec["beta"])

    def quantized(self, weights: str) -> TextExport:
        """This model with its weights stored as ``weights`` (``"int8"``, ``"float16"`` or
        ``"bfloat16"``; module docstring). ``ValueError`` for another value or a model quantized already."""
        if weights not in WEIGHTS[1:]:
            raise ValueError(f"weights must be one of {list(WEIGHTS[1:])}, got {weights!r}")
        if self.spec["weights"] != "float32":
            raise ValueError(f"the model's weights are quantized already ({self.spec['weights']})")
        arrays: dict[str, np.ndarray] = {}
        for name, array in self.arrays.items():
            if weights == "int8" and _is_matrix(name, array.shape):
                rows = _channel_axis(name) == 0  # a scale per row: quantize the transpose's columns
                matrix, arrays[f"{name}_scale"] = absmax_int8(array.T if rows else array, name)
                arrays[name] = matrix.T if rows else matrix
            elif weights == "bfloat16":
                arrays[name] = bfloat16_bits(array)
            else:
                arrays[name] = array.astype(np.float16)
        return TextExport({**self.spec, "weights": weights}, arrays)

    def save(self, path: str | Path) -> Path:
        """Write ``.safetensors`` where ``path`` ends so (the spec in the header's metadata), else
        ``.npz`` (the arrays and the JSON spec). Returns the path."""
        text = json.dumps(self.spec, sort_keys=True)
        if str(path).endswith(".safetensors"):
            from safetensors.numpy import save_file

            arrays = {name: np.ascontiguousarray(a) for name, a in self.arrays.items()}
            save_file(arrays, str(path), {"format": FORMAT, "spec": text})
        else:
            np.savez(path, spec=np.array(text), **self.arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TextExport:
        """Read what ``save`` wrote; ``ValueError`` naming ``path`` and the fault otherwise."""
        try:
            return cls(*read_spec_and_arrays(path, f"a {FORMAT} file"))
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # bad JSON, a damaged zip, a pickle
            raise ValueError(f"{path}: {err}") from None


def is_text_spec(spec: Any) -> bool:
    """Whether ``spec`` (a file's JSON) claims to be a text model (this format)."""
    return isinstance(spec, dict) and spec.get("format") == FORMAT


def _checked_spec(spec: Any) -> dict:
    """``spec`` if it describes a text model this reader reads; ``ValueError`` naming the fault."""
    from jrl.text.model import LMConfig

    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        got = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"not a {FORMAT} file (format {got!r})")
    if spec.get("version") != FORMAT_VERSION:
        raise ValueError(f"{FORMAT} version {spec.get('version')!r}; this jrl reads version {FORMAT_VERSION}")
    if set(spec) != _SPEC_KEYS:
        raise ValueError(
            f"spec keys missing {sorted(_SPEC_KEYS - set(spec))} or unknown {sorted(set(spec) - _SPEC_KEYS)}"
        )
    try:
        config = LMConfig.from_dict(spec["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec 'model' is not a valid LMConfig ({err})") from None
    vocab = spec["vocabulary"]
    if not isinstance(vocab, dict) or set(vocab) != _VOCABULARY_KEYS:
        raise ValueError(f"spec 'vocabulary' must have exactly the keys {sorted(_VOCABULARY_KEYS)}")
    strings = vocab["strings"]
    if not (
        isinstance(strings, list) and len(strings) == config.vocab_size and all(isinstance(s, str) for s in strings)
    ):
        raise ValueError(f"spec vocabulary 'strings' must be {config.vocab_size} strings (the model's vocab_size)")
    bos = vocab["bos_id"]
    if (bos is not None and bos != config.vocab_size - 1) or config.num_outputs != config.vocab_size - (
        bos is not None
    ):
        raise ValueError(f"spec vocabulary bos_id={bos!r} does not fit vocab_size {config.vocab_size} and num_outputs")
    if not (isinstance(vocab["end_id"], int) and 0 <= vocab["end_id"] < config.num_outputs):
        raise ValueError(f"spec vocabulary end_id={vocab['end_id']!r} is not an output token")
    if not isinstance(vocab["separator"], str):
        raise ValueError("spec vocabulary separator must be a string")
    if vocab != _vocabulary_spec(config):  # jrl.text.generate encodes with the model's own (model_vocabulary)
        raise ValueError(f"spec vocabulary differs from the model's ({config.env_id}'s or its config's vocabulary)")
    if (
        not isinstance(spec["q_head"], bool)
        or not isinstance(spec["beta"], (int, float))
        or isinstance(spec["beta"], bool)
    ):
        raise ValueError(f"spec q_head must be a bool and beta a number, got {spec['q_head']!r}, {spec['beta']!r}")
    if not spec["q_head"] and spec["beta"] != 0:
        raise ValueError(f"spec beta={spec['beta']} weights a Q-head, but q_head is false")
    if spec["weights"] not in WEIGHTS:
        raise ValueError(f"spec weights={spec['weights']!r}; one of {list(WEIGHTS)}")
    return spec


@functools.lru_cache(maxsize=16)
def _parameter_shapes(config: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``jrl.text.model.expected_shapes``, traced once per config (every quantized copy checks them)."""
    from jrl.text.model import expected_shapes

    return expected_shapes(config)


def _check_arrays(spec: dict, arrays: dict[str, np.ndarray]) -> None:
    """``ValueError`` unless ``arrays`` are exactly the model's, each of its shape and stored dtype."""
    from jrl.text.model import LMConfig

    shapes = _parameter_shapes(LMConfig.from_dict(spec["model"]))
    expected: dict[str, tuple[tuple[int, ...], str]] = {}
    for prefix in ("lm", "q") if spec["q_head"] else ("lm",):
        for name, (shape, _) in shapes.items():
            full = f"{prefix}/{name}"
            if spec["weights"] == "int8" and _is_matrix(name, shape):
                expected[full] = (shape, "int8")
                expected[f"{full}_scale"] = ((shape[_channel_axis(name)],), "float16")
            else:  # int8 files keep the vectors (biases, norms, positions) as float16
                expected[full] = (shape, _STORED[spec["weights"]])
    problems = [f"missing {n}" for n in sorted(set(expected) - set(arrays))]
    problems += [f"unexpected {n}" for n in sorted(set(arrays) - set(expected))]
    for name in sorted(set(expected) & set(arrays)):
        shape, dtype = expected[name]
        got = arrays[name]
        if (got.shape, got.dtype.name) != (shape, dtype):
            problems.append(f"{name} is {got.dtype.name}{list(got.shape)}, the spec needs {dtype}{list(shape)}")
        elif not np.isfinite(_bfloat16(got) if dtype == "uint16" else got.astype(np.float32)).all():
            problems.append(f"{name} has non-finite values")
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ValueError(f"the arrays do not fit the spec ({len(problems)} problem(s): {shown})")


def export_text(model: Any, q_model: Any = None, beta: float = 0.0) -> TextExport:
    """A float32 ``TextExport`` of ``model`` (a ``jrl.text.LanguageModel``) and, if given, the
    Q-model ``q_model`` (the same config) decoding with ``logits + beta * Q``."""
    from flax.traverse_util import flatten_dict

    from jrl.text.model import LanguageModel

    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a jrl.text.LanguageModel, got {type(model).__name__}")
    if model.tokenizer is not None:
        raise ValueError(
            "a Hugging Face model (its tokenizer.json) cannot be exported in jrl's formats yet: they carry the "
            "vocabulary of a jrl text environment; `jrl export DIR --format hf` (jrl.experiment.export_hf) writes it "
            "as a Hugging Face directory"
        )
    if q_model is not None and (not isinstance(q_model, LanguageModel) or q_model.config != model.config):
        raise ValueError("q_model must be a jrl.text.LanguageModel of the model's config")
    if q_model is None and beta != 0:
        raise ValueError(f"beta={beta} weights a Q-model's values, but q_model is None")
    arrays = {}
    for prefix, part in (("lm", model), ("q", q_model)):
        if part is not None:
            for path, leaf in flatten_dict(part.params).items():
                arrays[f"{prefix}/{'/'.join(path)}"] = np.asarray(leaf, np.float32)
    spec = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "vocabulary": _vocabulary_spec(model.config),
        "q_head": q_model is not None,
        "beta": float(beta),
        "weights": "float32",
    }
    return TextExport(spec, arrays)


def generate_function(export: TextExport, sample: bool = False) -> Callable:
    """Decoding of a ``TextExport`` in ``jax.numpy``, its arrays as stored (int8 constants
    dequantized inside), to run in JAX or to trace into a StableHLO, ONNX or TensorFlow program.

    Greedy (``sample=False``): ``f(tokens int32 [B, L], prompt_lengths int32 [B], max_new_tokens
    int32 []) -> tokens int32 [B, L]``: each prompt (left-aligned, the rest of the row holding the
    end token) continued with the token of the highest ``logits + beta * Q`` (the lowest id among
    ties), up to ``max_new_tokens`` new tokens or the end token, as ``jrl.text.generate(...,
    do_sample=False)`` does. Sampled: ``f(tokens, prompt_lengths, max_new_tokens, seed int32 [],
    temperature float32 [])`` draws each token from ``softmax(scores / temperature)`` with the key
    ``fold_in(key(seed), position)``, the draws ``jrl.text.generate(..., key=jax.random.key(seed))``
    makes. Every position re-reads the whole buffer (no key/value cache: a loop every converter
    handles), so scores agree with ``generate``'s up to float rounding.
    """
    import jax
    import jax.numpy as jnp

    from jrl.text.model import TransformerLM

    config = export.config
    network = TransformerLM(config)
    end_id, beta = export.spec["vocabulary"]["end_id"], np.float32(export.spec["beta"])
    stored = dict(export.arrays)
    parts = ("lm", "q") if export.spec["q_head"] else ("lm",)

    def scores(tokens: jax.Array) -> jax.Array:
        # Dequantized here, inside the loop's body, so the converted loop closes over constants only.
        outputs = [network.apply(_params(stored, part, jnp), tokens) for part in parts]
        return outputs[0] if len(outputs) == 1 else outputs[0] + beta * outputs[1]

    def decode(tokens: jax.Array, prompt_lengths: jax.Array, max_new_tokens: jax.Array, *sampling: jax.Array):
        def body(i: jax.Array, carry: tuple) -> tuple:
            tokens, finished, prompt_lengths, max_new_tokens, *sampling = carry
            row = jax.lax.dynamic_index_in_dim(scores(tokens), i, axis=1, keepdims=False)  # [B, A]
            if sample:
                seed, temperature = sampling
                key = jax.random.fold_in(jax.random.key(seed), i)
                new = jax.random.categorical(key, row / temperature, axis=-1).astype(jnp.int32)
            else:
                new = jnp.argmax(row, axis=-1).astype(jnp.int32)
            generated_before = i + 1 - prompt_lengths
            write = (generated_before >= 0) & (generated_before < max_new_tokens) & ~finished
            old = jax.lax.dynamic_index_in_dim(tokens, i + 1, axis=1, keepdims=False)
            tokens = jax.lax.dynamic_update_index_in_dim(tokens, jnp.where(write, new, old), i + 1, axis=1)
            return (tokens, finished | (write & (new == end_id)), prompt_lengths, max_new_tokens, *sampling)

        # Every input rides in the carry: jax2onnx's loop takes no traced value from outside.
        carry = (tokens, jnp.zeros(tokens.shape[0], bool), prompt_lengths, max_new_tokens, *sampling)
        return jax.lax.fori_loop(0, tokens.shape[1] - 1, body, carry)[0]

    return decode
