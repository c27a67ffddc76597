"""Supervised pretraining of the language model on data the package generates (never a download).

Each token environment generates its own data (``TokenEnv.pretraining_batch``, described in its
module): ``GraphWalkText-v0`` random valid walks, as ILQL's random-walks data (a model of them
walks along edges but wanders: the "pretrained model" that Q-learning then makes take the shortest
paths); ``WordGen-v0`` the dictionary's words, a fraction ``word_noise`` of them with one letter
replaced (so the model also learns that misspellings occur).

``pretrain(key, env, env_params, config)`` compiles once: every step draws a fresh batch from the
key and takes one Adam step on the masked next-token cross-entropy. The steps run in about ten
equal chunks of one compiled scan, so that a caller (``jrl pretrain``) can show progress between
them; the chunks give the weights one scan over every step gives, bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jrl._validation import check_float, check_int, check_key
from jrl.algorithms.common import divisor_closest_to
from jrl.envs.core import Environment
from jrl.envs.tokens import TokenEnv, Vocabulary
from jrl.text.hf import is_hf_directory
from jrl.text.model import (
    LanguageModel,
    LMConfig,
    ModelFileError,
    TransformerLM,
    init_model,
    load_model,
    model_vocabulary,
)

__all__ = ["PretrainConfig", "data_batch", "default_pretrain_config", "pretrain"]


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Settings of a pretraining run (validated on construction).

    Attributes:
        num_steps: Adam steps, each on a fresh batch.
        batch_size: sequences per step.
        learning_rate: Adam's step size, decayed by a cosine schedule to 10% over the run.
        d_model, num_layers, num_heads, mlp_ratio: the model's shape (``LMConfig``).
        word_noise: the fraction of noisy examples, for environments whose data has noise
            (``WordGen-v0``: words with one letter replaced); the others ignore it.
    """

    num_steps: int = 600
    batch_size: int = 256
    learning_rate: float = 3e-3
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    word_noise: float = 0.1

    def __post_init__(self) -> None:
        check_int("num_steps", self.num_steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("learning_rate", self.learning_rate, 0.0, 10.0, low_open=True)
        check_float("word_noise", self.word_noise, 0.0, 1.0)

    def replace(self, **changes: Any) -> PretrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DEFAULTS = {"GraphWalkText-v0": {"num_steps": 300}, "WordGen-v0": {"num_steps": 600}}


def default_pretrain_config(env_id: str) -> PretrainConfig:
    """The pretraining settings the demo and experiment use for ``env_id`` (walks are learnt in
    fewer steps than a dictionary)."""
    return PretrainConfig(**_DEFAULTS.get(env_id, {}))


def _check_text_env(env: Environment) -> TokenEnv:
    """``env``, a token environment that generates pretraining data; ``ValueError`` naming it otherwise."""
    name = env.env_id or type(env).__name__
    if not isinstance(env, TokenEnv):
        raise ValueError(
            f"{name} is not a text environment: pretraining needs a token environment (jrl.envs.TokenEnv) "
            "that generates its data (pretraining_batch)"
        )
    if type(env).pretraining_batch is TokenEnv.pretraining_batch:
        raise ValueError(f"{name} offers no pretraining data: its class does not implement TokenEnv.pretraining_batch")
    return env


def check_model_fits(model: LanguageModel, env: TokenEnv, env_params: Any, what: str) -> None:
    """``ValueError`` unless ``model`` reads and writes ``env``'s tokens: its vocabulary's size, outputs
    and buffer length, and, for jrl's own models, the vocabulary itself (``model_vocabulary(model)``
    equal to ``env.vocabulary``: a ``Tasks-v0`` model of one file's characters does not fit another
    file's). ``what`` names the model in the message (a text learner's ``pretrained``)."""
    length = env.observation_space(env_params).shape[0]
    expected = (env.vocabulary.size, env.vocabulary.num_actions, length)
    got = (model.config.vocab_size, model.config.num_outputs, model.config.context_length)
    name = env.env_id or type(env).__name__
    if got != expected:
        raise ValueError(
            f"pretrained: {what} was made for {model.config.env_id} (vocabulary, outputs, length {got}); "
            f"{name} needs {expected}"
        )
    if model.tokenizer is not None:  # a Hugging Face tokenizer: its size is what the environment's tables need
        return
    try:
        mine = model_vocabulary(model)
    except ValueError as err:  # its env_id is no token environment (any more) and it carries no vocabulary
        raise ValueError(f"pretrained: {what} names no vocabulary ({err})") from None
    if mine != env.vocabulary:
        raise ValueError(
            f"pretrained: {what} reads and writes other tokens than {name}'s ({_difference(mine, env.vocabulary)}): "
            f"it was made for {model.config.env_id} with other settings (for Tasks-v0, another file's characters); "
            "pretrain a model on this environment (jrl pretrain --env ENV --env-kwarg ...)"
        )


def _difference(model: Vocabulary, env: Vocabulary) -> str:
    """How two vocabularies differ, in a few words for an error message."""
    only_model = [s for s in model.strings if s not in env.strings]
    only_env = [s for s in env.strings if s not in model.strings]
    if only_model or only_env:
        return f"tokens only the model has: {only_model[:12]!r}; only the environment: {only_env[:12]!r}"
    return "the same tokens in another order or with other end/bos ids or separator"


def load_pretrained(directory: str, env: TokenEnv, env_params: Any) -> LanguageModel:
    """The language model a text learner starts from (its config's ``pretrained``): ``directory``
    read with ``load_model`` and checked to fit ``env`` (``check_model_fits``). A Hugging Face
    directory is read with the environment's buffer length as its ``context_length`` (the first
    ``L`` of its ``n_positions``), so ``Tasks-v0`` needs no ``length=``. ``ValueError`` naming the
    field: empty, unreadable, a buffer longer than the model's positions, or made for other tokens."""
    if not directory:
        raise ValueError(
            "pretrained is empty: set it to a directory written by `jrl pretrain --env ENV --out DIR` "
            "(or jrl.text.save_model), e.g. --set pretrained=DIR"
        )
    length = None
    if is_hf_directory(directory):
        length = env.observation_space(env_params).shape[0]
    try:
        model = load_model(directory, context_length=length)
    except ModelFileError as err:
        raise ValueError(f"pretrained: {err}") from err
    except ValueError as err:  # the Hugging Face model has fewer positions than the buffer
        raise ValueError(
            f"pretrained: {directory} cannot read {env.env_id or type(env).__name__}'s buffer of {length} tokens ({err}); "
            "make the environment's buffer shorter (Tasks-v0: a smaller margin or length)"
        ) from err
    check_model_fits(model, env, env_params, f"the model in {directory}")
    return model


def model_config(env: Environment, config: PretrainConfig) -> LMConfig:
    """The ``LMConfig`` of ``env``'s vocabulary and buffer with ``config``'s shape. The config
    carries ``env.vocabulary`` (``LMConfig.vocabulary``) when it is not the one ``env.env_id``'s
    default environment has (``Tasks-v0`` of your own file: its characters), so the model's files,
    ``generate`` and exports read its text with it.

    Raises:
        ValueError: ``env``'s vocabulary is a Hugging Face tokenizer's (``Tasks-v0`` with
            ``tokenizer=``): tune the Hugging Face model itself instead (``pretrained=DIR``).
    """
    vocab = env.vocabulary
    if type(vocab) is not Vocabulary:
        raise ValueError(
            f"{env.env_id}'s vocabulary is a tokenizer's ({type(vocab).__name__}), which a jrl model's files do "
            "not hold: start from that Hugging Face model instead (a text learner's pretrained=DIR), or "
            "pretrain on the character vocabulary (no tokenizer=)"
        )
    return LMConfig(
        env_id=env.env_id,
        vocab_size=vocab.size,
        num_outputs=vocab.num_actions,
        context_length=env.observation_space(None).shape[0],
        d_model=config.d_model,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        vocabulary=None if vocab == _registry_vocabulary(env.env_id) else vocab,
    )


def _registry_vocabulary(env_id: str) -> Any:
    """``jrl.envs.vocabulary(env_id)``, or ``None`` where the id makes no token environment alone."""
    from jrl.envs import vocabulary

    try:
        return vocabulary(env_id)
    except (ValueError, TypeError, OSError):
        return None


def data_batch(key: jax.Array, env: Environment, env_params: Any, batch_size: int, word_noise: float = 0.1) -> tuple:
    """One batch of ``env``'s pretraining data (``env.pretraining_batch``): ``(tokens int32 [B, L],
    mask bool [B, L])``; the loss is taken where ``mask`` is True (position ``t``'s token predicted
    from tokens ``0..t-1``). ``word_noise``: the fraction of noisy examples, where the data has noise."""
    return _check_text_env(env).pretraining_batch(key, env_params, batch_size, word_noise)


def sequence_loss(logits: jax.Array, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy over the masked targets; ``logits`` ``[B, L, A]``."""
    targets = jnp.minimum(tokens[:, 1:], logits.shape[-1] - 1)  # bos is never a target (masked)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], targets)
    weights = mask[:, 1:].astype(jnp.float32)
    return jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _optimizer(config: PretrainConfig) -> optax.GradientTransformation:
    """Adam on a cosine schedule over ``config.num_steps`` (its step count lives in the optimizer
    state, so chunks of steps carry it on), gradients clipped to global norm 1."""
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.num_steps, alpha=0.1)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


@functools.partial(jax.jit, static_argnames=("env", "lm_config", "config"))
def _train_steps(
    params: Any,
    opt_state: Any,
    keys: jax.Array,
    env_params: Any,
    *,
    env: Environment,
    lm_config: LMConfig,
    config: PretrainConfig,
) -> tuple:
    """One Adam step per key of ``keys`` ``[n]``, from ``(params, opt_state)``: ``(params, opt_state,
    losses [n])``. Module-level and jitted on hashable static arguments, so every chunk of a run,
    and pretraining again with the same settings (other seeds), reuses the compiled program."""
    network = TransformerLM(lm_config)
    optimizer = _optimizer(config)

    def step(carry: tuple, key: jax.Array) -> tuple:
        params, opt_state = carry
        tokens, mask = data_batch(key, env, env_params, config.batch_size, config.word_noise)
        loss, grads = jax.value_and_grad(lambda p: sequence_loss(network.apply(p, tokens), tokens, mask))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
    return params, opt_state, losses


def pretrain(
    key: jax.Array,
    env: Environment,
    env_params: Any,
    config: PretrainConfig = PretrainConfig(),
    *,
    on_chunk: Callable[[int, np.ndarray], None] | None = None,
    chunk_steps: int | None = None,
) -> tuple[LanguageModel, np.ndarray]:
    """Train a fresh ``TransformerLM`` on ``env``'s generated data; one compilation.

    The steps run in chunks of ``chunk_steps`` (default: the divisor of ``num_steps`` giving about
    ten chunks); after each, ``on_chunk(steps_done, losses_so_far float32 [steps_done])`` is
    called on the host (progress). Returns ``(model, losses float32 [num_steps])``. Same key and
    config: the same weights, bit for bit, whatever the chunks.
    """
    check_key("key", key)
    _check_text_env(env)
    lm_config = model_config(env, config)
    chunk = divisor_closest_to(config.num_steps, 10) if chunk_steps is None else chunk_steps
    check_int("chunk_steps", chunk, 1, config.num_steps)
    if config.num_steps % chunk:
        raise ValueError(f"chunk_steps={chunk} must divide num_steps={config.num_steps}")
    key_init, key_data = jax.random.split(key)
    model = init_model(lm_config, key_init)
    keys = jax.random.split(key_data, config.num_steps)
    params, opt_state = model.params, _optimizer(config).init(model.params)
    losses: list[np.ndarray] = []
    for start in range(0, config.num_steps, chunk):
        params, opt_state, chunk_losses = _train_steps(
            params, opt_state, keys[start : start + chunk], env_params, env=env, lm_config=lm_config, config=config
        )
        losses.append(np.asarray(chunk_losses))
        if on_chunk is not None:
            on_chunk(start + chunk, np.concatenate(losses))
    return LanguageModel(lm_config, params), np.concatenate(losses)
