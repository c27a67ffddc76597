"""Runs that record themselves (``jrl.experiment`` and the ``jrl`` command): kill and resume bit for
bit, checkpoints that refuse to load when damaged or foreign, progress, records, bad input."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.experiment import CheckpointError, RunSettings, RunSpec, checkpoint, load_run, resume, train

# A DQN run on CartPole small enough for tests, with a 1M-transition replay buffer per seed (40 MB:
# a save takes long enough to be killed in the middle of it).
DQN_ARGS = [
    "--env", "CartPole-v1", "--algo", "dqn", "--seeds", "2", "--chunk-logs", "1",
    "--set", "num_steps=1200", "--set", "log_interval=200", "--set", "learning_starts=500",
    "--set", "buffer_size=1000000", "--set", "hidden_sizes=[32]", "--set", "eval_episodes=4",
    "--set", "stop_return=none", "--eval-episodes", "10",
]  # fmt: skip


def dqn_spec() -> RunSpec:
    overrides = dict(
        cli.parse_assignment(RunSpec.resolve("dqn", "CartPole-v1").config.__class__, a) for a in DQN_ARGS[9:20:2]
    )
    return RunSpec.resolve("dqn", "CartPole-v1", 2, overrides)


def jrl_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from jrl.cli import entry_point; entry_point()", *args]


def leaves(checkpoint_dir: Path) -> dict[str, str]:
    header = json.loads((checkpoint_dir / "header.json").read_text())
    return {leaf["path"]: leaf["sha256"] for leaf in header["leaves"]}


def wait_for(predicate, timeout: float = 120.0, poll: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not get there in time")
        time.sleep(poll)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """The uninterrupted run, in this process (same code, same compiled program as the CLI's)."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    train(dqn_spec(), out, RunSettings(chunk_logs=1, eval_episodes=10), progress=False)
    return out


def assert_same_run(run: Path, reference: Path) -> None:
    assert (run / "summary.json").read_bytes() == (reference / "summary.json").read_bytes()
    assert (run / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    final = checkpoint.latest(reference / "checkpoints")
    assert final.name == checkpoint.latest(run / "checkpoints").name == "ckpt-00000006"
    assert leaves(run / "checkpoints" / final.name) == leaves(final)  # every leaf's sha256: parameters,
    # optimizer, replay buffer, environments, keys


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["after a checkpoint", "during a save"])
def test_killed_run_resumes_to_the_uninterrupted_result_bit_for_bit(moment, tmp_path, reference_run):
    out = tmp_path / "run"
    process = subprocess.Popen(jrl_command("train", *DQN_ARGS, "--out", str(out)), stdout=subprocess.DEVNULL)
    try:
        if moment == "after a checkpoint":
            wait_for(lambda: (out / "checkpoints" / "ckpt-00000002").is_dir())
        else:  # a temporary checkpoint directory with some leaves written, not yet renamed
            wait_for(lambda: any((out / "checkpoints").glob(".tmp-ckpt-*/leaves/00003.npy")))
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    if moment == "during a save":
        assert list((out / "checkpoints").glob(".tmp-ckpt-*"))  # the kill did interrupt a save
    assert not (out / "summary.json").exists()
    result = subprocess.run(jrl_command("resume", str(out)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not list((out / "checkpoints").glob(".tmp-*"))
    assert_same_run(out, reference_run)


def test_progress_is_printed_and_every_interval_of_every_seed_is_recorded(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--env", "FrozenLake-v1", "--algo", "sarsa", "--seeds", "3", "--set", "num_steps=400"]
    result = subprocess.run(
        jrl_command(*args, "--set", "num_envs=64", "--out", str(out)), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "compiling init ..." and lines[1].startswith("compiled init in")
    assert lines[2].startswith("compiling 10 logging interval(s) x 3 seed(s)")
    updates = [line for line in lines if "/25,600 env steps per seed (" in line]
    done = [int(line.split("/")[0].replace(",", "")) for line in updates]
    assert done == [2560 * k for k in range(1, 11)]  # 64 envs x 40 steps per chunk, ten chunks
    # The rate is over every seed trained: env steps are per seed in the counts, all seeds in the rate.
    assert all(", 3 seeds: " in line and " env steps/s, mean return " in line and "ETA" in line for line in updates)
    assert lines[-1].startswith(f"done: {out} (3 seed(s)")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["seed"], r["log"]) for r in rows) == [(s, i) for s in range(3) for i in range(100)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and summary["finite"]
    assert summary["per_seed"]["2"]["final"]["greedy_value"] == rows[-1]["greedy_value"]
    config = (out / "config.toml").read_text()
    assert 'algo = "sarsa"' in config and 'algorithm = "sarsa"' in config
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["command"][1:4] == ["train", "--env", "FrozenLake-v1"]
    assert set(metadata["versions"]) == {"jrl", "jax", "jaxlib", "flax", "optax", "numpy", "python"}
    assert metadata["versions"]["jrl"] == jrl.__version__
    checkout = subprocess.run(["git", "-C", str(Path(jrl.__file__).parent), "rev-parse", "HEAD"], capture_output=True)
    if checkout.returncode == 0:  # jrl runs from a git checkout: the run records its commit
        assert metadata["git"]["commit"] == checkout.stdout.decode().strip()
    assert metadata["jax_backend"] == "cpu" and metadata["devices"] and metadata["processor"]
    assert len(metadata["sessions"]) == 1 and metadata["sessions"][0]["compile_seconds"] > 0


# --- checkpoints that must be refused --------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "small"
    spec = RunSpec.resolve("q_learning", "FrozenLake-v1", 2, {"num_steps": 200, "num_envs": 16})
    train(spec, out, RunSettings(chunk_logs=50, eval_episodes=5), progress=False)
    return out


def damaged_copy(small_run: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_run, copy)
    return copy


def rewrite_header(ckpt: Path, **changes) -> None:
    header = json.loads((ckpt / "header.json").read_text())
    header.update(changes)
    header["header_sha256"] = checkpoint.header_digest(header)
    (ckpt / "header.json").write_text(json.dumps(header))


def test_a_clean_checkpoint_loads_to_the_state_it_saved(small_run):
    run = load_run(small_run)
    state, log_index = run.load_checkpoint()
    header = json.loads((checkpoint.latest(small_run / "checkpoints") / "header.json").read_text())
    assert header["jrl_version"] == jrl.__version__
    assert log_index == 100 and state.q_a.shape == (2, 16, 4) and state.log_index.shape == ()
    # The run's seeds are make_train vmapped over key(seed), bit for bit.
    from jrl.algorithms import q_learning
    from jrl.experiment import train_keys

    expected = jax.jit(jax.vmap(q_learning.make_train(run.spec.config, run.env, run.env_params)))(train_keys([0, 1]))
    np.testing.assert_array_equal(np.asarray(state.q_a), np.asarray(expected.q_table))
    rows = [json.loads(line) for line in (small_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["greedy_value"] for r in rows if r["seed"] == 1] == expected.metrics["greedy_value"][1].tolist()
    summary = json.loads((small_run / "summary.json").read_text())
    assert summary["per_seed"]["0"]["logs"] == 100


@pytest.mark.parametrize(
    "damage, fragment",
    [
        ("truncate a leaf", "does not match its checksum"),
        ("flip a byte of a leaf", "does not match its checksum"),
        ("flip a byte of the header", "header.json is damaged"),
        ("edit the header, still valid JSON", "header.json is damaged: its checksum does not match"),
        ("drop the header's checksum", "header.json is damaged: its checksum does not match"),
        ("delete a leaf", "is incomplete"),
        ("another config", "belongs to another run: its spec_sha256"),
        ("another algorithm", "belongs to another run: its algorithm is 'dqn'"),
        ("another format version", "format version 2; this jrl reads version 1 only"),
        ("another format", "its header does not say format 'jrl-checkpoint'"),
        ("no algorithm in the header", "belongs to another run: its algorithm is None"),
        ("another state structure", "holds a different state structure"),
        ("a leaf of another shape", ".q_a is float32"),
        ("a leaf of another dtype", ".q_a is float64"),
        ("a directory in place of a leaf", "is incomplete"),
        ("not a checkpoint", "has no header.json"),
    ],
)
def test_damaged_or_foreign_checkpoints_are_refused(damage, fragment, small_run, tmp_path):
    copy = damaged_copy(small_run, tmp_path)
    ckpt = checkpoint.latest(copy / "checkpoints")
    leaf = ckpt / "leaves" / "00000.npy"
    if damage == "truncate a leaf":
        leaf.write_bytes(leaf.read_bytes()[:-7])
    elif damage == "flip a byte of a leaf":
        data = bytearray(leaf.read_bytes())
        data[-3] ^= 0x40
        leaf.write_bytes(bytes(data))
    elif damage == "flip a byte of the header":
        data = bytearray((ckpt / "header.json").read_bytes())
        data[data.index(b'"log_index": ') + 13] ^= 0x01
        (ckpt / "header.json").write_bytes(bytes(data))
    elif damage == "edit the header, still valid JSON":  # what a hand edit does: the JSON parses, the sum is stale
        header = json.loads((ckpt / "header.json").read_text())
        header["log_index"] -= 1
        (ckpt / "header.json").write_text(json.dumps(header))
    elif damage == "drop the header's checksum":
        header = json.loads((ckpt / "header.json").read_text())
        del header["header_sha256"]
        (ckpt / "header.json").write_text(json.dumps(header))
    elif damage == "delete a leaf":
        leaf.unlink()
    elif damage == "another config":
        rewrite_header(ckpt, spec_sha256="0" * 64)
    elif damage == "another algorithm":
        rewrite_header(ckpt, algorithm="dqn")
    elif damage == "another format version":
        rewrite_header(ckpt, format_version=2)
    elif damage == "not a checkpoint":
        (ckpt / "header.json").unlink()
    elif damage == "another format":
        rewrite_header(ckpt, format="npz")
    elif damage == "no algorithm in the header":  # a missing field is not a match
        header = json.loads((ckpt / "header.json").read_text())
        del header["algorithm"]
        header["header_sha256"] = checkpoint.header_digest(header)
        (ckpt / "header.json").write_text(json.dumps(header))
    elif damage == "another state structure":
        header = json.loads((ckpt / "header.json").read_text())
        header["leaves"][0]["path"] = ".q_renamed"
        rewrite_header(ckpt, leaves=header["leaves"])
    elif damage in ("a leaf of another shape", "a leaf of another dtype"):
        # A well-formed array with its checksum updated: only the shape and dtype checks can refuse it.
        header = json.loads((ckpt / "header.json").read_text())
        index = next(i for i, entry in enumerate(header["leaves"]) if entry["path"] == ".q_a")
        q_a = ckpt / header["leaves"][index]["file"]
        saved = np.load(q_a)
        np.save(q_a, saved[:, :, :3] if damage == "a leaf of another shape" else saved.astype(np.float64))
        header["leaves"][index]["sha256"] = checkpoint.file_digest(q_a)
        rewrite_header(ckpt, leaves=header["leaves"])
    elif damage == "a directory in place of a leaf":
        leaf.unlink()
        leaf.mkdir()
    with pytest.raises(CheckpointError, match=fragment):
        load_run(copy).load_checkpoint()
    # The command line says the same in one line, exit status 2.
    code, err = run_cli(["eval", str(copy)])
    assert code == 2 and fragment.split(":")[0] in err and len(err.strip().splitlines()) == 1


def test_save_keeps_the_newest_checkpoints_and_lists_only_complete_ones(tmp_path):
    """``checkpoint.save`` on a small state: ``keep``, a log index saved again, a stale temporary
    directory of this process, and ``checkpoints`` / ``latest`` ignoring what is not a checkpoint."""
    directory = tmp_path / "checkpoints"

    def state(value: float) -> dict:
        # A key of another implementation than the default: its implementation is saved and restored.
        return {"w": np.full(3, value, np.float32), "key": jax.random.key(7, impl="rbg"), "n": np.int32(value)}

    for log_index in range(1, 6):
        checkpoint.save(directory, state(log_index), log_index=log_index, meta={"algorithm": "x"}, keep=3)
    (directory / "zz-notes").mkdir()  # sorts after every checkpoint: not one
    (directory / ".tmp-ckpt-00000009-1").mkdir()  # a save killed before its rename
    names = ["ckpt-00000003", "ckpt-00000004", "ckpt-00000005"]
    assert [p.name for p in checkpoint.checkpoints(directory)] == names
    assert checkpoint.latest(directory).name == "ckpt-00000005"
    # The same log index saved again (a resumed run) replaces it; a stale temporary directory of
    # this process's id is cleared first.
    stale = directory / f".tmp-ckpt-00000005-{os.getpid()}" / "leaves"
    stale.mkdir(parents=True)
    (stale / "00000.npy").write_bytes(b"junk")
    checkpoint.save(directory, state(50.0), log_index=5, meta={"algorithm": "x"}, keep=3)
    assert [p.name for p in checkpoint.checkpoints(directory)] == names and not stale.parent.exists()
    loaded, header = checkpoint.load(directory / names[-1], state(0.0), expect={"algorithm": "x"})
    np.testing.assert_array_equal(loaded["w"], np.full(3, 50.0, np.float32))
    assert int(loaded["n"]) == 50 and header["log_index"] == 5
    original = jax.random.key(7, impl="rbg")
    np.testing.assert_array_equal(jax.random.key_data(loaded["key"]), jax.random.key_data(original))
    assert jax.random.key_impl(loaded["key"]) == jax.random.key_impl(original)


class _Payload:
    """Unpickling this would run ``touch MARKER``: a checkpoint loader that unpickles is caught."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_files_are_refused_and_never_executed(small_run, tmp_path):
    marker = tmp_path / "executed"
    _Payload.marker = str(marker)
    pickled = tmp_path / "state.pkl"
    pickled.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError, match=r"is not a jrl checkpoint.*never loads pickle"):
        load_run(small_run).load_checkpoint(pickled)
    # A leaf replaced by a pickled object array, its checksum updated to match: still refused.
    copy = damaged_copy(small_run, tmp_path)
    ckpt = checkpoint.latest(copy / "checkpoints")
    leaf = ckpt / "leaves" / "00000.npy"
    np.save(leaf, np.array([_Payload()], dtype=object), allow_pickle=True)
    header = json.loads((ckpt / "header.json").read_text())
    header["leaves"][0]["sha256"] = checkpoint.file_digest(leaf)
    rewrite_header(ckpt, leaves=header["leaves"])
    with pytest.raises(CheckpointError, match="is not a plain array file"):
        load_run(copy).load_checkpoint()
    assert not marker.exists()


def test_resume_of_a_finished_run_gives_the_same_summary(small_run, tmp_path):
    copy = damaged_copy(small_run, tmp_path)
    resume(copy, progress=False)
    assert (copy / "summary.json").read_bytes() == (small_run / "summary.json").read_bytes()


# --- the command line ------------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--env", "Taxi-v4", "--algo", "q_learning", "--bogus"], "unrecognized arguments: --bogus"),
        (
            ["train", "--env", "Taxi-v4", "--algo", "q_learning", "--set", "alhpa=0.1"],
            "has no field 'alhpa' (did you mean 'alpha'?)",
        ),
        (
            ["train", "--env", "Taxi-v4", "--algo", "q_learning", "--set", "num_envs=many"],
            "--set num_envs=many: num_envs must be of type int, got 'many'",
        ),
        (
            ["train", "--env", "Taxi-v4", "--algo", "q_learning", "--set", "alpha=2"],
            "alpha must be in (0.0, 1.0], got 2.0",
        ),
        (
            ["train", "--env", "Taxi-v9", "--algo", "q_learning"],
            "unknown environment id 'Taxi-v9'. Did you mean 'Taxi-v4'?",
        ),
        (
            ["train", "--env", "Taxi-v4", "--algo", "qlearning"],
            "unknown algorithm 'qlearning'. Did you mean 'q_learning'?",
        ),
        (["train", "--env", "CartPole-v1", "--algo", "sarsa"], "CartPole-v1 is not tabular: use --algo dqn"),
        (["train", "--env", "Taxi-v4", "--algo", "q_learning", "--seeds", "0"], "seeds must be in [1, 1048576], got 0"),
        (["train", "--env", "Taxi-v4", "--algo", "q_learning", "--config", "/nonexistent.toml"], "no such file"),
        (["train", "--algo", "q_learning"], "the run needs --env"),
        (["resume", "/"], "is not a jrl run directory"),
        (["eval", "/tmp"], "is not a jrl run directory"),
        (["plot", "/tmp"], "is not a jrl run directory"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, fragment):
    code, err = run_cli(argv)
    assert code == 2
    assert err.startswith("jrl") and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_output_directory_that_cannot_be_written_or_exists_is_refused(tmp_path, small_run):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = run_cli(["train", "--env", "Taxi-v4", "--algo", "q_learning", "--out", str(blocker / "run")])
    assert code == 2 and "cannot write the run directory" in err
    code, err = run_cli(["train", "--env", "FrozenLake-v1", "--algo", "q_learning", "--out", str(small_run)])
    assert code == 2 and "exists already: continue it with `jrl resume" in err


def test_the_console_script_exits_2_without_a_traceback():
    result = subprocess.run(jrl_command("train", "--env", "Nope-v0", "--algo", "dqn"), capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("jrl train: error: unknown environment id 'Nope-v0'")
    assert "Traceback" not in result.stderr


def test_every_subcommand_has_help(capsys):
    for command in ("train", "resume", "eval", "envs", "plot"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: jrl {command}" in capsys.readouterr().out


def test_set_values_are_parsed_from_the_config_dataclass():
    from jrl.algorithms import dqn

    assert cli.parse_assignment(dqn.DQNConfig, "hidden_sizes=[64, 32]") == ("hidden_sizes", (64, 32))
    assert cli.parse_assignment(dqn.DQNConfig, "loss=mse") == ("loss", "mse")
    assert cli.parse_assignment(dqn.DQNConfig, "learning_rate=1e-3") == ("learning_rate", 1e-3)
    assert cli.parse_assignment(dqn.DQNConfig, "gamma=1") == ("gamma", 1.0)
    assert cli.parse_assignment(dqn.DQNConfig, "stop_return=none") == ("stop_return", None)
    assert cli.parse_assignment(dqn.DQNConfig, "double_dqn=false") == ("double_dqn", False)


def test_envs_eval_plot_and_tensorboard(tmp_path, small_run, capsys):
    assert cli.main(["envs"]) == 0
    table = capsys.readouterr().out
    assert "CartPole-v1" in table and "q_learning*" in table and "Discrete(500)" in table
    assert cli.main(["eval", str(small_run), "--episodes", "20", "--gymnasium"]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "gymnasium" in out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in ("0", "1")]
    assert len(rows) == 2 and all(0.0 <= float(r[1]) <= 1.0 and 0.0 <= float(r[4]) <= 1.0 for r in rows)
    with warnings.catch_warnings():  # intervals with no evaluation in any seed plot as gaps, silently
        warnings.simplefilter("error", RuntimeWarning)
        assert cli.main(["plot", str(small_run), "--out", str(tmp_path / "curves.png")]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / "curves.png"), str(small_run / "policy.png")]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    out = tmp_path / "tb"
    code = cli.main(
        [
            "train",
            "--env",
            "FrozenLake-v1",
            "--algo",
            "q_learning",
            "--set",
            "num_steps=100",
            "--tensorboard",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_run_spec_keys_follow_the_documented_rule():
    from jrl.experiment import evaluation_key, train_key

    assert np.array_equal(jax.random.key_data(train_key(7)), jax.random.key_data(jax.random.key(7)))
    expected = jax.random.fold_in(jax.random.key(7), 1)
    assert np.array_equal(jax.random.key_data(evaluation_key(7)), jax.random.key_data(expected))


def test_the_package_reaches_the_experiment_floor_by_name():
    """``import jrl`` leaves the experiment floor unloaded (tests/test_architecture.py reads that
    from the imports; a fresh process shows it); ``jrl.sweep`` and ``jrl.optuna_search`` load it on
    first use, and ``dir`` and ``__all__`` list them."""
    script = (
        "import sys, jrl\n"
        "assert 'jrl.experiment' not in sys.modules, sorted(m for m in sys.modules if m.startswith('jrl.'))\n"
        "assert {'sweep', 'optuna_search'} <= set(dir(jrl))\n"
        "from jrl import sweep\n"
        "assert 'jrl.experiment' in sys.modules and sweep is jrl.experiment.sweep\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import jrl.experiment

    assert jrl.sweep is jrl.experiment.sweep and jrl.optuna_search is jrl.experiment.optuna_search
    assert all(hasattr(jrl, name) for name in jrl.__all__) and {"sweep", "optuna_search"} <= set(jrl.__all__)
    with pytest.raises(AttributeError, match="module 'jrl' has no attribute 'swep'"):
        jrl.swep  # noqa: B018
