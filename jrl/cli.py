"""The ``jrl`` command: train, resume, eval, envs, plot. It parses and validates, then calls
``jrl.experiment``; no training logic lives here. Bad input prints one line on stderr and exits
with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tomllib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "parse_assignment"]

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (and name the subcommand's --help)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def parse_assignment(config_class: type, text: str) -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, value)`` for a field of ``config_class``, the value read as a
    TOML value (``0.1``, ``true``, ``[64, 64]``, ``"mse"``), a bare word for a string field, and
    ``none`` for ``None``; then coerced to the field's type (``jrl.algorithms.common.coerce_field``).
    The fields and their types come from the dataclass itself."""
    from jrl.algorithms.common import coerce_field

    if "=" not in text:
        raise UsageError(f"--set takes name=value, got {text!r}")
    name, raw = (part.strip() for part in text.split("=", 1))
    fields = {f.name for f in dataclasses.fields(config_class)}
    if name not in fields:
        import difflib

        close = difflib.get_close_matches(name, sorted(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"--set {name}: {config_class.__name__} has no field {name!r}{hint}; fields: {sorted(fields)}")
    hint = typing.get_type_hints(config_class)[name]
    if raw.lower() in ("none", "null"):
        if type(None) not in typing.get_args(hint):
            raise UsageError(f"--set {name}: {name} cannot be None")
        return name, None
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        if hint is str or str in typing.get_args(hint):
            value = raw
        else:
            raise UsageError(f"--set {name}={raw}: {name} must be of type {_type_name(hint)}, got {raw!r}") from None
    return name, coerce_field(config_class, name, value)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train an algorithm on an environment into a new run directory",
        description="Train ALGO on ENV for every seed (vmapped, one compiled call per chunk), recording config.toml, "
        "metadata.json, metrics.jsonl, summary.json and checkpoints/ in --out. Without --config or --set the tuned "
        "default config of ENV is used.",
    )
    train.add_argument("--env", help="environment id (see `jrl envs`)")
    train.add_argument("--algo", help="q_learning, sarsa, expected_sarsa, double_q_learning or dqn")
    train.add_argument("--config", type=Path, help="a run file (TOML: algo, env, seeds, [env_kwargs], [config])")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a config field (repeatable)")
    train.add_argument("--env-kwarg", action="append", default=[], metavar="NAME=VALUE", help="a jrl.make keyword")
    train.add_argument("--seeds", type=int, help="train seeds 0..N-1 (default: the run file's, else 1)")
    train.add_argument("--out", type=Path, help="the new run directory (default: runs/ENV_ALGO_TIME)")
    _add_runner_options(train)


def _add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-logs", type=int, help="logging intervals per compiled chunk (default: a tenth)")
    parser.add_argument("--checkpoint-every", type=int, default=1, help="chunks between checkpoints (default 1)")
    parser.add_argument("--keep", type=int, default=3, help="checkpoints kept (default 3)")
    parser.add_argument("--eval-episodes", type=int, default=100, help="greedy episodes per seed at the end (100)")
    parser.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events (tensorboard extra)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _build_parser() -> _Parser:
    parser = _Parser(prog="jrl", description="jrl: JAX-accelerated, vectorized reinforcement learning.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_train(commands)
    resume = commands.add_parser("resume", help="continue an interrupted run from its last complete checkpoint")
    resume.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    resume.add_argument("--quiet", action="store_true", help="no progress output")
    evaluate = commands.add_parser("eval", help="evaluate the greedy policy of a finished or partial run")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per seed (default 100)")
    evaluate.add_argument("--gymnasium", action="store_true", help="also score it in Gymnasium's own environment")
    commands.add_parser("envs", help="list the environments: spaces, time limits, algorithms that apply")
    plot = commands.add_parser("plot", help="learning curves of runs (plot extra); a gridworld's greedy policy")
    plot.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    plot.add_argument("--metric", default=None, help="the metric to plot (default: eval_return, else episode_return)")
    plot.add_argument("--out", type=Path, help="the PNG to write (default: learning_curves.png in the first run)")
    return parser


def _parse_pairs(pairs: Sequence[str], what: str) -> dict:
    out = {}
    for text in pairs:
        if "=" not in text:
            raise UsageError(f"{what} takes name=value, got {text!r}")
        name, raw = (part.strip() for part in text.split("=", 1))
        try:
            out[name] = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            out[name] = raw
    return out


def _settings(args: argparse.Namespace) -> Any:
    from jrl.experiment import RunSettings

    return RunSettings(
        chunk_logs=args.chunk_logs,
        checkpoint_every=args.checkpoint_every,
        keep=args.keep,
        eval_episodes=args.eval_episodes,
        tensorboard=args.tensorboard,
    )


def _train(args: argparse.Namespace) -> int:
    from jrl import algorithms
    from jrl.experiment import RunSpec, train

    settings = _settings(args)
    env_kwargs = _parse_pairs(args.env_kwarg, "--env-kwarg") or None
    file_algo = None
    if args.config is not None:
        if not args.config.is_file():
            raise UsageError(f"--config {args.config}: no such file")
        file_algo = tomllib.loads(args.config.read_text()).get("algo")
    algo = args.algo or file_algo
    if algo is None:
        raise UsageError("the run needs --algo (or algo in --config)")
    config_class = algorithms.get(algo).config_class
    overrides = dict(parse_assignment(config_class, text) for text in args.set)
    seeds = args.seeds
    if args.config is not None:
        spec = RunSpec.load(
            args.config, algo=args.algo, env=args.env, seeds=seeds, env_kwargs=env_kwargs, config=overrides
        )
    else:
        if args.env is None:
            raise UsageError("the run needs --env (or env in --config)")
        spec = RunSpec.resolve(algo, args.env, 1 if seeds is None else seeds, overrides, env_kwargs)
    out = args.out
    if out is None:
        import datetime

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{spec.env.replace('/', '_')}_{spec.algo}_{stamp}"
    summary = train(spec, out, settings, progress=not args.quiet)
    return 0 if summary["finite"] else 1


def _resume(args: argparse.Namespace) -> int:
    from jrl.experiment import resume

    summary = resume(args.run_dir, progress=not args.quiet)
    return 0 if summary["finite"] else 1


def _eval(args: argparse.Namespace) -> int:
    import numpy as np

    from jrl._validation import check_int
    from jrl.experiment import evaluate_state, load_run

    check_int("--episodes", args.episodes, 1, 2**20)
    run = load_run(args.run_dir)
    state, log_index = run.load_checkpoint()
    stage = (
        "finished"
        if log_index == run.algorithm.num_logs
        else f"partial: {log_index}/{run.algorithm.num_logs} intervals"
    )
    print(f"{run.spec.algo} on {run.spec.env}, {run.env_steps(log_index):,} env steps per seed ({stage})")
    results = evaluate_state(run, state, args.episodes)
    gym_returns = {}
    if args.gymnasium:
        from jrl.wrappers import evaluate_in_gymnasium

        spec = run.spec
        for i, seed in enumerate(spec.seeds):
            seed_state = run.seed_state(state, i)
            result = run.algorithm.result(seed_state, {})
            policy, params = spec.algorithm.greedy_policy(spec.config, run.env, run.env_params, result)
            try:
                returns = evaluate_in_gymnasium(
                    policy, params, spec.env, num_episodes=args.episodes, seed=seed, **spec.env_kwargs
                )
            except Exception as err:  # gymnasium's own error for an id it does not have
                if "gymnasium" in type(err).__module__ or type(err).__name__ in ("NameNotFound", "NamespaceNotFound"):
                    raise UsageError(f"--gymnasium: Gymnasium has no environment {spec.env!r} ({err})") from None
                raise
            gym_returns[str(seed)] = float(np.mean(returns))
    header = f"{'seed':>6} {'mean return':>12} {'std':>9} {'mean length':>12}"
    print(header + (f" {'gymnasium':>10}" if gym_returns else ""))
    for seed, row in results.items():
        line = f"{seed:>6} {row['mean_return']:>12.4g} {row['std_return']:>9.4g} {row['mean_length']:>12.4g}"
        print(line + (f" {gym_returns[seed]:>10.4g}" if gym_returns else ""))
    means = [row["mean_return"] for row in results.values()]
    print(
        f"{'mean':>6} {np.mean(means):>12.4g}"
        + (f" {'':>22} {np.mean(list(gym_returns.values())):>10.4g}" if gym_returns else "")
    )
    return 0


def _envs(args: argparse.Namespace) -> int:
    import jrl
    from jrl import algorithms

    print(f"{'id':<26} {'observations':<24} {'actions':<12} {'time limit':>11}  algorithms (* tuned default)")
    for env_id in jrl.registered_envs():
        env, params = jrl.make(env_id)
        limit = int(params.max_steps_in_episode)
        names = []
        for name in algorithms.names():
            spec = algorithms.get(name)
            try:
                spec.check_env(env, params)
            except ValueError:
                continue
            try:
                spec.default_config(env_id)
                names.append(f"{name}*")
            except ValueError:
                names.append(name)
        space = env.observation_space(params)
        obs = (
            repr(space)
            if isinstance(space, jrl.Discrete)
            else f"Box {space.shape} {space.dtype.__name__ if hasattr(space.dtype, '__name__') else space.dtype}"
        )
        shown_limit = "none" if limit >= jrl.NO_TIME_LIMIT else str(limit)
        print(f"{env_id:<26} {obs:<24} {env.action_space(params)!r:<12} {shown_limit:>11}  {', '.join(names)}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from jrl.experiment import plots

    written = plots.plot_runs(args.run_dirs, metric=args.metric, out=args.out)
    for path in written:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jrl`` command; returns the exit status (0 ok, 1 a run produced non-finite
    values, 2 bad input)."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        handler = {"train": _train, "resume": _resume, "eval": _eval, "envs": _envs, "plot": _plot}[args.command]
        return handler(args)
    except UsageError as err:
        print(f"jrl: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("jrl: interrupted (resume with `jrl resume RUN_DIR`)", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, PermissionError, ImportError) as err:
        # Every validation error in jrl is one of these and names what was wrong. JRL_DEBUG=1
        # shows the traceback instead (for a bug rather than bad input).
        if os.environ.get("JRL_DEBUG"):
            raise
        message = " ".join(str(err).split())
        print(f"jrl {argv[0] if argv else ''}: error: {message}".replace("jrl : ", "jrl: "), file=sys.stderr)
        return USAGE_ERROR


def entry_point() -> NoReturn:
    """The console script."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # `jrl envs | head`: the reader left; not an error of ours
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    entry_point()
