"""The algorithm contract is open: an algorithm defined here, in the test file, and registered
with ``jrl.algorithms.register`` runs through ``jrl train``, ``resume``, ``eval``, ``sweep`` and
``plot`` with no other module touched.

The algorithm is first-visit Monte-Carlo control (Sutton & Barto, section 5.4) for environments
with discrete observations: each iteration runs one epsilon-greedy episode (at most ``horizon``
steps) in each of ``num_envs`` environments, and ``Q(s, a)`` is the mean of the discounted returns
that followed the first visit of ``(s, a)`` in every episode so far. On the deterministic 4x4
FrozenLake it finds a path to the goal: greedy return 1, the optimum, where the initial greedy
policy (all zeros, first action: left) never leaves the start.

This module is the algorithm's module: it defines what the contract asks (``jrl.algorithms.common``:
a ``Config``, ``make_algorithm`` -> ``init``/``run``/``result``, ``make_train``, ``greedy_policy``,
``default_config``) and what the runner may ask besides (``check_env``, ``METRICS``,
``greedy_table``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pytest
from flax import struct

import jrl
from jrl import algorithms, cli
from jrl.algorithms import common
from jrl.spaces import Discrete

NAME = "open_contract_mc"
METRICS = ("step", "env_steps", "epsilon", "episode_return", "episodes", "eval_return", "finite")
LAKE = ["--env", "FrozenLake-v1", "--env-kwarg", "is_slippery=false"]


@struct.dataclass
class MCHyperparams:
    """The numbers a sweep may vary without a new compilation (float32 scalars)."""

    gamma: jax.Array
    epsilon: jax.Array


@dataclasses.dataclass(frozen=True)
class MCConfig(common.Config):
    """First-visit Monte-Carlo control.

    Attributes:
        num_envs: episodes per iteration, one per environment.
        num_steps: iterations.
        horizon: steps an episode may last (an episode still running then ends there).
        gamma: discount of the returns Q averages.
        epsilon: exploration rate of the behaviour policy (ties broken at random).
        log_interval: iterations per logging interval (``None``: about ``DEFAULT_RECORDS``).
    """

    HYPERPARAMS = MCHyperparams
    DEFAULT_RECORDS = 10

    num_envs: int = 32
    num_steps: int = 100
    horizon: int = 100
    gamma: float = 0.99
    epsilon: float = 0.2
    log_interval: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_envs", "num_steps", "horizon"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("gamma", "epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.log_interval is not None and (self.log_interval < 1 or self.num_steps % self.log_interval):
            raise ValueError(f"log_interval={self.log_interval} must divide num_steps={self.num_steps}")

    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.horizon  # every environment steps through the whole horizon


@struct.dataclass
class MCState:
    """``returns_sum``, ``counts``: float32 ``[S, A]``; ``log_index``: int32, intervals done."""

    returns_sum: jax.Array
    counts: jax.Array
    key: jax.Array
    hyperparams: MCHyperparams
    log_index: jax.Array


@struct.dataclass
class MCResult:
    """``q_table``: float32 ``[S, A]``; ``metrics``: arrays ``[num_logs]``."""

    q_table: jax.Array
    metrics: dict


def check_env(env: Any, env_params: Any) -> None:
    """``ValueError`` unless observations and actions are ``Discrete`` (Q is a table)."""
    for kind, space in (("observation", env.observation_space(env_params)), ("action", env.action_space(env_params))):
        if not isinstance(space, Discrete):
            raise ValueError(f"{NAME} needs a Discrete {kind} space; {env.env_id} has {space!r}")


def default_config(env_id: str) -> MCConfig:
    if env_id != "FrozenLake-v1":
        raise ValueError(f"no tuned {NAME} config for {env_id!r}")
    return MCConfig()


def _q(returns_sum: jax.Array, counts: jax.Array) -> jax.Array:
    return returns_sum / jnp.maximum(counts, 1.0)


def make_algorithm(config: MCConfig, env: Any, env_params: Any) -> common.Algorithm:
    check_env(env, env_params)
    num_states, num_actions = env.observation_space(env_params).n, env.action_space(env_params).n
    horizon, interval = config.horizon, config.resolved_log_interval()

    def init(key: jax.Array, hyperparams: MCHyperparams | None = None) -> MCState:
        hyperparams = config.hyperparams() if hyperparams is None else hyperparams
        zeros = jnp.zeros((num_states, num_actions), jnp.float32)
        return MCState(zeros, zeros, key, hyperparams, jnp.int32(0))

    def episode(key: jax.Array, q: jax.Array, hp: MCHyperparams) -> tuple:
        """One episode's first-visit return sums and counts ``[S, A]``, its return, whether it ended."""
        reset_key, step_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)

        def step(carry: tuple, key: jax.Array) -> tuple:
            obs, env_state, alive = carry
            act_key, env_key = jax.random.split(key)
            action = common.epsilon_greedy(q[obs][None], hp.epsilon, jax.random.uniform(act_key, (1,)))[0]
            next_obs, env_state, reward, terminated, truncated, _ = env.step(env_key, env_state, action, env_params)
            return (next_obs, env_state, alive & ~(terminated | truncated)), (obs, action, reward, alive)

        init_carry = (obs, env_state, jnp.bool_(True))
        (_, _, running), (states, actions, rewards, alive) = jax.lax.scan(
            step, init_carry, jax.random.split(step_key, horizon)
        )

        def discount(g: jax.Array, x: tuple) -> tuple:
            reward, alive = x
            g = jnp.where(alive, reward + hp.gamma * g, 0.0)
            return g, g

        _, returns = jax.lax.scan(discount, jnp.float32(0.0), (rewards, alive), reverse=True)
        pair, t = states * num_actions + actions, jnp.arange(horizon)
        first = jnp.full(num_states * num_actions, horizon).at[pair].min(jnp.where(alive, t, horizon))
        visit = alive & (first[pair] == t)
        sums = jnp.zeros(num_states * num_actions).at[pair].add(jnp.where(visit, returns, 0.0))
        counts = jnp.zeros(num_states * num_actions).at[pair].add(visit.astype(jnp.float32))
        shape = (num_states, num_actions)
        return sums.reshape(shape), counts.reshape(shape), jnp.sum(jnp.where(alive, rewards, 0.0)), ~running

    def run(state: MCState, num_logs: int) -> tuple[MCState, dict]:
        # A barrier keeps XLA from folding the hyperparameters as constants in make_train, so a
        # run in chunks (hyperparameters read from the state) rounds as one call does.
        hp = jax.lax.optimization_barrier(state.hyperparams)

        def iteration(carry: tuple, _: None) -> tuple:
            state, total, ended = carry
            key, episodes_key = jax.random.split(state.key)
            keys = jax.random.split(episodes_key, config.num_envs)
            q = _q(state.returns_sum, state.counts)
            sums, counts, returns, done = jax.vmap(episode, in_axes=(0, None, None))(keys, q, hp)
            state = state.replace(
                returns_sum=state.returns_sum + sums.sum(0), counts=state.counts + counts.sum(0), key=key
            )
            return (state, total + jnp.sum(jnp.where(done, returns, 0.0)), ended + done.sum()), None

        def log(state: MCState, _: None) -> tuple:
            (state, total, ended), _ = jax.lax.scan(
                iteration, (state, jnp.float32(0.0), jnp.int32(0)), None, length=interval
            )
            state = state.replace(log_index=state.log_index + 1)
            step = state.log_index * interval
            metrics = {
                "step": step,
                "env_steps": (step * config.env_steps_per_iteration()).astype(jnp.float32),
                "epsilon": hp.epsilon,
                "episode_return": jnp.where(ended > 0, total / jnp.maximum(ended, 1), jnp.nan),
                "episodes": ended,
                "eval_return": jnp.float32(jnp.nan),  # no in-loop evaluation
                "finite": jnp.isfinite(state.returns_sum).all(),
            }
            return state, metrics

        return jax.lax.scan(log, state, None, length=num_logs)

    def result(state: MCState, metrics: dict) -> MCResult:
        return MCResult(q_table=_q(state.returns_sum, state.counts), metrics=metrics)

    return common.Algorithm(config=config, init=init, run=run, result=result, num_logs=config.num_logs())


def make_train(config: MCConfig, env: Any, env_params: Any) -> Any:
    return common.train_function(make_algorithm(config, env, env_params))


def _greedy_action(q_table: jax.Array, obs: jax.Array, key: jax.Array) -> jax.Array:
    del key
    return jnp.argmax(q_table[obs]).astype(jnp.int32)


def greedy_policy(config: MCConfig, env: Any, env_params: Any, result: MCResult) -> tuple:
    """``(policy, q_table)``: the first maximal action of the learned table."""
    return _greedy_action, result.q_table


def greedy_table(result: MCResult) -> jax.Array:
    """The ``[..., S, A]`` table whose first maximal action ``greedy_policy`` takes."""
    return result.q_table


@pytest.fixture(scope="module")
def registered():
    """The algorithm under its name while this module's tests run (then forgotten again)."""
    algorithms.register(NAME, sys.modules[__name__], MCConfig)
    yield NAME
    algorithms.unregister(NAME)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``jrl ARGV`` in this process: (status, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    assert code == 0, (argv, out.getvalue(), err.getvalue())
    return code, out.getvalue()


@pytest.fixture(scope="module")
def trained(registered, tmp_path_factory):
    """``jrl train`` of two seeds, 10 logging intervals in 5 chunks, every checkpoint kept."""
    run_dir = tmp_path_factory.mktemp("mc") / "run"
    train = f"train --algo {registered} --seeds 2 --set num_steps=60 --chunk-logs 2 --keep 10 --eval-episodes 10"
    run_cli([*train.split(), *LAKE, "--quiet", "--out", str(run_dir)])
    return run_dir


def test_train_learns_the_optimal_return(trained):
    env, env_params = jrl.make("FrozenLake-v1", is_slippery=False)
    config = MCConfig(num_steps=60)
    untrained = make_algorithm(config, env, env_params)
    policy, q_table = greedy_policy(config, env, env_params, untrained.result(untrained.init(jax.random.key(0)), {}))
    assert float(jrl.evaluate(jax.random.key(0), policy, q_table, env, env_params, 10).mean()) == 0.0
    summary = json.loads((trained / "summary.json").read_text())
    assert [s["evaluation"]["mean_return"] for s in summary["per_seed"].values()] == [1.0, 1.0]
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and set(rows[0]) == {"seed", "log", *METRICS}
    assert rows[-1]["env_steps"] == 60 * 32 * 100


def test_resume_after_a_kill_gives_the_uninterrupted_run(trained, tmp_path):
    """As if killed after the 4th of 10 intervals: the later checkpoints and the summary gone."""
    resumed = tmp_path / "resumed"
    shutil.copytree(trained, resumed)
    checkpoints = sorted((resumed / "checkpoints").iterdir())
    assert len(checkpoints) == 5
    for path in checkpoints[2:]:
        shutil.rmtree(path)
    (resumed / "summary.json").unlink()
    run_cli(["resume", str(resumed), "--quiet"])
    for name in ("summary.json", "metrics.jsonl", "checkpoints/ckpt-00000010/header.json"):
        assert (resumed / name).read_bytes() == (trained / name).read_bytes(), name


def test_eval_reports_the_greedy_return(trained):
    _, out = run_cli(["eval", str(trained), "--episodes", "5"])
    assert re.search(r"^\s*mean\s+1\b", out, re.M), out


def test_sweep_values_the_learned_tables_exactly(registered, tmp_path):
    sweep = f"sweep --algo {registered} --set num_steps=60 --grid epsilon=0.1,0.3 --seeds 2"
    run_cli([*sweep.split(), *LAKE, "--quiet", "--out", str(tmp_path / "sweep")])
    table = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [row["epsilon"] for row in table["rows"]] == [0.1, 0.3]
    # Exact from the model (greedy_table): the optimum, 1, for at least the best configuration.
    assert table["best"]["final_return_mean"] == 1.0 and table["best"]["final_return_std"] == 0.0


def test_plot_draws_the_curves_and_the_policy(trained, tmp_path):
    pytest.importorskip("matplotlib")
    run_cli(["plot", str(trained), "--out", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (trained / "policy.png").stat().st_size > 0  # a tabular algorithm on a gridworld


def test_a_new_process_finds_the_algorithm_by_module_name(tmp_path):
    """``--algo MODULE:NAME`` imports MODULE (from the working directory, as ``--env MODULE:ID``),
    and the run records that form: ``jrl eval`` in a new process imports it again."""
    (tmp_path / "my_mc.py").write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_open_contract as mc\nfrom jrl import algorithms\n\n"
        "algorithms.register('mc', mc, mc.MCConfig)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        train = "train --algo my_mc:mc --seeds 1 --set num_steps=60 --eval-episodes 10 --quiet"
        run_cli([*train.split(), *LAKE, "--out", str(tmp_path / "run")])
    finally:
        sys.path.remove(str(tmp_path))
        algorithms.unregister("mc")
        sys.modules.pop("my_mc", None)
    assert 'algo = "my_mc:mc"' in (tmp_path / "run" / "config.toml").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "jrl.cli", "eval", "run", "--episodes", "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s*mean\s+1\b", done.stdout, re.M), done.stdout


def test_a_module_name_that_registers_nothing_is_refused_clearly():
    with pytest.raises(ValueError, match="cannot import the module 'no_such_module_jrl'"):
        algorithms.get("no_such_module_jrl:mc")
    with pytest.raises(ValueError, match="the module 'json' was imported, but it registers no algorithm 'mc'"):
        algorithms.get("json:mc")
