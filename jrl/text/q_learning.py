"""Soft Q-learning for text: token-level values on top of a pretrained language model, compiled end to end.

Text generation is an MDP whose state is the token buffer and whose action is the next token. With
the pretrained model ``pi0`` as the reference, the KL-regularised objective

    maximise  E[sum_t r_t] - (1 / beta) * KL(pi || pi0)

has the optimal policy ``pi(a | s) = softmax(log pi0(a | s) + beta * Q(s, a))``: decoding with the
language model's logits plus ``beta`` times the values (``beta = 0`` is the pretrained model), and
``Q`` satisfies the soft Bellman equation (undiscounted, tokens are deterministic)

    Q(s, a) = r(s, a) + [not terminal] * V(s'),    V(s) = (1 / beta) * log sum_a pi0(a | s) exp(beta * Q(s, a)).

The Q-network is the language model's architecture, started from the pretrained weights with its
output layer at zero (so every ``Q`` starts at 0 and decoding starts as ``pi0``). One iteration

1. generates ``num_envs`` whole episodes at once, sampling from the current decoding policy at
   ``temperature`` through the environment's own ``step_env`` (which gives the rewards);
2. scores every visited state in one forward pass over the final buffers: a causal model's row
   ``i`` depends only on tokens ``0..i``, so the finished buffer holds every intermediate state
   (the pretrained model's log-probabilities come from the rollout, which computed them already);
3. takes ``updates_per_iteration`` Adam steps on the squared soft-Bellman error of every generated
   token against the target network (``V`` from the target's values and ``pi0``);
4. moves the target network towards the online one by Polyak averaging (rate ``tau``).

It follows the algorithm contract of ``jrl.algorithms.common`` (``make_algorithm`` -> ``init`` /
``run`` / ``result``, ``make_train``, ``greedy_policy``), so ``jrl train --algo text_q_learning``
records, checkpoints and resumes it like any run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jrl._validation import check_bool, check_float, check_int, check_key
from jrl.algorithms.common import METRICS as SHARED_METRICS
from jrl.algorithms.common import Algorithm, Config, _runtime_values, check_finite, train_function
from jrl.algorithms.training import Interval, in_loop_evaluation, make_run
from jrl.envs.core import Environment
from jrl.envs.tokens import TokenEnv, positions
from jrl.parallel import SINGLE, DataParallel
from jrl.text.generate import choose_tokens
from jrl.text.model import (
    LanguageModel,
    LMConfig,
    ModelFileError,
    TransformerLM,
    apply_model,
    decode_step,
    empty_cache,
    load_model,
    shard_layers,
)
from jrl.text.pretrain import load_pretrained

__all__ = [
    "METRICS",
    "TextQConfig",
    "TextQHyperparams",
    "TextQResult",
    "TextQState",
    "check_env",
    "check_finite",
    "decoding_models",
    "default_config",
    "greedy_policy",
    "lambda_returns",
    "make_algorithm",
    "make_train",
    "rollout",
    "soft_value",
    "text_optimizer",
]

#: Every metric a run logs: the shared ones, then this algorithm's own.
METRICS = (*SHARED_METRICS, "kl", "tokens", "loss", "nonfinite_updates")


@struct.dataclass
class TextQHyperparams:
    """Numeric hyperparameters ``train`` takes as data (float32 scalars, or ``[G]`` for a grid)."""

    learning_rate: jax.Array
    beta: jax.Array
    tau: jax.Array


@dataclasses.dataclass(frozen=True)
class TextQConfig(Config):
    """Settings of a text Q-learning run; validated on construction and on ``replace``.

    Attributes:
        pretrained: the directory of the pretrained language model (``jrl pretrain``'s output:
            ``model.safetensors`` and ``config.json``), relative to the working directory. A run
            directory keeps a copy (``inputs/pretrained``) and names that copy, relative to itself.
        num_envs: episodes (generations) per iteration.
        num_steps: iterations.
        learning_rate: Adam's step size.
        beta: weight of the values in decoding, ``logits + beta * Q``: the inverse of the KL
            penalty's temperature. Larger keeps less of the pretrained distribution.
        tau: Polyak rate of the target network per iteration, in (0, 1].
        updates_per_iteration: Adam steps on each iteration's generations.
        max_grad_norm: global gradient-norm clip.
        td_lambda: the soft lambda-return's lambda in [0, 1] (``lambda_returns``); 0 is one-step
            soft Q-learning, larger carries a reward back through a word's letters in fewer updates.
        temperature: sampling temperature of the generations trained on (1: the decoding policy itself).
        eval_episodes: greedy episodes (``jrl.evaluate``) at the end of every logging interval,
            giving ``eval_return``; 0 skips them (``eval_return`` is NaN).
        log_interval: iterations per logged record (``None``: about 20 records).
        shard_params: over several devices (``jrl train --devices N``), keep the Q-network, its
            target, Adam's moments and the pretrained reference split over the devices (fully
            sharded data parallelism: each device holds about 1/N of them), each forward pass
            gathering one layer at a time (``jrl.text.model.shard_layers``); the steps are those
            of the unsharded split up to float rounding (docs/devices.md). No effect on one device.
    """

    HYPERPARAMS: ClassVar[type] = TextQHyperparams
    DEFAULT_RECORDS: ClassVar[int] = 20
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("pretrained",)
    WRITTEN_WHEN_SET: ClassVar[tuple[str, ...]] = ("shard_params",)

    pretrained: str = ""
    num_envs: int = 256
    num_steps: int = 300
    learning_rate: float = 1e-3
    beta: float = 8.0
    tau: float = 0.05
    updates_per_iteration: int = 1
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    td_lambda: float = 0.9
    eval_episodes: int = 0
    log_interval: int | None = None
    shard_params: bool = False

    def env_steps_per_iteration(self) -> None:
        """``None``: an iteration generates ``num_envs`` whole episodes, and an env step is a
        token, so the count varies; the ``env_steps`` metric counts the tokens."""
        return None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pretrained, str):
            raise TypeError(f"pretrained must be a directory path (str), got {self.pretrained!r}")
        check_int("num_envs", self.num_envs, 1)
        check_int("num_steps", self.num_steps, 1)
        check_float("learning_rate", self.learning_rate, 0.0, 10.0, low_open=True)
        check_float("beta", self.beta, 0.0, 1e4, low_open=True)
        check_float("tau", self.tau, 0.0, 1.0, low_open=True)
        check_int("updates_per_iteration", self.updates_per_iteration, 1)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e9, low_open=True)
        check_float("temperature", self.temperature, 0.0, 1e3, low_open=True)
        check_float("td_lambda", self.td_lambda, 0.0, 1.0)
        check_int("eval_episodes", self.eval_episodes, 0, 2**20)
        check_bool("shard_params", self.shard_params)
        self._check_log_interval()


def text_optimizer(max_grad_norm: float, learning_rate: jax.Array, sharded_over: DataParallel | None = None) -> Any:
    """A text learner's optimizer: the update clipped to the global norm ``max_grad_norm``, then
    Adam at ``learning_rate`` (``optax.clip_by_global_norm`` chained with ``optax.adam``).

    ``sharded_over``: the devices when the parameters are ``Sharded`` (``jrl.parallel``): each
    device then holds its piece of the gradient, and the norm is the whole gradient's
    (``global_norm``: the pieces' squares added over the devices), so every device clips its piece
    as the unsharded step clips the whole; Adam, elementwise, keeps each device's piece of its
    moments."""
    if sharded_over is None:
        return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate))

    def clip(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        norm = sharded_over.global_norm(updates)
        scale = lambda g: jax.lax.select(norm < max_grad_norm, g, (g / norm.astype(g.dtype)) * max_grad_norm)  # noqa: E731
        return jax.tree_util.tree_map(scale, updates), state

    return optax.chain(optax.GradientTransformation(optax.init_empty_state, clip), optax.adam(learning_rate))


_DEFAULTS = {
    "GraphWalkText-v0": {"num_envs": 256, "num_steps": 200, "beta": 8.0, "learning_rate": 1e-3},
    "WordGen-v0": {"num_envs": 256, "num_steps": 300, "beta": 8.0, "learning_rate": 1e-3},
    "Arithmetic-v0": {"num_envs": 256, "num_steps": 300, "beta": 8.0, "learning_rate": 1e-3},  # not tuned yet
}


def default_config(env_id: str, pretrained: str = "") -> TextQConfig:
    """The default config for ``env_id`` (a text environment), reading the model in ``pretrained``."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"text_q_learning has defaults for {sorted(_DEFAULTS)}, not {env_id!r}")
    return TextQConfig(pretrained=pretrained, **_DEFAULTS[env_id])


@struct.dataclass
class TextQState:
    """Everything a run needs to continue.

    Attributes:
        q_params: the Q-network's parameters (the ``TransformerLM`` pytree).
        target: the target network's parameters.
        opt_state: Adam's state.
        key: the loop key (iteration ``t`` uses ``fold_in(key, t)``).
        eval_key: the in-loop evaluation's key.
        hyperparams: ``TextQHyperparams``.
        env_steps: int32, tokens generated so far: a text environment's env step is one token
            (an iteration's ``num_envs`` generations take between ``num_envs`` and
            ``num_envs * max_steps_in_episode`` of them).
        log_index: int32, logging intervals done.
        reference: ``None``, or with ``shard_params`` over several devices the pretrained model's
            parameters split over them layer by layer (``jrl.text.model.shard_layers``: a
            ``jrl.parallel.Sharded`` node per module, as are then ``q_params``, ``target`` and Adam's
            moments); unsharded, the pretrained model is the program's constant.
    """

    q_params: Any
    target: Any
    opt_state: Any
    key: jax.Array
    eval_key: jax.Array
    hyperparams: TextQHyperparams
    env_steps: jax.Array
    log_index: jax.Array
    reference: Any = None


@struct.dataclass
class TextQResult:
    """A finished run: ``q_model`` (a ``LanguageModel`` of the Q-network; decode with
    ``generate(lm, prompts, key, beta=config.beta, q_model=result.q_model)``) and the metrics
    (arrays ``[num_logs]``)."""

    q_model: LanguageModel
    metrics: dict


def soft_value(log_pi0: jax.Array, q_values: jax.Array, beta: jax.Array) -> jax.Array:
    """``V = (1 / beta) * log sum_a pi0(a) exp(beta * Q(a))`` over the last axis (``[..., A] -> [...]``)."""
    return jax.nn.logsumexp(log_pi0 + beta * q_values, axis=-1) / beta


def rollout(
    key: jax.Array,
    env: TokenEnv,
    env_params: Any,
    lm_config: LMConfig | None,
    lm_params: Any,
    q_params: Any,
    beta: jax.Array | float,
    num_episodes: int,
    temperature: jax.Array | float = 1.0,
    do_sample: bool = True,
    group_size: int = 1,
    parallel: DataParallel = SINGLE,
) -> dict:
    """``num_episodes`` whole episodes of ``env``, decoding with ``log pi0 + beta * Q`` (``choose_tokens``).

    ``group_size``: consecutive groups of this many episodes start from the same reset (one prompt,
    several completions: GRPO's groups); it must divide ``num_episodes``. 1: every episode its own.

    ``q_params=None`` decodes with the language model alone; ``lm_params=None`` too: uniformly
    random tokens. Both networks decode one position per step with their key/value caches
    (``TransformerLM.decode``); step ``t`` reads the buffer's token at position ``t`` and, in every
    episode whose next token goes to position ``t + 1`` and that has not ended, chooses that token
    and steps the environment (prompt positions are read, not chosen).

    Returns the final buffers ``tokens`` int32 ``[N, L]`` and, per position ``t + 1`` (``[N, L - 1]``):
    ``action``, ``reward``, ``terminated``, ``active`` (a token was chosen there), ``kl``
    (``KL(pi || pi0)`` of the state, nats), ``log_ratio`` (``log pi(a | s) - log pi0(a | s)`` of the
    token chosen, ``pi`` the decoding distribution at temperature 1) and ``log_pi0`` (``[N, L - 1,
    A]``, the pretrained model's log-probabilities there, whether or not a token was chosen).

    ``lm_params`` and ``q_params`` may be sharded over ``parallel``'s devices (inside its program):
    each decoding step then gathers one layer at a time (``jrl.text.model.decode_step``).
    """
    length = env.observation_space(env_params).shape[0]
    uniform = jnp.full((num_episodes, env.num_actions), -jnp.log(env.num_actions), jnp.float32)
    k_reset, k_steps = jax.random.split(key)
    if num_episodes % group_size:
        raise ValueError(f"group_size={group_size} must divide num_episodes={num_episodes}")
    reset_keys = jax.random.split(k_reset, num_episodes // group_size)
    if group_size > 1:
        reset_keys = reset_keys[jnp.arange(num_episodes) // group_size]
    _, env_state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)

    def token_step(carry: tuple, inputs: tuple) -> tuple:
        env_state, done, lm_cache, q_cache = carry
        index, key = inputs
        k_choose, k_env = jax.random.split(key)
        token = env_state.tokens[:, index]
        if lm_params is None:
            log_pi0 = uniform
        else:
            lm_scores, lm_cache = decode_step(lm_config, lm_params, token, index, lm_cache, parallel)
            log_pi0 = jax.nn.log_softmax(lm_scores)
        scores = log_pi0
        if q_params is not None:
            q_values, q_cache = decode_step(lm_config, q_params, token, index, q_cache, parallel)
            scores = log_pi0 + beta * q_values
        action = choose_tokens(k_choose, scores, temperature, do_sample=do_sample)
        _, stepped, reward, terminated, truncated, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, num_episodes), env_state, action, env_params
        )
        acting = (env_state.position == index + 1) & ~done
        env_state = jax.tree_util.tree_map(
            lambda old, new: jnp.where(acting.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), env_state, stepped
        )
        log_pi = jax.nn.log_softmax(scores)
        kl = jnp.maximum(jnp.sum(jnp.exp(log_pi) * (log_pi - log_pi0), axis=-1), 0.0)  # >= 0 but for rounding
        log_ratio = jnp.take_along_axis(log_pi - log_pi0, action[:, None], axis=-1)[:, 0]
        record = {
            "action": action,
            "reward": jnp.where(acting, reward, 0.0),
            "terminated": acting & terminated,
            "active": acting,
            "kl": jnp.where(acting, kl, 0.0),
            "log_ratio": jnp.where(acting, log_ratio, 0.0),
            "log_pi0": log_pi0,
        }
        return (env_state, done | (acting & (terminated | truncated)), lm_cache, q_cache), record

    no_cache = None if lm_config is None else empty_cache(lm_config, num_episodes)
    carry = (env_state, jnp.zeros(num_episodes, bool), no_cache, None if q_params is None else no_cache)
    inputs = (jnp.arange(length - 1, dtype=jnp.int32), jax.random.split(k_steps, length - 1))
    (env_state, *_), records = jax.lax.scan(token_step, carry, inputs)
    return {"tokens": env_state.tokens, **jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), records)}


def lambda_returns(batch: dict, next_value: jax.Array, beta: jax.Array, td_lambda: float) -> jax.Array:
    """Soft lambda-returns ``[B, T]``, computed backwards over the generated tokens:

        G_t = r_t + [not terminal_t] * ((1 - lambda) V(s_{t+1}) + lambda (G_{t+1} - log_ratio_{t+1} / beta))

    where the episode goes on after ``t`` (``V(s_{t+1})`` alone where it was cut by a time limit).
    ``lambda = 0`` is the one-step soft Q-learning target ``r_t + V(s_{t+1})``. With ``pi =
    softmax(log pi0 + beta Q)``, ``Q(s, a) - log_ratio(a) / beta = V(s)`` for every token ``a``,
    so ``G_{t+1} - log_ratio_{t+1} / beta`` is a sampled estimate of ``V(s_{t+1})`` that carries
    the later rewards back in one update instead of one token per target-network update.
    ``next_value``: ``[B, T]``, ``V(s_{t+1})`` from the target network.
    """
    reward, terminated, active = batch["reward"], batch["terminated"], batch["active"]
    goes_on = jnp.concatenate([active[:, 1:], jnp.zeros_like(active[:, :1])], axis=1)
    later_ratio = jnp.concatenate([batch["log_ratio"][:, 1:], jnp.zeros_like(reward[:, :1])], axis=1)

    def backwards(later_return: jax.Array, t: tuple) -> tuple:
        r, term, on, value, ratio = t
        bootstrap = jnp.where(on, (1.0 - td_lambda) * value + td_lambda * (later_return - ratio / beta), value)
        g = r + jnp.where(term, 0.0, bootstrap)
        return g, g

    columns = (reward, terminated, goes_on, next_value, later_ratio)
    _, returns = jax.lax.scan(
        backwards, jnp.zeros_like(reward[:, 0]), jax.tree_util.tree_map(lambda x: x.T, columns), reverse=True
    )
    return returns.T


def _greedy(network: TransformerLM, end_id: int, parallel: DataParallel = SINGLE) -> Callable:
    """``policy((lm_params, q_params, beta), obs, key)``: the token maximising ``logits + beta * Q``
    at the observation's position (the first end token marks it); the networks whole or sharded
    over ``parallel``'s devices (``apply_model``: under ``jrl.evaluate``'s ``vmap`` each layer is
    gathered once per step for every episode)."""

    def policy(params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        del key
        lm_params, q_params, beta = params
        row = positions(obs, end_id) - 1
        scores = (
            apply_model(network.config, lm_params, obs, parallel)[row]
            + beta * apply_model(network.config, q_params, obs, parallel)[row]
        )
        return jnp.argmax(scores).astype(jnp.int32)

    return policy


def check_env(env: Environment, env_params: Any) -> None:
    """``ValueError`` unless ``env`` is a text environment (a ``TokenEnv``)."""
    if not isinstance(env, TokenEnv):
        raise ValueError(
            "text_q_learning needs a text environment (GraphWalkText-v0, WordGen-v0, Arithmetic-v0); "
            f"got {env.env_id or type(env).__name__}"
        )


def _load_pretrained(config: TextQConfig, env: Environment, env_params: Any) -> LanguageModel:
    check_env(env, env_params)
    return load_pretrained(config.pretrained, env, env_params)


#: Capability: ``make_algorithm`` takes ``parallel`` (``jrl train --devices N``).
DATA_PARALLEL = True


def make_algorithm(
    config: TextQConfig,
    env: Environment,
    env_params: Any,
    model: LanguageModel | None = None,
    parallel: DataParallel = SINGLE,
) -> Algorithm:
    """Validate on the host, load the pretrained model (``config.pretrained``, unless ``model`` is
    given), and return the ``Algorithm`` (``init``, ``run``, ``result``).

    With ``parallel`` over several devices they are one device's program (run under ``shard_map``
    along ``parallel.axis``): the device generates ``num_envs / devices`` episodes with its own
    keys; the loss is normalised by the tokens of every device's batch and its gradients are
    averaged, so each step is the one-device step on the whole batch. With ``config.shard_params``
    the state's networks are sharded over the devices layer by layer (``TextQState``): every
    forward pass gathers one layer at a time (the generations' decoding steps, the loss's
    Q-network and target), the gradients arrive as each device's pieces, and the in-loop
    evaluation gathers the networks whole."""
    if not isinstance(config, TextQConfig):
        raise TypeError(f"config must be a TextQConfig, got {type(config).__name__}")
    lm = _load_pretrained(config, env, env_params) if model is None else model
    if lm.config.tied_head:
        # The Q-network is the model's copy with its output layer started at 0 (Q = 0: decoding
        # starts as the model's own); GPT-2's output layer is the token embedding, shared.
        raise ValueError(
            "text_q_learning needs a language model with an output layer of its own (its Q-network starts as a "
            "copy whose output layer is 0); this one has tied_head=True (GPT-2's lm_head is its token embedding): "
            "tune a Hugging Face GPT-2 with --algo grpo"
        )
    network = TransformerLM(lm.config)
    end_id = env.vocabulary.end_id
    num_envs = parallel.shard("num_envs", config.num_envs)  # this device's generations
    log_interval = config.resolved_log_interval()
    sharded = config.shard_params and parallel.active
    optimizer_for = lambda hp: text_optimizer(config.max_grad_norm, hp.learning_rate, parallel if sharded else None)  # noqa: E731
    # The pretrained model: the program's constant, or the state's pieces (gathered layer by layer).
    reference_of = lambda state: state.reference if sharded else lm.params  # noqa: E731

    greedy = _greedy(network, end_id, parallel)

    def init(key: jax.Array, hyperparams: TextQHyperparams | None = None) -> TextQState:
        check_key("key", key)
        hp = _runtime_values(config.hyperparams() if hyperparams is None else hyperparams)
        k_loop, k_eval = (parallel.device_key(k) for k in jax.random.split(key))
        # The pretrained body with a zero output layer: Q = 0 everywhere, decoding starts as pi0.
        q_params = jax.tree_util.tree_map(jnp.asarray, lm.params)
        head = jax.tree_util.tree_map(jnp.zeros_like, q_params["params"]["head"])
        q_params = {"params": {**q_params["params"], "head": head}}
        reference = None
        if sharded:  # each device keeps its piece; the whole copies here are this program's temporaries
            q_params, reference = shard_layers(q_params, parallel), shard_layers(lm.params, parallel)
        return TextQState(
            q_params=q_params,
            target=q_params,
            opt_state=optimizer_for(hp).init(q_params),
            key=k_loop,
            eval_key=k_eval,
            hyperparams=hp,
            env_steps=jnp.int32(0),
            log_index=jnp.int32(0),
            reference=reference,
        )

    def loss_fn(q_params: Any, target: Any, batch: dict, hp: TextQHyperparams) -> jax.Array:
        # Record t is the token at position t + 1, scored by row t of a causal model over the final
        # buffer (the buffer then held exactly the tokens before it); its next state is row t + 1.
        tokens, actions = batch["tokens"], batch["action"]
        scores = apply_model(lm.config, q_params, tokens, parallel)  # layer by layer where sharded
        q_taken = jnp.take_along_axis(scores[:, :-1], actions[..., None], axis=-1)[..., 0]
        next_q = apply_model(lm.config, target, tokens, parallel)[:, 1:]
        # The last position has no next state (a full buffer ends the episode): zeros, masked out.
        next_log_pi0 = jnp.concatenate([batch["log_pi0"][:, 1:], jnp.zeros_like(batch["log_pi0"][:, :1])], axis=1)
        y = lambda_returns(batch, soft_value(next_log_pi0, next_q, hp.beta), hp.beta, config.td_lambda)
        weights = batch["active"].astype(jnp.float32)
        error = q_taken - jax.lax.stop_gradient(y)
        if parallel.active:  # this device's share of the whole batch's mean, times the devices:
            # averaged over the devices (as the gradients are), it is the whole batch's mean.
            tokens = jnp.maximum(parallel.sum(jnp.sum(weights)), 1.0)
            return jnp.sum(weights * jnp.square(error)) / tokens * parallel.count
        return jnp.sum(weights * jnp.square(error)) / jnp.maximum(jnp.sum(weights), 1.0)

    def learn(state: TextQState, batch: dict) -> tuple[TextQState, jax.Array, jax.Array]:
        """``updates_per_iteration`` Adam steps on one batch of generations (a non-finite one is
        skipped), then the target's Polyak step: (state, losses [U], finite [U])."""
        hp = state.hyperparams
        optimizer = optimizer_for(hp)

        def update(carry: tuple, _: Any) -> tuple:
            params, opt_state = carry
            loss, grads = parallel.value_and_grad(lambda p: loss_fn(p, state.target, batch, hp), params)
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            finite = parallel.all_finite(loss, grads)
            keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
            return (keep(optax.apply_updates(params, updates), params), keep(new_opt_state, opt_state)), (loss, finite)

        (q_params, opt_state), (losses, finite) = jax.lax.scan(
            update, (state.q_params, state.opt_state), None, length=config.updates_per_iteration
        )
        target = jax.tree_util.tree_map(lambda o, g: hp.tau * o + (1.0 - hp.tau) * g, q_params, state.target)
        return state.replace(q_params=q_params, target=target, opt_state=opt_state), losses, finite

    def iteration(state: TextQState, t: jax.Array) -> tuple[TextQState, jax.Array]:
        """Generate ``num_envs`` episodes, learn from them. Stats: summed returns, KL, tokens,
        losses of the finite updates, non-finite updates (float32 ``[5]``)."""
        hp = state.hyperparams
        k_roll = jax.random.fold_in(state.key, t)
        batch = rollout(
            k_roll,
            env,
            env_params,
            lm.config,
            reference_of(state),
            state.q_params,
            hp.beta,
            num_envs,
            config.temperature,
            parallel=parallel,
        )
        state, losses, finite = learn(state, batch)
        returns = jnp.sum(batch["reward"], axis=1)
        stats = jnp.stack(
            [
                jnp.sum(returns),
                jnp.sum(jnp.sum(batch["kl"], axis=1)),
                jnp.sum(batch["active"].astype(jnp.float32)),
                jnp.sum(jnp.where(finite, losses, 0.0)),
                jnp.sum((~finite).astype(jnp.float32)),
            ]
        )
        return state, stats

    def record(state: TextQState, interval: Interval) -> tuple[TextQState, dict]:
        """The interval's metrics (``METRICS``); the state counts the tokens generated."""
        returns, kl, tokens, loss_sum, nonfinite = (interval.stats[i] for i in range(5))
        # The losses and non-finite counts are equal on every device: the stats add their copies.
        loss_sum, nonfinite = loss_sum / parallel.count, nonfinite / parallel.count
        episodes = log_interval * config.num_envs
        updates = log_interval * config.updates_per_iteration
        # An env step of a text environment is a token: the tokens generated so far (exact: a
        # block's count is a small integer in float32).
        env_steps = state.env_steps + jnp.round(tokens).astype(jnp.int32)
        metrics = {
            "env_steps": env_steps.astype(jnp.float32),
            "episode_return": returns / episodes,
            "episodes": jnp.int32(episodes),
            "finite": nonfinite == 0,
            "kl": kl / episodes,  # KL(pi || pi0) per generation, in nats
            "tokens": tokens / episodes,  # generated tokens per generation
            "loss": loss_sum / jnp.maximum(updates - nonfinite, 1.0),
            "nonfinite_updates": nonfinite.astype(jnp.int32),
        }
        return state.replace(env_steps=env_steps), metrics

    run = make_run(
        iteration,
        num_stats=5,
        log_interval=log_interval,
        evaluate=in_loop_evaluation(
            env,
            env_params,
            config.eval_episodes,
            greedy,
            lambda s: (reference_of(s), s.q_params, s.hyperparams.beta),
        ),
        record=record,
        parallel=parallel,
    )

    def result(state: TextQState, metrics: dict) -> TextQResult:
        return TextQResult(q_model=LanguageModel(lm.config, state.q_params), metrics=metrics)

    return Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def make_train(
    config: TextQConfig, env: Environment, env_params: Any, model: LanguageModel | None = None
) -> Callable[..., TextQResult]:
    """``train(key, hyperparams=None) -> TextQResult`` (pure): ``init``, one ``run`` over every
    logging interval, ``result``."""
    return train_function(make_algorithm(config, env, env_params, model))


def decoding_models(config: TextQConfig, result: TextQResult) -> tuple[LanguageModel, LanguageModel, float]:
    """``(pretrained language model, Q-model, beta)``: what decodes a finished run with ``logits +
    beta * Q`` (``jrl generate RUN``, ``jrl export RUN``); the language model is read from
    ``config.pretrained`` (``ValueError`` naming it if it cannot be)."""
    try:
        model = load_model(config.pretrained)
    except ModelFileError as err:
        raise ValueError(f"pretrained: {err}") from err
    return model, result.q_model, float(config.beta)


def greedy_policy(
    config: TextQConfig, env: Environment, env_params: Any, result: TextQResult, model: LanguageModel | None = None
) -> tuple[Callable, Any]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the token maximising ``logits + beta * Q``
    at the observation's position."""
    lm = _load_pretrained(config, env, env_params) if model is None else model
    policy = _greedy(TransformerLM(lm.config), env.vocabulary.end_id)
    return policy, (lm.params, result.q_model.params, jnp.float32(config.beta))
