"""DQN with a Flax Q-network, an on-device replay buffer and a target network, compiled end to end.

``make_train(config, env, env_params) -> train(key, hyperparams=None)``. One iteration steps all
``num_envs`` environments once with epsilon-greedy actions, writes the transitions to the replay
buffer, and (once ``learning_starts`` environment steps are stored, every ``train_interval``
iterations) takes ``updates_per_iteration`` gradient steps on the Huber loss against

    y = r + gamma * (1 - terminated) * Q_target(s', argmax_a Q_online(s', a))     (double DQN)
    y = r + gamma * (1 - terminated) * max_a Q_target(s', a)                      (otherwise)

with ``s' = info["final_observation"]``: truncated transitions bootstrap, terminated ones do not.
With ``n_step > 1`` the target sums up to ``n`` real rewards before bootstrapping (``n_step_batch``).
The target network follows the online one every ``target_update_interval`` iterations, by a hard
copy (``tau = 1``) or Polyak averaging ``target = tau * online + (1 - tau) * target``.

A gradient step whose loss or gradients are not finite is skipped (the parameters keep their last
finite values) and counted in ``metrics["nonfinite_updates"]``; ``check_finite(result)`` turns a
non-zero count into a clear error.

Data parallel (``parallel``, ``jrl train --devices N``): each device steps ``num_envs / N``
environments into its own ``buffer_size / N`` replay shard and samples ``batch_size / N``
transitions per gradient step; the gradients are averaged over the devices (``lax.pmean``), so
every device takes the step one device would take on the whole batch, and the parameters stay
equal everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

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
    epsilon_greedy,
    hyperparam_grid,
    linear_epsilon,
    train_function,
)
from jrl.algorithms.networks import NETWORKS, NetworkDescription, QNetwork
from jrl.algorithms.replay import ReplayBuffer, replay_add, replay_init, replay_sample, sequence_indices
from jrl.algorithms.rollout import step_envs
from jrl.algorithms.training import Interval, in_loop_evaluation, make_run, mean_or_nan
from jrl.envs.core import Environment
from jrl.parallel import SINGLE, DataParallel
from jrl.spaces import Discrete

LOSSES = ("huber", "mse")

__all__ = [
    "METRICS",
    "DQNConfig",
    "DQNHyperparams",
    "DQNResult",
    "DQNState",
    "build_network",
    "check_env",
    "check_finite",
    "default_config",
    "describe_network",
    "greedy_policy",
    "hyperparam_grid",
    "make_algorithm",
    "make_train",
    "n_step_batch",
    "q_network",
    "tuned_env_ids",
]

#: Every metric a run logs (``DQNResult``): the shared ones (``common.METRICS``) with the
#: exploration rate ``epsilon`` after ``env_steps``, then this algorithm's own.
METRICS = (
    "step",
    "env_steps",
    "epsilon",
    "episode_return",
    "episodes",
    "eval_return",
    "finite",
    "loss",
    "updates",
    "nonfinite_updates",
    "stopped",
)


@struct.dataclass
class DQNHyperparams:
    """Numeric hyperparameters ``train`` takes as data (float32 scalars, or ``[G]`` for a grid)."""

    learning_rate: jax.Array
    gamma: jax.Array
    epsilon_start: jax.Array
    epsilon_end: jax.Array
    tau: jax.Array


@dataclasses.dataclass(frozen=True)
class DQNConfig(Config):
    """Settings of a DQN run; validated on construction and on ``replace``.

    Attributes:
        num_envs: parallel environments (>= 1); ``num_envs * num_steps`` environment steps in all.
        num_steps: iterations (steps of every environment).
        learning_rate: Adam step size, > 0.
        gamma: discount, in [0, 1].
        buffer_size: replay capacity in transitions; a multiple of ``num_envs``, >= ``batch_size``.
        batch_size: transitions per gradient step.
        learning_starts: environment steps stored before the first gradient step.
        updates_per_iteration: gradient steps per update phase.
        train_interval: iterations between update phases.
        target_update_interval: iterations between target-network updates.
        tau: target update rate in (0, 1]; 1 is a hard copy.
        double_dqn: double-DQN targets.
        n_step: steps of real reward before bootstrapping (``1``: the one-step target). With
            ``n > 1`` the target of ``(s_t, a_t)`` is ``r_t + gamma r_{t+1} + ... + gamma^(m-1)
            r_{t+m-1} + gamma^m max_a Q'(s_{t+m}, a)``, ``m = n`` or fewer where the episode ended
            (no bootstrap after a termination; a truncation bootstraps from its final observation).
            The later rewards come from the behaviour policy (epsilon-greedy), uncorrected, as in
            Rainbow: a sparse reward reaches earlier states ``n`` times faster, at some bias.
            Needs ``buffer_size >= n_step * num_envs`` and ``learning_starts >= (n_step - 1) * num_envs``.
        network: ``"mlp"`` (flattens observations of any shape) or ``"cnn"`` (``[H, W, C]``); ``hidden_sizes`` its dense widths; ``dueling`` its head;
            ``conv_features`` the channels of the ``cnn``'s 3x3 convolutions (one entry per layer).
        q_init: initial bias of the network's output (every initial Q-value is about ``q_init``).
            Above the reachable values it is optimistic initialisation: a transition into a
            terminal state (target: its reward) pulls its Q-value down from ``q_init`` long before
            any reward is found, while the others keep bootstrapping from optimistic values, so
            the greedy policy avoids ends it has seen and tries the rest (the optimism fades by
            ``gamma`` per bootstrap).
        scale_observations: map each observation dimension linearly from the observation space's
            ``[low, high]`` to ``[-1, 1]`` before the network (needs finite bounds). Gives inputs
            of very different ranges, such as MountainCar's position and velocity, equal weight.
        max_grad_norm: global gradient-norm clip, > 0.
        anneal_lr: decay the learning rate linearly from ``learning_rate`` to 0 over all the run's
            gradient steps (settles the final policy instead of leaving it oscillating).
        loss: ``"huber"`` (delta 1) or ``"mse"`` (half squared error) on the TD error.
        epsilon_start, epsilon_end, epsilon_decay_fraction: linear exploration schedule over the
            first fraction of the iterations, as in tabular Q-learning.
        eval_episodes: greedy episodes evaluated inside the loop at every log point (0: none).
        log_interval: iterations between metric records (must divide ``num_steps``); ``None``
            picks the divisor closest to 50 records.
        keep_best: return the parameters of the best in-loop greedy evaluation (the latest of
            equals) instead of the last ones, like a best-model checkpoint; needs
            ``eval_episodes > 0``.
        stop_return: stop training at the first in-loop evaluation whose mean return is at least
            this (early stopping; the rest of the compiled loop is skipped, and its log records
            have ``stopped`` True, no updates or episodes and NaN returns); ``None``: never. Needs
            ``eval_episodes > 0``. Under ``vmap`` the stopped members idle while the others train.
        batched_env_step: step the environments with ``env.step_batch``, one draw for the whole
            batch, and evaluate in the loop with ``jrl.evaluate(..., batched=True)``
            (``jrl.algorithms.rollout.step_envs`` says what changes); ``False`` in every tuned
            default and recorded result.
    """

    HYPERPARAMS = DQNHyperparams
    DEFAULT_RECORDS = 50
    WRITTEN_WHEN_SET = ("batched_env_step",)

    num_envs: int = 10
    num_steps: int = 10_000
    learning_rate: float = 1e-3
    gamma: float = 0.99
    buffer_size: int = 10_000
    batch_size: int = 64
    learning_starts: int = 1_000
    updates_per_iteration: int = 1
    train_interval: int = 1
    target_update_interval: int = 100
    tau: float = 1.0
    double_dqn: bool = True
    n_step: int = 1
    network: str = "mlp"
    hidden_sizes: tuple[int, ...] = (64, 64)
    conv_features: tuple[int, ...] = (16, 32)
    q_init: float = 0.0
    dueling: bool = False
    scale_observations: bool = False
    max_grad_norm: float = 10.0
    anneal_lr: bool = False
    loss: str = "huber"
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_fraction: float = 0.5
    eval_episodes: int = 16
    log_interval: int | None = None
    keep_best: bool = False
    stop_return: float | None = None
    batched_env_step: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("num_envs", self.num_envs, 1, 2**20)
        check_int("num_steps", self.num_steps, 1, 2**31 - 1)
        check_float("learning_rate", self.learning_rate, 0.0, 1e3, low_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_int("buffer_size", self.buffer_size, 1, 2**31 - 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("learning_starts", self.learning_starts, 0)
        check_int("updates_per_iteration", self.updates_per_iteration, 1, 10_000)
        check_int("train_interval", self.train_interval, 1)
        check_int("target_update_interval", self.target_update_interval, 1)
        check_float("tau", self.tau, 0.0, 1.0, low_open=True)
        check_bool("double_dqn", self.double_dqn)
        check_int("n_step", self.n_step, 1, 1000)
        check_float("q_init", self.q_init, -1e30, 1e30)
        check_bool("dueling", self.dueling)
        check_bool("scale_observations", self.scale_observations)
        check_bool("anneal_lr", self.anneal_lr)
        check_choice("network", self.network, NETWORKS)
        for name in ("hidden_sizes", "conv_features"):
            widths = getattr(self, name)
            if not isinstance(widths, tuple) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
            ):
                raise TypeError(f"{name} must be a tuple of positive ints, got {widths!r}")
        check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e30, low_open=True)
        check_choice("loss", self.loss, LOSSES)
        check_float("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_float("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_float("epsilon_decay_fraction", self.epsilon_decay_fraction, 0.0, 1.0)
        check_int("eval_episodes", self.eval_episodes, 0, 2**20)
        check_bool("keep_best", self.keep_best)
        check_bool("batched_env_step", self.batched_env_step)
        if self.keep_best and self.eval_episodes == 0:
            raise ValueError("keep_best=True selects parameters by in-loop evaluation: it needs eval_episodes > 0")
        if self.stop_return is not None:
            check_float("stop_return", self.stop_return, -1e30, 1e30)
            if self.eval_episodes == 0:
                raise ValueError("stop_return stops on an in-loop evaluation: it needs eval_episodes > 0")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size={self.batch_size} must be <= buffer_size={self.buffer_size}")
        if self.buffer_size < self.num_envs or self.buffer_size % self.num_envs:
            raise ValueError(
                f"buffer_size={self.buffer_size} must be a multiple of num_envs={self.num_envs} (each "
                "iteration writes one block of num_envs transitions)"
            )
        if self.buffer_size < self.n_step * self.num_envs:
            raise ValueError(
                f"buffer_size={self.buffer_size} must be >= n_step * num_envs = {self.n_step * self.num_envs} "
                "(an n-step target reads n consecutive transitions of one environment)"
            )
        if self.learning_starts < (self.n_step - 1) * self.num_envs:
            raise ValueError(
                f"learning_starts={self.learning_starts} must be >= (n_step - 1) * num_envs = "
                f"{(self.n_step - 1) * self.num_envs} (the first n-step targets need n stored steps)"
            )
        self._check_log_interval()

    def total_updates(self) -> int:
        """Gradient steps in a full run: ``updates_per_iteration`` per update phase."""
        first = math.ceil(self.learning_starts / self.num_envs)
        first = -(-first // self.train_interval) * self.train_interval  # first multiple of train_interval
        phases = max(0, -(-(self.num_steps - first) // self.train_interval))
        return phases * self.updates_per_iteration


@struct.dataclass
class DQNResult:
    """``params``: the online network's Flax parameters at the end of training (with
    ``config.keep_best``: at its best in-loop evaluation). ``metrics``: dict of arrays
    ``[num_logs]``: the shared ones (``jrl.algorithms.common.METRICS``: ``step`` = iterations so
    far, ``env_steps``, ``episode_return``, ``episodes``, ``eval_return`` = mean greedy return over
    ``eval_episodes`` episodes at the end of the interval, ``finite`` = no non-finite gradient step
    in the interval), ``epsilon`` (the exploration rate of the interval's last iteration), then ``loss`` (mean over the interval's gradient steps, NaN if
    none), ``updates``, ``nonfinite_updates`` (skipped non-finite gradient steps) and ``stopped``
    (True where ``stop_return`` had already been reached, so the interval was not run)."""

    params: Any
    metrics: dict


def build_network(config: DQNConfig, num_actions: int, obs_space: Any) -> QNetwork:
    """The Q-network of ``config`` for ``num_actions`` actions and observations of ``obs_space``
    (``Discrete`` observations enter one-hot; ``scale_observations`` needs a bounded ``Box``).
    ``q_network`` is the same from an environment."""
    one_hot = obs_space.n if isinstance(obs_space, Discrete) else None
    scale = None
    if config.scale_observations:
        if one_hot is not None:
            raise ValueError(
                f"scale_observations=True rescales Box observations to [-1, 1]; these are {obs_space!r}, which "
                "DQN already feeds to the network one-hot: leave scale_observations=False"
            )
        low, high = np.asarray(obs_space.low, np.float64), np.asarray(obs_space.high, np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(
                f"scale_observations=True needs finite observation bounds; this space has low={low}, high={high}"
            )
        span = np.where(high > low, high - low, 1.0)
        scale = (tuple(low.reshape(-1).tolist()), tuple(span.reshape(-1).tolist()))
    return QNetwork(
        num_actions,
        config.network,
        config.hidden_sizes,
        config.dueling,
        scale,
        config.conv_features,
        config.q_init,
        one_hot,
    )


def q_network(config: DQNConfig, env: Environment, env_params: Any) -> QNetwork:
    """The Flax Q-network ``make_train`` trains for this config and environment.

    ``q_network(config, env, env_params).apply(result.params, obs)`` maps one observation (the
    observation space's shape; an int32 state index for ``Discrete`` spaces, fed one-hot) to its
    Q-values, float32 ``[num_actions]``; vmap it for a batch.
    """
    if not isinstance(config, DQNConfig):
        raise TypeError(f"config must be a DQNConfig, got {type(config).__name__}")
    return build_network(config, _check_env(env, env_params).n, env.observation_space(env_params))


def check_env(env: Environment, env_params: Any) -> None:
    """``ValueError`` unless ``env`` has Discrete actions."""
    if not isinstance(env.action_space(env_params), Discrete):
        raise ValueError(f"dqn needs Discrete actions; {env.env_id} has {env.action_space(env_params)!r}")


def _check_env(env: Environment, env_params: Any) -> Discrete:
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a jrl Environment, got {type(env).__name__}")
    space = env.action_space(env_params)
    if not isinstance(space, Discrete):
        raise TypeError(f"DQN needs a discrete action space (Discrete); {env!r} has {space!r}")
    return space


@struct.dataclass
class DQNState:
    """Everything a DQN run needs to continue (``N = num_envs``, ``P`` network parameters).

    Attributes:
        params, target: float32 ``[P]``, the online and target networks' parameters as flat
            vectors (Adam, clipping, the finite-check and Polyak averaging then compile to a few
            fused loops; ``result`` restores the Flax tree).
        opt_state: the optimizer's state (over the flat vector).
        buffer: the replay buffer (``jrl.algorithms.replay.ReplayBuffer``).
        obs: ``[N, ...]`` current observations; env_state: the environments' states.
        episode_return: float32 ``[N]``, of the episodes under way.
        best_params: float32 ``[P]``, the parameters of the best in-loop evaluation so far
            (``keep_best``; otherwise the initial parameters, unused).
        best_return: float32, that evaluation's mean return (``-inf`` before any).
        stopped: bool, ``stop_return`` was reached (always False without ``stop_return``).
        key, eval_key: the loop's and the in-loop evaluations' keys (iteration ``t`` uses
            ``fold_in(key, t)``, interval ``i`` ``fold_in(eval_key, i)``).
        hyperparams: ``DQNHyperparams`` (float32 scalars).
        log_index: int32, logging intervals done (iteration = log_index * log_interval).
    """

    params: jax.Array
    target: jax.Array
    opt_state: Any
    buffer: ReplayBuffer
    obs: jax.Array
    env_state: Any
    episode_return: jax.Array
    best_params: jax.Array
    best_return: jax.Array
    stopped: jax.Array
    key: jax.Array
    eval_key: jax.Array
    hyperparams: DQNHyperparams
    log_index: jax.Array


#: Capability: ``make_algorithm`` takes ``parallel`` (``jrl train --devices N``).
DATA_PARALLEL = True


def make_algorithm(config: DQNConfig, env: Environment, env_params: Any, parallel: DataParallel = SINGLE) -> Algorithm:
    """Validate on the host, then return the ``Algorithm`` (``init``, ``run``, ``result``; see
    ``jrl.algorithms.common``) of this config on this environment. All three are pure: jit ``run``
    with ``static_argnums=1`` (the number of intervals).

    One iteration (``iteration``) is three named steps: ``collect`` (every environment steps
    once, epsilon-greedy, into the replay buffer), ``learn`` (the gradient steps, when due) and
    ``update_target``; ``record`` turns an interval into metrics, and ``jrl.algorithms.training``
    adds the logging scan, the in-loop evaluation and ``stop_return``.

    With ``parallel`` over several devices the functions are one device's program, to be run
    under ``shard_map`` along ``parallel.axis`` (``jrl.experiment.runner`` does): environments,
    replay buffer and batches are that device's shares (module docstring)."""
    if not isinstance(config, DQNConfig):
        raise TypeError(f"config must be a DQNConfig, got {type(config).__name__}")
    num_actions = _check_env(env, env_params).n
    obs_space = env.observation_space(env_params)
    if config.network == "cnn" and len(obs_space.shape) != 3:
        raise ValueError(f"network='cnn' needs [H, W, C] observations; this environment's are {obs_space.shape}")
    network = build_network(config, num_actions, obs_space)
    num_envs = parallel.shard("num_envs", config.num_envs)  # this device's environments
    buffer_size = parallel.shard("buffer_size", config.buffer_size)
    batch_size = parallel.shard("batch_size", config.batch_size)
    log_interval = config.resolved_log_interval()
    decay_steps = config.epsilon_decay_fraction * config.num_steps
    learning_starts_iteration = math.ceil(config.learning_starts / config.num_envs)
    # The flat-vector layout depends only on the parameters' shapes, so it is built from an
    # abstract initialisation (nothing runs); the real one happens in init.
    abstract_key = jax.eval_shape(jax.random.key, 0)  # a key's shape and type, no value
    obs_example = jax.eval_shape(env.reset, abstract_key, env_params)[0]
    param_shapes = jax.eval_shape(network.init, abstract_key, obs_example)
    _, unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), param_shapes))

    def epsilon_at(hp: DQNHyperparams, t: jax.Array) -> jax.Array:
        return linear_epsilon(hp.epsilon_start, hp.epsilon_end, decay_steps, t)

    def q_values(flat_params: jax.Array, obs: jax.Array) -> jax.Array:
        return jax.vmap(network.apply, in_axes=(None, 0))(unravel(flat_params), obs)

    def greedy(flat_params: jax.Array, obs: jax.Array, key: jax.Array) -> jax.Array:
        del key
        return jnp.argmax(network.apply(unravel(flat_params), obs)).astype(jnp.int32)

    def init(key: jax.Array, hyperparams: DQNHyperparams | None = None) -> DQNState:
        check_key("key", key)
        hp = _runtime_values(config.hyperparams() if hyperparams is None else hyperparams)
        k_loop, k_eval, k_init, k_reset = jax.random.split(key, 4)
        # The network starts equal on every device (k_init); the rest is each device's own.
        k_loop, k_eval, k_reset = (parallel.device_key(k) for k in (k_loop, k_eval, k_reset))
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), env_params)
        params, _ = ravel_pytree(network.init(k_init, obs[0]))
        return DQNState(
            params=params,
            target=params,
            opt_state=_optimizer(config, hp).init(params),
            buffer=replay_init(_transition_example(config, obs[0]), buffer_size),
            obs=obs,
            env_state=env_state,
            episode_return=jnp.zeros(num_envs, jnp.float32),
            best_params=params,
            best_return=jnp.float32(-jnp.inf),
            stopped=jnp.bool_(False),
            key=k_loop,
            eval_key=k_eval,
            hyperparams=hp,
            log_index=jnp.int32(0),
        )

    def collect(state: DQNState, t: jax.Array, k_act: jax.Array, k_env: jax.Array) -> tuple[DQNState, tuple]:
        """Every environment steps once with epsilon-greedy actions; the transitions go to the
        buffer. Returns the state and (summed return, count) of the episodes that ended."""
        u = jax.random.uniform(k_act, (num_envs,))
        actions = epsilon_greedy(q_values(state.params, state.obs), epsilon_at(state.hyperparams, t), u)
        next_obs, env_state, reward, terminated, truncated, info = step_envs(
            k_env, env, env_params, state.env_state, actions, config.batched_env_step
        )
        transition = {
            "obs": state.obs,
            "action": actions,
            "reward": reward,
            "next_obs": info["final_observation"],  # bootstrap from it unless terminated
            "terminated": terminated,
            **({"truncated": truncated} if config.n_step > 1 else {}),
        }
        done = terminated | truncated
        episode_return = state.episode_return + reward
        ended = (jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done.astype(jnp.float32)))
        state = state.replace(
            buffer=replay_add(state.buffer, transition),
            obs=next_obs,
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, episode_return),
        )
        return state, ended

    def learn(state: DQNState, t: jax.Array, key: jax.Array) -> tuple[DQNState, jax.Array, jax.Array, jax.Array]:
        """``updates_per_iteration`` gradient steps once ``learning_starts`` is reached, every
        ``train_interval`` iterations: (state, learned, loss_sum, nonfinite)."""
        learned = (t >= learning_starts_iteration) & (t % config.train_interval == 0)
        params, opt_state, loss_sum, nonfinite = jax.lax.cond(
            learned,
            lambda: _gradient_steps(config, q_values, state, key, batch_size, num_envs, parallel),
            lambda: (state.params, state.opt_state, jnp.float32(0), jnp.int32(0)),
        )
        return state.replace(params=params, opt_state=opt_state), learned, loss_sum, nonfinite

    def update_target(state: DQNState, t: jax.Array, learned: jax.Array) -> DQNState:
        """Every ``target_update_interval`` iterations that learned: Polyak averaging at rate tau."""
        tau = state.hyperparams.tau
        polyak = jax.tree_util.tree_map(
            lambda online, tgt: rounded(tau * online) + rounded((1.0 - tau) * tgt), state.params, state.target
        )
        due = (t % config.target_update_interval == 0) & learned
        return state.replace(target=jax.tree_util.tree_map(lambda p, q: jnp.where(due, p, q), polyak, state.target))

    def iteration(state: DQNState, t: jax.Array) -> tuple[DQNState, jax.Array]:
        """Iteration ``t``: collect, learn, update the target. Stats: episode returns, episodes,
        loss sum, gradient steps, non-finite gradient steps (float32 ``[5]``)."""
        k_act, k_env, k_learn = jax.random.split(jax.random.fold_in(state.key, t), 3)
        state, (return_sum, episodes) = collect(state, t, k_act, k_env)
        state, learned, loss_sum, nonfinite = learn(state, t, k_learn)
        state = update_target(state, t, learned)
        updates = jnp.where(learned, config.updates_per_iteration, 0).astype(jnp.float32)
        return state, jnp.stack([return_sum, episodes, loss_sum, updates, nonfinite.astype(jnp.float32)])

    def record(state: DQNState, interval: Interval) -> tuple[DQNState, dict]:
        """Keep the best parameters (``keep_best``) and log the interval (``METRICS``)."""
        if config.keep_best:
            better = interval.eval_return >= state.best_return
            state = state.replace(
                best_params=jnp.where(better, state.params, state.best_params),
                best_return=jnp.where(better, interval.eval_return, state.best_return),
            )
        return_sum, episodes, loss_sum, updates, nonfinite = (interval.stats[i] for i in range(5))
        # Every device counts the same (shared) gradient steps and averaged losses; the stats add
        # the devices' copies.
        loss_sum, updates, nonfinite = (x / parallel.count for x in (loss_sum, updates, nonfinite))
        metrics = {
            "env_steps": interval.step.astype(jnp.float32) * config.num_envs,
            "epsilon": epsilon_at(state.hyperparams, interval.step - 1),
            "episode_return": mean_or_nan(return_sum, episodes),
            "episodes": episodes.astype(jnp.int32),
            "finite": nonfinite == 0,
            "loss": jnp.where(updates > 0, loss_sum / jnp.maximum(updates - nonfinite, 1.0), jnp.nan),
            "updates": updates.astype(jnp.int32),
            "nonfinite_updates": nonfinite.astype(jnp.int32),
            "stopped": interval.skipped,  # this record's iterations were not run (stop_return reached before)
        }
        return state, metrics

    run = make_run(
        iteration,
        num_stats=5,
        log_interval=log_interval,
        evaluate=in_loop_evaluation(
            env, env_params, config.eval_episodes, greedy, lambda state: state.params, config.batched_env_step
        ),
        record=record,
        stop_return=config.stop_return,
        parallel=parallel,
    )

    def result(state: DQNState, metrics: dict) -> DQNResult:
        final = state.best_params if config.keep_best else state.params
        return DQNResult(params=unravel(final), metrics=metrics)

    return Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def _optimizer(config: DQNConfig, hp: DQNHyperparams) -> optax.GradientTransformation:
    """Adam after global-norm clipping; with ``anneal_lr`` its rate decays linearly to 0 over the run."""
    learning_rate = hp.learning_rate
    if config.anneal_lr:
        learning_rate = optax.linear_schedule(hp.learning_rate, 0.0, max(config.total_updates(), 1))
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(learning_rate))


def _transition_example(config: DQNConfig, obs: jax.Array) -> dict:
    """One transition as the replay buffer stores it (``truncated`` only for n-step targets)."""
    example = {
        "obs": obs,
        "action": jnp.int32(0),
        "reward": jnp.float32(0),
        "next_obs": obs,
        "terminated": jnp.bool_(False),
    }
    if config.n_step > 1:
        example["truncated"] = jnp.bool_(False)
    return example


def _td_loss(config: DQNConfig, q_values: Callable, params: jax.Array, target: jax.Array, batch: dict, hp: Any):
    """The Huber or squared TD error of a batch against the target network (module docstring)."""
    q = q_values(params, batch["obs"])
    q_sa = jnp.take_along_axis(q, batch["action"][:, None], axis=-1)[:, 0]
    q_next_target = q_values(target, batch["next_obs"])
    if config.double_dqn:
        best = jnp.argmax(q_values(params, batch["next_obs"]), axis=-1)
    else:
        best = jnp.argmax(q_next_target, axis=-1)
    boot = jnp.take_along_axis(q_next_target, best[:, None], axis=-1)[:, 0]
    not_terminal = 1.0 - batch["terminated"].astype(jnp.float32)
    if config.n_step == 1:
        y = jax.lax.stop_gradient(batch["reward"] + rounded(hp.gamma * not_terminal * boot))
    else:
        y = jax.lax.stop_gradient(batch["reward"] + rounded(batch["discount"] * not_terminal * boot))
    if config.loss == "huber":
        return jnp.mean(optax.huber_loss(q_sa, y))
    return 0.5 * jnp.mean(jnp.square(q_sa - y))


def gradient_step(
    config: DQNConfig,
    q_values: Callable,
    params: jax.Array,
    opt_state: Any,
    target: jax.Array,
    batch: dict,
    hp: DQNHyperparams,
    parallel: DataParallel = SINGLE,
) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
    """One gradient step on ``batch`` (this device's share of it, leaves ``[B / devices, ...]``),
    the loss and gradients averaged over ``parallel``'s devices first. A non-finite step is skipped.
    Returns (params, opt_state, loss, finite): the loss float32, finite a bool."""
    loss, grads = jax.value_and_grad(_td_loss, argnums=2)(config, q_values, params, target, batch, hp)
    loss, grads = parallel.mean((loss, grads))
    updates, new_opt_state = _optimizer(config, hp).update(grads, opt_state, params)
    # Rounded before the add (jrl._numerics.rounded): params + (-lr) * step must not become
    # a fused multiply-add in one compilation and not in another.
    new_params = optax.apply_updates(params, updates)
    leaves_finite = [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(leaves_finite))

    def keep(new: Any, old: Any) -> Any:
        return jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)

    return keep(new_params, params), keep(new_opt_state, opt_state), loss, finite


def _gradient_steps(
    config: DQNConfig,
    q_values: Callable,
    state: DQNState,
    key: jax.Array,
    batch_size: int,
    num_envs: int,
    parallel: DataParallel,
) -> tuple:
    """``updates_per_iteration`` gradient steps on batches of ``batch_size`` (this device's share)
    from ``state.buffer``, written ``num_envs`` at a time; a non-finite one is skipped. Returns
    (params, opt_state, loss_sum over the finite steps, non-finite count)."""
    hp = state.hyperparams

    def one_step(carry: tuple, key: jax.Array) -> tuple:
        params, opt_state, loss_sum, nonfinite = carry
        if config.n_step == 1:
            batch = replay_sample(state.buffer, key, batch_size)
        else:
            batch = n_step_batch(state.buffer, key, batch_size, config.n_step, num_envs, hp.gamma)
        params, opt_state, loss, finite = gradient_step(
            config, q_values, params, opt_state, state.target, batch, hp, parallel
        )
        carry = (
            params,
            opt_state,
            loss_sum + jnp.where(finite, loss, 0.0),
            nonfinite + (~finite).astype(jnp.int32),
        )
        return carry, None

    carry = (state.params, state.opt_state, jnp.float32(0), jnp.int32(0))
    carry, _ = jax.lax.scan(one_step, carry, jax.random.split(key, config.updates_per_iteration))
    return carry


def make_train(config: DQNConfig, env: Environment, env_params: Any) -> Callable[..., DQNResult]:
    """Validate on the host, then return ``train(key, hyperparams=None) -> DQNResult`` (pure): the
    ``init`` of ``make_algorithm``, one ``run`` over every logging interval, and ``result``."""
    return train_function(make_algorithm(config, env, env_params))


def n_step_batch(
    buffer: ReplayBuffer, key: jax.Array, batch_size: int, n_step: int, num_envs: int, gamma: jax.Array
) -> dict:
    """``batch_size`` n-step transitions from a buffer of DQN transitions written ``num_envs`` at a time.

    Returns ``obs`` and ``action`` of the first step, ``reward`` float32 ``[B]`` (the discounted
    sum ``sum_{k<m} gamma^k r_k``), ``next_obs`` and ``terminated`` of step ``m - 1``, and
    ``discount`` float32 ``[B]`` ``= gamma^m``, where ``m <= n_step`` stops after the first step that
    terminated or was truncated.
    """
    index = sequence_indices(buffer, key, batch_size, n_step, num_envs)  # [B, n]
    data = buffer.data
    reward, terminated = data["reward"][index], data["terminated"][index]
    done = terminated | data["truncated"][index]
    # Step k counts when no earlier step of the run ended its episode.
    ended_before = jnp.cumsum(done, axis=1) - done
    counts = (ended_before == 0).astype(jnp.float32)
    powers = gamma ** jnp.arange(n_step, dtype=jnp.float32)
    last = jnp.sum(counts, axis=1).astype(jnp.int32) - 1  # index of the run's final step
    last_index = jnp.take_along_axis(index, last[:, None], axis=1)[:, 0]
    return {
        "obs": data["obs"][index[:, 0]],
        "action": data["action"][index[:, 0]],
        "reward": jnp.sum(counts * powers * reward, axis=1),
        "next_obs": data["next_obs"][last_index],
        "terminated": data["terminated"][last_index],
        "discount": gamma ** (last + 1).astype(jnp.float32),
    }


def greedy_policy(config: DQNConfig, env: Environment, env_params: Any, result: DQNResult) -> tuple[Callable, Any]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the argmax of the trained network."""
    network = q_network(config, env, env_params)

    def policy(params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        del key
        return jnp.argmax(network.apply(params, obs)).astype(jnp.int32)

    return policy, result.params


def describe_network(config: DQNConfig, env: Environment, env_params: Any, result: DQNResult) -> NetworkDescription:
    """The trained Q-network of ``result`` (one seed's) described layer by layer, for exporters
    (``jrl.export.export_numpy``): ``NetworkDescription`` of ``jrl.algorithms.networks``."""
    obs_shape = env.observation_space(env_params).shape
    return q_network(config, env, env_params).describe(result.params, obs_shape)


# Probe environments (jrl/envs/probes.py): fully random behaviour (epsilon 1 throughout) so every
# state-action pair is sampled; tests/test_dqn.py checks the learned values against the analytic ones.
_PROBE = dict(
    num_envs=4,
    num_steps=1000,
    buffer_size=1000,
    batch_size=32,
    learning_starts=100,
    gamma=0.9,
    learning_rate=1e-2,
    updates_per_iteration=4,
    target_update_interval=10,
    epsilon_start=1.0,
    epsilon_end=1.0,
    hidden_sizes=(32,),
    eval_episodes=2,
    log_interval=100,
)

# The classic-control defaults are candidates of experiments/dqn_candidates.py (docs/dqn.md).
_DEFAULTS: dict[str, dict] = {
    **{f"Probe-{name}-v0": _PROBE for name in ("OneStep", "TwoStep", "ActionReward", "Truncation")},
    # experiments/dqn_candidates.py "mlp64_eval100_stop500_40k": the tune_dqn.py sweep's best
    # setting (squared loss, hard target copies every 50 iterations, double DQN, lr 1e-3) on a
    # (64, 64) MLP, evaluated in the loop on 100 episodes every 10k steps, stopping at the first
    # perfect evaluation and returning the best-evaluated parameters; a budget of 40k iterations,
    # chosen by the sweep experiments/tune_defaults/dqn/CartPole-v1.toml on seeds 0-15 (20k solved
    # 29 of the 32 held-out seeds 1000-1031, 40k all 32: docs/dqn.md).
    "CartPole-v1": dict(
        num_envs=10,
        num_steps=40_000,
        buffer_size=10_000,
        batch_size=128,
        learning_starts=10_000,
        updates_per_iteration=1,
        tau=1.0,
        target_update_interval=50,
        double_dqn=True,
        loss="mse",
        learning_rate=1e-3,
        gamma=0.99,
        hidden_sizes=(64, 64),
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=0.5,
        eval_episodes=100,
        log_interval=1000,
        keep_best=True,
        stop_return=500.0,
    ),
    # experiments/dqn_candidates.py "u4_anneal": rl-baselines3-zoo's Acrobot settings on 8
    # parallel environments, 4 gradient steps per iteration, the learning rate decayed to 0.
    "Acrobot-v1": dict(
        num_envs=8,
        num_steps=12_500,
        learning_rate=6.3e-4,
        anneal_lr=True,
        batch_size=128,
        buffer_size=50_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=32,
        updates_per_iteration=4,
        epsilon_start=1.0,
        epsilon_end=0.1,
        epsilon_decay_fraction=0.12,
        hidden_sizes=(64, 64),
        loss="huber",
        double_dqn=False,
        eval_episodes=8,
        log_interval=500,
    ),
    # experiments/dqn_candidates.py "budget30k_eps03", the best of the tuning sweep
    # experiments/tune_defaults/dqn/MountainCar-v0-budget.toml: rl-baselines3-zoo's MountainCar
    # settings on 16 environments with little random exploration (epsilon 0.3 -> 0.01 over the first
    # 10%: the optimistic start, Q near 0 against true values near -100, drives the greedy policy to
    # rarely visited high-energy states, which random actions would undo), gamma 0.99, the squared
    # loss, double DQN, 480k environment steps (seeds that find the flag late still have learning
    # rate left to refine) and the best of 100-episode in-loop evaluations.
    "MountainCar-v0": dict(
        num_envs=16,
        num_steps=30_000,
        learning_rate=4e-3,
        anneal_lr=True,
        batch_size=128,
        buffer_size=10_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=38,
        updates_per_iteration=8,
        epsilon_start=0.3,
        epsilon_end=0.01,
        epsilon_decay_fraction=0.1,
        hidden_sizes=(64, 64),
        loss="mse",
        double_dqn=True,
        eval_episodes=100,
        log_interval=500,
        keep_best=True,
    ),
    # experiments/dqn_candidates.py "n8_q1_g09": a CNN (two 3x3 convolutions of 16 channels, a
    # 64-unit layer) on 64 environments for 30k iterations (1.92M environment steps), with the two
    # things without which it learned nothing (success rate below 0.1): optimistic initial values
    # (q_init=1, above any return) so that stepping into a hole is learned first and exploration
    # survives long enough to find the goal, and 8-step returns; gamma 0.9 (0.99 reached 0.44).
    "RandomLake-v0": dict(
        network="cnn",
        conv_features=(16, 16),
        hidden_sizes=(64,),
        num_envs=64,
        num_steps=30_000,
        buffer_size=192_000,
        batch_size=32,
        learning_starts=6_400,
        train_interval=1,
        updates_per_iteration=1,
        target_update_interval=50,
        tau=1.0,
        double_dqn=True,
        n_step=8,
        q_init=1.0,
        loss="mse",
        learning_rate=1e-3,
        anneal_lr=True,
        gamma=0.9,
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=0.5,
        eval_episodes=64,
        log_interval=2_500,
        keep_best=True,
    ),
}


def tuned_env_ids() -> list[str]:
    """The environment ids ``default_config`` has a tuned DQN config for, sorted."""
    return sorted(_DEFAULTS)


def default_config(env_id: str) -> DQNConfig:
    """Tuned settings for a registered environment with discrete actions (``docs/dqn.md``)."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"no tuned DQN config for {env_id!r}; tuned ids: {sorted(_DEFAULTS)}")
    return DQNConfig(**_DEFAULTS[env_id])
