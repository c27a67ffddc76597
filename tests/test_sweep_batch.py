"""Sweep plumbing: the compiled batch computes only what its table reads; run_sweep_file."""

import jax
import numpy as np
import pytest

import jrl
from jrl import parallel
from jrl.experiment import sweep_members, sweeps


def _group_and_args(spec):
    env, env_params = jrl.make(spec.env)
    ((static, indices),) = spec.groups()
    group = sweep_members.Group(spec, static, indices, env, env_params)
    members = len(indices) * len(spec.seeds)
    key_data = np.zeros((members, *parallel.key_data_shape()), np.uint32)
    hyper = jax.tree_util.tree_map(lambda *xs: np.asarray(xs, np.float32), *group.hyperparams)
    hyper = jax.tree_util.tree_map(lambda x: np.repeat(x, len(spec.seeds)), hyper)
    return group, (key_data, hyper, key_data)


def test_the_batch_returns_only_the_table_s_metrics_and_drops_the_greedy_value_solve():
    # Tabular Q-learning logs greedy_value, a linear solve per logging interval; a sweep does not
    # read it, so the compiled batch must not compute it (it made a Taxi sweep with 100 logging
    # intervals about 100x slower than its training).
    spec = sweeps.SweepSpec.resolve(
        "q_learning", "FrozenLake-v1", grid={"alpha": [0.1, 0.5]}, seeds=2, config={"num_envs": 2, "num_steps": 20}
    )
    group, args = _group_and_args(spec)
    shapes = jax.eval_shape(group.train_members, *args)
    assert set(shapes["metrics"]) == {"episode_return", "finite", "step"}
    hlo = jax.jit(group.train_members).lower(*args).compile().as_text().lower()
    assert "getrf" not in hlo  # LAPACK LU, the solve


def test_run_sweep_file_starts_continues_and_refuses_another_sweep(tmp_path):
    from jrl.experiment.harness import run_sweep_file

    path = tmp_path / "sweep.toml"
    path.write_text(
        'algo = "q_learning"\nenv = "FrozenLake-v1"\nseeds = 2\n'
        "[config]\nnum_envs = 2\nnum_steps = 20\n[grid]\nalpha = [0.1, 0.5]\n"
    )
    out = tmp_path / "out"
    first = run_sweep_file(path, out, progress=False)
    again = run_sweep_file(path, out, progress=False)  # every batch on disk: read back, nothing trained
    np.testing.assert_array_equal(first.final_returns, again.final_returns)
    assert len((out / "metadata.json").read_text()) > 0
    with pytest.raises(sweeps.SweepError, match="another sweep"):
        run_sweep_file(path, out, progress=False, seeds=3)
