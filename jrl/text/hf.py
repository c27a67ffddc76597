"""Hugging Face GPT-2 checkpoints in and out of jrl: ``read_hf_directory`` and ``save_hf_directory``,
which ``jrl.text.load_model`` and ``save_model(format="hf")`` call.

A Hugging Face GPT-2 directory (``config.json`` with ``"model_type": "gpt2"``, ``model.safetensors``,
``tokenizer.json``) becomes a ``LanguageModel`` whose ``TransformerLM`` computes GPT-2's logits:
the same blocks as jrl's own models with GPT-2's layer-norm epsilon and its output layer tied to the
token embedding (``LMConfig.layer_norm_epsilon``, ``LMConfig.tied_head``), and the text read and
written by the checkpoint's own tokenizer (``HFTokenizer``, through the ``tokenizers`` library: the
``hf`` extra). Everything is read from the local directory: nothing is downloaded, and reading
parses JSON and safetensors' raw arrays only (no pickled ``pytorch_model.bin``).

Hugging Face stores GPT-2's linear layers as ``Conv1D`` weights ``[in, out]``, which is Flax's
``Dense`` kernel layout, and its combined ``c_attn`` ``[D, 3D]`` splits into queries, keys and
values, then heads, exactly as jrl's ``qkv`` layer does: the weights copy over without transposes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jrl._extras import install_hint
from jrl.text.files import CONFIG_FILE, WEIGHTS_FILE, ModelFileError

__all__ = [
    "HF_VOCABULARY",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "HFCheckpoint",
    "HFTokenizer",
    "is_hf_directory",
    "read_hf_directory",
    "save_hf_directory",
]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: ``LMConfig.env_id`` of a model whose text goes through its Hugging Face tokenizer
#: (``LanguageModel.tokenizer``) rather than a jrl environment's vocabulary.
HF_VOCABULARY = "huggingface:tokenizer.json"

# GPT-2's activation names that are GELU's tanh form (Flax's nn.gelu default): gelu_new and
# gelu_pytorch_tanh compute the same function.
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")
# Non-persistent buffers old GPT-2 checkpoints saved (the causal mask and its fill value): not weights.
_BUFFERS = (".attn.bias", ".attn.masked_bias")


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as err:  # an optional extra
        raise ImportError(f"Hugging Face tokenizers need the tokenizers library: {install_hint('hf')}") from err
    return tokenizers


class HFTokenizer:
    """A Hugging Face tokenizer (``tokenizer.json``) with the interface ``jrl.text.generate`` uses of a
    ``Vocabulary``: ``encode``, ``decode_batch``, ``size`` and ``end_id``.

    Equal (and hashed) by its JSON and end token, so a ``LanguageModel`` holding it stays a valid
    static part of a pytree.

    Attributes:
        tokenizer: the ``tokenizers.Tokenizer``.
        end_id: the end-of-text token (GPT-2's ``eos_token_id``): generation stops at it and pads with it.
    """

    def __init__(self, tokenizer: Any, end_id: int) -> None:
        self.tokenizer = tokenizer
        self.end_id = int(end_id)
        self._json = tokenizer.to_str()

    @classmethod
    def from_file(cls, path: str | Path, end_id: int) -> HFTokenizer:
        """The tokenizer in ``path`` (a ``tokenizer.json``)."""
        return cls(_tokenizers().Tokenizer.from_file(str(path)), end_id)

    @property
    def size(self) -> int:
        """Token ids the tokenizer knows, its added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """``text`` -> token ids (the tokenizer's own rules; GPT-2's adds no bos token)."""
        return self.tokenizer.encode(text).ids

    def decode_batch(self, tokens: Any) -> list[str]:
        """Each row of ``tokens`` (ids ``[B, L]``) up to its first end token, as text (special tokens skipped)."""
        rows = []
        for row in np.asarray(tokens).tolist():
            rows.append(row[: row.index(self.end_id)] if self.end_id in row else row)
        return self.tokenizer.decode_batch(rows, skip_special_tokens=True)

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` to ``path``."""
        Path(path).write_text(self._json)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HFTokenizer) and (self._json, self.end_id) == (other._json, other.end_id)

    def __hash__(self) -> int:
        return hash((self._json, self.end_id))

    def __repr__(self) -> str:
        return f"HFTokenizer(size={self.size}, end_id={self.end_id})"


def is_hf_directory(directory: str | Path) -> bool:
    """Whether ``directory/config.json`` is Hugging Face's (a JSON object with ``model_type``)."""
    try:
        document = json.loads((Path(directory) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "model_type" in document


def _hf_int(hf: dict, name: str, directory: Path, low: int = 1) -> int:
    value = hf.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ModelFileError(f"{directory / CONFIG_FILE}: {name} must be an int >= {low}, got {value!r}")
    return value


def _check_supported(hf: dict, directory: Path) -> None:
    """``ModelFileError`` naming the first field of ``config.json`` that jrl's GPT-2 cannot compute."""
    where = directory / CONFIG_FILE
    if hf.get("model_type") != "gpt2":
        raise ModelFileError(
            f"{where}: model_type {hf.get('model_type')!r} is not supported (jrl loads the GPT-2 family: 'gpt2')"
        )
    rules = [  # (field, Hugging Face's default, what jrl computes)
        ("activation_function", "gelu_new", _TANH_GELUS),
        ("scale_attn_weights", True, (True,)),
        ("scale_attn_by_inverse_layer_idx", False, (False,)),
        ("add_cross_attention", False, (False,)),
        ("tie_word_embeddings", True, (True,)),
    ]
    for name, default, allowed in rules:
        value = hf.get(name, default)
        if value not in allowed or type(value) is not type(allowed[0]):
            raise ModelFileError(f"{where}: {name}={value!r} is not supported (jrl computes {name}={allowed[0]!r})")


def _end_id(hf: dict, directory: Path, vocab_size: int) -> int:
    """GPT-2's end token: ``config.json``'s ``eos_token_id``, else ``tokenizer_config.json``'s ``eos_token``."""
    eos = hf.get("eos_token_id")
    if isinstance(eos, list) and eos:  # newer configs may list several; the first ends generation here
        eos = eos[0]
    if isinstance(eos, int) and 0 <= eos < vocab_size:
        return eos
    path = directory / TOKENIZER_CONFIG_FILE
    name = None
    if path.is_file():
        token = json.loads(path.read_text()).get("eos_token")
        name = token.get("content") if isinstance(token, dict) else token
    if isinstance(name, str):
        found = _tokenizers().Tokenizer.from_file(str(directory / TOKENIZER_FILE)).token_to_id(name)
        if found is not None:
            return found
    raise ModelFileError(
        f"{directory / CONFIG_FILE}: eos_token_id={hf.get('eos_token_id')!r} is not a token of the vocabulary "
        f"[0, {vocab_size}) and {TOKENIZER_CONFIG_FILE} names no eos_token the tokenizer knows: jrl needs the end token"
    )


def _lm_fields(hf: dict, directory: Path, context_length: int | None) -> dict[str, Any]:
    """``jrl.text.LMConfig``'s fields for the GPT-2 ``config.json`` holds (``hf``)."""
    _check_supported(hf, directory)
    width, positions = _hf_int(hf, "n_embd", directory), _hf_int(hf, "n_positions", directory)
    inner = hf.get("n_inner")
    inner = 4 * width if inner is None else _hf_int(hf, "n_inner", directory)
    if inner % width:
        raise ModelFileError(
            f"{directory / CONFIG_FILE}: n_inner={inner} is not supported (jrl's MLP width is a multiple of n_embd={width})"
        )
    if context_length is None:
        context_length = positions
    elif (
        not isinstance(context_length, int) or isinstance(context_length, bool) or not 2 <= context_length <= positions
    ):
        raise ValueError(f"context_length must be an int in [2, n_positions={positions}], got {context_length!r}")
    vocab_size = _hf_int(hf, "vocab_size", directory, 2)
    epsilon = hf.get("layer_norm_epsilon", 1e-5)
    return {
        "env_id": HF_VOCABULARY,
        "vocab_size": vocab_size,
        "num_outputs": vocab_size,
        "context_length": context_length,
        "d_model": width,
        "num_layers": _hf_int(hf, "n_layer", directory),
        "num_heads": _hf_int(hf, "n_head", directory),
        "mlp_ratio": inner // width,
        "layer_norm_epsilon": float(epsilon) if isinstance(epsilon, int) and not isinstance(epsilon, bool) else epsilon,
        "tied_head": True,
    }


def _jrl_names(num_layers: int) -> dict[str, str]:
    """Hugging Face's weight name (no ``transformer.`` prefix) -> jrl's parameter path."""
    names = {
        "wte.weight": "params/token_embedding/embedding",
        "wpe.weight": "params/position_embedding",
        "ln_f.weight": "params/final_norm/scale",
        "ln_f.bias": "params/final_norm/bias",
    }
    layers = {  # Conv1D weights are [in, out]: Flax's kernel layout already
        "ln_1.weight": "attention_norm/scale",
        "ln_1.bias": "attention_norm/bias",
        "attn.c_attn.weight": "qkv/kernel",
        "attn.c_attn.bias": "qkv/bias",
        "attn.c_proj.weight": "out/kernel",
        "attn.c_proj.bias": "out/bias",
        "ln_2.weight": "mlp_norm/scale",
        "ln_2.bias": "mlp_norm/bias",
        "mlp.c_fc.weight": "mlp_in/kernel",
        "mlp.c_fc.bias": "mlp_in/bias",
        "mlp.c_proj.weight": "mlp_out/kernel",
        "mlp.c_proj.bias": "mlp_out/bias",
    }
    for i in range(num_layers):
        names.update({f"h.{i}.{hf}": f"params/blocks_{i}/{jrl}" for hf, jrl in layers.items()})
    return names


def _read_weights(directory: Path) -> dict[str, np.ndarray]:
    """Every tensor of ``model.safetensors`` as float32 NumPy (bfloat16 and float16 widened exactly)."""
    from safetensors import SafetensorError, safe_open

    path = directory / WEIGHTS_FILE
    if not path.is_file():
        others = [n for n in ("model.safetensors.index.json", "pytorch_model.bin") if (directory / n).exists()]
        why = f" (found {others[0]}: jrl reads one unsharded safetensors file, never pickles)" if others else ""
        raise ModelFileError(f"{directory} is not a loadable Hugging Face model: {WEIGHTS_FILE} is missing{why}")
    try:
        # framework="flax": NumPy has no bfloat16, JAX does.
        with safe_open(str(path), framework="flax") as f:
            return {name: np.asarray(f.get_tensor(name), np.float32) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: not a readable safetensors file ({err})") from err


def _jrl_arrays(arrays: dict[str, np.ndarray], fields: dict, directory: Path, positions: int) -> dict[str, np.ndarray]:
    """Hugging Face's tensors under jrl's parameter paths (``positions``: ``n_positions``, of which the
    first ``context_length`` are kept); ``ModelFileError`` listing names that do not fit. Shapes are
    checked by the caller against the config."""
    arrays = {name.removeprefix("transformer."): a for name, a in arrays.items()}
    arrays = {name: a for name, a in arrays.items() if not name.endswith(_BUFFERS)}
    head = arrays.pop("lm_head.weight", None)
    problems = []
    if head is not None and not np.array_equal(head, arrays.get("wte.weight")):
        problems.append("lm_head.weight differs from wte.weight (an untied head: jrl loads GPT-2's tied one)")
    names = _jrl_names(fields["num_layers"])
    problems += [f"missing {name}" for name in sorted(set(names) - set(arrays))]
    problems += [f"unexpected {name}" for name in sorted(set(arrays) - set(names))]
    if "wpe.weight" in arrays and arrays["wpe.weight"].shape[0] != positions:
        problems.append(
            f"wpe.weight: {arrays['wpe.weight'].shape[0]} positions, config.json's n_positions is {positions}"
        )
    if problems:
        shown = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
        raise ModelFileError(f"{directory}: the weights do not fit config.json ({len(problems)} problem(s): {shown})")
    arrays["wpe.weight"] = arrays["wpe.weight"][: fields["context_length"]]  # a shorter buffer keeps the first rows
    return {names[name]: a for name, a in arrays.items()}


class HFCheckpoint(NamedTuple):
    """What ``read_hf_directory`` found: ``fields`` for ``jrl.text.LMConfig``, ``arrays`` (jrl's parameter
    paths -> float32 NumPy), ``names`` (those paths -> Hugging Face's names, for error messages) and
    the ``tokenizer``."""

    fields: dict[str, Any]
    arrays: dict[str, np.ndarray]
    names: dict[str, str]
    tokenizer: HFTokenizer


def read_hf_directory(directory: str | Path, context_length: int | None = None) -> HFCheckpoint:
    """A Hugging Face GPT-2 directory's config, weights and tokenizer, from local files only
    (``jrl.text.load_model`` builds the ``LanguageModel`` and checks every shape).

    Args:
        directory: holds ``config.json`` (``model_type: "gpt2"``), ``model.safetensors`` and
            ``tokenizer.json`` (``tokenizer_config.json`` optional: its ``eos_token`` is the end token
            when ``config.json`` has no ``eos_token_id`` in the vocabulary).
        context_length: the buffer length ``L`` jrl decodes in, the first ``L`` of the checkpoint's
            ``n_positions`` positions (``None``: all of them). ``generate`` always scans the whole
            buffer, so a short one makes decoding a large checkpoint cheaper.

    Returns:
        ``HFCheckpoint``: the fields of an ``LMConfig`` with ``tied_head=True``, GPT-2's
        ``layer_norm_epsilon`` and ``env_id = HF_VOCABULARY``; the weights; an ``HFTokenizer``.

    Raises:
        ModelFileError: a missing file or a configuration jrl cannot compute, naming the field
        (another ``model_type``, another activation, ``scale_attn_by_inverse_layer_idx``,
        cross-attention, an untied head) or listing the weights that do not fit.
    """
    directory = Path(directory)
    try:
        hf = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{directory / CONFIG_FILE}: not a readable JSON config ({err})") from err
    if not isinstance(hf, dict):
        raise ModelFileError(f"{directory / CONFIG_FILE}: a config is a JSON object, got {type(hf).__name__}")
    fields = _lm_fields(hf, directory, context_length)
    if not (directory / TOKENIZER_FILE).is_file():
        raise ModelFileError(
            f"{directory} has no {TOKENIZER_FILE}: jrl reads a Hugging Face model's text with its fast tokenizer's "
            "tokenizer.json (transformers' tokenizer.save_pretrained writes it)"
        )
    arrays = _jrl_arrays(_read_weights(directory), fields, directory, hf["n_positions"])
    try:
        tokenizer = HFTokenizer.from_file(directory / TOKENIZER_FILE, _end_id(hf, directory, fields["vocab_size"]))
    except ModelFileError:
        raise
    except Exception as err:  # tokenizers raises its own Exception subclass for a malformed file
        raise ModelFileError(f"{directory / TOKENIZER_FILE}: not a readable tokenizer ({err})") from err
    if tokenizer.size > fields["vocab_size"]:
        raise ModelFileError(
            f"{directory / TOKENIZER_FILE}: the tokenizer has {tokenizer.size} tokens, more than config.json's "
            f"vocab_size={fields['vocab_size']}"
        )
    names = {jrl: name for name, jrl in _jrl_names(fields["num_layers"]).items()}
    return HFCheckpoint(fields, arrays, names, tokenizer)


def save_hf_directory(directory: str | Path, config: Any, params: dict[str, np.ndarray], tokenizer: Any) -> Path:
    """Write a model (its ``jrl.text.LMConfig``, its parameters flattened to ``{"params/...": array}``
    and its tokenizer) as a Hugging Face GPT-2 directory that ``transformers`` loads.

    Writes ``config.json`` (``GPT2LMHeadModel``, ``n_positions`` = the model's ``context_length``),
    ``model.safetensors`` (Hugging Face's names, float32, no ``lm_head.weight``: it is tied to
    ``wte``), ``tokenizer.json`` and ``tokenizer_config.json`` (``PreTrainedTokenizerFast`` with the
    end token as eos, bos and unk). ``AutoModelForCausalLM.from_pretrained(directory)`` and
    ``AutoTokenizer.from_pretrained(directory)`` load it. Returns the directory.

    Raises:
        ValueError: the model is not GPT-2's form (``tied_head=False``: jrl's own output layer has a
            bias that GPT-2's ``lm_head`` lacks) or has no Hugging Face tokenizer.
    """
    from safetensors.numpy import save_file

    if not config.tied_head:
        raise ValueError(
            "format='hf' writes GPT-2, whose output layer is the token embedding (LMConfig.tied_head=True); "
            "this model has its own head with a bias, which GPT-2 cannot hold"
        )
    if not isinstance(tokenizer, HFTokenizer):
        raise ValueError(
            "format='hf' writes the model's tokenizer.json; this model has no Hugging Face tokenizer "
            "(LanguageModel.tokenizer is None: jrl's environments' vocabularies are not tokenizers)"
        )
    weights = {
        f"transformer.{hf}": np.asarray(params[jrl], np.float32) for hf, jrl in _jrl_names(config.num_layers).items()
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})  # what transformers expects
    end_id = tokenizer.end_id
    hf = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.context_length,
        "n_embd": config.d_model,
        "n_layer": config.num_layers,
        "n_head": config.num_heads,
        "n_inner": config.mlp_ratio * config.d_model,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
        "bos_token_id": end_id,
        "eos_token_id": end_id,
        "torch_dtype": "float32",
    }
    (directory / CONFIG_FILE).write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n")
    tokenizer.save(directory / TOKENIZER_FILE)
    end = tokenizer.tokenizer.id_to_token(end_id)
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": config.context_length,
        **({"bos_token": end, "eos_token": end, "unk_token": end} if end is not None else {}),
    }
    (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n")
    return directory
