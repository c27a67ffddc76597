"""The rollout algorithms through the ``jrl`` command, as a user runs them: ``train`` (two seeds,
chunked, every checkpoint kept), ``resume`` after a kill to the uninterrupted run's bytes, ``eval``
in jrl's environment and in Gymnasium's own, and ``plot``.

PPO runs on Pendulum-v1 with observation normalisation: Box actions (the Gaussian policy) and
normalisation statistics that a checkpoint must carry, what DQN's and the Q-learning family's
command-line tests do not reach. PQN's state holds nothing those tests' states do not (parameters,
optimizer, environments, keys), so it is left to its chunk test (``test_pqn.py``) and the contract
test, to keep the suite's time. The config is tiny: this checks the plumbing, not learning.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from jrl import cli

RUNS = {
    "ppo": [
        "--env", "Pendulum-v1", "--set", "num_envs=4", "--set", "rollout_length=16", "--set", "num_steps=8",
        "--set", "num_minibatches=2", "--set", "num_epochs=1", "--set", "hidden_sizes=[8]",
        "--set", "normalize_observations=true", "--set", "eval_episodes=0", "--set", "stop_return=none",
        "--set", "log_interval=2",
    ],
}  # fmt: skip


def run_cli(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    assert code == 0, (argv, out.getvalue(), err.getvalue())
    return out.getvalue()


@pytest.fixture(scope="module", params=sorted(RUNS))
def trained(request, tmp_path_factory) -> tuple[str, Path]:
    """``jrl train`` of two seeds: 4 logging intervals in 4 chunks, every checkpoint kept."""
    algo = request.param
    run_dir = tmp_path_factory.mktemp(algo) / "run"
    train = ["train", "--algo", algo, *RUNS[algo], "--seeds", "2", "--chunk-logs", "1", "--keep", "10"]
    run_cli([*train, "--eval-episodes", "3", "--quiet", "--out", str(run_dir)])
    return algo, run_dir


def test_resume_after_a_kill_gives_the_uninterrupted_run(trained, tmp_path):
    """As if killed after the 2nd of 4 intervals: the later checkpoints and the summary gone."""
    _, run_dir = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    checkpoints = sorted((resumed / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == [f"ckpt-0000000{i}" for i in range(1, 5)]
    for path in checkpoints[2:]:
        shutil.rmtree(path)
    (resumed / "summary.json").unlink()
    run_cli(["resume", str(resumed), "--quiet"])
    for name in ("summary.json", "metrics.jsonl", "checkpoints/ckpt-00000004/header.json"):
        assert (resumed / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_the_run_records_every_interval_of_both_seeds(trained):
    algo, run_dir = trained
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted((row["seed"], row["log"]) for row in rows) == [(s, i) for s in (0, 1) for i in range(4)]
    assert [row["env_steps"] for row in rows if row["seed"] == 0] == [128, 256, 384, 512]  # 4 envs x 16 x 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == algo and sorted(summary["per_seed"]) == ["0", "1"]


def test_eval_scores_the_policy_in_jrl_and_in_gymnasium(trained):
    algo, run_dir = trained
    out = run_cli(["eval", str(run_dir), "--episodes", "2", "--gymnasium"])
    # One row per seed and their mean: jrl's mean return first, Gymnasium's last.
    means = [float(m) for m in re.search(r"^\s*mean\s+(-?[\d.]+)\s+(-?[\d.]+)$", out, re.M).groups()]
    assert algo == "ppo" and all(-3300 < m < 0 for m in means), out  # Pendulum: -16.3 per step at worst, 200 steps


def test_plot_draws_the_curves(trained, tmp_path):
    pytest.importorskip("matplotlib")
    _, run_dir = trained
    run_cli(["plot", str(run_dir), "--out", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").stat().st_size > 0
