"""PQN: online Q(lambda) over many parallel environments, with LayerNorm, no replay, no target network.

Gallici et al., "Simplifying Deep Temporal Difference Learning" (ICLR 2025). ``make_train(config,
env, env_params) -> train(key, hyperparams=None)``. One iteration:

1. ``collect``: every one of ``N = num_envs`` environments steps ``T = rollout_length`` times,
   epsilon-greedy on the current network (``jrl.algorithms.rollout.collect``);
2. ``targets``: the Q(lambda) return of every step, backwards over the ``[T, N]`` rollout
   (``q_lambda_targets``, i.e. ``rollout.lambda_returns`` with ``next_value = max_a Q(s', a)``)::

       G[t] = c r[t] + gamma (1 - terminated[t]) ((1 - lam') max_a Q(s'[t], a) + lam' G[t + 1])

   with ``c = reward_scale``, ``s'[t]`` the observation step ``t`` led to (the final observation
   at a time limit) and ``lam' = lam`` inside an episode, 0 where it ended at ``t`` and at the
   rollout's last step. The targets are computed once per iteration, with the network that
   collected the rollout, and held fixed while it learns (they take the target network's place);
3. ``learn``: ``num_epochs`` passes over the ``T * N`` transitions, each shuffled into
   ``num_minibatches`` minibatches, one Adam step (after global-norm clipping) per minibatch on
   ``0.5 * mean((Q(s, a) - G)^2)``.

Without a target network, off-policy TD with function approximation can diverge; the paper shows
that LayerNorm in the network (``layer_norm``) keeps it stable, and parallel environments give the
decorrelated data a replay buffer would. A gradient step whose loss or gradients are not finite is
skipped (the parameters keep their last finite values) and counted in ``nonfinite_updates``, as DQN
does; ``check_finite(result)`` turns a non-zero count into a clear error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jrl._numerics import rounded
from jrl._validation import check_bool, check_choice, check_float, check_int, check_key
from jrl.algorithms import rollout
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
from jrl.algorithms.training import Interval, in_loop_evaluation, make_run, mean_or_nan
from jrl.envs.core import Environment
from jrl.parallel import SINGLE, DataParallel
from jrl.spaces import Box, Discrete

__all__ = [
    "METRICS",
    "PQNConfig",
    "PQNHyperparams",
    "PQNResult",
    "PQNState",
    "build_network",
    "check_env",
    "check_finite",
    "default_config",
    "describe_network",
    "greedy_policy",
    "hyperparam_grid",
    "make_algorithm",
    "make_train",
    "q_lambda_targets",
    "tuned_env_ids",
]

#: Every metric a run logs (``PQNResult``): the shared ones (``common.METRICS``) with the
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
class PQNHyperparams:
    """Numeric hyperparameters ``train`` takes as data (float32 scalars, or ``[G]`` for a grid)."""

    learning_rate: jax.Array
    gamma: jax.Array
    lam: jax.Array
    epsilon_start: jax.Array
    epsilon_end: jax.Array
    reward_scale: jax.Array


@dataclasses.dataclass(frozen=True)
class PQNConfig(Config):
    """Settings of a PQN run; validated on construction and on ``replace``.

    Attributes:
        num_envs: parallel environments (>= 1).
        num_steps: iterations; each is one rollout of ``rollout_length`` steps of every
            environment, so a run takes ``num_steps * rollout_length * num_envs`` environment steps
            (``env_steps_per_iteration``).
        rollout_length: steps of every environment per iteration (T).
        num_epochs: passes over each rollout's ``T * N`` transitions.
        num_minibatches: minibatches per pass (must divide ``T * N``); one gradient step each.
        learning_rate: Adam step size, > 0.
        anneal_lr: decay the learning rate linearly to 0 over the run's gradient steps (over
            ``schedule_iterations``' gradient steps when that is set).
        max_grad_norm: global gradient-norm clip, > 0.
        gamma: discount, in [0, 1].
        lam: lambda of the Q(lambda) return, in [0, 1] (0: one-step Q-learning targets; 1:
            Monte-Carlo returns up to the rollout's end).
        epsilon_start, epsilon_end, epsilon_decay_fraction: epsilon-greedy exploration, linear
            from start to end over the first fraction of the iterations (constant in a rollout).
        schedule_iterations: the horizon, in iterations, of both schedules: epsilon reaches
            ``epsilon_end`` after ``epsilon_decay_fraction * schedule_iterations`` iterations and the
            annealed learning rate would reach 0 after ``schedule_iterations`` (it stays at 0 past
            it). ``None``: ``num_steps``, the run itself. Set it to run a short budget on the
            schedules of a longer one (purejaxql's ``TOTAL_TIMESTEPS_DECAY``).
        reward_scale: rewards are multiplied by this in the targets (not in the logged returns), > 0.
        network: ``"mlp"`` (flattens observations of any shape; a ``Discrete`` observation enters
            one-hot) or ``"cnn"`` (``[H, W, C]`` observations: 3x3 convolutions of
            ``conv_features`` channels, then the MLP); ``hidden_sizes`` the dense widths.
        layer_norm: a LayerNorm after every hidden layer, before its ReLU (the paper's network).
        q_init: the output layer's initial bias, so every initial Q-value is about ``q_init``
            (as DQN's; above the reachable values it is optimistic initialisation).
        scale_observations: map each observation dimension linearly from the observation space's
            ``[low, high]`` to ``[-1, 1]`` before the network (Box observations with finite
            bounds), as DQN's: inputs of very different ranges, such as MountainCar's position
            and velocity, get equal weight.
        eval_episodes: greedy episodes evaluated inside the loop at every log point (0: none).
        stop_return: stop training at the first in-loop evaluation whose mean return is at least
            this (the rest of the run's records have ``stopped`` True); ``None``: never. Needs
            ``eval_episodes > 0``.
        log_interval: iterations between metric records (must divide ``num_steps``); ``None``
            picks the divisor closest to 50 records.
        batched_env_step: step the environments with ``env.step_batch``, one draw for the whole
            batch, and evaluate in the loop with ``jrl.evaluate(..., batched=True)``
            (``jrl.algorithms.rollout.step_envs`` says what changes); ``False`` in every tuned
            default and recorded result.
    """

    HYPERPARAMS = PQNHyperparams
    DEFAULT_RECORDS = 50
    WRITTEN_WHEN_SET = ("batched_env_step",)

    num_envs: int = 32
    num_steps: int = 100
    rollout_length: int = 64
    num_epochs: int = 4
    num_minibatches: int = 16
    learning_rate: float = 1e-4
    anneal_lr: bool = True
    max_grad_norm: float = 10.0
    gamma: float = 0.99
    lam: float = 0.95
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_fraction: float = 0.2
    schedule_iterations: int | None = None
    reward_scale: float = 1.0
    network: str = "mlp"
    hidden_sizes: tuple[int, ...] = (128, 128)
    conv_features: tuple[int, ...] = (16, 32)
    layer_norm: bool = True
    q_init: float = 0.0
    scale_observations: bool = False
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
        check_float("lam", self.lam, 0.0, 1.0)
        check_float("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_float("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_float("epsilon_decay_fraction", self.epsilon_decay_fraction, 0.0, 1.0)
        if self.schedule_iterations is not None:
            check_int("schedule_iterations", self.schedule_iterations, 1, 2**31 - 1)
        check_float("reward_scale", self.reward_scale, 0.0, 1e30, low_open=True)
        check_choice("network", self.network, NETWORKS)
        for name in ("hidden_sizes", "conv_features"):
            widths = getattr(self, name)
            if not isinstance(widths, tuple) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
            ):
                raise TypeError(f"{name} must be a tuple of positive ints, got {widths!r}")
        check_bool("layer_norm", self.layer_norm)
        check_bool("batched_env_step", self.batched_env_step)
        check_float("q_init", self.q_init, -1e30, 1e30)
        check_bool("scale_observations", self.scale_observations)
        check_int("eval_episodes", self.eval_episodes, 0, 2**20)
        if self.stop_return is not None:
            check_float("stop_return", self.stop_return, -1e30, 1e30)
            if self.eval_episodes == 0:
                raise ValueError("stop_return stops on an in-loop evaluation: it needs eval_episodes > 0")
        batch = self.rollout_length * self.num_envs
        if batch % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide rollout_length * num_envs = "
                f"{self.rollout_length} * {self.num_envs} = {batch} (every transition of a rollout is in one minibatch)"
            )
        self._check_log_interval()

    def env_steps_per_iteration(self) -> int:
        """One rollout: ``rollout_length`` steps of each of ``num_envs`` environments."""
        return self.rollout_length * self.num_envs

    def minibatch_size(self) -> int:
        """Transitions per gradient step: ``rollout_length * num_envs // num_minibatches``."""
        return self.rollout_length * self.num_envs // self.num_minibatches

    def total_updates(self) -> int:
        """Gradient steps in a full run: ``num_steps * num_epochs * num_minibatches``."""
        return self.num_steps * self.num_epochs * self.num_minibatches

    def schedule_horizon(self) -> int:
        """Iterations the epsilon and learning-rate schedules are laid over: ``schedule_iterations``,
        or ``num_steps`` when it is ``None``."""
        return self.num_steps if self.schedule_iterations is None else self.schedule_iterations


@struct.dataclass
class PQNResult:
    """``params``: the Q-network's Flax variables (``{"params": ...}``) at the end of training.
    ``metrics``: dict of arrays ``[num_logs]`` (``METRICS``): the shared ones (``step`` =
    iterations so far, ``env_steps`` = ``step * rollout_length * num_envs``, ``episode_return``,
    ``episodes``, ``eval_return``, ``finite``), ``epsilon`` (the interval's last iteration's),
    ``loss`` (mean over the interval's finite gradient steps, NaN if none), ``updates``,
    ``nonfinite_updates`` (skipped gradient steps) and ``stopped`` (True where ``stop_return``
    had already been reached, so the interval was not run)."""

    params: Any
    metrics: dict


@struct.dataclass
class PQNState:
    """Everything a PQN run needs to continue (``N = num_envs``). There is no replay buffer and no
    target network: each rollout is learned from once, against targets of the network that
    collected it.

    Attributes:
        params: the Q-network's Flax variables (``{"params": {...}}``, LayerNorm scales and biases
            included when ``layer_norm``).
        opt_state: the optimizer's state (clipping, Adam, the learning-rate schedule's count).
        envs: the ``N`` environments mid-episode (``jrl.algorithms.rollout.Envs``).
        stopped: bool, ``stop_return`` was reached (always False without ``stop_return``).
        key, eval_key: the loop's and the in-loop evaluations' keys (iteration ``t`` uses
            ``fold_in(key, t)``, interval ``i`` ``fold_in(eval_key, i)``).
        hyperparams: ``PQNHyperparams`` (float32 scalars).
        log_index: int32, logging intervals done (iteration = log_index * log_interval).
    """

    params: Any
    opt_state: Any
    envs: rollout.Envs
    stopped: jax.Array
    key: jax.Array
    eval_key: jax.Array
    hyperparams: PQNHyperparams
    log_index: jax.Array


def check_env(env: Environment, env_params: Any) -> None:
    """``ValueError`` unless ``env`` has Discrete actions and Box or Discrete observations."""
    actions, observations = env.action_space(env_params), env.observation_space(env_params)
    if not isinstance(actions, Discrete):
        raise ValueError(f"pqn needs Discrete actions; {env.env_id} has {actions!r}")
    if not isinstance(observations, (Box, Discrete)):
        raise ValueError(f"pqn needs Box or Discrete observations; {env.env_id} has {observations!r}")


def build_network(config: PQNConfig, env: Environment, env_params: Any) -> QNetwork:
    """The Q-network of ``config`` for this environment: ``network.apply(params, obs)`` maps one
    observation (a ``Discrete`` one as its int32 index, fed one-hot) to float32 ``[num_actions]``."""
    if not isinstance(config, PQNConfig):
        raise TypeError(f"config must be a PQNConfig, got {type(config).__name__}")
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a jrl Environment, got {type(env).__name__}")
    check_env(env, env_params)
    obs_space = env.observation_space(env_params)
    if config.network == "cnn" and len(obs_space.shape) != 3:
        raise ValueError(f"network='cnn' needs [H, W, C] observations; this environment's are {obs_space.shape}")
    scale = None
    if config.scale_observations:
        low, high = (np.asarray(getattr(obs_space, bound, np.nan), np.float64) for bound in ("low", "high"))
        if not isinstance(obs_space, Box) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(
                f"scale_observations=True needs Box observations with finite bounds; {env.env_id} has {obs_space!r}"
            )
        span = np.where(high > low, high - low, 1.0)
        scale = (tuple(low.reshape(-1).tolist()), tuple(span.reshape(-1).tolist()))
    return QNetwork(
        env.action_space(env_params).n,
        kind=config.network,
        hidden_sizes=config.hidden_sizes,
        conv_features=config.conv_features,
        one_hot=obs_space.n if isinstance(obs_space, Discrete) else None,
        layer_norm=config.layer_norm,
        q_init=config.q_init,
        input_scale=scale,
    )


def q_lambda_targets(
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    next_q: jax.Array,
    hyperparams: PQNHyperparams,
) -> jax.Array:
    """The Q(lambda) targets of a ``[T, N]`` rollout (module docstring), float32 ``[T, N]``.

    ``reward``, ``terminated``, ``truncated``: ``[T, N]``; ``next_q``: float32 ``[T, N, A]``, the
    Q-values of the observation each step led to (``Rollout.next_obs``). Rewards are scaled by
    ``reward_scale``; bootstrapping is ``max_a next_q``, cut at a termination, kept at a time limit.
    """
    return rollout.lambda_returns(
        hyperparams.reward_scale * reward,
        terminated,
        truncated,
        jnp.max(next_q, axis=-1),
        hyperparams.gamma,
        hyperparams.lam,
    )


def _optimizer(config: PQNConfig, hp: PQNHyperparams) -> optax.GradientTransformation:
    """Adam after global-norm clipping; with ``anneal_lr`` its rate decays linearly to 0 over the
    gradient steps of ``schedule_horizon()`` iterations (the run's, unless ``schedule_iterations``)."""
    learning_rate = hp.learning_rate
    if config.anneal_lr:
        total = config.schedule_horizon() * config.num_epochs * config.num_minibatches

        def learning_rate(count: jax.Array) -> jax.Array:
            # rate * (1 - count / total), the product rounded on its own (jrl._numerics.rounded):
            # optax's schedule adds its end value to a product, which XLA may fuse in one
            # compilation and not in another (a resumed run would then round differently).
            return rounded(hp.learning_rate * (1.0 - jnp.minimum(count, total).astype(jnp.float32) / total))

    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(learning_rate))


#: Capability: ``make_algorithm`` takes ``parallel`` (``jrl train --devices N``).
DATA_PARALLEL = True


def make_algorithm(config: PQNConfig, env: Environment, env_params: Any, parallel: DataParallel = SINGLE) -> Algorithm:
    """Validate on the host, then return the ``Algorithm`` (``init``, ``run``, ``result``; see
    ``jrl.algorithms.common``) of this config on this environment. All three are pure: jit ``run``
    with ``static_argnums=1`` (the number of intervals).

    With ``parallel`` over several devices they are one device's program (run under ``shard_map``
    along ``parallel.axis``): the device steps ``num_envs / devices`` environments with its own
    keys, each minibatch is its share of the whole minibatch, and the loss and gradients are
    averaged over the devices before every step, so the parameters stay equal everywhere.

    One iteration reads as PureJaxRL's: ``collect`` a rollout, compute its ``targets``, ``learn``
    from it; ``record`` turns an interval into metrics, and ``jrl.algorithms.training`` adds the
    logging scan, the in-loop evaluation and ``stop_return``."""
    network = build_network(config, env, env_params)
    num_envs, length = parallel.shard("num_envs", config.num_envs), config.rollout_length
    parallel.shard("rollout_length * num_envs / num_minibatches", length * config.num_envs // config.num_minibatches)
    decay_steps = config.epsilon_decay_fraction * config.schedule_horizon()
    per_iteration = config.env_steps_per_iteration()

    def q_values(params: Any, obs: jax.Array) -> jax.Array:
        """float32 ``[B, A]`` for a batch of observations ``[B, ...]``."""
        return jax.vmap(network.apply, in_axes=(None, 0))(params, obs)

    def greedy(params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        del key
        return jnp.argmax(network.apply(params, obs)).astype(jnp.int32)

    def epsilon_at(hp: PQNHyperparams, t: jax.Array) -> jax.Array:
        return linear_epsilon(hp.epsilon_start, hp.epsilon_end, decay_steps, t)

    def init(key: jax.Array, hyperparams: PQNHyperparams | None = None) -> PQNState:
        check_key("key", key)
        hp = _runtime_values(config.hyperparams() if hyperparams is None else hyperparams)
        k_loop, k_eval, k_init, k_reset = jax.random.split(key, 4)
        # The network starts equal on every device (k_init); the rest is each device's own.
        k_loop, k_eval, k_reset = (parallel.device_key(k) for k in (k_loop, k_eval, k_reset))
        envs = rollout.reset_envs(k_reset, env, env_params, num_envs)
        params = network.init(k_init, envs.obs[0])
        return PQNState(
            params=params,
            opt_state=_optimizer(config, hp).init(params),
            envs=envs,
            stopped=jnp.bool_(False),
            key=k_loop,
            eval_key=k_eval,
            hyperparams=hp,
            log_index=jnp.int32(0),
        )

    def collect(state: PQNState, t: jax.Array, key: jax.Array) -> tuple[PQNState, rollout.Rollout, jax.Array]:
        """``rollout_length`` epsilon-greedy steps of every environment (epsilon of iteration ``t``)."""
        epsilon = epsilon_at(state.hyperparams, t)

        def act(key: jax.Array, obs: jax.Array, step: jax.Array) -> tuple[jax.Array, None]:
            del step
            u = jax.random.uniform(key, (num_envs,))
            return epsilon_greedy(q_values(state.params, obs), epsilon, u), None

        envs, batch, ended = rollout.collect(key, env, env_params, state.envs, act, length, config.batched_env_step)
        return state.replace(envs=envs), batch, ended

    def targets(state: PQNState, batch: rollout.Rollout) -> jax.Array:
        """Q(lambda) targets ``[T, N]`` from the network that collected ``batch`` (held fixed)."""
        next_obs = batch.next_obs.reshape((length * num_envs, *batch.next_obs.shape[2:]))
        next_q = q_values(state.params, next_obs).reshape(length, num_envs, -1)
        g = q_lambda_targets(batch.reward, batch.terminated, batch.truncated, next_q, state.hyperparams)
        return jax.lax.stop_gradient(g)

    def learn(state: PQNState, batch: rollout.Rollout, g: jax.Array, key: jax.Array) -> tuple:
        """``num_epochs`` shuffled passes of ``num_minibatches`` gradient steps; a non-finite step is
        skipped. Returns (state, loss sum over the finite steps, non-finite count)."""
        optimizer = _optimizer(config, state.hyperparams)
        data = {
            "obs": batch.obs.reshape((length * num_envs, *batch.obs.shape[2:])),
            "action": batch.action.reshape(-1),
            "target": g.reshape(-1),
        }

        def loss_fn(params: Any, minibatch: dict) -> jax.Array:
            q = q_values(params, minibatch["obs"])
            q_sa = jnp.take_along_axis(q, minibatch["action"][:, None], axis=-1)[:, 0]
            return 0.5 * jnp.mean(jnp.square(q_sa - minibatch["target"]))

        def gradient_step(carry: tuple, minibatch: dict) -> tuple:
            params, opt_state, loss_sum, nonfinite = carry
            loss, grads = parallel.mean(jax.value_and_grad(loss_fn)(params, minibatch))
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            # Each update rounded before the add, so no compilation fuses it into a multiply-add.
            new_params = jax.tree_util.tree_map(lambda p, u: p + rounded(u), params, updates)
            leaves_finite = [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]
            finite = jnp.isfinite(loss) & jnp.all(jnp.stack(leaves_finite))

            def keep(new: Any, old: Any) -> Any:
                return jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)

            carry = (
                keep(new_params, params),
                keep(new_opt_state, opt_state),
                loss_sum + jnp.where(finite, loss, 0.0),
                nonfinite + (~finite).astype(jnp.int32),
            )
            return carry, None

        def epoch(carry: tuple, key: jax.Array) -> tuple:
            order = jax.random.permutation(key, length * num_envs)
            minibatches = jax.tree_util.tree_map(
                lambda x: x[order].reshape((config.num_minibatches, -1, *x.shape[1:])), data
            )
            return jax.lax.scan(gradient_step, carry, minibatches)

        carry = (state.params, state.opt_state, jnp.float32(0), jnp.int32(0))
        (params, opt_state, loss_sum, nonfinite), _ = jax.lax.scan(
            epoch, carry, jax.random.split(key, config.num_epochs)
        )
        return state.replace(params=params, opt_state=opt_state), loss_sum, nonfinite

    def iteration(state: PQNState, t: jax.Array) -> tuple[PQNState, jax.Array]:
        """Iteration ``t``: collect, targets, learn. Stats: episode returns, episodes, loss sum,
        gradient steps, non-finite gradient steps (float32 ``[5]``)."""
        k_collect, k_learn = jax.random.split(jax.random.fold_in(state.key, t))
        state, batch, (return_sum, episodes) = collect(state, t, k_collect)
        g = targets(state, batch)
        state, loss_sum, nonfinite = learn(state, batch, g, k_learn)
        updates = jnp.float32(config.num_epochs * config.num_minibatches)
        return state, jnp.stack([return_sum, episodes, loss_sum, updates, nonfinite.astype(jnp.float32)])

    def record(state: PQNState, interval: Interval) -> tuple[PQNState, dict]:
        """The interval's metrics (``METRICS``)."""
        return_sum, episodes, loss_sum, updates, nonfinite = (interval.stats[i] for i in range(5))
        # Every device counts the same (shared) gradient steps and averaged losses; the stats add
        # the devices' copies.
        loss_sum, updates, nonfinite = (x / parallel.count for x in (loss_sum, updates, nonfinite))
        metrics = {
            "env_steps": interval.step.astype(jnp.float32) * per_iteration,
            "epsilon": epsilon_at(state.hyperparams, interval.step - 1),
            "episode_return": mean_or_nan(return_sum, episodes),
            "episodes": episodes.astype(jnp.int32),
            "finite": nonfinite == 0,
            "loss": jnp.where(updates > nonfinite, loss_sum / jnp.maximum(updates - nonfinite, 1.0), jnp.nan),
            "updates": updates.astype(jnp.int32),
            "nonfinite_updates": nonfinite.astype(jnp.int32),
            "stopped": interval.skipped,
        }
        return state, metrics

    run = make_run(
        iteration,
        num_stats=5,
        log_interval=config.resolved_log_interval(),
        evaluate=in_loop_evaluation(
            env, env_params, config.eval_episodes, greedy, lambda state: state.params, config.batched_env_step
        ),
        record=record,
        stop_return=config.stop_return,
        parallel=parallel,
    )

    def result(state: PQNState, metrics: dict) -> PQNResult:
        return PQNResult(params=state.params, metrics=metrics)

    return Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def make_train(config: PQNConfig, env: Environment, env_params: Any) -> Callable[..., PQNResult]:
    """Validate on the host, then return ``train(key, hyperparams=None) -> PQNResult`` (pure): the
    ``init`` of ``make_algorithm``, one ``run`` over every logging interval, and ``result``."""
    return train_function(make_algorithm(config, env, env_params))


def greedy_policy(config: PQNConfig, env: Environment, env_params: Any, result: PQNResult) -> tuple[Callable, Any]:
    """``(policy, policy_params)`` for ``jrl.evaluate``: the argmax of the trained network."""
    network = build_network(config, env, env_params)

    def policy(params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        del key
        return jnp.argmax(network.apply(params, obs)).astype(jnp.int32)

    return policy, result.params


def describe_network(config: PQNConfig, env: Environment, env_params: Any, result: PQNResult) -> NetworkDescription:
    """The trained Q-network of ``result`` (one seed's) layer by layer, LayerNorms included
    (``NetworkDescription.norms``), for exporters (``jrl.export.export_numpy``)."""
    obs_shape = env.observation_space(env_params).shape
    return build_network(config, env, env_params).describe(result.params, obs_shape)


# purejaxql's CartPole settings (32 environments, rollouts of 64 steps, 4 epochs of 16
# minibatches, reward scale 0.1, epsilon 1 -> 0.2 over the first 20%, lambda 0.95, the learning
# rate decayed to 0) on a (128, 128) network for 100 iterations (204,800 environment steps), chosen
# by experiments/tune_defaults/pqn/CartPole-v1.toml on seeds 0-15 (docs/pqn.md).
_CARTPOLE = dict(
    num_envs=32,
    num_steps=100,
    rollout_length=64,
    num_epochs=4,
    num_minibatches=16,
    learning_rate=3e-4,
    anneal_lr=True,
    max_grad_norm=10.0,
    gamma=0.99,
    lam=0.95,
    epsilon_start=1.0,
    epsilon_end=0.2,
    epsilon_decay_fraction=0.2,
    reward_scale=0.1,
    hidden_sizes=(128, 128),
    layer_norm=True,
    eval_episodes=16,
    log_interval=10,
)

_DEFAULTS: dict[str, dict] = {
    "CartPole-v1": _CARTPOLE,
    # The CartPole settings with epsilon ending at 0.1, 200 iterations (409,600 environment steps)
    # at lr 1e-3, chosen by experiments/tune_defaults/pqn/Acrobot-v1.toml on seeds 0-15 (the only
    # configuration of its grid whose every seed ended at -100 or better: docs/pqn.md).
    "Acrobot-v1": {**_CARTPOLE, "num_steps": 200, "learning_rate": 1e-3, "epsilon_end": 0.1},
    # One-step targets (lambda 0: the optimistic start, Q near 0 against values near -100, fades by
    # one reward per iteration, so the greedy policy keeps seeking the states it knows least until
    # it finds the flag), reward scale 1, little random exploration (epsilon 0.3 -> 0.01 over the
    # first 10%, as DQN's MountainCar default), 16 environments x 32 steps, 16 epochs of 4
    # minibatches, lr 1e-3 annealed, 1,920 iterations (983,040 environment steps): chosen by
    # experiments/tune_defaults/pqn/MountainCar-v0.toml and MountainCar-v0-epochs16.toml on seeds
    # 0-15 (4, 8 or 16 epochs; the gradient steps per rollout were what mattered: docs/pqn.md).
    "MountainCar-v0": dict(
        num_envs=16,
        num_steps=1920,
        rollout_length=32,
        num_epochs=16,
        num_minibatches=4,
        learning_rate=1e-3,
        anneal_lr=True,
        gamma=0.99,
        lam=0.0,
        epsilon_start=0.3,
        epsilon_end=0.01,
        epsilon_decay_fraction=0.1,
        reward_scale=1.0,
        hidden_sizes=(128, 128),
        layer_norm=True,
        eval_episodes=16,
        log_interval=192,
    ),
}


def tuned_env_ids() -> list[str]:
    """The environment ids ``default_config`` has a tuned PQN config for, sorted."""
    return sorted(_DEFAULTS)


def default_config(env_id: str) -> PQNConfig:
    """Tuned settings for a registered environment with discrete actions (``docs/pqn.md``)."""
    if env_id not in _DEFAULTS:
        raise ValueError(f"no tuned PQN config for {env_id!r}; tuned ids: {sorted(_DEFAULTS)}")
    return PQNConfig(**_DEFAULTS[env_id])
