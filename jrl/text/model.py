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

from jrl._validation import check_bool, check_float, check_int
from jrl.envs.tokens import Vocabulary
from jrl.parallel import SINGLE, DataParallel, Sharded
from jrl.text.files import CONFIG_FILE, WEIGHTS_FILE, ModelFileError
from jrl.text.hf import is_hf_directory, read_hf_directory, save_hf_directory

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "LMConfig",
    "LanguageModel",
    "ModelFileError",
    "TransformerLM",
    "apply_model",
    "decode_step",
    "empty_cache",
    "init_model",
    "load_model",
    "model_vocabulary",
    "save_model",
    "shard_layers",
]


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
        layer_norm_epsilon: the variance floor of every layer norm: ``1e-6`` (Flax's default, jrl's own
            models) or GPT-2's ``1e-5`` (Hugging Face's ``layer_norm_epsilon``).
        tied_head: ``False``: the output layer is its own ``Dense`` with a bias (jrl's own models);
            ``True``: GPT-2's ``lm_head``, the token embedding transposed with no bias (needs
            ``num_outputs == vocab_size``).
        vocabulary: ``None`` (default): the model's text is ``jrl.envs.vocabulary(env_id)``'s, the
            vocabulary of the environment ``make(env_id)`` builds; or the ``jrl.envs.Vocabulary`` the
            model reads and writes when it is another one: a ``Tasks-v0`` model pretrained on your own
            file has that file's characters (``pretrain`` sets it). Its ``size`` is ``vocab_size`` and
            its ``num_actions`` ``num_outputs``; ``model_vocabulary`` answers either way.

    The last two fields make the model GPT-2 exactly (``jrl.text.hf`` loads Hugging Face's GPT-2
    checkpoints with them); the rest of GPT-2 is already jrl's: GELU in its tanh form (GPT-2's
    ``gelu_new``, Flax's default), biases in attention and MLP, queries, keys and values from one
    ``[D, 3D]`` layer. Their defaults are what jrl's models always were, and ``to_dict`` leaves them
    (and ``vocabulary``) out at their defaults, so every model file and export written before they
    existed reads and writes the same bytes.
    """

    env_id: str
    vocab_size: int
    num_outputs: int
    context_length: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    layer_norm_epsilon: float = 1e-6
    tied_head: bool = False
    vocabulary: Vocabulary | None = None

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
        check_float("layer_norm_epsilon", self.layer_norm_epsilon, 0.0, 1.0, low_open=True)
        check_bool("tied_head", self.tied_head)
        if self.tied_head and self.num_outputs != self.vocab_size:
            raise ValueError(
                f"tied_head=True scores every input token (the embedding transposed): num_outputs "
                f"({self.num_outputs}) must equal vocab_size ({self.vocab_size})"
            )
        _check_vocabulary(self)

    def replace(self, **changes: Any) -> LMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict; ``_OPTIONAL_FIELDS`` only where they differ from their
        defaults; ``vocabulary`` as ``{"strings": [...], "end_id", "bos_id", "separator"}``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data = {k: v for k, v in data.items() if k not in _OPTIONAL_FIELDS or v != _OPTIONAL_FIELDS[k]}
        if "vocabulary" in data:
            data["vocabulary"] = vocabulary_dict(data["vocabulary"])
        return data

    @classmethod
    def from_dict(cls, data: Any) -> LMConfig:
        """A validated config from ``to_dict``'s form; unknown or missing fields are a ``TypeError``."""
        if not isinstance(data, dict):
            raise TypeError(f"an LMConfig is a JSON object of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(f"LMConfig has no field(s) {unknown}; its fields are {sorted(known)}")
        if data.get("vocabulary") is not None:
            data = {**data, "vocabulary": vocabulary_from_dict(data["vocabulary"])}
        return cls(**data)


# Fields added after jrl's first model files, with the defaults those files mean: written only when
# they differ, so configs, model files and exports of jrl's own models keep their bytes.
_OPTIONAL_FIELDS = {"layer_norm_epsilon": 1e-6, "tied_head": False, "vocabulary": None}
_VOCABULARY_KEYS = ("strings", "end_id", "bos_id", "separator")


def _check_vocabulary(config: LMConfig) -> None:
    """``TypeError`` / ``ValueError`` unless ``config.vocabulary`` is ``None`` or a plain
    ``Vocabulary`` of the config's ``vocab_size`` and ``num_outputs``."""
    vocab = config.vocabulary
    if vocab is None:
        return
    # A tokenizer's vocabulary (jrl.envs.tasks.TokenizerVocabulary) encodes by its tokenizer's rules,
    # which its strings do not hold: a Hugging Face model carries it as LanguageModel.tokenizer.
    if type(vocab) is not Vocabulary:
        raise TypeError(
            f"vocabulary must be None or a jrl.envs.Vocabulary, got {type(vocab).__name__} "
            "(a Hugging Face tokenizer goes in LanguageModel.tokenizer)"
        )
    if (vocab.size, vocab.num_actions) != (config.vocab_size, config.num_outputs):
        raise ValueError(
            f"vocabulary has {vocab.size} tokens, {vocab.num_actions} of them outputs; the config's vocab_size "
            f"is {config.vocab_size} and num_outputs {config.num_outputs}"
        )


def vocabulary_dict(vocab: Vocabulary) -> dict[str, Any]:
    """A ``Vocabulary`` as JSON: ``{"strings": [...], "end_id", "bos_id", "separator"}`` (the form of
    ``LMConfig.to_dict`` and of a text export's spec)."""
    return {
        "strings": list(vocab.strings),
        "end_id": vocab.end_id,
        "bos_id": vocab.bos_id,
        "separator": vocab.separator,
    }


def vocabulary_from_dict(data: Any) -> Vocabulary:
    """The ``Vocabulary`` ``vocabulary_dict`` wrote; ``TypeError`` / ``ValueError`` naming the fault."""
    if not isinstance(data, dict) or set(data) != set(_VOCABULARY_KEYS):
        raise TypeError(
            f"a vocabulary is a JSON object with exactly the keys {list(_VOCABULARY_KEYS)}, got {data!r:.120}"
        )
    strings, bos = data["strings"], data["bos_id"]
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise TypeError(f"vocabulary strings must be a list of str, got {strings!r:.120}")
    if bos is not None and (not isinstance(bos, int) or isinstance(bos, bool)):
        raise TypeError(f"vocabulary bos_id must be null or an int, got {bos!r}")
    return Vocabulary(tuple(strings), data["end_id"], bos, data["separator"], len(strings) - (bos is not None))


class _Block(nn.Module):
    """``x + attention(norm(x))``, then ``x + mlp(norm(x))``; ``x``: float32 ``[..., T, D]``."""

    num_heads: int
    mlp_ratio: int
    width: int
    epsilon: float = 1e-6

    def setup(self) -> None:
        self.attention_norm = nn.LayerNorm(epsilon=self.epsilon)
        self.qkv = nn.Dense(3 * self.width)
        self.out = nn.Dense(self.width)
        self.mlp_norm = nn.LayerNorm(epsilon=self.epsilon)
        self.mlp_in = nn.Dense(self.mlp_ratio * self.width)
        self.mlp_out = nn.Dense(self.width)

    def _queries_keys_values(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        qkv = self.qkv(self.attention_norm(x)).reshape(*x.shape[:-1], 3, self.num_heads, self.width // self.num_heads)
        return qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]  # each [..., T, H, Dh]

    def _attend(self, x: jax.Array, q: jax.Array, k: jax.Array, v: jax.Array, visible: jax.Array) -> jax.Array:
        """Attention of queries ``q [..., Tq, H, Dh]`` over ``k, v [..., Tk, H, Dh]`` where ``visible``
        (bool, broadcast to ``[Tq, Tk]``), then the MLP; returns ``[..., Tq, D]``."""
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(jnp.float32(q.shape[-1]))
        weights = jax.nn.softmax(jnp.where(visible, scores, -1e30), axis=-1)
        x = x + self.out(jnp.einsum("...hqk,...khd->...qhd", weights, v).reshape(x.shape))
        return x + self.mlp_out(nn.gelu(self.mlp_in(self.mlp_norm(x))))

    def __call__(self, x: jax.Array) -> jax.Array:
        length = x.shape[-2]
        q, k, v = self._queries_keys_values(x)
        return self._attend(x, q, k, v, jnp.tril(jnp.ones((length, length), bool)))

    def step(self, x: jax.Array, cache: tuple[jax.Array, jax.Array], index: jax.Array) -> tuple[jax.Array, tuple]:
        """One position: ``x [B, 1, D]`` at position ``index`` (int32 scalar, shared by the rows),
        attending to the cached keys and values ``[B, L, H, Dh]`` of positions ``<= index``."""
        q, k, v = self._queries_keys_values(x)
        keys = jax.lax.dynamic_update_slice_in_dim(cache[0], k, index, axis=1)
        values = jax.lax.dynamic_update_slice_in_dim(cache[1], v, index, axis=1)
        visible = jnp.arange(keys.shape[1]) <= index
        return self._attend(x, q, keys, values, visible), (keys, values)


class TransformerLM(nn.Module):
    """Scores for the next token at every position: ``int32 [..., L] -> float32 [..., L, num_outputs]``.

    ``decode`` is the same computation one position at a time, with a cache of every layer's keys
    and values (``empty_cache``): generation costs one position per token instead of the whole
    buffer (equal to ``__call__`` up to float rounding).

    Attributes:
        config: the ``LMConfig``.
        zero_head: initialise the output layer at zero (every score 0): a Q-head whose values
            start at 0, so decoding with it starts as the language model alone.
    """

    config: LMConfig
    zero_head: bool = False

    def setup(self) -> None:
        c = self.config
        self.token_embedding = _token_embedding(c)
        self.position_embedding = self.param(
            "position_embedding", nn.initializers.normal(0.02), (c.context_length, c.d_model)
        )
        self.blocks = [_block(c) for _ in range(c.num_layers)]
        self.final_norm = _final_norm(c)
        if not c.tied_head:
            init = nn.initializers.zeros_init() if self.zero_head else nn.initializers.lecun_normal()
            self.head = nn.Dense(c.num_outputs, kernel_init=init)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = _embed(self.token_embedding, self.position_embedding, tokens)
        for block in self.blocks:
            x = block(x)
        return _scores(self.config, self.final_norm, self.token_embedding if self.config.tied_head else self.head, x)

    def decode(self, token: jax.Array, index: jax.Array, cache: tuple) -> tuple[jax.Array, tuple]:
        """Scores ``[B, num_outputs]`` for position ``index + 1`` from ``token`` (int32 ``[B]``) at
        position ``index`` (an int32 scalar shared by the rows) and the cache of positions before
        it; returns the scores and the cache with position ``index`` added."""
        x = _embed(self.token_embedding, self.position_embedding, token, index)[:, None, :]
        updated = []
        for block, layer_cache in zip(self.blocks, cache, strict=True):
            x, layer_cache = block.step(x, layer_cache, index)
            updated.append(layer_cache)
        output = self.token_embedding if self.config.tied_head else self.head
        return _scores(self.config, self.final_norm, output, x)[:, 0], tuple(updated)


# The pieces of a TransformerLM, shared by its own forward (above) and the layer-by-layer forward
# of sharded parameters (``apply_model``), so that both compute the same thing.


def _token_embedding(config: LMConfig) -> nn.Embed:
    return nn.Embed(config.vocab_size, config.d_model)


def _block(config: LMConfig) -> _Block:
    return _Block(config.num_heads, config.mlp_ratio, config.d_model, config.layer_norm_epsilon)


def _final_norm(config: LMConfig) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=config.layer_norm_epsilon)


def _head(config: LMConfig) -> nn.Dense:
    """The output layer's code (its initialiser is ``TransformerLM.setup``'s)."""
    return nn.Dense(config.num_outputs)


def _embed(token_embedding: nn.Embed, positions: jax.Array, tokens: jax.Array, index: jax.Array | None = None) -> Any:
    """The first activations ``[..., D]``: ``token_embedding(tokens)`` plus the position embedding
    ``positions`` ``[L, D]`` (all rows, or with ``index`` the row of the decoded position)."""
    return token_embedding(tokens) + (positions if index is None else positions[index])


def _scores(config: LMConfig, final_norm: nn.LayerNorm, output: nn.Module, x: jax.Array) -> jax.Array:
    """The output layer on the final norm: ``[..., D] -> [..., num_outputs]``; ``output`` is the
    head, or with ``tied_head`` the token embedding."""
    x = final_norm(x)
    # GPT-2's lm_head is the token embedding read backwards: x @ embedding.T, no bias.
    return output.attend(x) if config.tied_head else output(x)


def empty_cache(config: LMConfig, batch_size: int) -> tuple:
    """The key/value cache ``decode`` starts from: per layer, zeros ``[B, L, H, D / H]`` twice."""
    shape = (batch_size, config.context_length, config.num_heads, config.d_model // config.num_heads)
    return tuple((jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32)) for _ in range(config.num_layers))


def decode_step(
    config: LMConfig, params: Any, token: jax.Array, index: jax.Array, cache: tuple, parallel: DataParallel = SINGLE
) -> tuple:
    """``TransformerLM(config).decode`` with ``params``: ``(scores [B, A], cache)``.

    ``params`` may also be sharded layer by layer (``shard_layers``, inside the program of
    ``parallel``'s devices): each layer is then gathered only while it runs (``apply_model``)."""
    if _is_layered(params):
        return _layered(config, params, parallel, token, (index, cache))
    if isinstance(params, Sharded):
        params = parallel.gather(params)
    return TransformerLM(config).apply(params, token, index, cache, method=TransformerLM.decode)


def shard_layers(params: Any, parallel: DataParallel) -> dict:
    """A ``TransformerLM``'s whole parameters split over ``parallel``'s devices layer by layer
    (inside its program): ``{"params": {name: Sharded}}``, one ``jrl.parallel.Sharded`` node per
    entry of ``params["params"]`` (``token_embedding``, ``position_embedding``, each ``blocks_i``,
    ``final_norm``, ``head``), each made by ``parallel.shard_tree``. These are FSDP's units:
    ``apply_model`` and ``decode_step`` gather one of them at a time."""
    return {"params": {name: parallel.shard_tree(tree) for name, tree in params["params"].items()}}


def _is_layered(params: Any) -> bool:
    """Whether ``params`` is ``shard_layers``' form (a ``Sharded`` node per module)."""
    inner = params.get("params") if isinstance(params, dict) else None
    return isinstance(inner, dict) and any(isinstance(node, Sharded) for node in inner.values())


def apply_model(config: LMConfig, params: Any, tokens: jax.Array, parallel: DataParallel = SINGLE) -> jax.Array:
    """``TransformerLM(config).apply(params, tokens)``: scores ``float32 [..., L, num_outputs]`` of
    the buffers ``tokens`` ``int32 [..., L]``, with ``params`` in any of three forms:

    - whole (a ``TransformerLM``'s parameters): ``TransformerLM.apply`` itself;
    - one ``jrl.parallel.Sharded`` node (``parallel.shard_tree`` of the whole): gathered whole first;
    - sharded layer by layer (``shard_layers``), inside the program of ``parallel``'s devices:
      the embeddings, each block, then the final norm and output layer, each gathered only while
      it runs (``parallel.call_gathered``: the module's own code on the gathered weights,
      rematerialised so that a backward pass gathers each layer again rather than keeping it),
      so a device holds one layer's whole weights at a time besides its pieces. Differentiated
      with ``parallel.value_and_grad``, the gradients arrive as each device's pieces.
    """
    if _is_layered(params):
        return _layered(config, params, parallel, tokens)
    if isinstance(params, Sharded):
        params = parallel.gather(params)
    return TransformerLM(config).apply(params, tokens)


def _layered(
    config: LMConfig, params: dict, parallel: DataParallel, tokens: jax.Array, step: tuple | None = None
) -> Any:
    """The forward of ``shard_layers``' parameters, one module gathered at a time
    (``parallel.call_gathered``), each running ``TransformerLM``'s own code on its gathered
    weights: the scores of ``TransformerLM.__call__`` (``step=None``), or ``TransformerLM.decode``'s
    ``(scores, cache)`` with ``step = (index, cache)`` and ``tokens`` one token per row ``[B]``."""
    p = params["params"]
    bind = lambda module, whole: module.bind({"params": whole})  # noqa: E731
    output = "token_embedding" if config.tied_head else "head"  # GPT-2's output layer is its embedding
    index = None if step is None else step[0]

    def embed(whole: dict, tokens: jax.Array, index: jax.Array | None) -> jax.Array:
        table = bind(_token_embedding(config), whole["token_embedding"])
        return _embed(table, whole["position_embedding"], tokens, index)

    def block(whole: dict, x: jax.Array) -> jax.Array:
        return bind(_block(config), whole)(x)

    def block_step(whole: dict, x: jax.Array, cache: tuple, index: jax.Array) -> tuple:
        return bind(_block(config), whole).step(x, cache, index)

    def scores(whole: dict, x: jax.Array) -> jax.Array:
        layer = _token_embedding(config) if config.tied_head else _head(config)
        return _scores(config, bind(_final_norm(config), whole["final_norm"]), bind(layer, whole[output]), x)

    x = parallel.call_gathered(
        embed, {name: p[name] for name in ("token_embedding", "position_embedding")}, tokens, index
    )
    if step is None:
        for i in range(config.num_layers):
            x = parallel.call_gathered(block, p[f"blocks_{i}"], x)
        return parallel.call_gathered(scores, {"final_norm": p["final_norm"], output: p[output]}, x)
    x, updated = x[:, None, :], []
    for i in range(config.num_layers):
        x, layer_cache = parallel.call_gathered(block_step, p[f"blocks_{i}"], x, step[1][i], index)
        updated.append(layer_cache)
    out = parallel.call_gathered(scores, {"final_norm": p["final_norm"], output: p[output]}, x)
    return out[:, 0], tuple(updated)


@struct.dataclass
class LanguageModel:
    """A config and its parameters: what ``generate`` decodes with and ``save_model`` writes.

    Attributes:
        config: the ``LMConfig`` (static: not a pytree leaf).
        params: the ``TransformerLM`` parameters (a pytree of float32 arrays).
        tokenizer: ``None`` for jrl's own models (their environment's ``Vocabulary`` reads and writes
            their text), or a Hugging Face model's tokenizer (``jrl.text.hf.HFTokenizer``, static).
    """

    config: LMConfig = struct.field(pytree_node=False)
    params: Any
    tokenizer: Any = struct.field(pytree_node=False, default=None)

    def apply(self, tokens: jax.Array) -> jax.Array:
        """Scores ``float32 [..., L, num_outputs]`` of a buffer ``int32 [..., L]``."""
        return TransformerLM(self.config).apply(self.params, tokens)


def model_vocabulary(model: LanguageModel | LMConfig) -> Any:
    """The vocabulary that reads and writes ``model``'s text (a ``LanguageModel`` or its ``LMConfig``).

    A Hugging Face model's tokenizer (``model.tokenizer``, a ``jrl.text.hf.HFTokenizer``); else the
    config's own ``vocabulary`` (a model of another vocabulary than its environment id's default, such
    as a ``Tasks-v0`` model of your file's characters); else ``jrl.envs.vocabulary(config.env_id)``.
    ``generate``, ``jrl.export.export_text`` and ``jrl.text.pretrain.check_model_fits`` all ask it here.

    Raises:
        ValueError: the config carries no vocabulary and its ``env_id`` makes no token environment.
    """
    if isinstance(model, LanguageModel):
        if model.tokenizer is not None:
            return model.tokenizer
        model = model.config
    if not isinstance(model, LMConfig):
        raise TypeError(f"model must be a jrl.text.LanguageModel or LMConfig, got {type(model).__name__}")
    if model.vocabulary is not None:
        return model.vocabulary
    from jrl.envs import vocabulary  # the registry: imported when a model without its own vocabulary asks

    return vocabulary(model.env_id)


def init_model(config: LMConfig, key: jax.Array, zero_head: bool = False) -> LanguageModel:
    """A freshly initialised model (Flax's default initialisers; ``zero_head``: output layer at 0)."""
    if zero_head and config.tied_head:
        raise ValueError("zero_head=True needs an output layer of its own; this config has tied_head=True")
    tokens = jnp.zeros((config.context_length,), jnp.int32)
    return LanguageModel(config, TransformerLM(config, zero_head).init(key, tokens))


def _flat(params: Any) -> dict[str, np.ndarray]:
    return {"/".join(path): np.asarray(leaf) for path, leaf in flatten_dict(params).items()}


def expected_shapes(config: LMConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every parameter's name (``params/blocks_0/qkv/kernel``, ...), shape and dtype for ``config``."""
    abstract_key = jax.eval_shape(jax.random.key, 0)  # a key's shape and type, no value
    shapes = jax.eval_shape(lambda key: init_model(config, key).params, abstract_key)
    return {"/".join(path): (tuple(x.shape), str(x.dtype)) for path, x in flatten_dict(shapes).items()}


def save_model(directory: str | Path, model: LanguageModel, extra: dict | None = None, *, format: str = "jrl") -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    ``extra``: JSON-serialisable facts stored beside the config under ``"training"`` (how the
    weights were made). ``format="hf"`` writes a Hugging Face GPT-2 directory instead (``config.json``,
    ``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json``) that ``transformers`` loads:
    see ``jrl.text.hf.save_hf_directory`` for what it needs (GPT-2's form and a tokenizer; no ``extra``).
    Returns the directory.
    """
    from safetensors.numpy import save_file

    if format == "hf":
        if extra is not None:
            raise ValueError("extra is stored only in jrl's format; format='hf' writes Hugging Face's config.json")
        return save_hf_directory(directory, model.config, _flat(model.params), model.tokenizer)
    if format != "jrl":
        raise ValueError(f"format must be 'jrl' or 'hf', got {format!r}")
    if model.tokenizer is not None:
        raise ValueError(
            "this model reads text with a Hugging Face tokenizer, which jrl's format does not store; "
            "save it with format='hf'"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(_flat(model.params), str(directory / WEIGHTS_FILE), metadata={"format": "jrl-text-lm"})
    document = {"config": model.config.to_dict(), "training": extra or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return directory


def load_model(directory: str | Path, *, context_length: int | None = None) -> LanguageModel:
    """The model ``save_model`` wrote into ``directory``, or a Hugging Face GPT-2 directory.

    A ``config.json`` with a ``model_type`` is Hugging Face's: ``jrl.text.hf.read_hf_directory`` reads it
    (GPT-2 family only, from the local directory, never a download) with its ``tokenizer.json``;
    ``context_length`` (Hugging Face directories only) keeps the first positions of its
    ``n_positions`` as the buffer length (``None``: all of them).

    Raises ``ModelFileError`` for a missing file, a config that does not validate, or weights whose
    names, shapes or dtypes do not fit the config (the message lists the differences). Reading
    parses JSON and safetensors' raw arrays: nothing in the files is executed.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ModelFileError(f"{directory} {what}: a jrl language model is a directory ({CONFIG_FILE}, {WEIGHTS_FILE})")
    if is_hf_directory(directory):
        return _load_hf(directory, context_length)
    if context_length is not None:
        raise ValueError(
            f"context_length={context_length}: only a Hugging Face directory's buffer can be shortened; "
            f"{directory} is a jrl model of context_length from its config.json"
        )
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
    return LanguageModel(config, _fitting_params(directory, config, arrays))


def _fitting_params(directory: Path, config: LMConfig, arrays: dict, names: dict | None = None) -> Any:
    """The parameter tree of ``arrays`` (jrl's parameter paths -> NumPy arrays), or ``ModelFileError``
    listing every name, shape and dtype that does not fit ``config`` (``names``: how the file calls
    a path, for Hugging Face's names)."""
    expected, names = expected_shapes(config), names or {}
    problems = [f"missing {names.get(name, name)}" for name in sorted(set(expected) - set(arrays))]
    problems += [f"unexpected {names.get(name, name)}" for name in sorted(set(arrays) - set(expected))]
    for name in sorted(set(expected) & set(arrays)):
        shape, dtype = expected[name]
        got = (tuple(arrays[name].shape), str(arrays[name].dtype))
        if got != (shape, dtype):
            problems.append(f"{names.get(name, name)}: {got[1]}{list(got[0])}, the config needs {dtype}{list(shape)}")
    if problems:
        shown = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
        raise ModelFileError(f"{directory}: the weights do not fit config.json ({len(problems)} problem(s): {shown})")
    return unflatten_dict({tuple(name.split("/")): jnp.asarray(a) for name, a in arrays.items()})


def _load_hf(directory: Path, context_length: int | None) -> LanguageModel:
    """A Hugging Face GPT-2 directory as a ``LanguageModel`` (``jrl.text.hf.read_hf_directory``)."""
    checkpoint = read_hf_directory(directory, context_length)
    try:
        config = LMConfig(**checkpoint.fields)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{directory / CONFIG_FILE}: not a GPT-2 jrl can build ({err})") from err
    params = _fitting_params(directory, config, checkpoint.arrays, checkpoint.names)
    return LanguageModel(config, params, checkpoint.tokenizer)
