"""Hyperparameter sweeps (``jrl.sweep``), in this process on one device: batching and resumption
change no number, a member is the run ``jrl train`` and ``make_train`` give, the table's statistics
are the ones its numbers imply, bad input is refused before anything compiles, a configuration
that goes non-finite is isolated. Several devices and processes: ``test_sweep_devices.py``.

Every sweep call compiles its group functions anew. Sweeps of the same shapes compile the same
program, so this module turns on JAX's persistent compilation cache: a repeated program is read
back instead of compiled again (the cache is keyed by the program's HLO, so any change to what is
computed is a new entry and compiles).
"""

from __future__ import annotations

import json
import math
import shutil
import tomllib
from fractions import Fraction
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

import jrl
from jrl.algorithms import q_learning
from jrl.envs import registry
from jrl.envs.tabular import outcome_table, tabular_mdp_from_numpy
from jrl.experiment import (
    RunSettings,
    RunSpec,
    SweepError,
    SweepSettings,
    SweepSpec,
    records,
    resume_sweep,
    sweep_members,
    sweep_stats,
    sweeps,
    train,
)

# Tabular Q-learning: 3 configurations x 3 seeds (9 members: no device count but 1, 3 and 9 divides it).
QL = dict(
    algo="q_learning",
    env="FrozenLake-v1",
    # Every field the numbers depend on is pinned: a re-tuned default must not move them.
    config={"num_envs": 16, "num_steps": 200, "gamma": 0.99, "epsilon_end": 0.1, "epsilon_decay_fraction": 0.5},
    grid={"alpha": [0.1, 0.5, 0.9]},
    seeds=[3, 7, 11],
    threshold=0.6,  # reached by no seed of alpha=0.1, two of alpha=0.9, all of alpha=0.5
)
# DQN on CartPole, in-loop evaluation as the learning curve: 3 configurations x 2 seeds.
DQN = dict(
    algo="dqn",
    env="CartPole-v1",
    config={
        "num_envs": 4,
        "num_steps": 600,
        "buffer_size": 600,
        "learning_starts": 100,
        "batch_size": 32,
        "eval_episodes": 2,
        "log_interval": 100,
        "hidden_sizes": [32],
        # Both seeds of learning_rate=1e-2 stop before the end: 64 of 64 seeds did here, under
        # XLA_FLAGS=--xla_cpu_max_isa=AVX too (trained networks differ between processors; at the
        # 100 this had before, 24 of 64 did, seed 0 here only at its last chance).
        "stop_return": 15.0,
    },
    grid={"learning_rate": [1e-3, 3e-3, 1e-2]},
    seeds=[0, 5],
    eval_episodes=2,
    threshold=20.0,
)


def run(kind: dict, **changes):
    return jrl.sweep(**{**kind, "progress": False, **changes})


@pytest.fixture(scope="module", autouse=True)
def compilation_cache_dir(tmp_path_factory):
    names = {
        "jax_compilation_cache_dir": str(tmp_path_factory.getbasetemp() / "sweep-jax-cache"),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": -1,
    }
    saved = {name: getattr(jax.config, name) for name in names}
    for name, value in names.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()  # takes the settings up even if something compiled before
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def ql_result():
    return run(QL)


@pytest.fixture(scope="module")
def dqn_result():
    return run(DQN)


@pytest.fixture(scope="module")
def ql_dir(tmp_path_factory):
    """The QL sweep recorded in a directory, one configuration per batch."""
    out = tmp_path_factory.mktemp("sweeps") / "ql"
    result = run(QL, out=out, settings=SweepSettings(configs_per_batch=1))
    return out, result


def assert_same_numbers(a, b) -> None:
    assert np.array_equal(a.final_returns, b.final_returns, equal_nan=True)
    assert np.array_equal(a.curves, b.curves, equal_nan=True)
    assert np.array_equal(a.diverged, b.diverged)
    assert a.rows == b.rows


@pytest.fixture
def no_compiling(monkeypatch):
    """Anything that reaches compilation (or training) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sweep compiled or trained although its input is bad")

    monkeypatch.setattr(sweep_members.Group, "compiled", refuse)
    monkeypatch.setattr(sweep_members, "run_batch", refuse)


# -- batching, and a member is the run train and make_train give -----------------------------------


def test_configurations_per_batch_change_no_number(ql_result, ql_dir, capsys):
    """One batch of 3 configurations, batches of 2 (the last one padded) and batches of 1."""
    _, one_per_batch = ql_dir
    capsys.readouterr()
    two_per_batch = run(QL, settings=SweepSettings(configs_per_batch=2), progress=True)
    # The last batch (one configuration) is padded to the first one's 6 members: one compilation.
    out = capsys.readouterr().out
    assert "2 batch(es) of 2 configuration(s)" in out and out.count("compiling ") == 1, out
    for result in (one_per_batch, two_per_batch):
        assert_same_numbers(result, ql_result)
    assert ql_result.final_returns.shape == (3, 3)
    assert ql_result.curves.shape == (3, 3, 100)
    # The members differ (else the comparisons above would be empty).
    assert len({float(x) for x in ql_result.final_returns.ravel()}) > 5


def test_a_tabular_member_is_make_train_of_its_config_bit_for_bit(ql_result):
    """Configuration alpha=0.5 with seed 7 (the middle member of the middle configuration)."""
    env, params = jrl.make("FrozenLake-v1")
    config = q_learning.default_config("FrozenLake-v1").replace(**QL["config"], alpha=0.5)
    alone = jax.jit(q_learning.make_train(config, env, params))(jax.random.key(7))
    metrics = jax.device_get(alone.metrics)
    for curve, result in [("episode_return", ql_result)] + [
        (c, run(QL, curve=c)) for c in ("greedy_value", "td_error")
    ]:
        expected = np.asarray(metrics[curve], np.float64)
        assert np.array_equal(result.curves[1, 1], expected, equal_nan=True), curve
    exact = sweeps.exact_greedy_returns(env, params, np.asarray(alone.q_table)[None])
    assert ql_result.final_returns[1, 1] == exact[0]


def test_a_dqn_member_is_the_run_jrl_train_gives(dqn_result, tmp_path):
    """``jrl train`` of the last configuration with the sweep's seeds (vmapped, as in the sweep,
    but with the configuration's hyperparameters unbatched): the same learning curve (every
    in-loop evaluation of every seed; after a seed stopped at ``stop_return``, where the run logs
    nothing, the sweep's curve holds the evaluation that stopped it) and the same final greedy
    return. (Tabular members are compared with ``make_train`` itself above; ``jrl train`` is
    ``make_train``, tested elsewhere.)"""
    sweep_args, result = DQN, dqn_result
    ((axis, values),) = sweep_args["grid"].items()
    config = {**sweep_args["config"], axis: values[2]}
    spec = RunSpec.resolve(sweep_args["algo"], sweep_args["env"], sweep_args["seeds"], config)
    summary = train(spec, tmp_path / "run", RunSettings(eval_episodes=2), progress=False)
    rows = records.read_metrics(tmp_path / "run" / records.METRICS)
    curve = result.spec.curve
    for s, seed in enumerate(sweep_args["seeds"]):
        records_of_seed = sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["log"])
        logged = np.array([math.nan if r[curve] is None else r[curve] for r in records_of_seed])
        stopped = [r["stopped"] for r in records_of_seed]
        assert any(stopped) and not stopped[0] and np.isnan(logged[stopped]).all(), seed
        for i in range(1, len(logged)):
            if stopped[i]:
                logged[i] = logged[i - 1]
        assert np.array_equal(result.curves[2, s], logged), seed
        assert result.final_returns[2, s] == summary["per_seed"][str(seed)]["evaluation"]["mean_return"]


# -- the table ------------------------------------------------------------------------------------


def independent_bootstrap(values: np.ndarray, resamples: int = 20_000) -> tuple[float, float]:
    rng = np.random.default_rng(12345)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return tuple(np.percentile(means, [2.5, 97.5]))


@pytest.mark.parametrize("kind", ["q_learning", "dqn"])
def test_table_statistics_are_those_of_the_members_numbers(kind, ql_result, dqn_result):
    result = ql_result if kind == "q_learning" else dqn_result
    spec = result.spec
    num_logs = result.curves.shape[2]
    env_steps = (np.arange(num_logs) + 1) * (spec.config.num_steps // num_logs) * spec.config.num_envs
    assert not result.diverged.any()
    for c, row in enumerate(result.rows):
        finals = result.final_returns[c]
        assert row["final_return_mean"] == pytest.approx(np.mean(finals), rel=1e-12, abs=1e-15)
        assert row["final_return_std"] == pytest.approx(np.std(finals), rel=1e-12, abs=1e-15)
        low, high = row["final_return_ci_low"], row["final_return_ci_high"]
        # A bootstrap mean of n copies of one value may round an ulp past it.
        ulps = 1e-12 * max(1.0, float(np.abs(finals).max()))
        assert finals.min() - ulps <= low <= row["final_return_mean"] <= high <= finals.max() + ulps
        ref_low, ref_high = independent_bootstrap(finals)
        spread = finals.max() - finals.min()
        assert abs(low - ref_low) <= 0.05 * spread + 1e-12 and abs(high - ref_high) <= 0.05 * spread + 1e-12
        areas = [np.mean(curve[np.isfinite(curve)]) for curve in result.curves[c]]
        assert row["auc_mean"] == pytest.approx(np.mean(areas), rel=1e-12)
        assert row["auc_std"] == pytest.approx(np.std(areas), rel=1e-12, abs=1e-15)
        first = []
        for curve in result.curves[c]:
            crossed = [step for value, step in zip(curve, env_steps, strict=True) if value >= spec.threshold]
            first.append(crossed[0] if crossed else math.inf)
        assert row["seeds_reached"] == sum(math.isfinite(f) for f in first)
        median = float(np.median(first))
        assert row["steps_to_threshold"] == (median if math.isfinite(median) else None)
        assert row["diverged_seeds"] == 0 and row["failed"] is False
    best = max(result.rows, key=lambda r: r["final_return_mean"])
    assert result.best == best
    if kind == "q_learning":  # the threshold was chosen to give every case
        assert [r["seeds_reached"] for r in result.rows] == [0, 3, 2]
        assert result.rows[0]["steps_to_threshold"] is None


def test_the_table_of_hand_made_batch_numbers(tmp_path):
    """``tabulate`` and ``write_table`` on numbers written by hand: a curve that equals the threshold
    has reached it (``>=``); a diverged seed is NaN in ``final_returns`` and is left out of the
    statistics and of the mean curve in results.json; groups whose curves differ in length give
    ``curves=None``."""
    spec = resolve(grid={"num_steps": [200, 400]}, seeds=[0, 1], threshold=0.5)
    batches = [sweep_members.Batch(group=0, number=0, configs=[0]), sweep_members.Batch(group=1, number=1, configs=[1])]

    def numbers(config: int, curve: list[list[float]], finite: list[bool], final: list[float]) -> dict:
        logs = len(curve[0])
        return {
            "configs": np.array([config]),
            "final_return": np.array(final),
            "curve": np.array(curve),
            "env_steps": np.tile(np.arange(1, logs + 1) * 100, (2, 1)),
            "finite": np.array(finite),
        }

    done = {
        0: numbers(0, [[0.25, 0.5], [0.5, 0.75]], [True, True], [0.5, 0.75]),
        1: numbers(1, [[0.0, 0.75], [1.0, math.nan]], [True, False], [0.25, 1.0]),
    }
    result = sweep_stats.tabulate(spec, batches, done, tmp_path)
    first, second = result.rows
    # Seed 0 of configuration 0 reaches 0.5 exactly at its second record (step 200), seed 1 at its first.
    assert (first["seeds_reached"], first["steps_to_threshold"]) == (2, 150.0)
    assert first["final_return_mean"] == 0.625 and first["auc_mean"] == (0.375 + 0.625) / 2
    assert second["failed"] is True and second["diverged_seeds"] == 1 and second["seeds_reached"] == 1
    assert second["final_return_mean"] == 0.25 and second["auc_mean"] == 0.375
    assert np.isnan(result.final_returns[1, 1]) and result.diverged.tolist() == [[False, False], [False, True]]
    sweeps.write_table(result)
    members = json.loads((tmp_path / "results.json").read_text())["members"]
    assert members[0]["mean_curve"] == [0.375, 0.625]
    assert members[1]["mean_curve"] == [0.0, 0.75]  # the diverged seed is not averaged in
    assert members[1]["final_returns"] == [0.25, None]
    # Curves of another length in one group: no [C, S, L] array, the rows are the same.
    done[1] = numbers(1, [[0.0, 0.75, 0.75], [1.0, math.nan, 1.0]], [True, False], [0.25, 1.0])
    longer = sweep_stats.tabulate(spec, batches, done, None)
    assert longer.curves is None and longer.rows[0] == first and longer.rows[1]["final_return_mean"] == 0.25


def test_the_bootstrap_interval_is_a_95_percent_interval_of_the_mean():
    """With two or three seeds (the sweeps above) the interval is nearly the range; here the table's
    bootstrap on 12 skewed values agrees with an independent one and with the normal approximation."""
    values = np.random.default_rng(0).exponential(1.0, 12)
    stats = sweep_stats.mean_stats(values, resolve())
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(values.std(), rel=1e-12)
    ref_low, ref_high = independent_bootstrap(values)
    spread = values.max() - values.min()
    assert abs(stats["ci_low"] - ref_low) <= 0.02 * spread and abs(stats["ci_high"] - ref_high) <= 0.02 * spread
    half = 1.96 * values.std() / math.sqrt(len(values))
    assert stats["ci_low"] == pytest.approx(values.mean() - half, abs=0.3 * half)
    assert stats["ci_high"] == pytest.approx(values.mean() + half, abs=0.3 * half)
    # Reproducible: the resamples come from the sweep's sample_seed.
    assert sweep_stats.mean_stats(values, resolve()) == stats


def hand_mdp():
    """Two states, start in 0 with probability 3/4, a time limit of 4 steps.

    State 0: action 0 gives 1 and stays with probability 1/2, else moves to 1 for nothing; action 1
    ends the episode with 2. State 1: action 0 gives 1/2 and stays; action 1 ends it with 3.
    """
    outcomes = {
        (0, 0): [(0.5, 0, 1.0, False), (0.5, 1, 0.0, False)],
        (0, 1): [(1.0, 0, 2.0, True)],
        (1, 0): [(1.0, 1, 0.5, False)],
        (1, 1): [(1.0, 0, 3.0, True)],
    }
    mdp = tabular_mdp_from_numpy(*outcome_table(2, 2, outcomes), np.array([0.75, 0.25]))
    return jrl.make_tabular(mdp, 4, "Hand-v0"), outcomes


def expected_return(outcomes, policy, start, horizon) -> Fraction:
    """Exact expected undiscounted return over ``horizon`` steps, by recursion in fractions."""

    def value(state, steps_left):
        if steps_left == 0:
            return Fraction(0)
        total = Fraction(0)
        for p, nxt, reward, terminal in outcomes[(state, policy[state])]:
            p = Fraction(p)
            total += p * (Fraction(reward) + (0 if terminal else value(nxt, steps_left - 1)))
        return total

    return sum(Fraction(w) * value(s, horizon) for s, w in enumerate(start))


def test_exact_greedy_returns_of_a_hand_made_mdp():
    (env, params), outcomes = hand_mdp()
    # Greedy actions per state: [0, 0], [0, 1], [1, 0], [1, 1], and a table of ties (first maximal
    # action, as the greedy policy acts: [0, 0]).
    policies = [(0, 0), (0, 1), (1, 0), (1, 1)]
    tables = np.array([[[1.0, 0.0] if a == 0 else [0.0, 1.0] for a in p] for p in policies] + [np.zeros((2, 2))])
    exact = sweeps.exact_greedy_returns(env, params, tables.astype(np.float32))
    references = [expected_return(outcomes, p, [0.75, 0.25], 4) for p in [*policies, (0, 0)]]
    assert exact.dtype == np.float64
    assert list(exact) == [float(r) for r in references]
    # By hand: staying everywhere earns 1/2 a step whichever state it is in, 4 steps: 2; ending
    # at once: 3/4 * 2 + 1/4 * 3.
    assert exact[0] == 2.0 and exact[3] == 2.25


def test_exact_greedy_returns_agree_with_sampled_episodes():
    """A learned FrozenLake table: ``jrl.evaluate`` over 100,000 episodes, within 4 standard errors."""
    env, params = jrl.make("FrozenLake-v1")
    config = q_learning.default_config("FrozenLake-v1").replace(**QL["config"], alpha=0.5)
    q_table = jax.jit(q_learning.make_train(config, env, params))(jax.random.key(7)).q_table
    exact = sweeps.exact_greedy_returns(env, params, np.asarray(q_table)[None])[0]
    policy, policy_params = q_learning.greedy_policy(q_learning.QLearningResult(q_table, {}))
    returns = np.asarray(jrl.evaluate(jax.random.key(1), policy, policy_params, env, params, 100_000), np.float64)
    assert 0.1 < exact < 0.9  # a policy that sometimes wins: the comparison says something
    assert abs(returns.mean() - exact) < 4 * returns.std() / math.sqrt(len(returns))


# -- failure isolation -----------------------------------------------------------------------------

HUGE = "test/HugeReward-v0"


def huge_reward_env():
    """One state, both actions pay 1e38 and stay; episodes are cut at 5 steps (and bootstrap).
    Q-learning's values head to 1e38 / (1 - gamma): finite for gamma <= 0.5, beyond float32's
    3.4e38 for gamma = 0.99."""
    outcomes = {(0, 0): [(1.0, 0, 1e38, False)], (0, 1): [(1.0, 0, 1e38, False)]}
    return jrl.make_tabular(tabular_mdp_from_numpy(*outcome_table(1, 2, outcomes), np.array([1.0])), 5, HUGE)


@pytest.fixture
def huge_reward_registered():
    with registry.temporary_registry():
        jrl.register(HUGE, huge_reward_env)
        yield


def test_a_configuration_that_goes_non_finite_fails_alone(tmp_path, capsys, huge_reward_registered):
    out = tmp_path / "sweep"
    result = jrl.sweep(
        "q_learning", HUGE, {"num_envs": 4, "num_steps": 50, "alpha": 0.5}, grid={"gamma": [0.0, 0.99, 0.5]},
        seeds=3, out=out, progress=True,
    )  # fmt: skip
    ok, bad = [result.rows[0], result.rows[2]], result.rows[1]
    assert bad["failed"] is True and bad["diverged_seeds"] == 3
    assert bad["final_return_mean"] is None and bad["auc_mean"] is None
    assert np.isnan(result.final_returns[1]).all() and result.diverged[1].all()
    for row, c in zip(ok, (0, 2), strict=True):
        assert row["failed"] is False and row["diverged_seeds"] == 0
        # Greedy return of 5 steps of 1e38, exactly (float64 on the host).
        assert row["final_return_mean"] == 5 * float(np.float32(1e38)) and np.isfinite(result.final_returns[c]).all()
    assert result.best["index"] in (0, 2)
    # Recorded: CSV cells of the failed row are empty, the JSON has nulls; the end says it failed.
    table = json.loads((out / "results.json").read_text())
    assert table["rows"][1]["final_return_mean"] is None and table["rows"][1]["failed"] is True
    assert "1 configuration(s) failed" in capsys.readouterr().out


def test_a_diverged_seed_is_left_out_of_its_configurations_statistics(ql_result, monkeypatch):
    """One seed of the middle configuration is marked diverged where a batch's numbers come back
    (a NaN injected): only that configuration fails, and its statistics are those of the others."""
    real = sweep_members.run_batch

    def one_seed_diverges(*args):
        numbers = real(*args)
        numbers["finite"][1 * 3 + 2] = False  # configuration 1, seed 11
        return numbers

    monkeypatch.setattr(sweep_members, "run_batch", one_seed_diverges)
    result = run(QL)
    expected_diverged = np.zeros((3, 3), bool)
    expected_diverged[1, 2] = True
    assert np.array_equal(result.diverged, expected_diverged)
    assert np.isnan(result.final_returns[1, 2])
    row = result.rows[1]
    assert row["failed"] is True and row["diverged_seeds"] == 1
    finals = ql_result.final_returns[1, :2]
    assert row["final_return_mean"] == pytest.approx(finals.mean(), rel=1e-12)
    assert row["final_return_std"] == pytest.approx(finals.std(), rel=1e-12)
    areas = [np.nanmean(curve) for curve in ql_result.curves[1, :2]]
    assert row["auc_mean"] == pytest.approx(np.mean(areas), rel=1e-12)
    assert row["seeds_reached"] == 2  # the diverged seed reached the threshold, but does not count
    for c in (0, 2):
        assert result.rows[c] == ql_result.rows[c]
    assert result.best["index"] != 1  # alpha=0.5 is the best configuration, but it failed


# -- bad input: refused before anything compiles ---------------------------------------------------

BAD_INPUT = [
    (dict(grid={"alpah": [0.1]}), SweepError, r"no field 'alpah' \(did you mean 'alpha'\?\)"),
    (dict(grid={"alpha": [0.1], "gama": [0.9]}), SweepError, r"'gama'.*did you mean 'gamma'"),
    (dict(grid={}, sample={"alpha": "0.9:0.1"}, num_samples=2), SweepError, r"low < high.*low=0\.9, high=0\.1"),
    (dict(grid={}, sample={"alpha": "0.5:0.5"}, num_samples=2), SweepError, r"low < high.*low=0\.5, high=0\.5"),
    (dict(grid={}, sample={"alpha": "log:0:0.5"}, num_samples=2), SweepError, r"positive bounds.*low=0\.0"),
    (dict(grid={}, sample={"alpha": "log:-0.1:0.5"}, num_samples=2), SweepError, r"positive bounds.*low=-0\.1"),
    (dict(grid={}, sample={"alpha": "log:0.1"}, num_samples=2), SweepError, r"'low:high' or 'log:low:high'"),
    (dict(grid={"alpha": []}), SweepError, r"grid axis 'alpha' is empty"),
    (dict(grid={"alpha": 0.5}), SweepError, r"grid axis 'alpha' must be a list"),
    (dict(grid={}), SweepError, r"at least one axis"),
    (dict(seeds=0), SweepError, r"seeds must be at least 1, got 0"),
    (dict(seeds=-2), SweepError, r"seeds must be at least 1, got -2"),
    (dict(seeds=[]), ValueError, r"seed"),
    (dict(seeds=1.5), TypeError, r"seeds must be a count or a list"),
    (dict(num_samples=4), SweepError, r"num_samples=4 but no sample axis"),
    (dict(grid={}, sample={"alpha": "0.1:0.9"}), SweepError, r"sample axes need num_samples >= 1"),
    (dict(grid={"alpha": [0.1, 2.0]}), ValueError, r"alpha must be in \(0(\.0)?, 1(\.0)?\], got 2\.0"),
    (dict(grid={"gamma": [0.9, -1]}), ValueError, r"gamma .*got -1"),
    (dict(grid={"alpha": [0.1, 0.1]}), SweepError, r"repeats a value"),
    (dict(sample={"alpha": "0.1:0.9"}, num_samples=2), SweepError, r"both a grid axis and a sample axis"),
    (dict(grid={}, sample={"num_envs": "1:9"}, num_samples=2), SweepError, r"only numeric hyperparameters"),
    (dict(curve="return"), SweepError, r"curve must name a metric q_learning logs.*'greedy_value'.*got 'return'"),
    (dict(curve="loss"), SweepError, r"curve must name a metric q_learning logs"),
    (dict(grid={}, sample={"alpha": "0.5:1.5"}, num_samples=2), ValueError, r"alpha must be in .*got 1\.5"),
    (dict(grid={}, sample={"alpha": "0:0.5"}, num_samples=2), ValueError, r"alpha must be in .*got 0"),
    (dict(grid={}, sample={"gamma": "log:0.5:2"}, num_samples=2), ValueError, r"gamma must be in .*got 2"),
    (
        dict(settings=SweepSettings(batching=False, memory_budget=2**12)),
        SweepError,
        r"needs about .* MiB but the memory budget is .* batching is off",
    ),
    (dict(settings=SweepSettings(memory_budget=2**10)), SweepError, r"one configuration x 3 seeds needs about"),
]


@pytest.mark.parametrize(("changes", "error", "message"), BAD_INPUT)
def test_bad_input_is_refused_before_anything_compiles(changes, error, message, no_compiling):
    with pytest.raises(error, match=message):
        run(QL, **changes)


def test_sweep_settings_are_validated():
    with pytest.raises(ValueError, match="configs_per_batch"):
        SweepSettings(configs_per_batch=0)
    with pytest.raises(ValueError, match="devices"):
        SweepSettings(devices=len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="memory_budget"):
        SweepSettings(memory_budget=0)
    with pytest.raises(ValueError, match=r"configs_per_batch=2 cuts.*batching=False"):
        SweepSettings(configs_per_batch=2, batching=False)


def test_the_curve_is_a_metric_of_the_algorithm(no_compiling):
    dqn_spec = {k: v for k, v in DQN.items() if k not in ("algo", "env")}
    assert SweepSpec.resolve("dqn", "CartPole-v1", **{**dqn_spec, "curve": "loss"}).curve == "loss"
    with pytest.raises(SweepError, match=r"curve must name a metric dqn logs.*'loss'.*got 'greedy_value'"):
        SweepSpec.resolve("dqn", "CartPole-v1", **{**dqn_spec, "curve": "greedy_value"})
    assert resolve(curve="greedy_value").curve == "greedy_value"
    # An in-loop evaluation curve of a configuration that runs none would be NaN throughout.
    with pytest.raises(SweepError, match=r"curve='eval_return' needs eval_episodes > 0 in every configuration"):
        no_stops = {**dqn_spec["config"], "keep_best": False, "stop_return": None}  # those need evaluations
        SweepSpec.resolve("dqn", "CartPole-v1", **{**dqn_spec, "config": no_stops, "grid": {"eval_episodes": [2, 0]}})


def test_a_directory_in_the_way_is_refused(ql_dir, tmp_path, no_compiling):
    """With advice that fits what is there: only the same sweep can be resumed."""
    out, _ = ql_dir
    with pytest.raises(SweepError, match="holds this sweep already: continue it with `jrl resume"):
        run(QL, out=out, settings=SweepSettings(configs_per_batch=1))
    with pytest.raises(SweepError, match=r"holds another sweep .*: choose another --out"):
        run(QL, out=out, seeds=[3, 7])
    (tmp_path / "file").write_text("")
    with pytest.raises(SweepError, match="is a file: choose another --out"):
        run(QL, out=tmp_path / "file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("")
    with pytest.raises(SweepError, match="exists and is not empty: choose another --out"):
        run(QL, out=tmp_path / "full")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"sample": {"alpha": "log:1:0.1"}, "num_samples": 2}, r"sample axis 'alpha': .*low < high"),
        ({"sample": {"alpha": [0.1, 0.2]}, "num_samples": 2}, r"sample axis 'alpha': .*'low:high'"),
        ({"grid": 3}, r"grid must be a table of axis = \[values\], got 3"),
        ({"sample": "alpha"}, r"sample must be a table of axis = \"low:high\", got 'alpha'"),
        ({"config": 3}, r"config must be a config or a table of field = value, got 3"),
        ({"env_kwargs": [1]}, r"env_kwargs must be a table of name = value, got \[1\]"),
    ],
)
def test_a_sweep_file_s_errors_name_the_axis(data, message, no_compiling):
    with pytest.raises(SweepError, match=message):
        SweepSpec.from_dict({"algo": "q_learning", "env": "FrozenLake-v1", "grid": {"gamma": [0.9]}} | data)


# -- axes: samples, order, groups ------------------------------------------------------------------


def resolve(**changes) -> SweepSpec:
    kwargs = {k: v for k, v in {**QL, **changes}.items() if k not in ("algo", "env")}
    return SweepSpec.resolve(QL["algo"], QL["env"], **kwargs)


def test_random_samples_are_recorded_reproducible_and_in_range():
    sample = {"alpha": "log:0.001:0.5", "gamma": "0.5:0.99"}
    spec = resolve(grid={}, sample=sample, num_samples=400, sample_seed=123)
    points = spec.points()
    assert len(points) == 400 and spec.sample_seed == 123
    assert resolve(grid={}, sample=sample, num_samples=400, sample_seed=123).points() == points
    other = resolve(grid={}, sample=sample, num_samples=400, sample_seed=124).points()
    assert all(p["alpha"] != q["alpha"] and p["gamma"] != q["gamma"] for p, q in zip(points, other, strict=True))
    alpha = np.array([p["alpha"] for p in points])
    gamma = np.array([p["gamma"] for p in points])
    for values, low, high in ((alpha, 0.001, 0.5), (gamma, 0.5, 0.99)):
        assert np.all(values >= low) and np.all(values <= high)
        assert all(float(np.float32(v)) == v for v in values)  # what the config holds is what trains
        assert len(set(values)) == len(values)
    # Log-uniform: half the samples below the geometric mean; uniform: half below the middle.
    assert 0.4 < np.mean(alpha < math.sqrt(0.001 * 0.5)) < 0.6
    assert 0.4 < np.mean(gamma < 0.745) < 0.6
    assert np.corrcoef(np.log(alpha), gamma)[0, 1] ** 2 < 0.02  # the axes are drawn independently
    # Recorded: the TOML form gives the same spec (and points) back.
    again = SweepSpec.from_dict(spec.to_dict())
    assert again == spec and again.points() == points and spec.to_dict()["sample_seed"] == 123


def test_sample_ranges_parse_in_every_written_form():
    assert sweeps.Sample.parse("0.1:0.9") == sweeps.Sample(0.1, 0.9)
    assert sweeps.Sample.parse("uniform:0.1:0.9") == sweeps.Sample(0.1, 0.9, log=False)
    assert sweeps.Sample.parse("log:1e-4:1e-2") == sweeps.Sample(1e-4, 1e-2, log=True)
    assert str(sweeps.Sample(1e-4, 1e-2, log=True)) == "log:0.0001:0.01"


def test_the_recorded_spec_gives_the_spec_and_its_digest_back():
    """sweep.toml read back is the same spec with the same digest (what a resume checks the batch
    files against), whatever Python or NumPy numbers the axes and seeds were given as, None among
    them; and the digest follows the order of the axes, which decides the configurations."""
    specs = [
        resolve(grid={}, sample={"alpha": sweeps.Sample(0.25, 1), "gamma": "0:1"}, num_samples=2),
        resolve(grid={"log_interval": [None, 10]}),
        resolve(
            grid={"alpha": list(np.float32([0.25, 0.5])), "num_envs": list(np.arange(8, 10))},
            seeds=list(np.arange(2)),
            sample_seed=np.int64(3),
            threshold=np.float32(0.5),
        ),
    ]
    for spec in specs:
        again = SweepSpec.from_dict(tomllib.loads(spec.to_toml()))
        assert again == spec and again.digest() == spec.digest() and again.points() == spec.points()
    assert specs[1].points() == [{"log_interval": None}, {"log_interval": 10}]
    assert specs[2].points()[1] == {"alpha": 0.25, "num_envs": 9} and specs[2].seeds == (0, 1)
    assert resolve(seeds=np.int64(2)).seeds == (0, 1)
    for values in (np.array([0.25, 0.5]), jax.numpy.array([0.25, 0.5])):  # as gymnax users write them
        assert resolve(grid={"alpha": values}).grid == {"alpha": (0.25, 0.5)}
    with pytest.raises(SweepError, match=r"grid axis 'alpha' must be a list of values, got an array of shape \(1, 2\)"):
        resolve(grid={"alpha": np.array([[0.25, 0.5]])})
    grids = [{"alpha": [0.1, 0.5], "gamma": [0.9, 0.99]}, {"gamma": [0.9, 0.99], "alpha": [0.1, 0.5]}]
    samples = [{"alpha": "0.1:0.9", "gamma": "0.5:0.99"}, {"gamma": "0.5:0.99", "alpha": "0.1:0.9"}]
    for a, b in (
        [resolve(grid=grid) for grid in grids],
        [resolve(grid={}, sample=sample, num_samples=2) for sample in samples],
    ):
        assert a.points() != b.points() and a.digest() != b.digest()


def test_grid_order_is_row_major_in_the_order_given_with_samples_fastest():
    spec = resolve(grid={"gamma": [0.9, 0.99], "epsilon_end": [0.05, 0.1, 0.2]}, sample={"alpha": "0.1:0.9"},
                   num_samples=2, sample_seed=7)  # fmt: skip
    drawn = [s["alpha"] for s in spec.samples()]
    expected = [
        {"gamma": g, "epsilon_end": e, "alpha": a} for g in (0.9, 0.99) for e in (0.05, 0.1, 0.2) for a in drawn
    ]
    assert spec.points() == expected
    assert [(c.gamma, c.epsilon_end, c.alpha) for c in spec.configs()] == [tuple(p.values()) for p in expected]
    swapped = resolve(grid={"epsilon_end": [0.05, 0.1, 0.2], "gamma": [0.9, 0.99]})
    assert [(p["epsilon_end"], p["gamma"]) for p in swapped.points()] == [
        (e, g) for e in (0.05, 0.1, 0.2) for g in (0.9, 0.99)
    ]


def test_a_sampled_sweep_is_the_grid_sweep_of_the_values_drawn(ql_result):
    sampled = run(QL, grid={}, sample={"alpha": "log:0.05:0.9"}, num_samples=3, sample_seed=99)
    drawn = [p["alpha"] for p in sampled.spec.points()]
    assert [row["alpha"] for row in sampled.rows] == drawn
    as_grid = run(QL, grid={"alpha": drawn})
    assert_same_numbers(sampled, as_grid)
    assert not np.array_equal(sampled.final_returns, ql_result.final_returns)  # other alphas, other numbers


def test_axes_that_change_shapes_make_groups(ql_result, capsys):
    """num_envs x alpha: two groups, two compilations; each group's members are what a sweep of
    that group alone gives."""
    result = run(QL, grid={"num_envs": [8, 16], "alpha": [0.1, 0.5]}, progress=True)
    out = capsys.readouterr().out
    assert "2 group(s): 2 compilation(s)" in out
    # A batch holds at most its group's configurations (the budget would allow thousands), and each
    # group compiles once.
    assert out.count("1 batch(es) of 2 configuration(s)") == 2
    assert out.count("compiling group 0 (6 members)") == out.count("compiling group 1 (6 members)") == 1
    assert out.count("compiling ") == 2
    assert [(r["group"], r["num_envs"], r["alpha"]) for r in result.rows] == [
        (0, 8, 0.1), (0, 8, 0.5), (1, 16, 0.1), (1, 16, 0.5),
    ]  # fmt: skip
    eight = run(QL, config={**QL["config"], "num_envs": 8}, grid={"alpha": [0.1, 0.5]})
    for part, alone, configs in ((slice(0, 2), eight, [0, 1]), (slice(2, 4), ql_result, [0, 1])):
        assert np.array_equal(result.final_returns[part], alone.final_returns[configs])
        assert np.array_equal(result.curves[part], alone.curves[configs], equal_nan=True)
    assert not np.array_equal(result.final_returns[0:2], result.final_returns[2:4])
    # Steps to the threshold count the environment steps of each group's num_envs.
    assert result.rows[3]["steps_to_threshold"] == ql_result.rows[1]["steps_to_threshold"]


# -- resumption ------------------------------------------------------------------------------------


def copy_sweep(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for name in ("results.csv", "results.json"):
        (target / name).unlink()
    return target


def test_a_sweep_resumes_at_batch_granularity_to_the_same_files(ql_dir, tmp_path, monkeypatch):
    out, reference = ql_dir
    assert sorted(p.name for p in (out / "batches").iterdir()) == [f"batch-0000{i}.npz" for i in range(3)]
    # A lost batch is trained again, and only that one.
    again = copy_sweep(out, tmp_path / "lost")
    (again / "batches" / "batch-00001.npz").unlink()
    # A save killed before its rename (of a batch that is not trained again, so nothing overwrites it).
    (again / "batches" / ".batch-00002.npz.tmp.npz").write_bytes(b"half a batch")
    real, trained = sweep_members.run_batch, []
    monkeypatch.setattr(
        sweep_members,
        "run_batch",
        lambda group, batch, *args: trained.append(batch.number) or real(group, batch, *args),
    )
    result = resume_sweep(again, progress=False)
    assert trained == [1]
    assert sorted(p.name for p in (again / "batches").iterdir()) == [f"batch-0000{i}.npz" for i in range(3)]
    assert_same_numbers(result, reference)
    for name in ("results.csv", "results.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    sessions = records.read_json(again / "metadata.json")["sessions"]
    assert [s["batches_before"] for s in sessions] == [0, 2]


def test_an_interrupted_sweep_resumes_to_the_same_files(ql_dir, tmp_path, monkeypatch, interrupt_sweep_at_batch):
    out, _ = ql_dir
    interrupt_sweep_at_batch(3)
    with pytest.raises(KeyboardInterrupt):
        run(QL, out=tmp_path / "sweep", settings=SweepSettings(configs_per_batch=1))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "sweep" / "batches").iterdir()) == ["batch-00000.npz", "batch-00001.npz"]
    assert not (tmp_path / "sweep" / "results.csv").exists()
    resume_sweep(tmp_path / "sweep", progress=False)
    for name in ("results.csv", "results.json"):
        assert (tmp_path / "sweep" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_sweep_made_on_more_devices_resumes_on_fewer(ql_dir, tmp_path):
    out, _ = ql_dir
    again = copy_sweep(out, tmp_path / "sweep")
    metadata = records.read_json(again / "metadata.json")
    metadata["settings"]["devices"] = len(jax.devices()) + 1  # made where it had more
    records.write_json(again / "metadata.json", metadata)
    (again / "batches" / "batch-00001.npz").unlink()
    resume_sweep(again, progress=False)
    for name in ("results.csv", "results.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize(
    "damage", ["another sweep's digest", "other configurations", "not a batch file", "truncated", "empty"]
)
def test_a_batch_file_of_another_sweep_is_refused(damage, ql_dir, tmp_path, no_compiling):
    out, _ = ql_dir
    again = copy_sweep(out, tmp_path / "sweep")
    path = again / "batches" / "batch-00001.npz"
    with np.load(path) as data:
        numbers = {name: data[name] for name in data.files}
    if damage in ("not a batch file", "truncated", "empty"):
        text = {"not a batch file": b"not an npz", "truncated": path.read_bytes()[:100], "empty": b""}[damage]
        path.write_bytes(text)
        match = "batch-00001.npz is not a readable batch file"
    else:
        if damage == "another sweep's digest":
            numbers["spec_sha256"] = np.asarray(resolve(seeds=[3, 7, 12]).digest())
            match = "belongs to another sweep"
        else:
            numbers["configs"] = np.asarray([2])
            match = r"holds configurations \[2\], expected \[1\]"
        np.savez(path, **numbers)
    with pytest.raises(SweepError, match=match):
        resume_sweep(again, progress=False)
