"""The ``jrl`` command as a new user meets it: error messages that name the subcommand, flags and
versions, internal errors told apart from bad input, a failed start that does not block its retry,
run directories that work from any directory, and your own environments by ``module:id``."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
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
        (
            ["train", "--config", "/nonexistent/run.toml"],
            "jrl train: error: --config /nonexistent/run.toml: no such file",
        ),
        (["train", "--bogus"], "jrl train: error: unrecognized arguments: --bogus (see `jrl train --help`)"),
        (["sweep", "--algo", "dqn"], "jrl sweep: error: the sweep needs --env (or env in --config)"),
        (["train", "--env", "Taxi-v4"], "jrl train: error: the run needs --algo (or algo in --config)"),
        (["sweep", "--env", "Taxi-v4"], "jrl sweep: error: the sweep needs --algo (or algo in --config)"),
        (
            ["sweep", "--algo", "dqn", "--config", "/nonexistent/sweep.toml"],
            "jrl sweep: error: --config /nonexistent/sweep.toml: no such file",
        ),
        (
            ["train", "--algo", "dqn", "--config", "/nonexistent/run.toml"],
            "jrl train: error: --config /nonexistent/run.toml: no such file",
        ),
        (["eval", "/nonexistent"], "jrl eval: error: /nonexistent is not a jrl run directory"),
        (["train", "--env", "Taxi-v4", "--algo", "q_learning", "--keep", "0"], "jrl train: error: keep must be >= 1"),
        (
            ["train", "--env", "Taxi-v4", "--algo", "q_learning", "--checkpoint-every", "0"],
            "jrl train: error: checkpoint_every must be >= 1",
        ),
        (
            ["train", "--env", "Taxi-v4", "--algo", "q_learning", "--set", "num_envs=none"],
            "jrl train: error: --set num_envs: num_envs cannot be None",
        ),
        (["eval", "/nonexistent", "--episodes", "0"], "jrl eval: error: --episodes must be in [1, 1048576], got 0"),
        (
            ["pretrain", "--env", "WordGen-v0", "--out", str(Path(__file__).parent)],
            f"jrl pretrain: error: --out {Path(__file__).parent} exists and is not empty",
        ),
        (["sweep", "--host-devices", "0"], "jrl sweep: error: --host-devices must be at least 1, got 0"),
        (["--bogus"], "jrl: error: unrecognized arguments: --bogus (see `jrl --help`)"),
        ([], "jrl: error: a command is required: train, sweep, resume, eval, export, envs, plot, pretrain, generate"),
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

    def broken(args, output):
        return int(np.zeros(-1).sum())  # NumPy raises ValueError: negative dimensions

    monkeypatch.setitem(cli.HANDLERS, "envs", broken)
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
    assert cli.is_bad_input(ours.value)
    with pytest.raises(ValueError) as unpacking:
        _, _ = [1, 2, 3]  # the interpreter's ValueError, in no raise statement of jrl
    assert not cli.is_bad_input(unpacking.value)
    from jrl.algorithms.common import divisor_closest_to

    with pytest.raises(ValueError) as inside:
        divisor_closest_to(-1, 10)  # math.isqrt's ValueError, in jrl's code but raised by no check of jrl's
    assert not cli.is_bad_input(inside.value)
    assert cli.is_bad_input(FileNotFoundError(2, "No such file or directory", "x.toml"))
    assert not cli.is_bad_input(KeyError("leaf"))


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


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_help_lists_every_algorithm(command):
    from jrl import algorithms

    code, out, _ = run_cli([command, "--help"])
    assert code == 0
    listed = " ".join(out.split())
    assert all(name in listed for name in algorithms.names()), listed


# --- run directories that work from anywhere, and starts that can be retried -----------------------
TINY_LM = {"d_model": 16, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2}
TEXT_RUN = [
    "train", "--env", "WordGen-v0", "--algo", "text_q_learning", "--set", "num_steps=4", "--set", "num_envs=8",
    "--set", "log_interval=1", "--chunk-logs", "1", "--keep", "4", "--eval-episodes", "4", "--quiet",
]  # fmt: skip


def save_tiny_word_model(directory: Path) -> None:
    """A random one-layer WordGen-v0 language model, saved as `jrl pretrain` saves one."""
    import jax

    import jrl
    from jrl.text import LMConfig, init_model, save_model

    env, _ = jrl.make("WordGen-v0")
    length = env.observation_space(None).shape[0]
    config = LMConfig("WordGen-v0", env.vocabulary.size, env.vocabulary.num_actions, length, **TINY_LM)
    save_model(directory, init_model(config, jax.random.key(0)), {"note": "a test model"})


def test_a_missing_model_directory_is_called_missing(tmp_path):
    code, _, err = run_cli([*TEXT_RUN, "--set", f"pretrained={tmp_path / 'nowhere'}", "--out", str(tmp_path / "r")])
    assert code == cli.USAGE_ERROR and f"{tmp_path / 'nowhere'} does not exist" in err, err
    assert not (tmp_path / "r").exists()


# --- your own environment by module:id -----------------------------------------------------------
CORRIDOR_MODULE = '''
"""A 5-cell corridor: step right (action 1) to the end for reward 1; left (0) stays or goes back."""
import jax.numpy as jnp
import jrl


def corridor(length: int = 5):
    states = jnp.arange(length)
    right = jnp.minimum(states + 1, length - 1)
    left = jnp.maximum(states - 1, 0)
    next_states = jnp.stack([left, right], axis=1)[..., None].astype(jnp.int32)
    at_goal = next_states == length - 1
    mdp = jrl.TabularMDP(
        transition_probs=jnp.ones((length, 2, 1), jnp.float32),
        next_states=next_states,
        rewards=at_goal.astype(jnp.float32),
        terminals=at_goal,
        initial_distribution=jnp.zeros(length, jnp.float32).at[0].set(1.0),
    )
    return jrl.make_tabular(mdp, 20, "my/Corridor-v0")


jrl.register("my/Corridor-v0", corridor, max_episode_steps=20)
'''


def test_your_own_environment_by_module_and_id_through_train_resume_and_eval(tmp_path, monkeypatch):
    """`--env corridor_envs:my/Corridor-v0` imports the module from the working directory (the
    `jrl` command adds it to the module path), and the run records the id that way, so `jrl
    resume` and `jrl eval` in a new process, which has never imported the module, find it too."""
    from jrl.envs import registry
    from jrl.experiment import checkpoint

    (tmp_path / "corridor_envs.py").write_text(CORRIDOR_MODULE)
    env_id = "corridor_envs:my/Corridor-v0"
    # Trained here: the module's id goes into a copy of the registry, and the module path and the
    # imported module are put back afterwards, so no later test sees them.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    train = ["train", "--env", env_id, "--algo", "q_learning", "--set", "num_steps=400", "--set", "num_envs=4"]
    try:
        with registry.temporary_registry():
            assert run_cli([*train, "--chunk-logs", "1", "--quiet", "--out", "run"])[0] == 0
    finally:
        sys.modules.pop("corridor_envs", None)
    assert f'env = "{env_id}"' in (tmp_path / "run" / "config.toml").read_text()
    # Drop the last checkpoint and the summary: the new process resumes the last chunk.
    shutil.rmtree(checkpoint.latest(tmp_path / "run" / "checkpoints"))
    (tmp_path / "run" / "summary.json").rename(tmp_path / "run" / "summary.first.json")
    script = textwrap.dedent(
        """
        import sys
        sys.path = [p for p in sys.path if p not in ("", ".")]  # as in the console script: main adds it
        from jrl.cli import main
        assert main(["resume", "run", "--quiet"]) == 0
        assert main(["eval", "run", "--episodes", "5"]) == 0
        """
    )
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "summary.json").read_bytes() == (tmp_path / "run" / "summary.first.json").read_bytes()
    assert f"q_learning on {env_id}" in done.stdout
    assert done.stdout.splitlines()[-1].split() == ["mean", "1"]  # every greedy episode reaches the end


def test_a_module_that_is_missing_or_registers_nothing_is_named(tmp_path, monkeypatch):
    import jrl

    with pytest.raises(ImportError, match="cannot import the module 'no_such_module_here'"):
        jrl.make("no_such_module_here:my/Corridor-v0")
    (tmp_path / "registers_nothing.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="'registers_nothing' was imported, but it registers no environment"):
        jrl.make("registers_nothing:my/Nothing-v0")


def test_env_kwargs_are_read_as_toml_values_and_bare_words_as_strings():
    pairs = ["is_slippery=false", "map_name=8x8", 'desc=["SF", "FG"]', "max_episode_steps=50"]
    assert cli.parse_pairs(pairs, "--env-kwarg") == {
        "is_slippery": False,
        "map_name": "8x8",
        "desc": ["SF", "FG"],
        "max_episode_steps": 50,
    }
    with pytest.raises(cli.UsageError, match="--env-kwarg takes name=value, got 'is_slippery'"):
        cli.parse_pairs(["is_slippery"], "--env-kwarg")


# --- what train, sweep and resume share: the resolution, and the directory an interrupt names ------
STAMPED = r"\d{8}-\d{6}"  # the default --out's time stamp


@pytest.mark.parametrize(
    "argv, runner, default",
    [
        (["train", "--env", "Taxi-v4", "--algo", "q_learning"], "train", "runs"),
        (["sweep", "--env", "Taxi-v4", "--algo", "q_learning", "--grid", "alpha=0.1,0.2"], "run_sweep", "sweeps"),
    ],
)
@pytest.mark.parametrize("started", [True, False])
def test_an_interrupt_names_the_default_directory_once_it_exists(argv, runner, default, started, monkeypatch, tmp_path):
    """``jrl train`` and ``jrl sweep`` resolve their spec and default ``--out`` (``runs/`` or
    ``sweeps/ENV_ALGO_TIME``) alike, and Ctrl-C says which directory ``jrl resume`` continues, once
    the command has written it (before that, only that it was interrupted)."""
    import re

    import jrl.experiment
    import jrl.experiment.sweeps

    seen = {}

    def interrupted(spec, out, settings, progress):
        seen.update(algo=spec.algo, env=spec.env, out=out, settings=type(settings).__name__)
        if started:
            out.mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(jrl.experiment.sweeps if runner == "run_sweep" else jrl.experiment, runner, interrupted)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli([*argv, "--quiet"])
    assert code == cli.INTERRUPTED and out == ""
    assert seen["algo"] == "q_learning" and seen["env"] == "Taxi-v4"
    assert seen["settings"] == ("RunSettings" if runner == "train" else "SweepSettings")
    assert seen["out"].parent == Path(default) and re.fullmatch(f"Taxi-v4_q_learning_{STAMPED}", seen["out"].name)
    prog = f"jrl {argv[0]}"
    expected = f"{prog}: interrupted (continue with `jrl resume {seen['out']}`)" if started else f"{prog}: interrupted"
    assert err == expected + "\n"


def test_an_interrupted_resume_names_its_directory(monkeypatch, tmp_path):
    import jrl.experiment

    def interrupted(run_dir, progress):
        raise KeyboardInterrupt

    monkeypatch.setattr(jrl.experiment, "resume", interrupted)
    code, _, err = run_cli(["resume", str(tmp_path), "--quiet"])
    assert code == cli.INTERRUPTED and err == f"jrl resume: interrupted (continue with `jrl resume {tmp_path}`)\n"


def test_host_devices_split_the_cpu_before_jax_starts_and_are_checked_after(tmp_path):
    """Before JAX starts, ``--host-devices N`` gives it N CPU devices and adds the XLA flag to
    ``XLA_FLAGS`` (a child process sees them too); once JAX has started, N must be what it has."""
    import jax

    bad_grid = ["--env", "Taxi-v4", "--algo", "q_learning", "--grid", "nofield=1"]  # refused after the devices
    script = textwrap.dedent(
        f"""
        import os
        from jrl.cli import main
        assert main(["sweep", "--host-devices", "3", *{bad_grid}]) == 2
        import jax
        assert jax.local_device_count("cpu") == 3, jax.devices()
        assert os.environ["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=3"), os.environ["XLA_FLAGS"]
        assert main(["sweep", "--host-devices", "3", *{bad_grid}]) == 2  # again, JAX started: the same count
        """
    )
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("jrl sweep: error: --grid nofield: ") == 2, done.stderr
    have = jax.local_device_count("cpu")  # starts JAX in this process, if nothing had
    code, _, err = run_cli(["sweep", "--host-devices", str(have), *bad_grid])
    assert code == cli.USAGE_ERROR and err.startswith("jrl sweep: error: --grid nofield: "), err
    code, _, err = run_cli(["sweep", "--host-devices", str(have + 1), *bad_grid])
    assert code == cli.USAGE_ERROR
    assert err == (
        f"jrl sweep: error: --host-devices {have + 1}: JAX has started already in this process with {have} CPU "
        "device(s); set it before JAX starts\n"
    )
