"""``jrl sweep``, ``jrl resume`` and ``jrl plot`` on sweep directories (see ``docs/sweeps.md``):
the table and the best line, one-line errors before anything compiles, resumption at batch
granularity, the device and host flags, the figures."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jrl import cli
from jrl.algorithms import dqn, q_learning
from jrl.experiment import sweeps

# Tiny: 4 configurations x 3 seeds of 16 environments x 200 steps (about 5 s, mostly compiling).
BASE = ["--env", "FrozenLake-v1", "--algo", "q_learning", "--set", "num_envs=16", "--set", "num_steps=200"]
AXES = ["--grid", "alpha=0.1,0.5", "--grid", "gamma=0.9,0.99", "--seeds", "3", "--threshold", "0.3"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def jrl_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from jrl.cli import entry_point; entry_point()", *args]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    """A finished sweep, one configuration per batch (so there are batches to lose), and its stdout."""
    out = tmp_path_factory.mktemp("sweeps") / "frozen_lake"
    code, stdout, stderr = run_cli(["sweep", *BASE, *AXES, "--configs-per-batch", "1", "--out", str(out)])
    assert code == 0, stderr
    return out, stdout


def test_sweep_writes_the_table_and_prints_the_best_configuration(finished):
    out, stdout = finished
    lines = stdout.splitlines()
    assert lines[0].startswith("sweep: 4 configuration(s) x 3 seed(s) = 12 trainings of q_learning on FrozenLake-v1")
    assert "in 4 batch(es)" in lines[0] and "1 compilation(s)" in lines[0]
    assert "estimated memory per configuration" in lines[1]
    results = json.loads((out / "results.json").read_text())
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(float(r["alpha"]), float(r["gamma"])) for r in rows] == [(0.1, 0.9), (0.1, 0.99), (0.5, 0.9), (0.5, 0.99)]
    assert [float(r["final_return_mean"]) for r in rows] == [r["final_return_mean"] for r in results["rows"]]
    assert all(r["failed"] == "False" and r["seeds"] == "3" for r in rows)
    best = max(results["rows"], key=lambda r: r["final_return_mean"])
    assert results["best"] == best
    assert lines[-2].startswith(
        f"best: alpha={best['alpha']}, gamma={best['gamma']}: final return {best['final_return_mean']:.4g} +- "
    )
    assert lines[-1] == f"results: {out / 'results.csv'} {out / 'results.json'}"
    assert sorted(p.name for p in (out / "batches").iterdir()) == [f"batch-0000{i}.npz" for i in range(4)]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["settings"]["configs_per_batch"] == 1 and len(metadata["sessions"]) == 1
    assert metadata["settings"]["memory_budget"] > 0  # as resolved: a resumed sweep cuts the same batches
    spec = sweeps.SweepSpec.load(out / "sweep.toml")
    assert spec.seeds == (0, 1, 2) and spec.grid == {"alpha": (0.1, 0.5), "gamma": (0.9, 0.99)}
    assert spec.config.num_envs == 16 and spec.threshold == 0.3


def test_resume_retrains_a_lost_batch_to_the_same_table(finished, tmp_path):
    out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "batches" / "batch-00002.npz").unlink()
    (copy / "results.csv").unlink()
    code, stdout, stderr = run_cli(["resume", str(copy), "--quiet"])
    assert code == 0, stderr
    assert stdout.splitlines()[0].startswith("best: alpha=") and stdout.splitlines()[1].startswith("results: ")
    assert (copy / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    assert (copy / "results.json").read_bytes() == (out / "results.json").read_bytes()
    sessions = json.loads((copy / "metadata.json").read_text())["sessions"]
    assert [s["batches_before"] for s in sessions] == [0, 3]


def test_an_interrupted_sweep_says_which_directory_to_resume_and_records_the_session(
    finished, tmp_path, monkeypatch, interrupt_sweep_at_batch
):
    out, _ = finished
    monkeypatch.chdir(tmp_path)  # the default --out: sweeps/ENV_ALGO_TIME, here
    interrupt_sweep_at_batch(3)
    code, _, stderr = run_cli(["sweep", *BASE, *AXES, "--configs-per-batch", "1", "--quiet"])
    (directory,) = (tmp_path / "sweeps").iterdir()
    assert (
        code == 130
        and stderr == f"jrl sweep: interrupted (continue with `jrl resume {Path('sweeps') / directory.name}`)\n"
    )
    (session,) = json.loads((directory / "metadata.json").read_text())["sessions"]
    assert session["batches_before"] == 0 and session["batches_after"] == 2 and "interrupted" in session
    monkeypatch.undo()
    code, _, stderr = run_cli(["resume", str(directory), "--quiet"])
    assert code == 0, stderr
    assert (directory / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    sessions = json.loads((directory / "metadata.json").read_text())["sessions"]
    assert [(s["batches_before"], s["batches_after"]) for s in sessions] == [(0, 2), (2, 4)]
    assert "finished" in sessions[1] and "interrupted" not in sessions[1]
    code, _, stderr = run_cli(["resume", str(tmp_path / "nowhere")])
    assert code == 2 and "nowhere does not exist" in stderr


def interrupt_while_compiling(argv: list[str]) -> tuple[int, str]:
    """Start the console script, send SIGINT 1.5 s after it says it is compiling (earlier, still
    tracing, it did not crash); its status and stdout + stderr. Without the suite's compilation
    cache, so that it compiles whatever ran before."""
    env = {name: value for name, value in os.environ.items() if name != "JAX_COMPILATION_CACHE_DIR"}
    # In the full suite every signal of 4 attempts was lost (status 0), never in this file alone:
    # an ignored or blocked SIGINT is inherited by a child (Python then has no KeyboardInterrupt
    # handler, or never sees the signal). The child restores what a shell's child has first.
    restore = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
    )
    command = [sys.executable, "-c", restore + "from jrl.cli import entry_point; entry_point()", *argv]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in child.stdout:
            if line.startswith("compiling"):
                break
        time.sleep(1.5)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
    return child.returncode, stdout + stderr


def test_ctrl_c_while_compiling_exits_130_and_says_where_to_continue(tmp_path):
    """The console script, interrupted while XLA compiles: exit status 130 and the line that says
    where to continue (the interpreter's teardown used to crash there with SIGSEGV, status 139).
    (With the cache off, and about 3M environment steps to train, the sweep is still busy then.)"""
    codes = []
    for attempt in range(3):
        target = tmp_path / f"sweep{attempt}"
        argv = ["sweep", *BASE, "--set", "num_steps=50000", "--grid", "alpha=0.1,0.5", "--seeds", "2"]
        code, printed = interrupt_while_compiling([*argv, "--out", str(target)])
        codes.append(code)
        # Status 0: the interrupt never took effect and the sweep ran to its end (Python drops a
        # KeyboardInterrupt raised inside a garbage-collector callback, and JAX has one). A user
        # presses Ctrl-C again; here, try again.
        if code != 0:
            break
    parent = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    assert code == 130, (codes, parent, printed[-3000:])
    assert printed.splitlines()[-1] == f"jrl sweep: interrupted (continue with `jrl resume {target}`)"
    assert (target / "sweep.toml").is_file() and not (target / "results.csv").exists()


def test_a_sweep_file_on_two_forced_host_devices_gives_the_same_table(finished, tmp_path):
    """In a fresh process (the flag must come before JAX starts): --config, --host-devices, --quiet;
    3 seeds do not divide by 2 devices, and the table is the one-device table, bit for bit."""
    out, _ = finished
    again = tmp_path / "again"
    result = subprocess.run(
        jrl_command(
            "sweep", "--config", str(out / "sweep.toml"), "--host-devices", "2", "--quiet", "--out", str(again)
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("best: ") and lines[1].startswith("results: ")
    assert json.loads((again / "metadata.json").read_text())["devices"] == ["cpu:0", "cpu:1"]
    assert (again / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    assert (again / "results.json").read_bytes() == (out / "results.json").read_bytes()


def test_plot_writes_the_figures_of_a_sweep(finished, tmp_path):
    pytest.importorskip("matplotlib")
    out, _ = finished
    code, stdout, stderr = run_cli(["plot", str(out), "--out", str(tmp_path / "figures")])
    assert code == 0, stderr
    names = ["heatmap_alpha_gamma.png", "return_vs_alpha.png", "return_vs_gamma.png"]
    assert stdout.split() == [str(tmp_path / "figures" / name) for name in names]
    assert all((tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in names)
    # Failed configurations are drawn too (marked): one failed, one whose every seed diverged.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    results = json.loads((copy / "results.json").read_text())
    results["rows"][0].update(failed=True, diverged_seeds=1)
    results["rows"][3].update(failed=True, diverged_seeds=3, final_return_mean=None)
    results["members"][3]["final_returns"] = [None] * 3
    (copy / "results.json").write_text(json.dumps(results))
    code, stdout, stderr = run_cli(["plot", str(copy)])
    assert code == 0, stderr
    assert stdout.split() == [str(copy / name) for name in names]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--grid", "alhpa=0.1,0.5"], "--grid alhpa: QLearningConfig has no field 'alhpa' (did you mean 'alpha'?)"),
        (["--sample", "alhpa=0.1:0.5", "--samples", "4"], "no field 'alhpa' (did you mean 'alpha'?)"),
        (["--sample", "alpha=0.5:0.1", "--samples", "4"], "--sample alpha=0.5:0.1: a sample range needs low < high"),
        (["--sample", "alpha=log:0:0.5", "--samples", "4"], "log-uniform sampling needs positive bounds"),
        (["--sample", "alpha=log:-0.1:0.5", "--samples", "4"], "log-uniform sampling needs positive bounds"),
        (["--sample", "alpha=0.1-0.5", "--samples", "4"], "a sample range is 'low:high' or 'log:low:high'"),
        (["--grid", "alpha="], "grid axis 'alpha' is empty: give it at least one value"),
        (["--grid", "alpha=0.1,,0.5"], "an empty value"),
        (["--grid", "alpha=0.1", "--seeds", "0"], "seeds must be at least 1, got 0"),
        (["--grid", "alpha=0.1", "--samples", "4"], "num_samples=4 but no sample axis"),
        (["--sample", "alpha=0.1:0.5"], "sample axes need num_samples >= 1 (--samples N)"),
        ([], "a sweep needs at least one axis"),
        (["--grid", "alpha=2"], "alpha must be in (0.0, 1.0], got 2.0"),
        (["--grid", "alpha=0.1,fast"], "alpha must be of type float, got 'fast'"),
        (["--grid", "algorithm=sarsa,bogus"], "algorithm must be one of"),
        (["--sample", "num_envs=1:4", "--samples", "2"], "only numeric hyperparameters can be sampled"),
        (
            ["--grid", "alpha=0.1,0.5", "--grid", "gamma=0.9,0.99", "--no-batching", "--memory-budget", "1KiB"],
            "(4 configurations x 2 seeds) needs about 100.3 KiB but the memory budget is 1.0 KiB, and batching is off",
        ),
        (["--grid", "alpha=0.1", "--memory-budget", "lots"], "--memory-budget takes a size such as 2GiB"),
        (["--grid", "alpha=0.1", "--seeds", "two"], "argument --seeds: invalid int value: 'two'"),
        (["--grid", "alpha=0.1", "--config", "/nonexistent.toml"], "no such file"),
        (["--grid", "alpha=0.1", "--process-id", "2", "--num-processes", "2"], "the process id must be in 0..1"),
        (["--grid", "alpha=0.1", "--coordinator", "localhost"], "the coordinator address is HOST:PORT"),
    ],
)
def test_bad_input_is_one_line_and_status_2_before_anything_compiles(extra, fragment, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = run_cli(["sweep", *BASE, "--seeds", "2", *extra, "--out", str(out)])
    assert code == 2
    assert err.startswith("jrl") and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # nothing written either


def test_the_console_script_exits_2_with_one_line():
    result = subprocess.run(jrl_command("sweep", *BASE, "--grid", "alpha=0.1", "--seeds", "0"), capture_output=True)
    assert result.returncode == 2
    assert result.stderr.decode() == "jrl sweep: error: seeds must be at least 1, got 0\n"
    assert result.stdout == b""


def test_grid_values_are_read_per_field():
    assert cli.parse_grid(q_learning.QLearningConfig, "alpha=0.1, 1") == ("alpha", [0.1, 1.0])
    assert cli.parse_grid(q_learning.QLearningConfig, "algorithm=sarsa,q_learning") == (
        "algorithm",
        ["sarsa", "q_learning"],
    )
    assert cli.parse_grid(q_learning.QLearningConfig, "num_envs=16,64") == ("num_envs", [16, 64])
    assert cli.parse_grid(dqn.DQNConfig, "hidden_sizes=[64,64];[128]") == ("hidden_sizes", [(64, 64), (128,)])
    assert cli.parse_grid(dqn.DQNConfig, "stop_return=none,475") == ("stop_return", [None, 475.0])
    assert cli.parse_grid(q_learning.QLearningConfig, "alpha=") == ("alpha", [])
    with pytest.raises(cli.UsageError, match="a tuple field's values are separated by ';'"):
        cli.parse_grid(dqn.DQNConfig, "hidden_sizes=[64],[128]")
    assert cli.parse_bytes("2GiB") == 2 * 2**30 and cli.parse_bytes("512 MiB") == 512 * 2**20
    assert cli.parse_bytes("1.5GB") == 1_500_000_000 and cli.parse_bytes("1000000") == 1_000_000
    for bad in ("0", "2 GiBs", "-1MiB", ""):
        with pytest.raises(cli.UsageError):
            cli.parse_bytes(bad)


def test_host_flags_and_variables_reach_jax_distributed_initialize(monkeypatch):
    calls = []

    def initialize(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("no coordinator here")

    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", initialize)
    argv = ["sweep", *BASE, "--grid", "alpha=0.1"]
    code, _, err = run_cli([*argv, "--coordinator", "10.0.0.1:1234", "--num-processes", "4", "--process-id", "3"])
    assert code == 2 and err == "jrl sweep: error: jax.distributed.initialize failed: no coordinator here\n"
    monkeypatch.setenv("JRL_COORDINATOR_ADDRESS", "head:5678")
    monkeypatch.setenv("JRL_NUM_PROCESSES", "2")
    monkeypatch.setenv("JRL_PROCESS_ID", "1")
    assert run_cli(argv)[0] == 2
    assert run_cli([*argv, "--process-id", "0"])[0] == 2  # a flag wins over its variable
    for name in ("JRL_COORDINATOR_ADDRESS", "JRL_NUM_PROCESSES", "JRL_PROCESS_ID"):
        monkeypatch.delenv(name)
    assert run_cli([*argv, "--distributed"])[0] == 2
    assert calls == [
        {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3},
        {"coordinator_address": "head:5678", "num_processes": 2, "process_id": 1},
        {"coordinator_address": "head:5678", "num_processes": 2, "process_id": 0},
        {"coordinator_address": None, "num_processes": None, "process_id": None},
    ]
    monkeypatch.setenv("JRL_NUM_PROCESSES", "two")
    code, _, err = run_cli(argv)
    assert code == 2 and "JRL_NUM_PROCESSES='two' must be an integer" in err


def test_exit_status_1_when_every_configuration_failed(finished, capsys):
    out, _ = finished
    spec = sweeps.SweepSpec.load(out / "sweep.toml")
    rows = json.loads((out / "results.json").read_text())["rows"]
    failed = [dict(row, failed=True) for row in rows]
    nan = np.full((4, 3), np.nan)
    result = sweeps.SweepResult(spec, failed, nan, None, np.ones((4, 3), bool), out)
    assert cli.sweep_report(result, quiet=True) == 1
    assert capsys.readouterr().out.startswith("no configuration finished with finite values (4 configuration(s) failed")
    result = sweeps.SweepResult(spec, rows, nan, None, np.zeros((4, 3), bool), None)
    assert cli.sweep_report(result, quiet=False) == 0 and capsys.readouterr().out == ""


def test_directories_of_the_wrong_kind_are_refused(finished, tmp_path):
    out, _ = finished
    run_dir = tmp_path / "not_a_sweep"
    run_dir.mkdir()
    code, _, err = run_cli(["resume", str(run_dir)])
    assert code == 2 and "is not a jrl run directory" in err
    code, _, err = run_cli(["plot", str(out), str(run_dir)])
    assert code == 2 and "run directories or sweep directories, not both" in err
    code, _, err = run_cli(["sweep", "--config", str(out / "sweep.toml"), "--out", str(out)])
    assert code == 2 and "holds this sweep already: continue it with `jrl resume" in err


def test_sweep_and_resume_have_help(capsys):
    for command, flags in (
        ("sweep", ("--grid", "--sample", "--host-devices", "--coordinator")),
        ("resume", ("--distributed",)),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: jrl {command}" in text and all(flag in text for flag in flags)
