"""GRPO for text: policy gradients against the environment's verifiable reward, compiled end to end.

Group Relative Policy Optimization (Shao et al., 2024, *DeepSeekMath*), as TRL's ``GRPOTrainer``
runs it, on a token environment (``jrl.envs.tokens``) with the pretrained language model as the
starting policy ``pi`` and as the frozen reference ``pi_ref``. One iteration

1. draws ``num_prompts`` resets (prompts) and samples ``group_size`` (``G``) completions of each
   from the current policy (``choose_tokens`` at ``temperature``) through the environment's own
   ``step_env``, which gives the rewards; a completion's reward ``r`` is its episode's return;
2. gives each completion the group-normalised advantage ``A = (r - mean_group(r)) / (std_group(r)
   + eps)`` (``std`` with Bessel's correction, as ``torch.std``), shared by all its tokens;
3. scores every generated token in one forward pass over the final buffers (a causal model's row
   ``t`` depends only on tokens ``0..t``): ``logp_old`` under the policy that sampled them (the
   parameters before this iteration's updates) and ``logp_ref`` under the reference;
4. takes ``updates_per_iteration`` Adam steps on

       L = -(1 / N_tok) * sum_{generated tokens} [ min(rho * A, clip(rho, 1 - clip_eps, 1 + clip_eps) * A)
                                                     - beta_kl * k3 ]
       rho = exp(logp - logp_old),   k3 = exp(logp_ref - logp) - (logp_ref - logp) - 1

   (``N_tok``: the batch's generated tokens; ``k3`` is the unbiased, non-negative estimator of
   ``KL(pi || pi_ref)`` that TRL uses). Log-probabilities are those of ``softmax(logits /
   temperature)``, for the policy and the reference alike, as TRL computes them.

It follows the algorithm contract of ``jrl.algorithms.common`` (``make_algorithm`` -> ``init`` /
``run`` / ``result``, ``make_train``, ``greedy_policy``), so ``jrl train --algo grpo`` records,
checkpoints, resumes (bit for bit) and sweeps it like any run, and ``decoding_models`` lets
``jrl generate RUN`` and ``jrl export RUN`` decode the tuned model (no Q-head).
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
from jrl.parallel import SINGLE, DataParallel, is_sharded
from jrl.text.model import LanguageModel, TransformerLM, apply_model, shard_layers
from jrl.text.pretrain import check_model_fits, load_pretrained
from jrl.text.q_learning import rollout, text_optimizer

__all__ = [
    "METRICS",
    "GRPOConfig",
    "GRPOHyperparams",
    "GRPOResult",
    "GRPOState",
    "check_env",
    "check_finite",
    "decoding_models",
    "default_config",
    "gradient",
    "greedy_policy",
    "group_advantages",
    "learn",
    "make_algorithm",
    "make_train",
    "token_log_probs",
    "token_loss",
]

#: Every metric a run logs: the shared ones, then this algorithm's own.
METRICS = (*SHARED_METRICS, "kl", "tokens", "loss", "clip_fraction", "nonfinite_updates")


@struct.dataclass
class GRPOHyperparams:
    """Numeric hyperparameters ``train`` takes as data (float32 scalars, or ``[G]`` for a grid)."""

    learning_rate: jax.Array
    clip_eps: jax.Array
    beta_kl: jax.Array


@dataclasses.dataclass(frozen=True)
class GRPOConfig(Config):
    """Settings of a GRPO run; validated on construction and on ``replace``.

    Attributes:
        pretrained: the directory of the pretrained language model (``jrl pretrain``'s output, or
            a Hugging Face GPT-2 directory of the environment's vocabulary), relative to the
            working directory: the starting policy and the frozen reference. A run directory
            keeps a copy (``inputs/pretrained``).
        num_prompts: prompts (resets) per iteration.
        group_size: completions sampled per prompt, ``G >= 2`` (advantages compare them).
        num_steps: iterations.
        learning_rate: Adam's step size.
        clip_eps: the ratio's clip range, ``[1 - clip_eps, 1 + clip_eps]``, in (0, 1).
        beta_kl: weight of the KL penalty to the reference (0: none).
        updates_per_iteration: Adam steps on each iteration's completions (TRL's
            ``num_iterations``); the clip matters from the second on.
        max_grad_norm: global gradient-norm clip.
        temperature: sampling temperature; log-probabilities are those of ``logits / temperature``.
        advantage_eps: added to the group's standard deviation (a group of equal rewards gets
            advantage 0).
        eval_episodes: greedy episodes (``jrl.evaluate``) at the end of every logging interval,
            giving ``eval_return``; 0 skips them (``eval_return`` is NaN).
        log_interval: iterations per logged record (``None``: about 20 records).
        shard_params: over several devices (``jrl train --devices N``), keep the policy, Adam's
            moments and the reference split over the devices (fully sharded data parallelism:
            each device holds about 1/N of them), each forward pass gathering one layer at a time
            (``jrl.text.model.shard_layers``); the steps are those of the unsharded split up to
            float rounding (docs/devices.md). No effect on one device.
    """

    HYPERPARAMS: ClassVar[type] = GRPOHyperparams
    DEFAULT_RECORDS: ClassVar[int] = 20
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("pretrained",)
    WRITTEN_WHEN_SET: ClassVar[tuple[str, ...]] = ("shard_params",)

    pretrained: str = ""
    num_prompts: int = 32
    group_size: int = 8
    num_steps: int = 200
    learning_rate: float = 3e-4
    clip_eps: float = 0.2
    beta_kl: float = 0.04
    updates_per_iteration: int = 2
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    advantage_eps: float = 1e-4
    eval_episodes: int = 0
    log_interval: int | None = None
    shard_params: bool = False

    def env_steps_per_iteration(self) -> None:
        """``None``: an iteration generates ``num_prompts * group_size`` whole episodes, and an env
        step is a token, so the count varies; the ``env_steps`` metric counts the tokens."""
        return None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pretrained, str):
            raise TypeError(f"pretrained must be a directory path (str), got {self.pretrained!r}")
        check_int("num_prompts", self.num_prompts, 1)
        check_int("group_size", self.group_size, 2)
        check_int("num_steps", self.num_steps, 1)
        check_float("learning_rate", self.learning_rate, 0.0, 10.0, low_open=True)
        check_float("clip_eps", self.clip_eps, 0.0, 1.0, low_open=True, high_open=True)
        check_float("beta_kl", self.beta_kl, 0.0, 1e4)
        check_int("updates_per_iteration", self.updates_per_iteration, 1)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e9, low_open=True)
        check_float("temperature", self.temperature, 0.0, 1e3, low_open=True)
        check_float("advantage_eps", self.advantage_eps, 0.0, 1.0, low_open=True)
        check_int("eval_episodes", self.eval_episodes, 0, 2**20)
        check_bool("shard_params", self.shard_params)
        self._check_log_interval()


_DEFAULTS = {
    "Arithmetic-v0": {"num_prompts": 32, "group_size": 8, "num_steps": 200},
    "GraphWalkText-v0": {"num_prompts": 32, "group_size": 8, "num_steps": 200},
    "WordGen-v0": {"num_prompts": 32, "group_size": 8, "num_steps": 200},
}


def default_config(env_id: str, pretrained: str = "") -> GRPOConfig:
    """The default config for ``env_id`` (a text environment), reading the model in ``pretrained``."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"grpo has defaults for {sorted(_DEFAULTS)}, not {env_id!r}")
    return GRPOConfig(pretrained=pretrained, **_DEFAULTS[env_id])


@struct.dataclass
class GRPOState:
    """Everything a run needs to continue.

    Attributes:
        params: the policy's parameters (the ``TransformerLM`` pytree).
        opt_state: Adam's state.
        key: the loop key (iteration ``t`` uses ``fold_in(key, t)``).
        eval_key: the in-loop evaluation's key.
        hyperparams: ``GRPOHyperparams``.
        env_steps: int32, tokens generated so far (a text environment's env step is one token).
        log_index: int32, logging intervals done.
        reference: ``None``, or with ``shard_params`` over several devices the reference's
            parameters split over them layer by layer (``jrl.text.model.shard_layers``: a
            ``jrl.parallel.Sharded`` node per module, as are then ``params`` and Adam's moments);
            unsharded, the reference is the program's constant.
    """

    params: Any
    opt_state: Any
    key: jax.Array
    eval_key: jax.Array
    hyperparams: GRPOHyperparams
    env_steps: jax.Array
    log_index: jax.Array
    reference: Any = None


@struct.dataclass
class GRPOResult:
    """A finished run: ``model`` (the tuned policy, a ``LanguageModel``; decode it with
    ``jrl.text.generate(result.model, prompts, key)``) and the metrics (arrays ``[num_logs]``)."""

    model: LanguageModel
    metrics: dict


def group_advantages(returns: jax.Array, group_size: int, eps: float | jax.Array) -> jax.Array:
    """``(r - mean_group(r)) / (std_group(r) + eps)`` for returns ``[N]`` in consecutive groups of
    ``group_size`` (``N`` a multiple of it); ``std`` with Bessel's correction. ``[N]``."""
    groups = returns.reshape(-1, group_size)
    mean = jnp.mean(groups, axis=1, keepdims=True)
    std = jnp.std(groups, axis=1, keepdims=True, ddof=1)
    return ((groups - mean) / (std + eps)).reshape(returns.shape)


def token_log_probs(
    network: TransformerLM, params: Any, tokens: jax.Array, temperature: float, parallel: DataParallel = SINGLE
) -> jax.Array:
    """``[N, L - 1, A]``: the log-probabilities of ``softmax(logits / temperature)`` for the token at
    each position ``t + 1`` of the buffers ``tokens`` ``[N, L]`` (row ``t`` of the causal model).
    ``params``: whole, or sharded over ``parallel``'s devices (``jrl.text.model.apply_model``:
    layer by layer, each gathered while it runs)."""
    return jax.nn.log_softmax(apply_model(network.config, params, tokens, parallel)[:, :-1] / temperature, axis=-1)


def token_loss(
    logp: jax.Array,
    logp_old: jax.Array,
    logp_ref: jax.Array,
    advantages: jax.Array,
    active: jax.Array,
    clip_eps: jax.Array | float,
    beta_kl: jax.Array | float,
    parallel: DataParallel = SINGLE,
) -> tuple[jax.Array, dict]:
    """GRPO's loss over the generated tokens (module docstring), with its parts.

    ``logp``, ``logp_old``, ``logp_ref``: ``[N, T]``, the chosen tokens' log-probabilities under the
    policy being trained, the sampling policy and the reference; ``advantages`` ``[N]``; ``active``
    bool ``[N, T]`` (a token was generated there). Returns ``(loss, {"kl": mean k3,
    "clip_fraction": the share of tokens whose ratio the clip changed})``, token means.

    With ``parallel`` over several devices (one device's completions here), the means are over
    every device's tokens: the parts are the whole batch's, and the loss is this device's share of
    the whole batch's loss times the device count, so that its average over the devices, and that
    of its gradients (``parallel.mean``), are the whole batch's.
    """
    weights = active.astype(jnp.float32)
    count = jnp.maximum(parallel.sum(jnp.sum(weights)), 1.0)  # every device's tokens
    ratio = jnp.exp(logp - logp_old)
    advantage = advantages[:, None]
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    surrogate = jnp.minimum(ratio * advantage, clipped * advantage)
    log_ref_ratio = logp_ref - logp
    k3 = jnp.exp(log_ref_ratio) - log_ref_ratio - 1.0
    loss = -jnp.sum(weights * (surrogate - beta_kl * k3)) / count
    if parallel.active:
        loss = loss * parallel.count
    clip_changed = (clipped * advantage < ratio * advantage).astype(jnp.float32)
    kl, clip_fraction = parallel.sum((jnp.sum(weights * k3), jnp.sum(weights * clip_changed)))
    return loss, {"kl": kl / count, "clip_fraction": clip_fraction / count}


def _greedy(network: TransformerLM, end_id: int, parallel: DataParallel = SINGLE) -> Callable:
    """``policy(params, obs, key)``: the policy's most likely token at the observation's position
    (the first end token marks it); ``params`` whole or sharded over ``parallel``'s devices
    (``apply_model``: under ``jrl.evaluate``'s ``vmap`` each layer is gathered once per step for
    every episode)."""

    def policy(params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        del key
        row = positions(obs, end_id) - 1
        return jnp.argmax(apply_model(network.config, params, obs, parallel)[row]).astype(jnp.int32)

    return policy


def check_env(env: Environment, env_params: Any) -> None:
    """``ValueError`` unless ``env`` is a text environment (a ``TokenEnv``)."""
    if not isinstance(env, TokenEnv):
        raise ValueError(
            "grpo needs a text environment (Arithmetic-v0, GraphWalkText-v0, WordGen-v0); "
            f"got {env.env_id or type(env).__name__}"
        )


def _load_pretrained(config: GRPOConfig, env: Environment, env_params: Any) -> LanguageModel:
    check_env(env, env_params)
    return load_pretrained(config.pretrained, env, env_params)


def _chosen(log_probs: jax.Array, actions: jax.Array) -> jax.Array:
    return jnp.take_along_axis(log_probs, actions[..., None], axis=-1)[..., 0]


def _objective(
    config: GRPOConfig, network: TransformerLM, reference: Any, state: GRPOState, batch: dict, parallel: DataParallel
) -> tuple[Callable, jax.Array]:
    """``(loss_fn(params) -> (loss, parts), exact KL [N, T])`` of one batch, its sampling policy
    ``state.params`` and its advantages fixed; ``params`` whole or sharded layer by layer, as
    ``state.params`` is (``parallel.value_and_grad``)."""
    tokens, actions, active = batch["tokens"], batch["action"], batch["active"]
    old_all = token_log_probs(network, state.params, tokens, config.temperature, parallel)
    ref_all = token_log_probs(network, reference, tokens, config.temperature, parallel)
    logp_old, logp_ref = _chosen(old_all, actions), _chosen(ref_all, actions)
    exact_kl = jnp.where(active, jnp.sum(jnp.exp(old_all) * (old_all - ref_all), axis=-1), 0.0)
    returns = jnp.sum(batch["reward"], axis=1)
    advantages = group_advantages(returns, config.group_size, config.advantage_eps)
    hp = state.hyperparams

    def loss_fn(params: Any) -> tuple:
        logp = _chosen(token_log_probs(network, params, tokens, config.temperature, parallel), actions)
        return token_loss(logp, logp_old, logp_ref, advantages, active, hp.clip_eps, hp.beta_kl, parallel)

    return loss_fn, exact_kl


def gradient(
    config: GRPOConfig,
    network: TransformerLM,
    reference: Any,
    state: GRPOState,
    batch: dict,
    parallel: DataParallel = SINGLE,
) -> tuple[jax.Array, Any]:
    """``(loss, gradient)`` of ``learn``'s first step (at ``state.params``, the sampling policy):
    the whole batch's over every device (``Sharded`` pieces where ``state.params`` is), before the
    clip and Adam. What the devices must agree on, exposed for the tests: Adam divides each entry
    by its own magnitude, so an entry whose exact gradient is 0 (an attention's key bias: softmax
    ignores a shift common to every key) moves by rounding noise times the step size."""
    loss_fn, _ = _objective(config, network, reference, state, batch, parallel)
    (loss, _), grads = parallel.value_and_grad(loss_fn, state.params, has_aux=True)
    return loss, grads


def learn(
    config: GRPOConfig,
    network: TransformerLM,
    reference: Any,
    state: GRPOState,
    batch: dict,
    parallel: DataParallel = SINGLE,
) -> tuple[GRPOState, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``config.updates_per_iteration`` Adam steps on one batch of completions (``rollout``'s
    dict, ``N`` completions in consecutive groups of ``group_size``; a non-finite step is skipped).

    ``reference``: the reference's parameters (whole, or sharded as ``state.params``). With
    ``parallel`` over several devices, the batch is this device's groups (whole groups: their
    advantages are the group's): the loss is normalised by every device's tokens and the gradients
    averaged (``token_loss``), so the step is the one-device step on every device's completions;
    where ``state.params`` is sharded (``shard_params``: ``jrl.text.model.shard_layers``, or one
    ``Sharded`` node) every forward pass gathers it layer by layer (or whole) and the gradients
    arrive as this device's pieces (``parallel.value_and_grad``).

    Returns (state, losses ``[U]``, finite ``[U]``, clip fractions ``[U]`` (the whole batch's),
    and the exact ``KL(pi || pi_ref)`` over the vocabulary at this device's generated tokens
    ``[N, T]``, at the sampling policy)."""
    sharded = is_sharded(state.params)
    optimizer = text_optimizer(config.max_grad_norm, state.hyperparams.learning_rate, parallel if sharded else None)
    loss_fn, exact_kl = _objective(config, network, reference, state, batch, parallel)

    def update(carry: tuple, _: Any) -> tuple:
        params, opt_state = carry
        (loss, parts), grads = parallel.value_and_grad(loss_fn, params, has_aux=True)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        finite = parallel.all_finite(loss, grads)
        keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
        new = (keep(optax.apply_updates(params, updates), params), keep(new_opt_state, opt_state))
        return new, (loss, finite, parts["clip_fraction"])

    (params, opt_state), (losses, finite, clip_fraction) = jax.lax.scan(
        update, (state.params, state.opt_state), None, length=config.updates_per_iteration
    )
    return state.replace(params=params, opt_state=opt_state), losses, finite, clip_fraction, exact_kl


#: Capability: ``make_algorithm`` takes ``parallel`` (``jrl train --devices N``).
DATA_PARALLEL = True


def make_algorithm(
    config: GRPOConfig,
    env: Environment,
    env_params: Any,
    model: LanguageModel | None = None,
    parallel: DataParallel = SINGLE,
) -> Algorithm:
    """Validate on the host, load the pretrained model (``config.pretrained``, unless ``model`` is
    given: the starting policy and the frozen reference), and return the ``Algorithm`` (``init``,
    ``run``, ``result``).

    With ``parallel`` over several devices they are one device's program (run under ``shard_map``
    along ``parallel.axis``): the device samples ``num_prompts / devices`` prompts' groups with its
    own keys and ``learn`` takes the one-device step on every device's completions. With
    ``config.shard_params`` the policy, Adam's moments and the reference are sharded over the
    devices layer by layer (``GRPOState``): the generations' decoding steps and the loss's forward
    and backward passes gather one layer at a time, the in-loop evaluation the whole policy."""
    if not isinstance(config, GRPOConfig):
        raise TypeError(f"config must be a GRPOConfig, got {type(config).__name__}")
    # This device's completions: whole groups, so that each group's advantages are its own.
    device_episodes = parallel.shard("num_prompts", config.num_prompts) * config.group_size
    if model is None:
        lm = _load_pretrained(config, env, env_params)
    else:
        check_env(env, env_params)
        check_model_fits(model, env, env_params, "the model given")
        lm = model
    network = TransformerLM(lm.config)
    num_episodes = config.num_prompts * config.group_size  # every device's
    log_interval = config.resolved_log_interval()
    sharded = config.shard_params and parallel.active
    greedy = _greedy(network, env.vocabulary.end_id, parallel)
    # The reference: the program's constant, or the state's pieces (gathered layer by layer).
    reference_of = lambda state: state.reference if sharded else lm.params  # noqa: E731

    def init(key: jax.Array, hyperparams: GRPOHyperparams | None = None) -> GRPOState:
        check_key("key", key)
        hp = _runtime_values(config.hyperparams() if hyperparams is None else hyperparams)
        k_loop, k_eval = (parallel.device_key(k) for k in jax.random.split(key))
        params = jax.tree_util.tree_map(jnp.asarray, lm.params)
        reference = None
        if sharded:  # each device keeps its piece; the whole copies here are this program's temporaries
            params, reference = shard_layers(params, parallel), shard_layers(lm.params, parallel)
        optimizer = text_optimizer(config.max_grad_norm, hp.learning_rate, parallel if sharded else None)
        return GRPOState(
            params=params,
            opt_state=optimizer.init(params),
            key=k_loop,
            eval_key=k_eval,
            hyperparams=hp,
            env_steps=jnp.int32(0),
            log_index=jnp.int32(0),
            reference=reference,
        )

    def iteration(state: GRPOState, t: jax.Array) -> tuple[GRPOState, jax.Array]:
        """Sample ``num_prompts`` groups of completions, learn from them. Stats: summed returns,
        KL(pi || pi_ref), tokens, losses and clip fractions of the finite updates, non-finite
        updates (float32 ``[6]``)."""
        k_roll = jax.random.fold_in(state.key, t)
        batch = rollout(
            k_roll,
            env,
            env_params,
            lm.config,
            state.params,
            None,
            0.0,
            device_episodes,
            config.temperature,
            group_size=config.group_size,
            parallel=parallel,
        )
        state, losses, finite, clip_fraction, exact_kl = learn(
            config, network, reference_of(state), state, batch, parallel
        )
        stats = jnp.stack(
            [
                jnp.sum(batch["reward"]),
                jnp.sum(exact_kl),
                jnp.sum(batch["active"].astype(jnp.float32)),
                jnp.sum(jnp.where(finite, losses, 0.0)),
                jnp.sum(jnp.where(finite, clip_fraction, 0.0)),
                jnp.sum((~finite).astype(jnp.float32)),
            ]
        )
        return state, stats

    def record(state: GRPOState, interval: Interval) -> tuple[GRPOState, dict]:
        """The interval's metrics (``METRICS``); the state counts the tokens generated."""
        returns, kl, tokens, loss_sum, clip_sum, nonfinite = (interval.stats[i] for i in range(6))
        # The losses, clip fractions and non-finite counts are equal on every device: the stats
        # add their copies.
        loss_sum, clip_sum, nonfinite = (x / parallel.count for x in (loss_sum, clip_sum, nonfinite))
        episodes = log_interval * num_episodes
        finite_updates = jnp.maximum(log_interval * config.updates_per_iteration - nonfinite, 1.0)
        env_steps = state.env_steps + jnp.round(tokens).astype(jnp.int32)  # exact: small integers
        metrics = {
            "env_steps": env_steps.astype(jnp.float32),
            "episode_return": returns / episodes,
            "episodes": jnp.int32(episodes),
            "finite": nonfinite == 0,
            "kl": kl / episodes,  # KL(pi || pi_ref) per completion, nats, at the sampling policy
            "tokens": tokens / episodes,  # generated tokens per completion
            "loss": loss_sum / finite_updates,
            "clip_fraction": clip_sum / finite_updates,
            "nonfinite_updates": nonfinite.astype(jnp.int32),
        }
        return state.replace(env_steps=env_steps), metrics

    run = make_run(
        iteration,
        num_stats=6,
        log_interval=log_interval,
        evaluate=in_loop_evaluation(env, env_params, config.eval_episodes, greedy, lambda s: s.params),
        record=record,
        parallel=parallel,
    )

    def result(state: GRPOState, metrics: dict) -> GRPOResult:
        return GRPOResult(model=LanguageModel(lm.config, state.params, lm.tokenizer), metrics=metrics)

    return Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def make_train(
    config: GRPOConfig, env: Environment, env_params: Any, model: LanguageModel | None = None
) -> Callable[..., GRPOResult]:
    """``train(key, hyperparams=None) -> GRPOResult`` (pure): ``init``, one ``run`` over every
    logging interval, ``result``."""
    return train_function(make_algorithm(config, env, env_params, model))


def decoding_models(config: GRPOConfig, result: GRPOResult) -> tuple[LanguageModel, None, float]:
    """``(tuned language model, None, 0.0)``: a GRPO run decodes with its own model alone (no
    Q-head), for ``jrl generate RUN`` and ``jrl export RUN``."""
    del config
    return result.model, None, 0.0


def greedy_policy(
    config: GRPOConfig, env: Environment, env_params: Any, result: GRPOResult, model: LanguageModel | None = None
) -> tuple[Callable, Any]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the tuned model's most likely token at the
    observation's position."""
    del config, model
    check_env(env, env_params)
    return _greedy(TransformerLM(result.model.config), env.vocabulary.end_id), result.model.params
