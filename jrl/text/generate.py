"""``generate``: batched, compiled decoding in the manner of Hugging Face's ``model.generate``.

Decoding scores the next token with the language model's logits plus ``beta`` times a Q-model's
values, ``logits + beta * Q`` (``beta = 0``, or no Q-model: the language model alone), then picks it
greedily or samples it after temperature, top-k and top-p (nucleus) filtering. ``choose_tokens`` is
that one rule; text Q-learning's rollouts and ``generate`` both use it, so what training sampled and
what ``generate`` writes come from the same distribution.

Buffers have the model's static length ``L`` (``config.context_length``); a prompt fills the first
positions and the rest holds the end token (the pad). Every row advances one position per step in
one ``lax.scan``, each model decoding that one position with its key/value cache
(``TransformerLM.decode``); rows whose prompt is longer keep their prompt tokens until their turn comes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl._validation import check_bool, check_float, check_int, check_key
from jrl.envs import Vocabulary
from jrl.text.model import LanguageModel, decode_step, empty_cache, model_vocabulary

__all__ = ["Generation", "choose_tokens", "decode_tokens", "decoding_scores", "encode_prompts", "generate"]


@dataclasses.dataclass(frozen=True)
class Generation:
    """What ``generate`` returns.

    Attributes:
        tokens: int32 ``[B, L]``, prompt then generated tokens, then the end token as padding.
        prompt_lengths: int32 ``[B]``.
        lengths: int32 ``[B]``, tokens before the first end token (the prompt included).
        texts: the decoded rows (the vocabulary's ``decode``: the prompt included, no end token).
    """

    tokens: np.ndarray
    prompt_lengths: np.ndarray
    lengths: np.ndarray
    texts: list[str]


def decoding_scores(logits: jax.Array, q_values: jax.Array | None, beta: jax.Array | float) -> jax.Array:
    """``logits + beta * q_values`` (``logits`` alone when ``q_values`` is ``None``); ``[..., A]``."""
    return logits if q_values is None else logits + beta * q_values


def choose_tokens(
    key: jax.Array,
    scores: jax.Array,
    temperature: float | jax.Array = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    do_sample: bool = True,
) -> jax.Array:
    """One token per row of ``scores`` (float32 ``[B, A]``) -> int32 ``[B]``.

    ``do_sample=False``: the highest score (the lowest index among ties). Otherwise a sample from
    ``softmax(scores / temperature)`` restricted to the ``top_k`` highest scores (``None``: all)
    and to the smallest set of highest-probability tokens whose probability reaches ``top_p``
    (``None``: all); the most likely token is always kept. ``top_k``, ``top_p`` and ``do_sample`` are
    static; ``temperature`` may be traced.
    """
    if not do_sample:
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)
    scaled = scores / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = jax.lax.top_k(scaled, top_k)[0][..., -1:]
        scaled = jnp.where(scaled >= kth, scaled, -jnp.inf)
    if top_p is not None and top_p < 1.0:
        ordered = jnp.sort(scaled, axis=-1)[..., ::-1]
        probs = jax.nn.softmax(ordered, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        # The smallest kept score: the last one whose preceding mass is still below top_p.
        threshold = jnp.min(jnp.where(mass_before < top_p, ordered, jnp.inf), axis=-1, keepdims=True)
        scaled = jnp.where(scaled >= threshold, scaled, -jnp.inf)
    return jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)


def encode_prompts(vocab: Vocabulary, prompts: Any, context_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompts -> ``(tokens int32 [B, L], prompt_lengths int32 [B])``, padded with the end token.

    ``vocab``: an environment's ``Vocabulary`` or a Hugging Face model's ``jrl.text.hf.HFTokenizer``.
    ``prompts``: a string, a sequence of strings (``vocab.encode``: node numbers separated by spaces
    for walks, letters a-z for words; the bos token is added where the vocabulary has one; a
    tokenizer's own rules for a Hugging Face model, GPT-2's adding no bos), or an
    integer array ``[B, P]`` of token ids (bos included where the vocabulary has one). Raises
    ``ValueError`` for tokens outside the vocabulary, text it cannot encode, an empty prompt where
    there is no bos, or a prompt longer than ``context_length - 1``.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, (np.ndarray, jax.Array)):
        array = np.asarray(prompts)
        if array.ndim != 2 or array.dtype.kind not in "iu":
            raise ValueError(
                f"token prompts must be an integer array [B, P], got dtype {array.dtype} shape {array.shape}"
            )
        rows = [list(map(int, row)) for row in array]
    elif isinstance(prompts, Sequence) and prompts and all(isinstance(p, str) for p in prompts):
        rows = [vocab.encode(p) for p in prompts]
    else:
        raise TypeError(f"prompts must be a str, a non-empty list of str, or an int array [B, P]; got {prompts!r:.80}")
    tokens = np.full((len(rows), context_length), vocab.end_id, np.int32)
    lengths = np.zeros(len(rows), np.int32)
    for b, row in enumerate(rows):
        bad = [t for t in row if not 0 <= t < vocab.size]
        if bad:
            raise ValueError(f"prompt {b} has token id(s) {bad} outside the vocabulary [0, {vocab.size})")
        if not row:
            raise ValueError(f"prompt {b} is empty; this vocabulary has no bos token, so a prompt needs a token")
        if len(row) > context_length - 1:
            raise ValueError(
                f"prompt {b} has {len(row)} tokens; the model's buffer holds {context_length}, so a prompt "
                f"may have at most {context_length - 1} (room for one new token)"
            )
        tokens[b, : len(row)] = row
        lengths[b] = len(row)
    return tokens, lengths


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "top_k", "top_p", "do_sample", "end_id"))
def decode_tokens(
    params: Any,
    q_params: Any,
    tokens: jax.Array,
    prompt_lengths: jax.Array,
    key: jax.Array,
    temperature: jax.Array,
    beta: jax.Array,
    *,
    config: Any,
    max_new_tokens: int,
    top_k: int | None,
    top_p: float | None,
    do_sample: bool,
    end_id: int,
) -> jax.Array:
    """The compiled decoding loop behind ``generate`` (one compilation per static setting and
    shape): ``tokens`` int32 ``[B, L]`` holds each prompt left-aligned (``prompt_lengths`` ``[B]``);
    from each prompt's end, ``max_new_tokens`` positions are filled with the chosen token
    (``choose_tokens`` over ``decoding_scores``) until ``end_id``. Returns the filled ``[B, L]``."""

    def advance(carry: tuple, i: jax.Array) -> tuple:
        tokens, finished, lm_cache, q_cache = carry
        logits, lm_cache = decode_step(config, params, tokens[:, i], i, lm_cache)  # scores position i + 1
        q_values = None
        if q_params is not None:
            q_values, q_cache = decode_step(config, q_params, tokens[:, i], i, q_cache)
        scores = decoding_scores(logits, q_values, beta)
        new = choose_tokens(jax.random.fold_in(key, i), scores, temperature, top_k, top_p, do_sample)
        generated_before = i + 1 - prompt_lengths  # new tokens this row already has, if >= 0
        write = (generated_before >= 0) & (generated_before < max_new_tokens) & ~finished
        tokens = tokens.at[:, i + 1].set(jnp.where(write, new, tokens[:, i + 1]))
        return (tokens, finished | (write & (new == end_id)), lm_cache, q_cache), None

    cache = empty_cache(config, tokens.shape[0])
    carry = (tokens, jnp.zeros(tokens.shape[0], bool), cache, None if q_params is None else cache)
    (tokens, *_), _ = jax.lax.scan(advance, carry, jnp.arange(tokens.shape[1] - 1, dtype=jnp.int32))
    return tokens


def _check_shaped_like(name: str, params: Any, reference: Any) -> None:
    """``ValueError`` unless ``params`` has ``reference``'s tree structure, shapes and dtypes."""

    def signature(x: Any) -> tuple:
        return tuple(getattr(x, "shape", np.shape(x))), str(getattr(x, "dtype", np.asarray(x).dtype))

    got, want = jax.tree_util.tree_map(signature, params), jax.tree_util.tree_map(signature, reference)
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(reference) or got != want:
        raise ValueError(
            f"{name} does not fit the model's config: it must be shaped like model.params "
            "(a jrl.text.LanguageModel of the same LMConfig, or its params)"
        )


def generate(
    model: LanguageModel,
    prompts: Any,
    key: jax.Array,
    *,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    do_sample: bool = True,
    beta: float = 0.0,
    q_params: Any = None,
) -> Generation:
    """Continue every prompt, all rows in one compiled call.

    Args:
        model: the language model (``jrl.text.load_model`` or ``pretrain``'s result).
        prompts: a str, a list of str, or int32 token ids ``[B, P]`` (see ``encode_prompts``); a
            Hugging Face model's text prompts go through its tokenizer (``model.tokenizer``), a jrl
            model's through its vocabulary (``jrl.text.model_vocabulary``).
        key: a JAX PRNG key; the same key gives the same generations.
        max_new_tokens: at most this many new tokens per row (``None``: up to the buffer's end);
            a row also stops at the end token.
        temperature: > 0 when sampling (ignored for greedy decoding).
        top_k: keep the ``top_k`` best tokens (``None``: all).
        top_p: nucleus sampling, in (0, 1] (``None`` or 1: all).
        do_sample: sample (``True``) or take the best token (``False``).
        beta: weight of the Q-model's values in ``logits + beta * Q``; ``0`` is the model alone.
        q_params: the Q-network: a ``LanguageModel`` of the model's config (``jrl.text.q_learning``'s
            ``result.q_model``) or its parameters alone (a pytree shaped like ``model.params``).

    Returns:
        ``Generation`` (tokens ``[B, L]``, lengths and decoded texts: prompt plus continuation, up to
        the end token, which for a Hugging Face model is its eos).

    Raises:
        ValueError / TypeError: before anything compiles, naming the bad argument.
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a jrl.text.LanguageModel (load_model(DIR)), got {type(model).__name__}")
    check_key("key", key)
    config = model.config
    # A Hugging Face model's text goes through its own tokenizer; jrl's models through their own vocabulary.
    vocab = model_vocabulary(model)
    tokens, prompt_lengths = encode_prompts(vocab, prompts, config.context_length)
    room = config.context_length - int(prompt_lengths.max())
    if max_new_tokens is None:
        max_new_tokens = room
    check_int("max_new_tokens", max_new_tokens, 1)
    if max_new_tokens > room:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} does not fit: the buffer holds {config.context_length} tokens and the "
            f"longest prompt has {int(prompt_lengths.max())}, so at most {room} new tokens"
        )
    check_bool("do_sample", do_sample)
    if do_sample:
        check_float("temperature", temperature, 0.0, float("inf"), low_open=True)
    if top_k is not None:
        check_int("top_k", top_k, 1)
    if top_p is not None:
        check_float("top_p", top_p, 0.0, 1.0, low_open=True)
    check_float("beta", beta, -1e6, 1e6)
    if isinstance(q_params, LanguageModel):
        if q_params.config != config:
            raise ValueError(f"q_params: its config {q_params.config} differs from the model's {config}")
        q_params = q_params.params
    if q_params is not None:
        _check_shaped_like("q_params", q_params, model.params)
    elif beta != 0.0:
        raise ValueError(f"beta={beta} weights the Q-network's values, but q_params is None")
    out = decode_tokens(
        model.params,
        q_params,
        jnp.asarray(tokens),
        jnp.asarray(prompt_lengths),
        key,
        jnp.float32(temperature),
        jnp.float32(beta),
        config=config,
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        top_p=None if top_p is None or top_p == 1.0 else float(top_p),
        do_sample=do_sample,
        end_id=vocab.end_id,
    )
    out = np.asarray(out)
    is_end = out == vocab.end_id
    lengths = np.where(is_end.any(axis=1), is_end.argmax(axis=1), out.shape[1]).astype(np.int32)
    return Generation(out, prompt_lengths, lengths, vocab.decode_batch(out))
