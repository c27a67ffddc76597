"""``jrl.optuna_search``: Optuna's ask-and-tell with one vmapped call per batch of trials.

The reference for every number is ``jrl.sweep`` over the points the study proposed: a trial's
value must be that configuration's ``final_return_mean``, bit for bit (tabular Q-learning's
numbers do not depend on the batch a member trains in).
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
from test_sweep import HUGE, QL, compilation_cache_dir, huge_reward_registered  # noqa: F401 (fixtures)

import jrl
from jrl.experiment import SweepError, sweep_members

optuna = pytest.importorskip("optuna")  # in the dev extra: CI runs these
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"alpha": "log:0.01:1.0"}
SEARCH = dict(algo=QL["algo"], env=QL["env"], config=QL["config"], seeds=QL["seeds"], threshold=QL["threshold"])


def seeded_study(startup: int = 4):
    return optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=startup)
    )


@pytest.fixture(scope="module")
def traces():
    """Counts traces of the batch function (one per compilation) while the module's searches run."""
    count = {"n": 0}
    real = sweep_members.Group.train_members

    def counted(self, *args):
        count["n"] += 1
        return real(self, *args)

    sweep_members.Group.train_members = counted
    yield count
    sweep_members.Group.train_members = real


@pytest.fixture(scope="module")
def searched(traces, tmp_path_factory):
    """10 trials in batches of 4, 4 and 2 (padded to 4), against the sweep of their points."""
    out = tmp_path_factory.mktemp("search") / "out"
    study = jrl.optuna_search(
        seeded_study(), **SEARCH, space=SPACE, num_trials=10, trials_per_batch=4, out=out, progress=False
    )
    compilations = traces["n"]
    alphas = [trial.params["alpha"] for trial in study.trials]
    reference = jrl.sweep(**SEARCH, grid={"alpha": alphas}, progress=False)
    return study, reference, out, compilations


def test_every_trial_is_told_the_sweeps_numbers_for_its_point(searched):
    study, reference, _, _ = searched
    assert len(study.trials) == 10
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for trial, row, finals in zip(study.trials, reference.rows, reference.final_returns, strict=True):
        assert trial.value == row["final_return_mean"]
        assert trial.user_attrs["final_returns"] == finals.tolist()
        statistics = {k: v for k, v in row.items() if k not in ("index", "group", "alpha", "seeds", "failed")}
        assert {k: trial.user_attrs[k] for k in statistics} == statistics
        assert trial.user_attrs["diverged_seeds"] == 0 and trial.user_attrs["seeds_reached"] == row["seeds_reached"]
    assert len({t.value for t in study.trials}) > 3  # the proposals differ, and so do their returns
    # The space's "log:" range is a log-uniform distribution for Optuna.
    assert all(t.distributions == {"alpha": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)}
               for t in study.trials)  # fmt: skip
    # TPE, after 4 random trials, proposes from what it was told: the best is not a random draw's
    assert study.best_value == max(r["final_return_mean"] for r in reference.rows)


def test_the_search_compiles_once_for_every_batch(searched):
    assert searched[3] == 1


def test_the_trials_table_is_written(searched):
    study, _, out, _ = searched
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in rows] == list(range(10))
    for row, trial in zip(rows, study.trials, strict=True):
        assert float(row["alpha"]) == trial.params["alpha"] and float(row["value"]) == trial.value
        assert row["state"] == "COMPLETE" and int(row["seeds"]) == 3
        # Then the statistics a sweep's table has (empty where there is none).
        for name in ("final_return_mean", "final_return_ci_low", "auc_mean", "steps_to_threshold"):
            value = trial.user_attrs[name]
            assert row[name] == ("" if value is None else repr(value)), name
        assert int(row["seeds_reached"]) == trial.user_attrs["seeds_reached"]


def test_a_seeded_search_is_reproducible(searched):
    again = jrl.optuna_search(seeded_study(), **SEARCH, space=SPACE, num_trials=10, trials_per_batch=4, progress=False)
    first = searched[0]
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    assert [t.value for t in again.trials] == [t.value for t in first.trials]


@pytest.mark.usefixtures("huge_reward_registered")
def test_trials_whose_numbers_go_non_finite_fail_and_the_others_complete():
    # Every step pays 1e38: gamma above about 0.7 overflows float32 (see test_sweep's environment).
    config = {"num_envs": 4, "num_steps": 50, "alpha": 0.5}
    study = jrl.optuna_search(
        seeded_study(startup=8), "q_learning", HUGE, config, space={"gamma": "0.0:0.99"}, num_trials=8,
        trials_per_batch=8, seeds=2, progress=False,
    )  # fmt: skip
    gammas = [t.params["gamma"] for t in study.trials]
    reference = jrl.sweep("q_learning", HUGE, config, grid={"gamma": gammas}, seeds=2, progress=False)
    states = [t.state for t in study.trials]
    assert [s == optuna.trial.TrialState.FAIL for s in states] == [r["failed"] for r in reference.rows]
    assert optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.COMPLETE in states
    for trial, row in zip(study.trials, reference.rows, strict=True):
        if row["failed"]:
            assert trial.value is None and trial.user_attrs["diverged_seeds"] == 2
            assert trial.user_attrs["final_returns"] == [None, None]
        else:
            assert trial.value == row["final_return_mean"] == 5 * float(np.float32(1e38))


def test_a_trial_with_one_diverged_seed_fails(monkeypatch):
    """As a sweep marks a configuration with any diverged seed failed: one seed of trial 0 is marked
    non-finite where its batch's numbers come back; that trial fails, its other seeds are reported."""
    real = sweep_members.run_batch

    def one_seed_diverges(*args):
        numbers = real(*args)
        numbers["finite"][1] = False  # trial 0, its second seed
        return numbers

    monkeypatch.setattr(sweep_members, "run_batch", one_seed_diverges)
    study = jrl.optuna_search(seeded_study(), **SEARCH, space=SPACE, num_trials=4, trials_per_batch=4, progress=False)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL] + [optuna.trial.TrialState.COMPLETE] * 3
    failed = study.trials[0]
    assert failed.value is None and failed.user_attrs["diverged_seeds"] == 1
    finals = failed.user_attrs["final_returns"]
    assert finals[1] is None and finals[0] is not None and finals[2] is not None


def test_a_batch_larger_than_the_search_holds_its_trials_only(monkeypatch):
    """trials_per_batch above num_trials: the one batch is num_trials x seeds members, and only
    those must fit the memory budget (a trial: 38.5 KiB; 50,000 bytes hold one)."""

    def reached(self, mesh, size):
        raise RuntimeError(f"compiling {size} members")

    monkeypatch.setattr(sweep_members.Group, "compiled", reached)
    with pytest.raises(RuntimeError, match="compiling 3 members"):
        jrl.optuna_search(
            seeded_study(), **SEARCH, space=SPACE, num_trials=1, trials_per_batch=4, memory_budget=50_000,
            progress=False,
        )  # fmt: skip


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"space": {"num_envs": "1:8"}}, "only numeric hyperparameters can be sampled"),
        ({"space": {"alpah": "0.1:0.9"}}, "did you mean 'alpha'"),
        ({"space": {"alpha": "0.9:0.1"}}, "low < high"),
        ({"space": {"alpha": "log:0:0.5"}}, "positive bounds"),
        ({"space": {"alpha": "0.01:1.18"}}, r"sample axis 'alpha' \(0.01:1.18\) leaves the field's range.*got 1.18"),
        ({"space": {}}, "at least one numeric hyperparameter"),
        ({"num_trials": 0}, "num_trials"),
        ({"trials_per_batch": 0}, "trials_per_batch"),
        ({"seeds": 0}, "seeds must be at least 1"),
        ({"study": "minimize"}, "direction='maximize'"),
        ({"study": "not a study"}, "must be an optuna.Study"),
        ({"memory_budget": 1000}, "one trial x 3 seeds needs about"),
        ({"memory_budget": 50_000}, "lower trials_per_batch to 1 or less"),  # a trial: 38.5 KiB
        ({"memory_budget": 0}, "memory_budget"),
    ],
)
def test_bad_input_is_refused_before_anything_compiles(changes, message, traces):
    before = traces["n"]
    kwargs = dict(SEARCH, space=SPACE, num_trials=4, trials_per_batch=2, progress=False) | changes
    study = kwargs.pop("study", seeded_study())
    if study == "minimize":
        study = optuna.create_study(direction="minimize")
    with pytest.raises((SweepError, ValueError, TypeError), match=message):
        jrl.optuna_search(study, **kwargs)
    assert traces["n"] == before
    if not isinstance(study, str):
        assert len(study.trials) == 0


def test_a_batch_that_breaks_leaves_no_trial_running(monkeypatch):
    def broken(*args):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(sweep_members, "run_batch", broken)
    study = seeded_study()
    with pytest.raises(RuntimeError, match="out of memory"):
        jrl.optuna_search(study, **SEARCH, space=SPACE, num_trials=6, trials_per_batch=3, progress=False)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3


def test_an_output_directory_in_use_is_refused(tmp_path):
    (tmp_path / "something").write_text("")
    for out in (tmp_path, tmp_path / "something"):  # a directory with files, a file
        with pytest.raises(SweepError, match="exists already"):
            jrl.optuna_search(seeded_study(), **SEARCH, space=SPACE, num_trials=1, trials_per_batch=1, out=out)


def test_without_optuna_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ImportError, match=r"jrl-jax\[optuna\]"):
        jrl.optuna_search(None, **SEARCH, space=SPACE, num_trials=1, trials_per_batch=1)
