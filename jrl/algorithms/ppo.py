"""PPO (proximal policy optimisation, Schulman et al. 2017) with separate actor and critic MLPs,
compiled end to end.

``make_train(config, env, env_params) -> train(key, hyperparams=None)``. One iteration steps all
``num_envs`` environments ``rollout_length`` times with the current stochastic policy
(``jrl.algorithms.rollout.collect``), computes every step's lambda-return ``G`` with
``next_value = V(next_obs)`` (``rollout.lambda_returns``; ``next_obs`` is the final observation
where an episode ended, so a time limit bootstraps from the state it cut and a termination does
not bootstrap at all) and the GAE advantage ``A = G - V(obs)``, then takes ``num_epochs`` passes of
``num_minibatches`` gradient steps over the shuffled rollout on

    ratio  = exp(log pi(a | s) - log pi_old(a | s))
    L_clip = -mean(min(ratio * A, clip(ratio, 1 - clip_eps, 1 + clip_eps) * A))
    L_V    = 0.5 * mean((V(s) - G)^2)                                            (clip_value False)
    L_V    = 0.5 * mean(max((V(s) - G)^2, (V_old(s) + clip(V(s) - V_old(s), -clip_eps, clip_eps) - G)^2))
    loss   = L_clip + vf_coef * L_V - ent_coef * mean(entropy of pi(. | s))

(``A`` normalised to zero mean and unit variance within each minibatch when
``normalize_advantages``). Discrete actions follow a categorical policy over the actor's logits;
``Box`` actions a diagonal Gaussian whose mean is the actor's output and whose log standard
deviation is a learned state-independent vector. The Gaussian sample is clipped to the action
bounds before the environment sees it, and its log-probability is that of the unclipped sample
(as PureJaxRL and CleanRL do): the clipping is part of the environment, not of the policy.

With ``normalize_observations`` the networks see ``(obs - mean) / sqrt(var + 1e-8)``, where
``mean`` and ``var`` are the running statistics of every observation acted on so far (updated
after each iteration's learning, so a rollout, its targets and its updates all use one
normalisation); the greedy policy, the in-loop evaluation and the export use the same statistics.

A gradient step whose loss or gradients are not finite is skipped and counted in
``metrics["nonfinite_updates"]``; ``check_finite(result)`` turns a non-zero count into an error.
See ``docs/ppo.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from jrl._numerics import rounded
from jrl._validation import check_bool, check_choice, check_float, check_int, check_key
from jrl.algorithms.common import (
    Algorithm,
    Config,
    _runtime_values,
    check_finite,
    hyperparam_grid,
    train_function,
)
from jrl.algorithms.networks import Layer, NetworkDescription
from jrl.algorithms.rollout import Envs, Rollout, collect, lambda_returns, reset_envs
from jrl.algorithms.training import Interval, in_loop_evaluation, make_run, mean_or_nan
from jrl.envs.core import Environment
from jrl.parallel import SINGLE, DataParallel
from jrl.spaces import Box, Discrete

__all__ = [
    "ACTIVATIONS",
    "METRICS",
    "ObsStats",
    "PPOConfig",
    "PPOHyperparams",
    "PPOResult",
    "PPOState",
    "PolicyMLP",
    "check_env",
    "check_finite",
    "default_config",
    "describe_network",
    "gae",
    "gaussian_entropy",
    "gaussian_log_prob",
    "greedy_policy",
    "hyperparam_grid",
    "make_algorithm",
    "make_train",
    "normalize_obs",
    "ppo_loss",
    "tuned_env_ids",
    "update_obs_stats",
]

ACTIVATIONS = ("tanh", "relu")

#: Every metric a run logs (``PPOResult``): the shared ones (``common.METRICS``), then the
#: iteration-mean loss terms, the policy's entropy, the approximate KL divergence from the
#: rollout's policy, the fraction of clipped ratios, skipped gradient steps and ``stopped``.
METRICS = (
    "step",
    "env_steps",
    "episode_return",
    "episodes",
    "eval_return",
    "finite",
    "loss",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "nonfinite_updates",
    "stopped",
)

# The loss terms an update phase averages, in the order of its stats (after the episode counts).
_LOSS_TERMS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")

#: Added to the running variance before its square root (as Gymnasium's NormalizeObservation).
OBS_EPSILON = 1e-8


@struct.dataclass
class PPOHyperparams:
    """Numeric hyperparameters ``train`` takes as data (float32 scalars, or ``[G]`` for a grid)."""

    learning_rate: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    max_grad_norm: jax.Array


@dataclasses.dataclass(frozen=True)
class PPOConfig(Config):
    """Settings of a PPO run; validated on construction and on ``replace``.

    Attributes:
        num_envs: parallel environments (>= 1).
        num_steps: iterations; each is one rollout of ``rollout_length`` steps of every
            environment and its update, so ``num_envs * rollout_length * num_steps`` environment
            steps in all (``env_steps_per_iteration``).
        rollout_length: steps of each environment per rollout (T).
        num_epochs: passes over each rollout.
        num_minibatches: gradient steps per pass; must divide ``num_envs * rollout_length``.
        learning_rate: Adam step size (eps 1e-5), > 0.
        anneal_lr: decay the learning rate linearly to 0 over the run's gradient steps.
        max_grad_norm: global gradient-norm clip, > 0.
        gamma: discount, in [0, 1].
        gae_lambda: GAE's lambda, in [0, 1].
        clip_eps: the surrogate's ratio clip (and the value clip), > 0.
        ent_coef: weight of the entropy bonus, >= 0.
        vf_coef: weight of the value loss, >= 0.
        clip_value: clip the value loss around the rollout's values (PureJaxRL, CleanRL).
        normalize_observations: feed observations normalised by running statistics (Box
            observations only; see the module docstring).
        normalize_advantages: normalise the advantages within each minibatch.
        hidden_sizes: widths of the hidden layers of the actor and of the critic (each its own MLP).
        activation: ``"tanh"`` or ``"relu"`` after each hidden layer.
        log_std_init: the Gaussian policy's initial log standard deviation, every action
            dimension's (Box actions), in [-20, 5]. Above 0 the first rollouts explore with most
            actions at the bounds (a sample is clipped to them), as a reward far from the start
            may need (MountainCarContinuous-v0).
        eval_episodes: greedy episodes evaluated inside the loop at every log point (0: none).
        stop_return: stop training at the first in-loop evaluation whose mean return is at least
            this (the later log records have ``stopped`` True); ``None``: never. Needs
            ``eval_episodes > 0``.
        log_interval: iterations between metric records (must divide ``num_steps``); ``None``
            picks the divisor closest to 50 records.
        batched_env_step: step the environments with ``env.step_batch``, one draw for the whole
            batch, and evaluate in the loop with ``jrl.evaluate(..., batched=True)``
            (``jrl.algorithms.rollout.step_envs`` says what changes); ``False`` in every tuned
            default and recorded result.
    """

    HYPERPARAMS = PPOHyperparams
    DEFAULT_RECORDS = 50
    WRITTEN_WHEN_SET = ("batched_env_step",)

    num_envs: int = 4
    num_steps: int = 1000
    rollout_length: int = 128
    num_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    clip_value: bool = True
    normalize_observations: bool = False
    normalize_advantages: bool = True
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    eval_episodes: int = 16
    stop_return: float | None = None
    log_interval: int | None = None
    batched_env_step: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("num_envs", self.num_envs, 1, 2**20)
        check_int("num_steps", self.num_steps, 1, 2**31 - 1)
        check_int("rollout_length", self.rollout_length, 1, 2**20)
        check_int("num_epochs", self.num_epochs, 1, 10_000)
        check_int("num_minibatches", self.num_minibatches, 1, 2**20)
        check_float("learning_rate", self.learning_rate, 0.0, 1e3, low_open=True)
        check_bool("anneal_lr", self.anneal_lr)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e30, low_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_float("clip_eps", self.clip_eps, 0.0, 1e3, low_open=True)
        check_float("ent_coef", self.ent_coef, 0.0, 1e3)
        check_float("vf_coef", self.vf_coef, 0.0, 1e3)
        check_bool("clip_value", self.clip_value)
        check_bool("batched_env_step", self.batched_env_step)
        check_bool("normalize_observations", self.normalize_observations)
        check_bool("normalize_advantages", self.normalize_advantages)
        widths = self.hidden_sizes
        if not isinstance(widths, tuple) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
        ):
            raise TypeError(f"hidden_sizes must be a tuple of positive ints, got {widths!r}")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_float("log_std_init", self.log_std_init, -20.0, 5.0)
        check_int("eval_episodes", self.eval_episodes, 0, 2**20)
        if self.stop_return is not None:
            check_float("stop_return", self.stop_return, -1e30, 1e30)
            if self.eval_episodes == 0:
                raise ValueError("stop_return stops on an in-loop evaluation: it needs eval_episodes > 0")
        batch = self.num_envs * self.rollout_length
        if batch % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide num_envs * rollout_length = {batch} "
                "(every minibatch has the same size)"
            )
        self._check_log_interval()

    def env_steps_per_iteration(self) -> int:
        """One rollout: ``rollout_length`` steps of each of ``num_envs`` environments."""
        return self.num_envs * self.rollout_length

    def total_updates(self) -> int:
        """Gradient steps in a full run (the length of the learning-rate annealing)."""
        return self.num_steps * self.num_epochs * self.num_minibatches


@struct.dataclass
class ObsStats:
    """Running statistics of every observation acted on so far (``normalize_observations``).

    Attributes:
        mean: float32 ``[*obs_shape]``; var: float32 ``[*obs_shape]`` (population variance, 1
            before any observation); count: float32, observations seen (0 at the start: the first
            update then takes the batch's own mean and variance).
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def update_obs_stats(stats: ObsStats, obs: jax.Array, parallel: DataParallel = SINGLE) -> ObsStats:
    """``stats`` merged with a batch ``obs [B, *obs_shape]`` (Chan et al.'s parallel update): the
    mean and population variance of every observation of both, up to float32 rounding. Over
    several devices the batch is every device's ``obs`` together (equal shares), so the statistics
    stay equal on every device."""
    batch_count = jnp.float32(obs.shape[0] * parallel.count)
    x = obs.astype(jnp.float32)
    batch_mean = parallel.mean(jnp.mean(x, axis=0))
    batch_var = parallel.mean(jnp.mean(jnp.square(x - batch_mean), axis=0))
    total = stats.count + batch_count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * (batch_count / total)
    m2 = stats.var * stats.count + batch_var * batch_count + jnp.square(delta) * (stats.count * batch_count / total)
    return ObsStats(mean=mean, var=m2 / total, count=total)


def normalize_obs(stats: ObsStats, obs: jax.Array) -> jax.Array:
    """``(obs - mean) / sqrt(var + 1e-8)``, float32, for observations of any leading shape."""
    return (obs.astype(jnp.float32) - stats.mean) / jnp.sqrt(stats.var + OBS_EPSILON)


class PolicyMLP(nn.Module):
    """An MLP on one observation vector: hidden Dense layers with ``activation``, then a Dense
    output of ``out_size``. Orthogonal initialisation as PureJaxRL's: gain sqrt(2) for the hidden
    layers, ``out_scale`` for the output (0.01 for the actor, so the first policy is near uniform
    or near the zero mean; 1 for the critic), zero biases."""

    hidden_sizes: Sequence[int]
    activation: str
    out_size: int
    out_scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = jnp.tanh if self.activation == "tanh" else nn.relu
        for width in self.hidden_sizes:
            x = act(nn.Dense(width, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)))(x))
        return nn.Dense(self.out_size, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, x: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian at ``x``, summed over the last axis: ``[...]``."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * math.log(2.0 * math.pi), axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian with log standard deviations ``log_std [..., D]``: ``[...]``."""
    return jnp.sum(0.5 + 0.5 * math.log(2.0 * math.pi) + log_std, axis=-1)


def gae(
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    value: jax.Array,
    next_value: jax.Array,
    gamma: jax.Array,
    lam: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE(gamma, lam) over a ``[T, N]`` rollout: ``(advantages, returns)``, float32 ``[T, N]``.

    ``returns`` is ``rollout.lambda_returns`` with ``next_value = V(next_obs)`` and ``advantages
    = returns - value``, ``value = V(obs)``: the same as the usual backward recursion of the
    TD errors ``delta = r + gamma (1 - terminated) V(next_obs) - V(obs)``, cut where an episode
    ended (a time limit keeps its bootstrap ``V(final observation)``).
    """
    returns = lambda_returns(reward, terminated, truncated, next_value, gamma, lam)
    return returns - value, returns


def ppo_loss(
    log_prob: jax.Array,
    entropy: jax.Array,
    value: jax.Array,
    old_log_prob: jax.Array,
    old_value: jax.Array,
    advantage: jax.Array,
    target: jax.Array,
    hp: PPOHyperparams,
    clip_value: bool,
    normalize_advantages: bool,
    parallel: DataParallel = SINGLE,
) -> tuple[jax.Array, dict]:
    """PPO's loss on a minibatch (module docstring), every input float32 ``[B]``.

    ``log_prob``, ``entropy`` and ``value`` come from the networks being trained; ``old_*``,
    ``advantage`` and ``target`` (the lambda-return) from the rollout. Returns the scalar loss
    and its terms: ``loss``, ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` (the
    estimator ``mean((ratio - 1) - log ratio)``, as CleanRL's) and ``clip_fraction`` (the fraction
    of ``|ratio - 1| > clip_eps``).

    Over several devices (``parallel``) each device passes its share of the minibatch: the
    advantages are normalised with the whole minibatch's mean and standard deviation, and the
    caller averages the loss and its gradients over the devices.
    """
    if normalize_advantages and parallel.active:
        mean = parallel.mean(jnp.mean(advantage))
        std = jnp.sqrt(parallel.mean(jnp.mean(jnp.square(advantage - mean))))
        advantage = (advantage - mean) / (std + 1e-8)
    elif normalize_advantages:
        advantage = (advantage - jnp.mean(advantage)) / (jnp.std(advantage) + 1e-8)
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    clipped_ratio = jnp.clip(ratio, 1.0 - hp.clip_eps, 1.0 + hp.clip_eps)
    policy_loss = -jnp.mean(jnp.minimum(ratio * advantage, clipped_ratio * advantage))
    value_error = jnp.square(value - target)
    if clip_value:
        clipped_value = old_value + jnp.clip(value - old_value, -hp.clip_eps, hp.clip_eps)
        value_error = jnp.maximum(value_error, jnp.square(clipped_value - target))
    value_loss = 0.5 * jnp.mean(value_error)
    mean_entropy = jnp.mean(entropy)
    loss = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * mean_entropy
    terms = {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": mean_entropy,
        "approx_kl": jax.lax.stop_gradient(jnp.mean((ratio - 1.0) - log_ratio)),
        "clip_fraction": jax.lax.stop_gradient(jnp.mean((jnp.abs(ratio - 1.0) > hp.clip_eps).astype(jnp.float32))),
    }
    return loss, terms


@struct.dataclass
class PPOState:
    """Everything a PPO run needs to continue (``N = num_envs``).

    Attributes:
        params: float32 ``[P]``, every parameter as one flat vector (``result`` restores the tree
            ``{"actor": ..., "critic": ...}`` of Flax parameters, with ``"log_std"``, float32
            ``[action_dim]``, for Box actions).
        opt_state: Adam's state (with the gradient clip's and the schedule's step count).
        envs: the ``N`` environments mid-episode (``jrl.algorithms.rollout.Envs``).
        obs_stats: ``ObsStats`` of the observations acted on (unused, count 0, without
            ``normalize_observations``).
        stopped: bool, ``stop_return`` was reached.
        key, eval_key: the loop's and the in-loop evaluations' keys (iteration ``t`` uses
            ``fold_in(key, t)``, interval ``i`` ``fold_in(eval_key, i)``).
        hyperparams: ``PPOHyperparams`` (float32 scalars).
        log_index: int32, logging intervals done.
    """

    params: Any
    opt_state: Any
    envs: Envs
    obs_stats: ObsStats
    stopped: jax.Array
    key: jax.Array
    eval_key: jax.Array
    hyperparams: PPOHyperparams
    log_index: jax.Array


@struct.dataclass
class PPOResult:
    """``params``: the actor's and critic's parameters at the end of training (``PPOState.params``);
    ``obs_stats``: the observation statistics the networks read (``ObsStats``); ``metrics``: dict of
    arrays ``[num_logs]`` (``METRICS``: the shared ones, then the loss terms averaged over the
    interval's gradient steps, ``nonfinite_updates`` and ``stopped``)."""

    params: Any
    obs_stats: ObsStats
    metrics: dict


@dataclasses.dataclass(frozen=True)
class _Policy:
    """How observations enter the networks and how actions come out, for one config and env."""

    actor: PolicyMLP
    critic: PolicyMLP
    one_hot: int | None
    normalize: bool
    box: Box | None  # the action space when continuous
    action_shape: tuple[int, ...]
    log_std_init: float = 0.0  # the Gaussian's initial log standard deviation (Box actions)

    def inputs(self, stats: ObsStats, obs: jax.Array) -> jax.Array:
        """Network inputs ``[B, F]`` of observations ``[B, *obs_shape]``."""
        if self.one_hot is not None:
            return jax.nn.one_hot(obs, self.one_hot)
        x = normalize_obs(stats, obs) if self.normalize else obs.astype(jnp.float32)
        return x.reshape(x.shape[0], -1)

    def distribution(self, params: Any, x: jax.Array) -> jax.Array:
        """The actor's logits ``[B, A]`` or Gaussian means ``[B, D]``."""
        return self.actor.apply(params["actor"], x)

    def value(self, params: Any, x: jax.Array) -> jax.Array:
        return self.critic.apply(params["critic"], x)[:, 0]

    def log_prob_entropy(self, params: Any, out: jax.Array, sample: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.box is None:
            log_p = jax.nn.log_softmax(out)
            chosen = jnp.take_along_axis(log_p, sample[:, None], axis=-1)[:, 0]
            return chosen, -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
        log_std = jnp.broadcast_to(params["log_std"], out.shape)
        return gaussian_log_prob(out, log_std, sample), gaussian_entropy(log_std)

    def sample(self, params: Any, out: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(the sample the log-probability is of, the action the environment gets)."""
        if self.box is None:
            action = jax.random.categorical(key, out).astype(jnp.int32)
            return action, action
        sample = out + jnp.exp(params["log_std"]) * jax.random.normal(key, out.shape)
        return sample, self.to_env(sample)

    def to_env(self, flat: jax.Array) -> jax.Array:
        """A Gaussian sample or mean ``[B, D]`` clipped to the action bounds, in the action shape."""
        low, high = (jnp.asarray(b, jnp.float32).reshape(-1) for b in (self.box.low, self.box.high))
        return jnp.clip(flat, low, high).reshape((flat.shape[0], *self.action_shape))

    def greedy(self, policy_params: tuple, obs: jax.Array, key: jax.Array) -> jax.Array:
        """The mode of one observation's policy: the argmax action, or the mean clipped."""
        del key
        params, stats = policy_params
        out = self.distribution(params, self.inputs(stats, obs[None]))
        if self.box is None:
            return jnp.argmax(out[0]).astype(jnp.int32)
        return self.to_env(out)[0]


def check_env(env: Environment, env_params: Any) -> None:
    """``ValueError`` unless ``env`` has Discrete or Box actions and Discrete or Box observations."""
    actions, observations = env.action_space(env_params), env.observation_space(env_params)
    if not isinstance(actions, (Discrete, Box)):
        raise ValueError(f"ppo needs Discrete or Box actions; {env.env_id} has {actions!r}")
    if not isinstance(observations, (Discrete, Box)):
        raise ValueError(f"ppo needs Discrete or Box observations; {env.env_id} has {observations!r}")


def _policy(config: PPOConfig, env: Environment, env_params: Any) -> _Policy:
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a jrl Environment, got {type(env).__name__}")
    check_env(env, env_params)
    actions, observations = env.action_space(env_params), env.observation_space(env_params)
    one_hot = observations.n if isinstance(observations, Discrete) else None
    if config.normalize_observations and one_hot is not None:
        raise ValueError(
            f"normalize_observations=True normalises Box observations; {env.env_id} has {observations!r}, "
            "which PPO feeds one-hot: leave normalize_observations=False"
        )
    box = actions if isinstance(actions, Box) else None
    out_size = actions.n if box is None else math.prod(box.shape)
    return _Policy(
        actor=PolicyMLP(config.hidden_sizes, config.activation, out_size, 0.01),
        critic=PolicyMLP(config.hidden_sizes, config.activation, 1, 1.0),
        one_hot=one_hot,
        normalize=config.normalize_observations,
        box=box,
        action_shape=() if box is None else tuple(box.shape),
        log_std_init=config.log_std_init,
    )


def _init_params(policy: _Policy, key: jax.Array, obs_shape: tuple[int, ...], obs_dtype: Any) -> dict:
    """Fresh actor and critic parameters (and the log-std ``log_std_init`` for Box actions) for observations of
    ``obs_shape``; under ``vmap`` (seeds, a sweep) one seed after another (``_one_seed_at_a_time``)."""

    @_one_seed_at_a_time
    def init(key: jax.Array) -> dict:
        k_actor, k_critic = jax.random.split(key)
        stats = ObsStats(jnp.zeros(obs_shape), jnp.ones(obs_shape), jnp.float32(0))
        x = policy.inputs(stats, jnp.zeros((1, *obs_shape), obs_dtype))
        params = {"actor": policy.actor.init(k_actor, x), "critic": policy.critic.init(k_critic, x)}
        if policy.box is not None:
            params["log_std"] = jnp.full(math.prod(policy.box.shape), policy.log_std_init, jnp.float32)
        return params

    return init(key)


def _one_seed_at_a_time(init: Callable[[jax.Array], Any]) -> Callable[[jax.Array], Any]:
    """``init(key)``, which ``vmap`` runs as a ``lax.map`` over the keys instead of batching it.

    The orthogonal initialisation takes a QR decomposition (LAPACK) of every weight matrix. Batched
    over 8 or more seeds, the whole initialisation of actor and critic deadlocked XLA's CPU runtime
    (jax 0.10.2: every thread waiting, no progress, reproducibly; 2 seeds ran); one seed at a time
    it runs, and each seed's parameters are the ones its unbatched ``init`` gives.
    """
    wrapped = jax.custom_batching.custom_vmap(init)

    @wrapped.def_vmap
    def _batched(axis_size: int, in_batched: list, key: jax.Array) -> tuple:
        (key_batched,) = in_batched
        if not key_batched:
            out = wrapped(key)
            return out, jax.tree_util.tree_map(lambda _: False, out)
        out = jax.lax.map(wrapped, key)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return wrapped


def _optimizer(config: PPOConfig, hp: PPOHyperparams) -> optax.GradientTransformation:
    """Adam (eps 1e-5, as PureJaxRL) after global-norm clipping; with ``anneal_lr`` its rate decays
    linearly to 0 over the run's gradient steps."""
    learning_rate = hp.learning_rate
    if config.anneal_lr:
        learning_rate = optax.linear_schedule(hp.learning_rate, 0.0, config.total_updates())
    return optax.chain(optax.clip_by_global_norm(hp.max_grad_norm), optax.adam(learning_rate, eps=1e-5))


#: Capability: ``make_algorithm`` takes ``parallel`` (``jrl train --devices N``).
DATA_PARALLEL = True


def make_algorithm(config: PPOConfig, env: Environment, env_params: Any, parallel: DataParallel = SINGLE) -> Algorithm:
    """Validate on the host, then return the ``Algorithm`` (``init``, ``run``, ``result``; see
    ``jrl.algorithms.common``) of this config on this environment. All three are pure: jit ``run``
    with ``static_argnums=1``.

    With ``parallel`` over several devices they are one device's program (run under ``shard_map``
    along ``parallel.axis``): the device steps ``num_envs / devices`` environments with its own
    keys, each minibatch is its share of the whole minibatch (advantages normalised over the
    whole), the loss and gradients are averaged over the devices before every step, and the
    observation statistics take every device's observations, so all devices stay equal.

    One iteration is three named steps: ``rollout`` (every environment steps ``rollout_length``
    times with sampled actions), ``advantages`` (GAE from the lambda-returns) and ``learn`` (the
    epochs of minibatch gradient steps), followed by the observation statistics' update."""
    policy = _policy(config, env, env_params)
    num_envs, length = parallel.shard("num_envs", config.num_envs), config.rollout_length
    parallel.shard("num_envs * rollout_length / num_minibatches", config.num_envs * length // config.num_minibatches)
    batch_size = num_envs * length  # this device's
    minibatch_size = batch_size // config.num_minibatches
    log_interval = config.resolved_log_interval()
    obs_space = env.observation_space(env_params)
    obs_shape = tuple(obs_space.shape)
    # As DQN: the state holds the parameters as one flat vector (Adam, clipping and the finite
    # check compile to a few fused loops that round the same in every compilation; per-leaf
    # updates rounded differently in make_train and in a chunk). Its layout comes from an
    # abstract initialisation (nothing runs).
    abstract_key = jax.eval_shape(jax.random.key, 0)
    param_shapes = jax.eval_shape(lambda k: _init_params(policy, k, obs_shape, obs_space.dtype), abstract_key)
    _, unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), param_shapes))

    def init(key: jax.Array, hyperparams: PPOHyperparams | None = None) -> PPOState:
        check_key("key", key)
        hp = _runtime_values(config.hyperparams() if hyperparams is None else hyperparams)
        k_loop, k_eval, k_params, k_reset = jax.random.split(key, 4)
        # The networks start equal on every device (k_params); the rest is each device's own.
        k_loop, k_eval, k_reset = (parallel.device_key(k) for k in (k_loop, k_eval, k_reset))
        envs = reset_envs(k_reset, env, env_params, num_envs)
        stats = ObsStats(
            mean=jnp.zeros(obs_shape, jnp.float32), var=jnp.ones(obs_shape, jnp.float32), count=jnp.float32(0)
        )
        params, _ = ravel_pytree(_init_params(policy, k_params, obs_shape, obs_space.dtype))
        return PPOState(
            params=params,
            opt_state=_optimizer(config, hp).init(params),
            envs=envs,
            obs_stats=stats,
            stopped=jnp.bool_(False),
            key=k_loop,
            eval_key=k_eval,
            hyperparams=hp,
            log_index=jnp.int32(0),
        )

    def rollout(state: PPOState, key: jax.Array) -> tuple[PPOState, Rollout, jax.Array]:
        """``rollout_length`` steps of every environment; extras: the sample's log-probability,
        V(obs) and (Box) the unclipped sample."""

        def act(key: jax.Array, obs: jax.Array, t: jax.Array) -> tuple[jax.Array, dict]:
            del t
            x = policy.inputs(state.obs_stats, obs)
            params = unravel(state.params)
            out = policy.distribution(params, x)
            sample, action = policy.sample(params, out, key)
            log_prob, _ = policy.log_prob_entropy(params, out, sample)
            extras = {"log_prob": log_prob, "value": policy.value(params, x), "sample": sample}
            return action, extras

        envs, data, ended = collect(key, env, env_params, state.envs, act, length, config.batched_env_step)
        return state.replace(envs=envs), data, ended

    def advantages(state: PPOState, data: Rollout) -> tuple[jax.Array, jax.Array]:
        """GAE advantages and lambda-returns, float32 ``[T, N]``."""
        next_x = policy.inputs(state.obs_stats, data.next_obs.reshape(batch_size, *obs_shape))
        next_value = policy.value(unravel(state.params), next_x).reshape(length, num_envs)
        hp = state.hyperparams
        return gae(
            data.reward, data.terminated, data.truncated, data.extras["value"], next_value, hp.gamma, hp.gae_lambda
        )

    def loss_fn(flat_params: jax.Array, hp: PPOHyperparams, batch: dict) -> tuple[jax.Array, dict]:
        params = unravel(flat_params)
        out = policy.distribution(params, batch["x"])
        log_prob, entropy = policy.log_prob_entropy(params, out, batch["sample"])
        value = policy.value(params, batch["x"])
        return ppo_loss(
            log_prob,
            entropy,
            value,
            batch["log_prob"],
            batch["value"],
            batch["advantage"],
            batch["target"],
            hp,
            config.clip_value,
            config.normalize_advantages,
            parallel,
        )

    def learn(state: PPOState, batch: dict, key: jax.Array) -> tuple[PPOState, jax.Array]:
        """``num_epochs`` shuffled passes of ``num_minibatches`` gradient steps; a non-finite step
        is skipped. Returns the state and float32 ``[len(_LOSS_TERMS) + 1]``: each loss term's
        mean over the finite steps, then the count of non-finite steps."""
        hp = state.hyperparams
        optimizer = _optimizer(config, hp)

        def gradient_step(carry: tuple, minibatch: dict) -> tuple:
            params, opt_state, sums, nonfinite = carry
            (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, hp, minibatch)
            terms, grads = parallel.mean((terms, grads))
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            # Rounded before the add (jrl._numerics.rounded): params + (-lr) * step must not become a
            # fused multiply-add in one compilation (make_train) and not in another (a chunk).
            new_params = params + rounded(updates)
            finite = jnp.isfinite(terms["loss"]) & jnp.all(jnp.isfinite(grads))

            def keep(new: Any, old: Any) -> Any:
                return jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)

            values = jnp.stack([terms[name] for name in _LOSS_TERMS])
            sums = sums + jnp.where(finite, values, 0.0)
            return (keep(new_params, params), keep(new_opt_state, opt_state), sums, nonfinite + ~finite), None

        def epoch(carry: tuple, key: jax.Array) -> tuple:
            order = jax.random.permutation(key, batch_size).reshape(config.num_minibatches, minibatch_size)
            minibatches = jax.tree_util.tree_map(lambda x: x[order], batch)
            return jax.lax.scan(gradient_step, carry, minibatches)[0], None

        carry = (state.params, state.opt_state, jnp.zeros(len(_LOSS_TERMS), jnp.float32), jnp.int32(0))
        carry, _ = jax.lax.scan(epoch, carry, jax.random.split(key, config.num_epochs))
        params, opt_state, sums, nonfinite = carry
        steps = config.num_epochs * config.num_minibatches
        means = sums / jnp.maximum(steps - nonfinite, 1).astype(jnp.float32)
        state = state.replace(params=params, opt_state=opt_state)
        return state, jnp.concatenate([means, nonfinite.astype(jnp.float32)[None]])

    def iteration(state: PPOState, t: jax.Array) -> tuple[PPOState, jax.Array]:
        """Iteration ``t``: rollout, advantages, learn, then the observation statistics. Stats:
        episode returns, episodes, the loss terms' means, non-finite steps (float32 ``[9]``)."""
        k_rollout, k_learn = jax.random.split(jax.random.fold_in(state.key, t))
        state, data, ended = rollout(state, k_rollout)
        advantage, target = advantages(state, data)
        obs = data.obs.reshape(batch_size, *obs_shape)
        batch = {
            "x": policy.inputs(state.obs_stats, obs),
            "sample": data.extras["sample"].reshape(batch_size, *data.extras["sample"].shape[2:]),
            "log_prob": data.extras["log_prob"].reshape(-1),
            "value": data.extras["value"].reshape(-1),
            "advantage": advantage.reshape(-1),
            "target": target.reshape(-1),
        }
        state, learned = learn(state, batch, k_learn)
        if config.normalize_observations:
            state = state.replace(obs_stats=update_obs_stats(state.obs_stats, obs, parallel))
        return state, jnp.concatenate([ended, learned])

    def record(state: PPOState, interval: Interval) -> tuple[PPOState, dict]:
        return_sum, episodes = interval.stats[0], interval.stats[1]
        # The loss terms and the non-finite count are equal on every device (averaged): the
        # stats add the devices' copies.
        learned = interval.stats[2:] / parallel.count
        iterations = jnp.where(interval.skipped, jnp.nan, jnp.float32(log_interval))
        metrics = {
            "env_steps": interval.step.astype(jnp.float32) * (config.num_envs * length),
            "episode_return": mean_or_nan(return_sum, episodes),
            "episodes": episodes.astype(jnp.int32),
            "finite": learned[-1] == 0,
            **{name: learned[i] / iterations for i, name in enumerate(_LOSS_TERMS)},
            "nonfinite_updates": learned[-1].astype(jnp.int32),
            "stopped": interval.skipped,
        }
        return state, metrics

    run = make_run(
        iteration,
        num_stats=3 + len(_LOSS_TERMS),
        log_interval=log_interval,
        evaluate=in_loop_evaluation(
            env,
            env_params,
            config.eval_episodes,
            policy.greedy,
            lambda state: (unravel(state.params), state.obs_stats),
            config.batched_env_step,
        ),
        record=record,
        stop_return=config.stop_return,
        parallel=parallel,
    )

    def result(state: PPOState, metrics: dict) -> PPOResult:
        return PPOResult(params=unravel(state.params), obs_stats=state.obs_stats, metrics=metrics)

    return Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def make_train(config: PPOConfig, env: Environment, env_params: Any) -> Callable[..., PPOResult]:
    """Validate on the host, then return ``train(key, hyperparams=None) -> PPOResult`` (pure): the
    ``init`` of ``make_algorithm``, one ``run`` over every logging interval, and ``result``."""
    return train_function(make_algorithm(config, env, env_params))


def greedy_policy(config: PPOConfig, env: Environment, env_params: Any, result: PPOResult) -> tuple[Callable, Any]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the mode of the trained policy (the most
    probable action, or the Gaussian mean clipped to the action bounds) on the observations as the
    networks saw them (normalised by ``result.obs_stats`` with ``normalize_observations``)."""
    return _policy(config, env, env_params).greedy, (result.params, result.obs_stats)


def describe_network(config: PPOConfig, env: Environment, env_params: Any, result: PPOResult) -> NetworkDescription:
    """The trained actor of ``result`` (one seed's) as a ``NetworkDescription``, for
    ``jrl.export.export_numpy``: ``greedy_policy``'s action from the description alone.

    Discrete actions: the head's outputs are the logits, whose argmax is the greedy action. ``Box``
    actions: the head's outputs are the Gaussian's mean ``[D]``, and ``action_bounds`` (the action
    space's ``low`` and ``high``, flat) and ``action_shape`` make the greedy action the mean clipped
    to the bounds, in the action's shape (the learned ``log_std`` plays no part in it). Observation
    normalisation is the description's ``input_scale`` (``low = mean - std``, ``span = 2 std``, the
    same map up to float32 rounding); the hidden layers' activation is ``config.activation``."""
    policy = _policy(config, env, env_params)
    tree = result.params["actor"]["params"]
    hidden = len(config.hidden_sizes)
    layers = [Layer("dense", tree[f"Dense_{i}"]["kernel"], tree[f"Dense_{i}"]["bias"]) for i in range(hidden + 1)]
    input_scale = None
    if config.normalize_observations:
        mean = np.asarray(result.obs_stats.mean, np.float64).reshape(-1)
        std = np.sqrt(np.asarray(result.obs_stats.var, np.float64).reshape(-1) + OBS_EPSILON)
        input_scale = (tuple((mean - std).tolist()), tuple((2.0 * std).tolist()))
    action_bounds = None
    if policy.box is not None:  # float32 bounds, as to_env clips with them (exact as float64 tuples)
        action_bounds = tuple(
            tuple(np.asarray(b, np.float32).reshape(-1).astype(np.float64).tolist())
            for b in (policy.box.low, policy.box.high)
        )
    return NetworkDescription(
        family="mlp",
        num_actions=env.action_space(env_params).n if policy.box is None else math.prod(policy.box.shape),
        obs_shape=tuple(env.observation_space(env_params).shape),
        one_hot=policy.one_hot,
        input_scale=input_scale,
        body=tuple(layers[:-1]),
        head=(layers[-1],),
        dueling=False,
        activation=config.activation,
        action_bounds=action_bounds,
        action_shape=policy.action_shape,
    )


# In the spirit of rl-baselines3-zoo's Pendulum PPO (gamma 0.9, 10 epochs of 64-transition
# minibatches, no entropy bonus; without its state-dependent exploration) on 16 envs x 128
# steps, normalised observations, no value clipping, lr 3e-4, 488 iterations (999,424
# environment steps): the sweep experiments/tune_defaults/ppo/Pendulum-v1.toml on seeds 0-15
# (14 of 16 at -200 or better, mean -179.7; docs/ppo.md).
_PENDULUM = dict(
    num_envs=16,
    num_steps=488,
    rollout_length=128,
    num_epochs=10,
    num_minibatches=32,
    learning_rate=3e-4,
    gamma=0.9,
    gae_lambda=0.95,
    ent_coef=0.0,
    clip_value=False,
    normalize_observations=True,
    eval_episodes=16,
    log_interval=61,
)

# Tuned settings per environment (docs/ppo.md "Tuned defaults").
_DEFAULTS: dict[str, dict] = {
    # PureJaxRL's CartPole config (4 envs x 128 steps, 4 epochs of 4 minibatches, clip 0.2,
    # entropy 0.01, tanh (64, 64), the learning rate annealed) for up to 500k environment steps,
    # evaluated on 100 episodes every 61 iterations (31k steps), stopping at the first perfect
    # evaluation; learning rate 1e-3 (PureJaxRL's 2.5e-4 also solved the 16 tuning seeds, in twice
    # the steps): the sweep experiments/tune_defaults/ppo/CartPole-v1.toml on seeds 0-15.
    "CartPole-v1": dict(
        num_envs=4,
        num_steps=976,
        rollout_length=128,
        learning_rate=1e-3,
        eval_episodes=100,
        log_interval=61,
        stop_return=500.0,
    ),
    # rl-baselines3-zoo's Acrobot PPO settings (16 environments, gae_lambda 0.94, no entropy bonus,
    # normalised observations) with 128-step rollouts and 4 epochs of 4 minibatches, 244
    # iterations (499,712 environment steps), learning rate 1e-3 annealed: the sweep
    # experiments/tune_defaults/ppo/Acrobot-v1.toml on seeds 0-15 (3e-4 solved 6 of them).
    "Acrobot-v1": dict(
        num_envs=16,
        num_steps=244,
        rollout_length=128,
        learning_rate=1e-3,
        gae_lambda=0.94,
        ent_coef=0.0,
        normalize_observations=True,
        eval_episodes=16,
        log_interval=61,
    ),
    "Pendulum-v1": _PENDULUM,
    # The Pendulum settings for 244 iterations (499,712 environment steps) with gamma 0.999 (the
    # flag's +100 comes hundreds of steps after the action costs) and a wider first Gaussian
    # (log_std_init 0.5, a standard deviation of 1.65: most first actions at the bounds, so more
    # of the first episodes reach the flag before the action cost teaches standing still): the
    # sweep experiments/tune_defaults/ppo/MountainCarContinuous-v0.toml on seeds 0-15 (16 of 16
    # at 90 or better, mean 95.4; with log_std_init 0, 15 of 16: docs/ppo.md).
    "MountainCarContinuous-v0": {**_PENDULUM, "num_steps": 244, "gamma": 0.999, "log_std_init": 0.5},
}


def tuned_env_ids() -> list[str]:
    """The environment ids ``default_config`` has a tuned PPO config for, sorted."""
    return sorted(_DEFAULTS)


def default_config(env_id: str) -> PPOConfig:
    """Tuned settings for a registered environment (``docs/ppo.md``)."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"no tuned PPO config for {env_id!r}; tuned ids: {sorted(_DEFAULTS)}")
    return PPOConfig(**_DEFAULTS[env_id])
