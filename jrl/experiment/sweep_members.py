"""A sweep's members and where they train: groups, batches, and one batch on the device mesh.

Every (configuration, seed) pair, a *member*, trains exactly as ``jrl train`` trains that seed:
key ``jax.random.key(seed)`` for training, ``evaluation_key(seed)`` for the final greedy
evaluation. The configurations of one **group** (``Group``: those that share shapes and code)
train in one compiled function, vmapped over members. ``plan_batches`` cuts each group into
**batches** of whole configurations that fit the memory budget; a batch is one call of the group's
compiled function with its member axis sharded over the devices (``jrl.parallel``), padded to the
group's largest batch so that every batch of a group has one shape. ``run_batch`` trains one
batch and returns its numbers; ``train_batch`` compiles first where needed, showing progress.
``jrl.sweep`` and ``jrl.optuna_search`` both train through these.

A tabular member's numbers do not depend on its batch, device or the device count; a DQN
member's can, in the last bits, when the number of members per call changes a lot
(docs/sweeps.md, "Devices"). A tabular member's final return is the exact expected return of its
greedy policy, from the model (``exact_greedy_returns``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl import algorithms, parallel
from jrl.envs.tabular import TabularEnv
from jrl.evaluate import UNLIMITED_EPISODE_CAP, evaluate_episodes
from jrl.experiment.curves import HELD_METRICS, held_after_stopping
from jrl.experiment.progress import Progress
from jrl.experiment.spec import evaluation_key, train_key
from jrl.experiment.sweep_spec import SweepError, SweepSettings, SweepSpec

__all__ = [
    "Batch",
    "Group",
    "compile_batch",
    "exact_greedy_returns",
    "members_per_call",
    "plan_batches",
    "run_batch",
    "train_batch",
]


class Group:
    """The configurations of one group (those that share shapes and code): its algorithm and the
    function that trains a batch of its members.

    Attributes:
        spec: the sweep (its path fields as the algorithm reads them).
        static: the group's values of the static axes (``{}`` without any).
        indices: the group's configuration indices in ``spec.points()``.
        config: the base config with ``static`` applied.
        hyperparams: each configuration's ``config.hyperparams()``, in ``indices`` order.
        tabular: whether a member's final return is exact from the model (else it is evaluated).
        num_logs: logging intervals of one training.
    """

    def __init__(self, spec: SweepSpec, static: dict, indices: list[int], env: Any, env_params: Any):
        self.spec, self.static, self.indices = spec, static, indices
        self.env, self.env_params = env, env_params
        self.config = spec.config.replace(**static)
        self.algo_spec = algorithms.get(spec.algo)
        self.algorithm = self.algo_spec.make_algorithm(self.config, env, env_params)
        self.tabular = isinstance(env, TabularEnv) and self.algo_spec.tabular
        configs = spec.configs()
        self.hyperparams = [configs[i].hyperparams() for i in indices]
        abstract_key = jax.eval_shape(jax.random.key, 0)  # a key's shape and type, no value
        single = jax.eval_shape(self.algorithm.init, abstract_key)
        # As in the runner: the interval counter is shared by the members (they advance together),
        # so DQN's "learn now?" stays a branch under vmap.
        self.state_axes = jax.tree_util.tree_map(lambda _: 0, single).replace(log_index=None)
        self.state_bytes = parallel.tree_bytes(single)
        self.num_logs = self.algorithm.num_logs
        self._compiled: dict[int, Any] = {}

    def member_bytes(self) -> int:
        """Estimated bytes of one member in a batch: its state three times over (input, loop
        carry, output), its metrics and its final evaluation."""
        metrics = self.num_logs * 4 * (len(algorithms.common.METRICS) + 5)  # as when METRICS held epsilon: same batches
        return 3 * self.state_bytes + metrics + 64 * self.spec.eval_episodes

    def env_steps(self) -> int | None:
        """Env steps of one training (``None`` where an iteration's vary: text, whose env steps are tokens)."""
        per_iteration = self.config.env_steps_per_iteration()
        return None if per_iteration is None else self.config.num_steps * per_iteration

    def train_members(self, key_data: jax.Array, hyperparams: Any, eval_key_data: jax.Array) -> dict:
        """Train ``M`` members and value their greedy policies (the function a batch compiles).

        Args:
            key_data: uint32 ``[M, *parallel.key_data_shape()]``, each member's training key.
            hyperparams: the config's ``hyperparams()`` pytree with float32 ``[M]`` leaves.
            eval_key_data: as ``key_data``, each member's evaluation key.

        Returns ``{"metrics": {name: [M, L]}}`` with only the metrics the table reads (the curve,
        ``finite``, ``step``, ``env_steps`` where steps per iteration vary, and ``stopped`` where the curve holds after an early stop), and
        ``"q_table"`` ``[M, S, A]`` (tabular) or ``"final_return"`` ``[M]`` (the mean greedy return
        over ``spec.eval_episodes`` episodes)."""
        algorithm, spec = self.algorithm, self.spec
        keys = jax.random.wrap_key_data(key_data)
        state = jax.vmap(algorithm.init, out_axes=self.state_axes)(keys, hyperparams)
        run = jax.vmap(
            lambda s: algorithm.run(s, self.num_logs), in_axes=(self.state_axes,), out_axes=(self.state_axes, 0)
        )
        state, metrics = run(state)
        # Only the metrics the table reads leave the call: XLA then drops the work of the others
        # (tabular Q-learning's greedy_value is a linear solve per logging interval).
        names = {spec.curve, "finite", "step"}
        if self.config.env_steps_per_iteration() is None:  # text: tokens vary, each member's count is its metric
            names.add("env_steps")
        if spec.curve in HELD_METRICS and "stopped" in metrics:  # see held_after_stopping
            names.add("stopped")
        out = {"metrics": {name: metrics[name] for name in sorted(names)}}
        if self.tabular:
            out["q_table"] = jax.vmap(
                lambda s: self.algo_spec.greedy_table(algorithm.result(s, {})), in_axes=(self.state_axes,)
            )(state)
        else:
            eval_keys = jax.random.wrap_key_data(eval_key_data)

            def evaluate_member(member_state, key):
                result = algorithm.result(member_state, {})
                policy, params = self.algo_spec.greedy_policy(self.config, self.env, self.env_params, result)
                stats = evaluate_episodes(key, policy, params, self.env, self.env_params, spec.eval_episodes)
                return jnp.mean(stats.returns)

            out["final_return"] = jax.vmap(evaluate_member, in_axes=(self.state_axes, 0))(state, eval_keys)
        return out

    def is_compiled(self, size: int) -> bool:
        """Whether the function for ``size`` members is compiled already."""
        return size in self._compiled

    def compiled(self, mesh: jax.sharding.Mesh, size: int) -> Callable:
        """``train_members`` for ``size`` members sharded over ``mesh``, compiled once per group and size."""
        if size not in self._compiled:
            key_data = jax.ShapeDtypeStruct((size, *parallel.key_data_shape()), jnp.uint32)
            hyper = jax.tree_util.tree_map(lambda _: jax.ShapeDtypeStruct((size,), jnp.float32), self.hyperparams[0])
            self._compiled[size] = parallel.compile_sharded(self.train_members, mesh, key_data, hyper, key_data)
        return self._compiled[size]


@dataclasses.dataclass
class Batch:
    """One call of a group's compiled function.

    Attributes:
        group: the group's index.
        number: the batch's index within the sweep (its file is ``batch-{number:05d}.npz``).
        configs: the configuration indices it trains, each with every seed (configuration-major).
        hyperparams: one ``hyperparams()`` pytree per entry of ``configs`` (an Optuna batch's
            proposals); ``None``: the group's own configurations.
    """

    group: int
    number: int
    configs: list[int]
    hyperparams: list | None = None


def plan_batches(groups: list[Group], num_seeds: int, settings: SweepSettings, show: Callable[[str], Any]) -> list:
    """Cut every group into batches of whole configurations: ``settings.configs_per_batch`` each, or
    as many as fit ``settings.memory_budget`` (which must be set). ``show`` gets one line per group.
    Raises ``SweepError`` when one configuration does not fit, or a group does not fit in one
    batch and ``settings.batching`` is off. Returns the ``Batch`` list, group by group."""
    budget = settings.memory_budget
    batches: list[Batch] = []
    for g, group in enumerate(groups):
        per_config = group.member_bytes() * num_seeds
        if settings.configs_per_batch is not None:
            size = settings.configs_per_batch
        else:
            size = max(1, budget // per_config)
        if not settings.batching and len(group.indices) * per_config > budget:
            raise SweepError(
                f"group {g} ({len(group.indices)} configurations x {num_seeds} seeds) needs about "
                f"{parallel.format_bytes(len(group.indices) * per_config)} but the memory budget is "
                f"{parallel.format_bytes(budget)}, and batching is off: allow batching, raise the budget, or sweep "
                "fewer configurations"
            )
        if per_config > budget:
            raise SweepError(
                f"one configuration x {num_seeds} seeds needs about {parallel.format_bytes(per_config)}, more than "
                f"the memory budget {parallel.format_bytes(budget)}: use fewer seeds or a smaller config (num_envs, "
                "buffer_size)"
            )
        size = min(size, len(group.indices))
        label = f"group {g} {group.static}" if group.static else "the sweep"
        show(
            f"{label}: {len(group.indices)} configuration(s) x {num_seeds} seed(s); estimated memory per "
            f"configuration {parallel.format_bytes(per_config)}, {math.ceil(len(group.indices) / size)} batch(es) of "
            f"{size} configuration(s)"
        )
        for start in range(0, len(group.indices), size):
            batches.append(Batch(g, len(batches), group.indices[start : start + size]))
    return batches


def members_per_call(batches: list[Batch], batch: Batch, num_seeds: int) -> int:
    """Members per call of ``batch``'s group: its largest batch (every batch of a group has one shape)."""
    return max(len(b.configs) for b in batches if b.group == batch.group) * num_seeds


def compile_batch(group: Group, mesh: jax.sharding.Mesh, size: int, bar: Progress, what: str) -> float:
    """Compile ``group``'s function for ``size`` members (``padded_size`` of its calls) unless it
    is compiled already, saying so on ``bar`` as ``what``; returns the seconds it took (0.0 if it
    was compiled)."""
    if group.is_compiled(size):
        return 0.0
    bar.compiling(what)
    started = time.perf_counter()
    group.compiled(mesh, size)
    seconds = time.perf_counter() - started
    bar.compiled(what, seconds)
    return seconds


def run_batch(group: Group, batch: Batch, mesh: jax.sharding.Mesh, size: int) -> dict:
    """Train one batch, padded to ``size`` members (a multiple of the mesh's devices), on ``mesh``.

    Every process returns the whole batch's numbers as host arrays, ``B = len(batch.configs) x S``
    members (configuration-major, ``S = len(group.spec.seeds)``): ``configs`` int64 ``[C]``,
    ``final_return`` float64 ``[B]``, ``curve`` float64 ``[B, L]`` (held after an early stop),
    ``env_steps`` int64 ``[B, L]`` and ``finite`` bool ``[B]`` (every logging interval finite)."""
    spec = group.spec
    seeds = spec.seeds
    members = [(c, s) for c in batch.configs for s in range(len(seeds))]
    padded = members + [members[-1]] * (size - len(members))
    hyperparams = batch.hyperparams
    if hyperparams is None:  # the group's own configurations
        index = {c: i for i, c in enumerate(group.indices)}
        hyperparams = [group.hyperparams[index[c]] for c in batch.configs]
    position = {c: i for i, c in enumerate(batch.configs)}
    # Each seed's keys once (not once per member: thousands of small host-side JAX calls).
    seed_of_member = [s for _, s in padded]
    key_data = np.stack([np.asarray(jax.random.key_data(train_key(seed))) for seed in seeds])[seed_of_member]
    eval_data = np.stack([np.asarray(jax.random.key_data(evaluation_key(seed))) for seed in seeds])[seed_of_member]
    hyper = jax.tree_util.tree_map(
        lambda *xs: np.asarray(xs, np.float32), *[hyperparams[position[c]] for c, _ in padded]
    )
    out = group.compiled(mesh, size)(
        parallel.put_sharded(key_data, mesh),
        jax.tree_util.tree_map(lambda x: parallel.put_sharded(x, mesh), hyper),
        parallel.put_sharded(eval_data, mesh),
    )
    out = jax.tree_util.tree_map(lambda x: x[: len(members)], parallel.to_host(out))
    metrics = out["metrics"]
    finite = np.asarray(metrics["finite"]).all(axis=1)
    if group.tabular:
        final = exact_greedy_returns(group.env, group.env_params, out["q_table"])
    else:
        final = np.asarray(out["final_return"], np.float64)
    curve = np.asarray(metrics[spec.curve], np.float64)
    if "stopped" in metrics:
        curve = held_after_stopping(curve, np.asarray(metrics["stopped"], bool))
    per_iteration = group.config.env_steps_per_iteration()
    if per_iteration is None:  # they vary (text: tokens): each member's own count, as its metric says
        steps = np.asarray(metrics["env_steps"], np.int64)
    else:  # exact in int64 (the float32 metric rounds past 2**24)
        steps = np.asarray(metrics["step"], np.int64) * per_iteration
    return {
        "configs": np.asarray(batch.configs, np.int64),
        "final_return": final,
        "curve": curve,
        "env_steps": steps,
        "finite": finite,
    }


def train_batch(
    group: Group, batch: Batch, mesh: jax.sharding.Mesh, size: int, bar: Progress
) -> tuple[dict, float, float]:
    """``run_batch``, compiling the group's function first where it is not yet (shown on ``bar``).
    Returns the batch's numbers, the seconds compiling and the seconds training."""
    compile_seconds = compile_batch(group, mesh, size, bar, f"group {batch.group} ({size} members)")
    started = time.perf_counter()
    numbers = run_batch(group, batch, mesh, size)
    return numbers, compile_seconds, time.perf_counter() - started


# -- finite-horizon value of greedy tables (exact, float64, on the host) ----------------------------


def exact_greedy_returns(env: TabularEnv, env_params: Any, q_tables: np.ndarray) -> np.ndarray:
    """Expected undiscounted return of each table's greedy policy (first maximal action, as
    ``q_learning.greedy_policy`` acts) over one episode of at most the time limit (capped at
    ``jrl.UNLIMITED_EPISODE_CAP`` steps for environments without one), from the model in float64.

    ``q_tables``: float ``[N, S, A]``. Returns float64 ``[N]``. This is the number
    ``jrl.evaluate`` estimates by sampling; comparable across discounts (a sweep over ``gamma``).
    """
    mdp = env.mdp(env_params)
    probs = np.asarray(mdp.transition_probs, np.float64)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    next_states = np.asarray(mdp.next_states)
    rewards = np.asarray(mdp.rewards, np.float64)
    continuing = ~np.asarray(mdp.terminals, bool)
    start = np.asarray(mdp.initial_distribution, np.float64)
    horizon = int(min(int(env_params.max_steps_in_episode), UNLIMITED_EPISODE_CAP))
    actions = np.argmax(np.asarray(q_tables), axis=-1)  # [N, S]
    states = np.arange(probs.shape[0])
    p = probs[states, actions]  # [N, S, K]
    ns = next_states[states, actions]
    expected_reward = np.sum(p * rewards[states, actions], axis=-1)
    weight = p * continuing[states, actions]
    values = np.zeros(actions.shape)
    rows = np.arange(actions.shape[0])[:, None, None]
    for _ in range(horizon):
        new = expected_reward + np.sum(weight * values[rows, ns], axis=-1)
        if np.array_equal(new, values):  # every episode ends within the steps taken so far
            break
        values = new
    return values @ start
