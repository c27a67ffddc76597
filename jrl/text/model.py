"""A small causal language model (Flax linen), and its weights on disk as safetensors.

``TransformerLM(config)`` maps a token buffer ``int32 [..., L]`` to one row of scores per position,
``float32 [..., L, num_outputs]``: row ``i`` scores the token at position ``i + 1`` given tokens
``0..i`` (causal self-attention, so later tokens, padding included, never change it). Pre-layer-norm
blocks, learned token and position embeddings, GELU MLPs: GPT-2's shape at a size a CPU trains in
seconds.

The same module is the language model (its outputs are next-token logits) and the Q-network of
text Q-learning (its outputs are token values, ``jrl.text.q_learning``): a ``LanguageModel`` bundles
a config with parameters, ``save_model`` / ``load_model`` write and read ``model.safetensors`` (Hugging
Face's format: named arrays and a JSON header, nothing executable) with ``config.json`` beside it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.traverse_util import flatten_dict, unflatten_dict

from jrl._validation import check_int

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "LMConfig",
    "LanguageModel",
    "ModelFileError",
    "TransformerLM",
    "init_model",
    "load_model",
    "save_model",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class ModelFileError(ValueError):
    """A model directory that cannot be loaded: missing files, a bad config, or weights that do not
    fit it."""


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """The shape of a ``TransformerLM``; validated on construction.

    Attributes:
        env_id: the text environment whose vocabulary the model reads and writes (``jrl.text.vocabulary``).
        vocab_size: V, input tokens (the vocabulary, bos included).
        num_outputs: tokens a row scores (the environment's actions: ``V`` minus bos, if any).
        context_length: L, the token buffer's length (the environment's).
        d_model: embedding width; divisible by ``num_heads``.
        num_layers: transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: the MLP's hidden width is ``mlp_ratio * d_model``.
    """

    env_id: str
    vocab_size: int
    num_outputs: int
    context_length: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise TypeError(f"env_id must be a non-empty str, got {self.env_id!r}")
        check_int("vocab_size", self.vocab_size, 2)
        check_int("num_outputs", self.num_outputs, 2, self.vocab_size)
        check_int("context_length", self.context_length, 2)
        check_int("d_model", self.d_model, 1)
        check_int("num_layers", self.num_layers, 1)
        check_int("num_heads", self.num_heads, 1)
        check_int("mlp_ratio", self.mlp_ratio, 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")

    def replace(self, **changes: Any) -> LMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LMConfig:
        """A validated config from ``to_dict``'s form; unknown or missing fields are a ``TypeError``."""
        if not isinstance(data, dict):
            raise TypeError(f"an LMConfig is a JSON object of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(f"LMConfig has no field(s) {unknown}; its fields are {sorted(known)}")
        return cls(**data)


class _Block(nn.Module):
    """``x + attention(norm(x))``, then ``x + mlp(norm(x))``; ``x``: float32 ``[..., L, D]``."""

    num_heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        length, width = x.shape[-2:]
        head = width // self.num_heads
        y = nn.LayerNorm()(x)
        qkv = nn.Dense(3 * width, name="qkv")(y).reshape(*x.shape[:-1], 3, self.num_heads, head)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]  # [..., L, H, Dh]
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(jnp.float32(head))
        causal = jnp.tril(jnp.ones((length, length), bool))
        weights = jax.nn.softmax(jnp.where(causal, scores, -1e30), axis=-1)
        attended = jnp.einsum("...hqk,...khd->...qhd", weights, v).reshape(x.shape)
        x = x + nn.Dense(width, name="out")(attended)
        y = nn.LayerNorm()(x)
        y = nn.Dense(self.mlp_ratio * width, name="mlp_in")(y)
        return x + nn.Dense(width, name="mlp_out")(nn.gelu(y))


class TransformerLM(nn.Module):
    """Scores for the next token at every position: ``int32 [..., L] -> float32 [..., L, num_outputs]``.

    Attributes:
        config: the ``LMConfig``.
        zero_head: initialise the output layer at zero (every score 0): a Q-head whose values
            start at 0, so decoding with it starts as the language model alone.
    """

    config: LMConfig
    zero_head: bool = False

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        c = self.config
        x = nn.Embed(c.vocab_size, c.d_model, name="token_embedding")(tokens)
        x = x + self.param("position_embedding", nn.initializers.normal(0.02), (c.context_length, c.d_model))
        for i in range(c.num_layers):
            x = _Block(c.num_heads, c.mlp_ratio, name=f"block_{i}")(x)
        x = nn.LayerNorm(name="final_norm")(x)
        init = nn.initializers.zeros_init() if self.zero_head else nn.initializers.lecun_normal()
        return nn.Dense(c.num_outputs, kernel_init=init, name="head")(x)


@struct.dataclass
class LanguageModel:
    """A config and its parameters: what ``generate`` decodes with and ``save_model`` writes.

    Attributes:
        config: the ``LMConfig`` (static: not a pytree leaf).
        params: the ``TransformerLM`` parameters (a pytree of float32 arrays).
    """

    config: LMConfig = struct.field(pytree_node=False)
    params: Any

    def apply(self, tokens: jax.Array) -> jax.Array:
        """Scores ``float32 [..., L, num_outputs]`` of a buffer ``int32 [..., L]``."""
        return TransformerLM(self.config).apply(self.params, tokens)


def init_model(config: LMConfig, key: jax.Array, zero_head: bool = False) -> LanguageModel:
    """A freshly initialised model (Flax's default initialisers; ``zero_head``: output layer at 0)."""
    tokens = jnp.zeros((config.context_length,), jnp.int32)
    return LanguageModel(config, TransformerLM(config, zero_head).init(key, tokens))


def _flat(params: Any) -> dict[str, np.ndarray]:
    return {"/".join(path): np.asarray(leaf) for path, leaf in flatten_dict(params).items()}


def expected_shapes(config: LMConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every parameter's name (``params/block_0/qkv/kernel``, ...), shape and dtype for ``config``."""
    shapes = jax.eval_shape(lambda: init_model(config, jax.random.key(0)).params)
    return {name: (tuple(x.shape), str(x.dtype)) for name, x in _flat(shapes).items()}


def save_model(directory: str | Path, model: LanguageModel, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    ``extra``: JSON-serialisable facts stored beside the config under ``"training"`` (how the
    weights were made). Returns the directory.
    """
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(_flat(model.params), str(directory / WEIGHTS_FILE), metadata={"format": "jrl-text-lm"})
    document = {"config": model.config.to_dict(), "training": extra or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return directory


def load_model(directory: str | Path) -> LanguageModel:
    """The model ``save_model`` wrote into ``directory``.

    Raises ``ModelFileError`` for a missing file, a config that does not validate, or weights whose
    names, shapes or dtypes do not fit the config (the message lists the differences). Reading
    parses JSON and safetensors' raw arrays: nothing in the files is executed.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ModelFileError(f"{directory} is not a jrl language model: {name} is missing")
    try:
        document = json.loads((directory / CONFIG_FILE).read_text())
        config = LMConfig.from_dict(document["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{directory / CONFIG_FILE}: not a valid model config ({err})") from err
    try:
        arrays = load_file(str(directory / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{directory / WEIGHTS_FILE}: not a readable safetensors file ({err})") from err
    expected = expected_shapes(config)
    problems = [f"missing {name}" for name in sorted(set(expected) - set(arrays))]
    problems += [f"unexpected {name}" for name in sorted(set(arrays) - set(expected))]
    for name in sorted(set(expected) & set(arrays)):
        shape, dtype = expected[name]
        got = (tuple(arrays[name].shape), str(arrays[name].dtype))
        if got != (shape, dtype):
            problems.append(f"{name}: {got[1]}{list(got[0])}, the config needs {dtype}{list(shape)}")
    if problems:
        shown = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
        raise ModelFileError(f"{directory}: the weights do not fit config.json ({len(problems)} problem(s): {shown})")
    params = unflatten_dict({tuple(name.split("/")): jnp.asarray(a) for name, a in arrays.items()})
    return LanguageModel(config, params)
