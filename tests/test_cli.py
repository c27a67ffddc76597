"""The ``jrl`` command as a new user meets it: error messages that name the subcommand, flags and
versions, internal errors told apart from bad input, a failed start that does not block its retry,
run directories that work from any directory, and your own environments by ``module:id``."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from jrl import cli


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``jrl ARGV`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = cli.main(argv)
        except SystemExit as exit_info:  # --help and --version exit through argparse
            code = exit_info.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["train", "--env", "CartPole-v1", "--algo", "dqn", "--set", "learning_rat=0.1"],
            "jrl train: error: --set learning_rat: DQNConfig has no field 'learning_rat' (did you mean 'learning_rate'?)",
        ),
        (
            ["train", "--env", "CartPole-v1", "--algo", "dqn", "--set", "learning_rate=abc"],
            "jrl train: error: --set learning_rate=abc: learning_rate must be of type float, got 'abc'",
        ),
        (["train", "--algo", "dqn"], "jrl train: error: the run needs --env (or env in --config)"),
        (["train", "--config", "/nonexistent/run.toml"], "jrl train: error: --config /nonexistent/run.toml: no such file"),
        (["train", "--bogus"], "jrl train: error: unrecognized arguments: --bogus (see `jrl train --help`)"),
        (["sweep", "--algo", "dqn"], "jrl sweep: error: the sweep needs --env (or env in --config)"),
        (["eval", "/nonexistent"], "jrl eval: error: /nonexistent is not a jrl run directory"),
        (["--bogus"], "jrl: error: unrecognized arguments: --bogus (see `jrl --help`)"),
        ([], "jrl: error: a command is required: train, sweep, resume, eval, envs, plot, pretrain, generate"),
    ],
)
def test_errors_name_the_subcommand_and_the_bad_flag(argv, expected):
    code, _, err = run_cli(argv)
    assert code == cli.USAGE_ERROR
    assert err.startswith(expected), err
    assert len(err.strip().splitlines()) == 1


def test_a_run_file_that_is_not_toml_is_bad_input(tmp_path):
    bad = tmp_path / "run.toml"
    bad.write_text("algo = dqn\n")  # a bare word: not TOML
    code, _, err = run_cli(["train", "--config", str(bad)])
    assert code == cli.USAGE_ERROR and err.startswith(f"jrl train: error: --config {bad} is not valid TOML"), err


def test_version_names_the_installed_distribution_and_jax():
    code, out, _ = run_cli(["--version"])
    assert code == 0
    assert out.startswith(f"jrl {metadata.version('jrl-jax')} (jax {metadata.version('jax')}, ")


def test_an_internal_error_is_told_apart_from_bad_input(monkeypatch, tmp_path):
    """A ValueError from inside a library (here NumPy, as if jrl passed it a bad shape) is a bug:
    status 70, the bug-report hint and the traceback in a file, not the one-line bad-input message."""
    import numpy as np

    def broken(args):
        return int(np.zeros(-1).sum())  # NumPy raises ValueError: negative dimensions

    monkeypatch.setitem(cli._HANDLERS, "envs", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    code, _, err = run_cli(["envs"])
    assert code == cli.INTERNAL_ERROR
    lines = err.strip().splitlines()
    assert lines[0] == "jrl envs: internal error: ValueError: negative dimensions are not allowed"
    assert "This is a bug in jrl" in err and "JRL_DEBUG=1" in err
    (trace,) = tmp_path.glob("jrl-traceback-*.txt")
    assert str(trace) in err
    text = trace.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")  # the switch shows it in place
    with pytest.raises(ValueError, match="negative dimensions"):
        cli.main(["envs"])


def test_a_validation_error_raised_by_jrl_is_bad_input_and_one_raised_elsewhere_is_not():
    from jrl.algorithms import dqn

    with pytest.raises(ValueError) as ours:
        dqn.DQNConfig(gamma=2.0)
    assert cli._is_bad_input(ours.value)
    with pytest.raises(ValueError) as unpacking:
        _, _ = [1, 2, 3]  # the interpreter's ValueError, in no raise statement of jrl
    assert not cli._is_bad_input(unpacking.value)
    assert cli._is_bad_input(FileNotFoundError(2, "No such file or directory", "x.toml"))
    assert not cli._is_bad_input(KeyError("leaf"))


def test_install_hints_name_the_distribution_that_pyproject_builds():
    """PyPI's ``jrl`` is someone else's package: every hint says ``jrl-jax[EXTRA]``, the name
    ``pyproject.toml`` builds and ``jrl --version`` reads, and no source file says ``jrl[``."""
    import re
    import tomllib

    from jrl._extras import DISTRIBUTION, install_hint

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "jrl-jax"
    assert install_hint("plot").startswith("pip install 'jrl-jax[plot]'")
    extras = set(project["optional-dependencies"])
    for path in sorted((root / "jrl").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"\bjrl\[", text.replace("jrl-jax[", "")), f"{path} tells users to install 'jrl[...]'"
        for extra in re.findall(r"install_hint\(['\"](\w+)['\"]\)", text):
            assert extra in extras, f"{path} names an extra {extra!r} that pyproject.toml does not define"
