"""What a run directory promises beyond kill-and-resume (``tests/test_experiment.py``): each seed is
that seed trained alone and evaluated on its documented key; checkpoints follow ``checkpoint_every``
and ``keep``; a seed that goes non-finite part-way is reported, marked and gives exit status 1."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.algorithms import q_learning
from jrl.envs import registry
from jrl.envs.probes import ProbeEnv, ProbeParams
from jrl.experiment import RunSettings, RunSpec, evaluation_key, load_run, train, train_key


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple:
    """``(run directory, summary, progress updates)`` of a Q-learning run on RandomMDP-v0 (random
    rewards: every seed's evaluation differs, so mixing seeds up shows): seeds 3 and 5, five one-interval chunks of 20 iterations x 8 environments, a checkpoint every second
    chunk and at the end, the newest two kept. Its progress updates ``(done, env_steps)`` are
    recorded as the runner makes them."""
    from jrl.experiment import runner
    from jrl.experiment.progress import Progress

    updates = []

    class Recording(Progress):
        def update(self, done, chunk_seconds, latest, env_steps=None):
            updates.append((done, env_steps))
            super().update(done, chunk_seconds, latest, env_steps)

    spec = RunSpec.resolve("q_learning", "RandomMDP-v0", [3, 5], {"num_steps": 100, "num_envs": 8, "log_interval": 20})
    settings = RunSettings(chunk_logs=1, checkpoint_every=2, keep=2, eval_episodes=50)
    out = tmp_path_factory.mktemp("runs") / "run"
    real, runner.Progress = runner.Progress, Recording
    try:
        summary = train(spec, out, settings, progress=False)
    finally:
        runner.Progress = real
    return out, summary, updates


def test_each_seed_of_a_run_is_that_seed_trained_alone_and_evaluated_on_its_key(small_run):
    """``Run.seed_state(state, i)`` (what `jrl eval`, `jrl plot` and `jrl generate` use) is seed
    ``i``'s own training, ``make_train(config, env, params)(key(seed))``, bit for bit, and the
    summary's evaluation is its greedy policy on ``evaluation_key(seed)``. Seeds 3 and 5, so that
    neither an index nor seed 0 can stand in for a seed."""
    directory, summary, _ = small_run
    run = load_run(directory)
    state, _ = run.load_checkpoint()
    alone = jax.jit(q_learning.make_train(run.spec.config, run.env, run.env_params))
    for index, seed in enumerate(run.spec.seeds):
        ours = run.algorithm.result(run.seed_state(state, index), {}).q_table
        result = alone(train_key(seed))
        assert np.array_equal(np.asarray(ours), np.asarray(result.q_table)), seed
        policy, params = q_learning.greedy_policy(result)
        stats = jrl.evaluate_episodes(evaluation_key(seed), policy, params, run.env, run.env_params, 50)
        evaluation = summary["per_seed"][str(seed)]["evaluation"]
        assert evaluation["mean_length"] == pytest.approx(np.mean(np.asarray(stats.lengths, np.float64)))
        assert evaluation["mean_return"] == pytest.approx(np.mean(np.asarray(stats.returns, np.float64)))


def test_checkpoints_follow_checkpoint_every_and_keep_and_the_last_chunk_is_always_saved(small_run, tmp_path):
    """Checkpoints after chunks 2, 4 and 5 (the end), the newest two kept. A config.toml edited
    afterwards is another run: its checkpoints are refused, not continued."""
    from jrl.experiment import CheckpointError, resume

    directory, _, _ = small_run
    kept = sorted(p.name for p in (directory / "checkpoints").iterdir())
    assert kept == ["ckpt-00000004", "ckpt-00000005"]
    copy = tmp_path / "run"
    shutil.copytree(directory, copy)
    config = copy / "config.toml"
    alpha = load_run(copy).spec.config.alpha
    config.write_text(config.read_text().replace(f"alpha = {alpha}\n", f"alpha = {alpha / 2}\n"))
    with pytest.raises(CheckpointError, match="belongs to another run: its spec_sha256"):
        resume(copy, progress=False)


def test_progress_counts_env_steps_per_seed_and_its_rate_over_every_seed(small_run, tmp_path, monkeypatch):
    """Each update gives the env steps per seed done so far, and the env steps the chunk took over
    both seeds (the rate's numerator): 20 iterations x 8 environments a chunk, x 2 seeds. A
    resumed session counts from its checkpoint, and ends with the uninterrupted summary."""
    from jrl.experiment import resume, runner
    from jrl.experiment.progress import Progress

    directory, summary, updates = small_run
    assert updates == [(160 * k, 2 * 160) for k in range(1, 6)]
    copy = tmp_path / "run"
    shutil.copytree(directory, copy)
    shutil.rmtree(copy / "checkpoints" / "ckpt-00000005")  # as if killed during the last chunk
    resumed = []

    class Recording(Progress):
        def update(self, done, chunk_seconds, latest, env_steps=None):
            resumed.append((done, env_steps))
            super().update(done, chunk_seconds, latest, env_steps)

    monkeypatch.setattr(runner, "Progress", Recording)
    assert resume(copy, progress=False) == summary
    assert resumed == [(800, 320)]


class _HugeReward(ProbeEnv):
    """A probe whose rewards are near float32's limit: DQN's targets overflow once it learns."""

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step_env(key, state, action, params)
        return obs, state, reward * 3e38, terminated, truncated, info


def test_a_seed_that_goes_non_finite_part_way_is_reported_marked_and_the_command_exits_1(tmp_path, monkeypatch, capsys):
    """Its first interval (before learning starts) is finite and later ones are not: the run
    warns once, summary.json marks the seed (not finite: not every interval was), and `jrl train`
    exits with status 1."""

    def factory():
        return _HugeReward("Truncation"), ProbeParams(max_steps_in_episode=jnp.int32(1))

    out = tmp_path / "run"
    sets = ["num_steps=200", "log_interval=50", "learning_starts=600", "eval_episodes=0", "stop_return=none"]
    argv = ["train", "--env", "test/HugeReward-v0", "--algo", "dqn", "--chunk-logs", "2", "--out", str(out)]
    with registry.temporary_registry():
        jrl.register("test/HugeReward-v0", factory)
        code = cli.main([*argv, *(a for s in sets for a in ("--set", s)), "--eval-episodes", "2"])
    printed = capsys.readouterr().out
    assert code == 1
    assert printed.count("warning: seed 0 produced non-finite values") == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["finite"] and not all(r["finite"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["finite"] and not summary["per_seed"]["0"]["finite"]


def test_a_run_file_is_overridden_by_the_flags_given_with_it(tmp_path):
    """`jrl train --config FILE --env ... --seeds ...`: what the command line says wins over the file,
    field by field; the file fills in the rest. No training: the resolved spec is the contract."""
    path = tmp_path / "run.toml"
    path.write_text('algo = "sarsa"\nenv = "FrozenLake-v1"\nseeds = [4, 6]\n[config]\nnum_steps = 300\nalpha = 0.2\n')
    spec = RunSpec.load(path, env="FrozenLake8x8-v1", seeds=[9], config={"alpha": 0.3})
    assert (spec.algo, spec.env, spec.seeds) == ("sarsa", "FrozenLake8x8-v1", (9,))
    assert (spec.config.num_steps, spec.config.alpha) == (300, 0.3)
    assert RunSpec.load(path).seeds == (4, 6)


@pytest.mark.parametrize(
    "seeds, error, match",
    [
        ([1, 1], ValueError, r"seeds must be distinct, got \[1, 1\]"),
        ([], ValueError, "at least one seed"),
        ([-1], ValueError, "seed must be"),
    ],
)
def test_seeds_are_checked(seeds, error, match):
    with pytest.raises(error, match=match):
        RunSpec.resolve("q_learning", "FrozenLake-v1", seeds)


def test_eval_prints_each_seed_s_summary_evaluation_and_their_mean(small_run, capsys):
    """`jrl eval RUN --episodes 50` scores every seed on its evaluation key, as the summary did:
    the same numbers, and a mean row that is their mean."""
    directory, summary, _ = small_run
    assert cli.main(["eval", str(directory), "--episodes", "50"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[2:]}
    means = []
    for seed in ("3", "5"):
        evaluation = summary["per_seed"][seed]["evaluation"]
        assert float(rows[seed][0]) == pytest.approx(
            evaluation["mean_return"], rel=1e-3, abs=1e-6
        )  # printed to 4 digits
        assert float(rows[seed][2]) == pytest.approx(evaluation["mean_length"], rel=1e-3)
        means.append(evaluation["mean_return"])
    assert float(rows["mean"][0]) == pytest.approx(np.mean(means), rel=1e-3, abs=1e-6)
