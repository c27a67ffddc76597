"""The ``jrl`` command: train, sweep, resume, eval, envs, plot, pretrain, generate. It parses and validates, then calls
``jrl.experiment``; no training logic lives here. Bad input prints one line on stderr and exits
with status 2, without a traceback.

Importing this module imports ``jax`` (the ``jrl`` package does) but starts no JAX backend: the
device flags of ``jrl train`` and ``jrl sweep`` (``--host-devices``, ``jax.distributed``) act before anything asks
for a device.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tomllib
import traceback
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "HANDLERS",
    "is_bad_input",
    "main",
    "parse_assignment",
    "parse_bytes",
    "parse_grid",
    "parse_pairs",
    "sweep_report",
]

USAGE_ERROR = 2
INTERRUPTED = 130


INTERNAL_ERROR = 70  # sysexits.h's EX_SOFTWARE: a bug, not bad input

#: Set (to anything but "" or "0") to see the traceback of any error instead of the one-line message.
DEBUG_VARIABLE = "JRL_DEBUG"


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2.

    ``prog`` is the command whose usage was wrong (``"jrl train"``), when the parser knows it
    better than the command handler does (``None``: the command being run)."""

    def __init__(self, message: str, prog: str | None = None):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (and name the subcommand's --help)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)", prog=self.prog)


def parse_assignment(config_class: type, text: str, flag: str = "--set") -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, value)`` for a field of ``config_class``, the value read as a
    TOML value (``0.1``, ``true``, ``[64, 64]``, ``"mse"``), a bare word for a string field, and
    ``none`` for ``None``; then coerced to the field's type (``jrl.algorithms.common.coerce_field``).
    The fields and their types come from the dataclass itself. ``flag`` names the option in errors."""
    from jrl.algorithms.common import coerce_field

    if "=" not in text:
        raise UsageError(f"{flag} takes name=value, got {text!r}")
    name, raw = (part.strip() for part in text.split("=", 1))
    _check_field(config_class, name, flag)
    hint = typing.get_type_hints(config_class)[name]
    if raw.lower() in ("none", "null"):
        if type(None) not in typing.get_args(hint):
            raise UsageError(f"{flag} {name}: {name} cannot be None")
        return name, None
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        if hint is str or str in typing.get_args(hint):
            value = raw
        else:
            raise UsageError(f"{flag} {name}={raw}: {name} must be of type {_type_name(hint)}, got {raw!r}") from None
    return name, coerce_field(config_class, name, value)


def _check_field(config_class: type, name: str, flag: str) -> None:
    fields = {f.name for f in dataclasses.fields(config_class)}
    if name not in fields:
        import difflib

        close = difflib.get_close_matches(name, sorted(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(
            f"{flag} {name}: {config_class.__name__} has no field {name!r}{hint}; fields: {sorted(fields)}"
        )


def _is_tuple_field(config_class: type, name: str) -> bool:
    hint = typing.get_type_hints(config_class)[name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(typing.get_origin(option) is tuple for option in options)


def parse_grid(config_class: type, text: str) -> tuple[str, list]:
    """``"name=v1,v2,..."`` -> ``(name, [v1, v2, ...])``, each value read as ``parse_assignment``
    reads it. A tuple field's values are separated by ``;`` instead:
    ``"hidden_sizes=[64,64];[128,128]"``. ``"name="`` is an empty axis (refused by the sweep)."""
    if "=" not in text:
        raise UsageError(f"--grid takes NAME=V1,V2,..., got {text!r}")
    name, raw = (part.strip() for part in text.split("=", 1))
    _check_field(config_class, name, "--grid")
    separator = ";" if _is_tuple_field(config_class, name) else ","
    items = [] if not raw else [item.strip() for item in raw.split(separator)]
    if any(not item for item in items):
        raise UsageError(f"--grid {name}={raw}: an empty value (values are separated by {separator!r})")
    values = []
    for item in items:
        try:
            values.append(parse_assignment(config_class, f"{name}={item}", "--grid")[1])
        except UsageError as err:
            if separator == ";" and "," in item:
                raise UsageError(
                    f"{err} (a tuple field's values are separated by ';': {name}=[64,64];[128,128])"
                ) from None
            raise
    return name, values


def parse_bytes(text: str) -> int:
    """``"2GiB"``, ``"512MiB"``, ``"1.5GB"``, ``"1000000"`` -> bytes (KiB/MiB/GiB/TiB are powers of
    1024, KB/MB/GB/TB of 1000)."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match and _BYTE_UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise UsageError(f"--memory-budget takes a size such as 2GiB, 512MiB, 1.5GB or a number of bytes, got {text!r}")
    size = round(float(match.group(1)) * unit)
    if size < 1:
        raise UsageError(f"--memory-budget must be at least 1 byte, got {text!r}")
    return size


_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_BYTE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _algorithm_names() -> str:
    """Every ``--algo`` name, from the registry (``jrl.algorithms.names()``), so help never lags it."""
    from jrl import algorithms

    names = algorithms.names()
    return f"{', '.join(names)}, or MODULE:NAME (a module of yours that registers NAME)"


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train an algorithm on an environment into a new run directory",
        description="Train ALGO on ENV for every seed (vmapped, one compiled call per chunk), recording config.toml, "
        "metadata.json, metrics.jsonl, summary.json and checkpoints/ in --out. Without --config or --set the tuned "
        "default config of ENV is used.",
    )
    train.add_argument(
        "--env", help="environment id (see `jrl envs`), or MODULE:ID for an id your module registers (jrl.register)"
    )
    train.add_argument("--algo", help=f"the algorithm: {_algorithm_names()}")
    train.add_argument("--config", type=Path, help="a run file (TOML: algo, env, seeds, [env_kwargs], [config])")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a config field (repeatable)")
    train.add_argument("--env-kwarg", action="append", default=[], metavar="NAME=VALUE", help="a jrl.make keyword")
    train.add_argument("--seeds", type=int, help="train seeds 0..N-1 (default: the run file's, else 1)")
    train.add_argument("--out", type=Path, help="the new run directory (default: runs/ENV_ALGO_TIME)")
    train.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="split each seed's run over the first N of jax.devices(): environments, replay and batches in N "
        "shares, gradients averaged (default: the run file's, else 1; docs/devices.md)",
    )
    _add_runner_options(train)
    _add_device_options(train)


def _add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-logs", type=int, help="logging intervals per compiled chunk (default: a tenth)")
    parser.add_argument("--checkpoint-every", type=int, default=1, help="chunks between checkpoints (default 1)")
    parser.add_argument("--keep", type=int, default=3, help="checkpoints kept (default 3)")
    parser.add_argument("--eval-episodes", type=int, default=100, help="greedy episodes per seed at the end (100)")
    parser.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events (tensorboard extra)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _add_sweep(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="train every configuration x seed of a hyperparameter grid (and random samples)",
        description="Train ALGO on ENV for every configuration of the axes x every seed, vmapped in one compiled "
        "call per group and batch, sharded over every device, and tabulate the final greedy return, the area under "
        "the learning curve, the steps to a threshold and divergence per configuration (results.csv, results.json "
        "in --out). Numeric hyperparameters are data (one compilation); other fields (num_envs, hidden_sizes, "
        "algorithm) split the sweep into groups, one compilation each. See docs/sweeps.md.",
    )
    sweep.add_argument(
        "--env", help="environment id (see `jrl envs`), or MODULE:ID for an id your module registers (jrl.register)"
    )
    sweep.add_argument("--algo", help=f"the algorithm: {_algorithm_names()}")
    sweep.add_argument("--config", type=Path, help="a sweep file (TOML, as the sweep.toml of a sweep directory)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a grid axis: a config field and its values (a tuple field's separated by ';': "
        "hidden_sizes=[64,64];[128,128]); repeatable",
    )
    sweep.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="NAME=[log:]LOW:HIGH",
        help="a random axis over a numeric hyperparameter: --samples points uniform (or log-uniform) in [LOW, HIGH)",
    )
    sweep.add_argument("--samples", type=int, help="points drawn for the --sample axes (together)")
    sweep.add_argument("--sample-seed", type=int, help="the seed of the samples and the bootstrap (default 0)")
    sweep.add_argument(
        "--seeds", type=int, help="train seeds 0..N-1 for every configuration (default: the file's, else 1)"
    )
    sweep.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a base config field (repeatable)"
    )
    sweep.add_argument("--env-kwarg", action="append", default=[], metavar="NAME=VALUE", help="a jrl.make keyword")
    sweep.add_argument("--threshold", type=float, help="report the env steps until the learning curve reaches this")
    sweep.add_argument("--curve", help="the learning-curve metric (default: eval_return, else episode_return)")
    sweep.add_argument("--eval-episodes", type=int, help="greedy episodes per seed at the end, non-tabular (100)")
    sweep.add_argument("--configs-per-batch", type=int, help="configurations per compiled call (default: what fits)")
    sweep.add_argument(
        "--memory-budget", help="bytes one batch may take: 2GiB, 512MiB, ... (default: half the free memory)"
    )
    sweep.add_argument(
        "--no-batching", action="store_true", help="refuse a sweep that does not fit one batch per group"
    )
    sweep.add_argument("--devices", type=int, help="shard over the first N of jax.devices() (default: all)")
    sweep.add_argument("--out", type=Path, help="the new sweep directory (default: sweeps/ENV_ALGO_TIME)")
    sweep.add_argument("--quiet", action="store_true", help="no progress; only the best line and the result files")
    _add_device_options(sweep)


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "devices and hosts",
        "Several processes or machines: give every process the same command with its own --process-id (or set "
        "JRL_COORDINATOR_ADDRESS, JRL_NUM_PROCESSES, JRL_PROCESS_ID); --distributed lets JAX detect them (SLURM, "
        "Open MPI). Process 0 prints and writes the results.",
    )
    group.add_argument(
        "--host-devices", type=int, metavar="N", help="split the CPU into N JAX devices (XLA_FLAGS, before JAX starts)"
    )
    group.add_argument("--distributed", action="store_true", help="jax.distributed.initialize() with auto-detection")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address (JRL_COORDINATOR_ADDRESS)")
    group.add_argument("--num-processes", type=int, metavar="N", help="how many processes (JRL_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1 (JRL_PROCESS_ID)")


def _version_line() -> str:
    """``jrl --version``: jrl's version and the versions that decide its numbers (JAX, jaxlib, Python)."""
    import platform
    from importlib import metadata

    from jrl._version import __version__

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"jrl {__version__} (jax {version('jax')}, jaxlib {version('jaxlib')}, Python {platform.python_version()})"


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="jrl",
        description="jrl: JAX-accelerated, vectorized reinforcement learning.",
        epilog=f"Exit status: 0 done; 1 a run produced non-finite values (or the device ran out of memory); 2 bad "
        f"input (one line on stderr); 70 an internal error (a bug: the traceback goes to a file); 130 interrupted. "
        f"{DEBUG_VARIABLE}=1 shows the traceback of any error.",
    )
    parser.add_argument("--version", action="version", version=_version_line())
    # Not required for argparse: _parse names a missing command, or the unknown flag given instead.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_train(commands)
    _add_sweep(commands)
    resume = commands.add_parser(
        "resume",
        help="continue an interrupted run from its last complete checkpoint, or a sweep from its finished batches",
    )
    resume.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory or a sweep directory")
    resume.add_argument("--quiet", action="store_true", help="no progress output")
    _add_device_options(resume)
    evaluate = commands.add_parser(
        "eval",
        help="evaluate the greedy policy of a finished or partial run, or of an exported policy file",
        description="RUN_DIR: every seed's greedy policy from the latest checkpoint. An exported policy (.npz, "
        ".safetensors or .stablehlo, quantized or not: jrl export) is evaluated as stored, on --env.",
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR_OR_POLICY")
    evaluate.add_argument("--env", help="the environment of an exported policy file (a jrl.make id)")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per seed (default 100)")
    evaluate.add_argument("--gymnasium", action="store_true", help="also score it in Gymnasium's own environment")
    evaluate.add_argument(
        "--seed",
        type=int,
        help="a policy file's evaluation seed: its episodes' key, jax.random.key(SEED), and Gymnasium's resets "
        "(default 0; a run's seeds have their own evaluation keys)",
    )
    evaluate.add_argument(
        "--video",
        type=Path,
        metavar="PATH",
        help="also record the first seed's first episode as an animated GIF (PATH ends in .gif; environments "
        "that render; plot extra)",
    )
    export = commands.add_parser(
        "export",
        help="write a run's greedy policy or a text model as NumPy, safetensors, StableHLO, ONNX or a TF SavedModel, "
        "optionally int8",
        description="Export seed --seed's greedy policy from RUN_DIR's latest checkpoint (or re-export a .npz / "
        ".safetensors policy file). A text_q_learning run exports its language model with the Q-head (decoding "
        "logits + beta * Q), a grpo run its fine-tuned model, a `jrl pretrain` directory the language model alone, a text export file is "
        "re-exported; their StableHLO, ONNX and SavedModel programs decode text (the SavedModel's generate "
        "signature takes and returns strings). Formats: numpy (.npz, runs with NumPy alone), safetensors, stablehlo (jax.export, "
        "reloadable with jax.export.deserialize), onnx (jax2onnx: the onnx extra) or tf (a TensorFlow SavedModel "
        "directory, jax2tf: the tf extra) or hf (a Hugging Face GPT-2 directory that transformers loads, from a grpo "
        "run tuned from a Hugging Face model or such a model's directory). --int8 quantizes the "
        "kernels per output channel, --float16 and --bfloat16 cast them (docs/deployment.md).",
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR_OR_POLICY")
    export.add_argument("--format", required=True, choices=["numpy", "safetensors", "stablehlo", "onnx", "tf", "hf"])
    quantized = export.add_mutually_exclusive_group()
    quantized.add_argument(
        "--int8",
        action="store_true",
        help="int8 kernels, a scale per output channel, calibrated (GPTQ) on 16,384 states the float policy visits "
        "in the run's environment (a policy file: in --env's; without --env, rounded to nearest, uncalibrated)",
    )
    quantized.add_argument("--float16", action="store_true", help="float16 kernels and biases")
    quantized.add_argument("--bfloat16", action="store_true", help="bfloat16 weights (float32's range, 8 bits)")
    export.add_argument("--seed", type=int, default=None, help="the run's seed to export (default: its first)")
    export.add_argument(
        "--out", type=Path, help="the file to write (default: RUN_DIR/export/policy-seed<S>..., text-seed<S>...)"
    )
    export.add_argument("--env", help="a policy file's environment (a jrl.make id), where --int8 calibrates")
    commands.add_parser("envs", help="list the environments: spaces, time limits, algorithms that apply")
    plot = commands.add_parser(
        "plot",
        help="learning curves of runs, a gridworld's greedy policy; a sweep's heatmaps and return per axis (plot extra)",
    )
    plot.add_argument("run_dirs", type=Path, nargs="+", metavar="DIR", help="run directories, or sweep directories")
    plot.add_argument("--metric", default=None, help="the metric to plot (default: eval_return, else episode_return)")
    plot.add_argument(
        "--out",
        type=Path,
        help="runs: the PNG to write (default: learning_curves.png in the first run); a sweep: the folder for its "
        "PNGs (default: the sweep directory)",
    )
    pretrain = commands.add_parser(
        "pretrain",
        help="pretrain a small language model for a text environment on data jrl generates (no download)",
        description="Supervised pretraining (jrl.text.pretrain) of a TransformerLM on ENV's generated data; writes "
        "model.safetensors and config.json into --out. Q-learning then starts from it: "
        "jrl train --env ENV --algo text_q_learning --set pretrained=OUT.",
    )
    pretrain.add_argument("--env", required=True, help="GraphWalkText-v0 or WordGen-v0")
    pretrain.add_argument("--env-kwarg", action="append", default=[], metavar="NAME=VALUE", help="a jrl.make keyword")
    pretrain.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a PretrainConfig field")
    pretrain.add_argument("--seed", type=int, default=0, help="the PRNG seed (default 0)")
    pretrain.add_argument("--out", type=Path, required=True, help="the model directory to write")
    pretrain.add_argument("--quiet", action="store_true", help="no progress output")
    generate = commands.add_parser(
        "generate",
        help="generate text with a pretrained model, a text_q_learning or grpo run, or an exported text model",
        description="Decode with logits + beta * Q: DIR is a `jrl pretrain` directory (the model alone), a "
        "text_q_learning run directory (its latest checkpoint, first seed, beta from its config), a grpo run "
        "(its fine-tuned model), or a text model "
        "`jrl export` wrote as .npz or .safetensors (int8, float16 or bfloat16 weights as stored; beta its own), or a "
        "Hugging Face GPT-2 directory (config.json, model.safetensors, tokenizer.json; prompts are text).",
    )
    generate.add_argument("run_dir", type=Path, metavar="DIR_OR_FILE")
    generate.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable; '' for none in WordGen)")
    generate.add_argument("--num-samples", type=int, default=1, help="generations per prompt (default 1)")
    generate.add_argument("--max-new-tokens", type=int, default=None, help="default: up to the buffer's end")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=None)
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--greedy", action="store_true", help="the best token at every step (no sampling)")
    generate.add_argument("--beta", type=float, default=None, help="weight of Q (default: the run's; 0: the LM alone)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument(
        "--context-length",
        type=int,
        default=None,
        help="a Hugging Face directory's buffer length (default: its n_positions; shorter decodes faster)",
    )
    return parser


def _pretrain(args: argparse.Namespace, output: _Output) -> int:
    import time

    import jax

    import jrl
    from jrl._validation import check_int
    from jrl.envs.registry import resolve_env_paths
    from jrl.experiment.progress import Progress
    from jrl.experiment.records import environment_metadata
    from jrl.text import PretrainConfig, pretrain, save_model
    from jrl.text.pretrain import default_pretrain_config

    check_int("--seed", args.seed, 0, 2**31 - 1)
    if args.out.exists() and any(args.out.iterdir()):
        raise UsageError(f"--out {args.out} exists and is not empty; choose a new directory")
    env_kwargs = parse_pairs(args.env_kwarg, "--env-kwarg")
    env, env_params = jrl.make(args.env, **env_kwargs)
    config = default_pretrain_config(args.env)
    changes = {}
    for text in args.set:
        name, value = parse_assignment(PretrainConfig, text)
        changes[name] = value
    config = config.replace(**changes)
    start = time.perf_counter()
    progress = Progress(config.num_steps, unit="Adam steps", enabled=not args.quiet)
    # The first chunk compiles too: jrl pretrain shows steps, loss and ETA between chunks.
    progress.compiling(f"pretraining: {config.num_steps} steps of {config.batch_size} sequences, the first chunk")
    last = [start]

    def on_chunk(steps: int, losses: Any) -> None:
        now = time.perf_counter()
        if last[0] == start:  # the first chunk's time is mostly compiling: rates and ETA from the second on
            progress.compiled(
                f"pretraining and ran its first {steps} steps (loss {float(losses[-1]):.4f})", now - start
            )
            progress.rebase(steps)
        else:
            progress.update(steps, now - last[0], f"loss {float(losses[-1]):.4f}")
        last[0] = now

    try:
        model, losses = pretrain(jax.random.key(args.seed), env, env_params, config, on_chunk=on_chunk)
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    record = {
        "env": args.env,
        # A file keyword (Tasks-v0's path, tokenizer) as the absolute path it was read from, as runs record it.
        "env_kwargs": resolve_env_paths(args.env, env_kwargs, os.getcwd()),
        "seed": args.seed,
        "pretrain_config": config.to_dict(),
        "final_loss": float(losses[-1]),
        "seconds": round(seconds, 2),
        "versions": environment_metadata(),
    }
    save_model(args.out, model, record)
    print(f"pretrained {args.env} in {seconds:.1f} s (final loss {float(losses[-1]):.4f}) -> {args.out}")
    return 0


def _generate(args: argparse.Namespace, output: _Output) -> int:
    import jax

    from jrl._validation import check_int
    from jrl.text import generate, load_model
    from jrl.text.hf import is_hf_directory
    from jrl.text.model import CONFIG_FILE, WEIGHTS_FILE

    check_int("--num-samples", args.num_samples, 1, 1 << 16)
    if not args.greedy and not args.temperature > 0:
        raise UsageError(
            f"--temperature must be > 0 when sampling, got {args.temperature} (--greedy takes the best token)"
        )
    check_int("--seed", args.seed, 0, 2**31 - 1)
    prompts = args.prompt or [""]
    if args.context_length is not None and not is_hf_directory(args.run_dir):
        raise UsageError(f"--context-length shortens a Hugging Face directory's buffer; {args.run_dir} is not one")
    q_model, beta = None, 0.0
    if args.run_dir.is_file():
        from jrl.export import TextExport, load_policy

        loaded = load_policy(args.run_dir) if args.run_dir.suffix in (".npz", ".safetensors") else None
        if not isinstance(loaded, TextExport):
            raise UsageError(f"{args.run_dir} is not a text model's .npz or .safetensors export (jrl export)")
        model, q_model, beta = loaded.models()
    elif (args.run_dir / WEIGHTS_FILE).is_file() and (args.run_dir / CONFIG_FILE).is_file():
        model = load_model(args.run_dir, context_length=args.context_length)  # jrl's or Hugging Face's
    else:
        from jrl.experiment import load_run

        run = load_run(args.run_dir)
        if not run.spec.algorithm.decodes_text:
            raise UsageError(
                f"{args.run_dir} is a {run.spec.algo} run; jrl generate needs a text learner's run (text_q_learning, grpo)"
            )
        state, _ = run.load_checkpoint()
        result = run.algorithm.result(run.seed_state(state, 0), {})
        model, q_model, beta = run.spec.algorithm.decoding_models(run.config, result)
    if args.beta is not None:
        beta = args.beta
    rows = [p for p in prompts for _ in range(args.num_samples)]
    out = generate(
        model,
        rows,
        jax.random.key(args.seed),
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        do_sample=not args.greedy,
        beta=beta,
        q_params=q_model if beta != 0.0 else None,
    )
    for text in out.texts:
        # One text per line: a newline a tokenizer's text may hold is printed as \n.
        print(text.replace("\n", "\\n"))
    return 0


def parse_pairs(pairs: Sequence[str], what: str) -> dict:
    """``["NAME=VALUE", ...]`` of the flag ``what`` (``--env-kwarg``) as a dict, each value parsed
    as TOML (``true``, ``3``, ``"x"``; a bare word stays a string); a malformed pair is refused."""
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


def _file_name(env_id: str) -> str:
    """An environment id as part of a directory name: ``my_envs:my/Corridor-v0`` -> ``my_envs_my_Corridor-v0``."""
    return env_id.replace(":", "_").replace("/", "_")


def _file_algo(path: Path | None) -> str | None:
    """The ``algo`` of a run or sweep file given as ``--config`` (``None``: no file, or none in it)."""
    if path is None:
        return None
    if not path.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        return tomllib.loads(path.read_text()).get("algo")
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"--config {path} is not valid TOML: {err}") from None


@dataclasses.dataclass
class _Output:
    """The directory a command writes, once it is known, passed down from ``main`` to the command:
    an interrupted command then says which directory ``jrl resume`` continues."""

    directory: Path | None = None


@dataclasses.dataclass(frozen=True)
class _Request:
    """What ``jrl train`` and ``jrl sweep`` resolve alike from ``--config``, ``--algo`` and ``--set``.

    ``noun`` names the command's product in messages (``"run"``, ``"sweep"``) and ``folder`` holds
    its default ``--out`` (``runs/ENV_ALGO_TIME``); ``algo`` is ``--algo``, else the file's."""

    noun: str
    folder: str
    algo: str
    config_class: type
    overrides: dict[str, Any]


def _request(args: argparse.Namespace, noun: str, folder: str) -> _Request:
    """The algorithm (``--algo``, else the ``--config`` file's) and its ``--set`` overrides."""
    from jrl import algorithms

    file_algo = _file_algo(args.config)  # read even beside --algo: a missing or broken file is named first
    algo = args.algo or file_algo
    if algo is None:
        raise UsageError(f"the {noun} needs --algo (or algo in --config)")
    config_class = algorithms.get(algo).config_class
    overrides = dict(parse_assignment(config_class, text) for text in args.set)
    return _Request(noun, folder, algo, config_class, overrides)


def _resolve(
    args: argparse.Namespace, request: _Request, load: typing.Callable[[], Any], resolve: typing.Callable[[str], Any]
) -> tuple[Any, Path]:
    """The spec and the directory to write: ``load()`` reads ``--config`` (the flags given override
    it), else ``resolve(env)`` builds the spec from ``--env``; ``--out``, else
    ``FOLDER/ENV_ALGO_TIME``."""
    if args.config is not None:
        spec = load()
    else:
        if args.env is None:
            raise UsageError(f"the {request.noun} needs --env (or env in --config)")
        spec = resolve(args.env)
    out = args.out
    if out is None:
        import datetime

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(request.folder) / f"{_file_name(spec.env)}_{spec.algo}_{stamp}"
    return spec, out


def _train(args: argparse.Namespace, output: _Output) -> int:
    _start_jax(args)
    from jrl.experiment import RunSpec, train

    settings = _settings(args)
    env_kwargs = parse_pairs(args.env_kwarg, "--env-kwarg") or None
    request = _request(args, "run", "runs")
    seeds = args.seeds
    spec, output.directory = _resolve(
        args,
        request,
        load=lambda: RunSpec.load(
            args.config,
            algo=args.algo,
            env=args.env,
            seeds=seeds,
            devices=args.devices,
            env_kwargs=env_kwargs,
            config=request.overrides,
        ),
        resolve=lambda env: RunSpec.resolve(
            request.algo,
            env,
            1 if seeds is None else seeds,
            request.overrides,
            env_kwargs,
            devices=1 if args.devices is None else args.devices,
        ),
    )
    summary = train(spec, output.directory, settings, progress=not args.quiet)
    return 0 if summary["finite"] else 1


def _env_int(value: int | None, variable: str, flag: str) -> int | None:
    if value is not None:
        return value
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{variable}={text!r} must be an integer (like {flag})") from None


def _start_jax(args: argparse.Namespace) -> None:
    """``--host-devices`` and ``jax.distributed``: before anything asks JAX for a device."""
    if args.host_devices is not None:
        if args.host_devices < 1:
            raise UsageError(f"--host-devices must be at least 1, got {args.host_devices}")
        _split_host(args.host_devices)
    coordinator = args.coordinator or os.environ.get("JRL_COORDINATOR_ADDRESS", "").strip() or None
    num_processes = _env_int(args.num_processes, "JRL_NUM_PROCESSES", "--num-processes")
    process_id = _env_int(args.process_id, "JRL_PROCESS_ID", "--process-id")
    if not (args.distributed or coordinator or num_processes is not None or process_id is not None):
        return
    if coordinator is not None and not coordinator.rpartition(":")[2].isdigit():
        raise UsageError(f"the coordinator address is HOST:PORT, got {coordinator!r}")
    if num_processes is not None and num_processes < 1:
        raise UsageError(f"the number of processes must be at least 1, got {num_processes}")
    if process_id is not None and (process_id < 0 or (num_processes is not None and process_id >= num_processes)):
        raise UsageError(
            f"the process id must be in 0..{'N' if num_processes is None else num_processes - 1}, got {process_id}"
        )
    import jax

    if jax.distributed.is_initialized():
        return
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"jax.distributed.initialize failed: {err}") from None


def _split_host(count: int) -> None:
    """``count`` CPU devices: ``jax_num_cpu_devices``, which JAX refuses to change once its backends
    have started, and ``XLA_FLAGS`` (as docs/sweeps.md says; a process started from this one sees the
    same devices). Where JAX has started already (``jrl.cli.main`` called in a process that used
    JAX), the CPU devices it has must be ``count``."""
    import jax

    if jax.config.jax_num_cpu_devices == count:  # set already in this process (an earlier main call)
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backends have started: the count is what they have
        if jax.local_device_count("cpu") != count:
            raise UsageError(
                f"--host-devices {count}: JAX has started already in this process with "
                f"{jax.local_device_count('cpu')} CPU device(s); set it before JAX starts"
            ) from None
        return
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def _sweep(args: argparse.Namespace, output: _Output) -> int:
    _start_jax(args)
    from jrl.experiment.sweeps import Sample, SweepError, SweepSettings, SweepSpec, run_sweep

    request = _request(args, "sweep", "sweeps")
    config_class = request.config_class
    grid: dict[str, list] = {}
    for text in args.grid:
        name, values = parse_grid(config_class, text)
        if name in grid:
            raise UsageError(f"--grid {name} is given twice: list all its values in one --grid")
        grid[name] = values
    sample: dict[str, Any] = {}
    for text in args.sample:
        if "=" not in text:
            raise UsageError(f"--sample takes NAME=[log:]LOW:HIGH, got {text!r}")
        name, raw = (part.strip() for part in text.split("=", 1))
        _check_field(config_class, name, "--sample")
        if name in sample:
            raise UsageError(f"--sample {name} is given twice")
        try:
            sample[name] = Sample.parse(raw)
        except SweepError as err:
            raise UsageError(f"--sample {name}={raw}: {err}") from None
    env_kwargs = parse_pairs(args.env_kwarg, "--env-kwarg") or None
    settings = SweepSettings(
        configs_per_batch=args.configs_per_batch,
        memory_budget=None if args.memory_budget is None else parse_bytes(args.memory_budget),
        batching=not args.no_batching,
        devices=args.devices,
    )
    given = {
        "seeds": args.seeds,
        "num_samples": args.samples,
        "sample_seed": args.sample_seed,
        "threshold": args.threshold,
        "curve": args.curve,
        "eval_episodes": args.eval_episodes,
    }
    spec, output.directory = _resolve(
        args,
        request,
        load=lambda: SweepSpec.load(
            args.config,
            algo=args.algo,
            env=args.env,
            config=request.overrides,
            grid=grid,
            sample=sample,
            env_kwargs=env_kwargs,
            **given,
        ),
        resolve=lambda env: SweepSpec.resolve(
            request.algo,
            env,
            grid=grid,
            sample=sample,
            config=request.overrides,
            env_kwargs=env_kwargs,
            **{name: value for name, value in given.items() if value is not None},
        ),
    )
    result = run_sweep(spec, output.directory, settings, progress=not args.quiet)
    return sweep_report(result, args.quiet)


def sweep_report(result: Any, quiet: bool) -> int:
    """Process 0: the best line (progress prints it unless --quiet) and the result files."""
    import jax

    from jrl.experiment import sweeps

    if jax.process_index() != 0:
        return 0
    if quiet:
        print(sweeps.best_line(result))
    if result.directory is not None:
        print(f"results: {result.directory / sweeps.RESULTS_CSV} {result.directory / sweeps.RESULTS_JSON}")
    return 0 if result.best is not None else 1


def _resume(args: argparse.Namespace, output: _Output) -> int:
    from jrl.experiment import resume
    from jrl.experiment.sweeps import SPEC

    if not args.run_dir.exists():
        raise FileNotFoundError(f"{args.run_dir} does not exist: give a run directory or a sweep directory")
    output.directory = args.run_dir
    if (args.run_dir / SPEC).is_file():
        _start_jax(args)
        from jrl.experiment import resume_sweep

        return sweep_report(resume_sweep(args.run_dir, progress=not args.quiet), args.quiet)
    _start_jax(args)  # a run split over devices needs them again (--host-devices, jax.distributed)
    summary = resume(args.run_dir, progress=not args.quiet)
    return 0 if summary["finite"] else 1


def _eval(args: argparse.Namespace, output: _Output) -> int:
    import numpy as np

    from jrl._validation import check_int
    from jrl.experiment import evaluate_state, load_run

    check_int("--episodes", args.episodes, 1, 2**20)
    if args.run_dir.is_file():
        return _eval_exported(args)
    if args.seed is not None:
        raise UsageError("--seed is for an exported policy file; a run evaluates each seed with its own key")
    if args.env is not None:
        if not args.run_dir.exists():
            raise UsageError(f"{args.run_dir} does not exist: give an exported policy file (or a run directory)")
        raise UsageError("--env is for an exported policy file; a run directory knows its environment")
    if args.video is not None:
        from jrl.experiment import video

        video.check_video_path(args.video)  # before any training state is loaded
    run = load_run(args.run_dir)
    if args.video is not None:
        video.check_renders(run.env)
    state, log_index = run.load_checkpoint()
    stage = (
        "finished"
        if log_index == run.algorithm.num_logs
        else f"partial: {log_index}/{run.algorithm.num_logs} intervals"
    )
    env_steps = run.env_steps(log_index)  # None where they vary (text: tokens): the iterations instead
    done = f"{run.iterations(log_index):,} iterations" if env_steps is None else f"{env_steps:,} env steps"
    print(f"{run.spec.algo} on {run.spec.env}, {done} per seed ({stage})")
    results = evaluate_state(run, state, args.episodes)
    gym_returns = {}
    if args.gymnasium:
        from jrl.wrappers import evaluate_in_gymnasium

        spec = run.spec
        for i, seed in enumerate(spec.seeds):
            seed_state = run.seed_state(state, i)
            result = run.algorithm.result(seed_state, {})
            policy, params = spec.algorithm.greedy_policy(run.config, run.env, run.env_params, result)
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
    if args.video is not None:
        episode, frames = video.record_run_video(run, state, args.video, args.episodes)
        seed, fps, cut = run.spec.seeds[0], run.env.render_fps, " (the first ones)" if frames <= episode.length else ""
        print(
            f"video: {args.video} (seed {seed}, episode 1 of {args.episodes}: return {episode.total_return:.4g}, "
            f"{episode.length} steps, {frames} frames{cut} at {fps} fps)"
        )
    return 0


def _eval_exported(args: argparse.Namespace) -> int:
    """``jrl eval POLICY_FILE --env ID``: the exported policy as stored (quantized or not), in jrl's
    environment and with ``--gymnasium`` in Gymnasium's own."""
    import jax
    import numpy as np

    import jrl
    from jrl._validation import check_int
    from jrl.export import jax_policy, load_policy
    from jrl.export.text import is_text_spec

    if args.env is None:
        raise UsageError(f"{args.run_dir} is a policy file: give its environment with --env")
    if args.video is not None:
        raise UsageError("--video records a run directory's policy; give the run directory")
    loaded = load_policy(args.run_dir)
    if is_text_spec(loaded.spec):
        raise UsageError(
            f"{args.run_dir} is a text model: jrl generate decodes it (jrl eval evaluates exported policies)"
        )
    env, env_params = jrl.make(args.env)
    expected = tuple(env.observation_space(env_params).shape)
    if tuple(loaded.spec["obs_shape"]) != expected:
        raise UsageError(
            f"{args.run_dir} takes observations of shape {tuple(loaded.spec['obs_shape'])}; {args.env}'s are {expected}"
        )
    policy, params = jax_policy(loaded)
    seed = 0 if args.seed is None else check_int("--seed", args.seed, 0, 2**31 - 1)
    returns = np.asarray(
        jrl.evaluate(jax.random.key(seed), policy, params, env, env_params, num_episodes=args.episodes)
    )
    weights = loaded.spec.get("weights", "float32")
    line = f"{args.run_dir} ({weights} weights) on {args.env}: mean return {returns.mean():.4g} over {args.episodes}"
    if args.gymnasium:
        from jrl.wrappers import evaluate_in_gymnasium

        gym = evaluate_in_gymnasium(policy, params, args.env, num_episodes=args.episodes, seed=seed)
        line += f" episodes; in Gymnasium {np.mean(gym):.4g}"
    else:
        line += " episodes"
    print(line)
    return 0


def _is_text_file(path: Path) -> bool:
    from jrl.export import TextExport, load_policy

    return path.suffix in (".npz", ".safetensors") and isinstance(load_policy(path), TextExport)


def _export(args: argparse.Namespace, output: _Output) -> int:
    from jrl.experiment import export_run
    from jrl.text.model import CONFIG_FILE, WEIGHTS_FILE

    seed_index = 0
    if args.seed is not None:
        if args.run_dir.is_file():
            raise UsageError("--seed picks a run's seed; a policy file has one policy")
        if (args.run_dir / WEIGHTS_FILE).is_file() and (args.run_dir / CONFIG_FILE).is_file():
            raise UsageError("--seed picks a run's seed; a language model's directory has one model")
        from jrl.experiment import load_run

        seeds = list(load_run(args.run_dir).spec.seeds)
        if args.seed not in seeds:
            raise UsageError(f"--seed {args.seed}: the run's seeds are {seeds}")
        seed_index = seeds.index(args.seed)
    weights = "int8" if args.int8 else "float16" if args.float16 else "bfloat16" if args.bfloat16 else None
    if args.env is not None and not (args.int8 and args.run_dir.is_file()):
        raise UsageError("--env is where --int8 calibrates a policy file; a run directory knows its environment")
    if args.int8 and args.run_dir.is_file() and args.env is None and not _is_text_file(args.run_dir):
        print(
            f"note: {args.run_dir} is quantized uncalibrated (round to nearest); --env ID calibrates it",
            file=sys.stderr,
        )
    path = export_run(args.run_dir, args.format, args.out, seed_index=seed_index, weights=weights, env_id=args.env)
    print(path)
    return 0


def _space_text(space: Any) -> str:
    """A space for ``jrl envs``: ``Discrete(4)`` or ``Tokens(...)`` as they print, a box as its
    shape and dtype (``Box (1,) float32``: its bounds are in the docs)."""
    import jrl

    if isinstance(space, (jrl.Discrete, jrl.Tokens)):
        return repr(space)
    return f"Box {space.shape} {getattr(space.dtype, '__name__', space.dtype)}"


def _envs(args: argparse.Namespace, output: _Output) -> int:
    import jrl
    from jrl import algorithms
    from jrl.envs import registry

    print(f"{'id':<26} {'observations':<24} {'actions':<17} {'time limit':>11}  algorithms (* tuned default)")
    others = registry.namespaces()  # other libraries' ids: listed apart, without building them
    for env_id in (i for i in jrl.registered_envs() if i.split("/")[0] not in others):
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
        obs, actions = _space_text(env.observation_space(params)), _space_text(env.action_space(params))
        shown_limit = "none" if limit >= jrl.NO_TIME_LIMIT else str(limit)
        print(f"{env_id:<26} {obs:<24} {actions:<17} {shown_limit:>11}  {', '.join(names)}")
    for namespace in others:
        try:
            ids = registry.namespace_envs(namespace)
        except ImportError as err:
            print(f"\n{namespace}/<id>: not listed: {' '.join(str(err).split())}")
            continue
        print(f"\n{namespace}/<id>: the {len(ids)} environments of {namespace} (not built here: jrl.make builds one)")
        for row in range(0, len(ids), 3):
            print("  " + "".join(f"{env_id:<36}" for env_id in ids[row : row + 3]).rstrip())
    return 0


def _plot(args: argparse.Namespace, output: _Output) -> int:
    from jrl.experiment import plots
    from jrl.experiment.sweeps import SPEC

    swept = [d for d in args.run_dirs if (d / SPEC).is_file()]
    if swept:
        if len(swept) != len(args.run_dirs):
            raise UsageError("jrl plot takes run directories or sweep directories, not both")
        if args.metric is not None:
            raise UsageError("--metric is for runs; a sweep's figures show its final greedy return")
        if args.out is not None and len(swept) > 1:
            raise UsageError("--out takes one sweep directory's figures; give one sweep, or leave --out out")
        written = [path for d in swept for path in plots.plot_sweep(d, out=args.out)]
    else:
        written = plots.plot_runs(args.run_dirs, metric=args.metric, out=args.out)
    for path in written:
        print(path)
    return 0


#: Each command's handler: ``handler(args, output) -> exit status``; a handler that writes a
#: directory ``jrl resume`` continues names it in ``output`` as soon as it is known.
#: Each subcommand's handler, ``handler(args, output) -> exit status``.
HANDLERS = {
    "train": _train,
    "sweep": _sweep,
    "resume": _resume,
    "eval": _eval,
    "export": _export,
    "envs": _envs,
    "plot": _plot,
    "pretrain": _pretrain,
    "generate": _generate,
}


def is_bad_input(err: BaseException) -> bool:
    """Whether ``err`` reports bad input (one line, status 2) rather than a bug (a traceback).

    Bad input: a ``UsageError``; an ``OSError`` (a path that is missing, unreadable or in the
    way: its message names it); and a ``ValueError``, ``TypeError`` or ``ImportError`` that jrl's
    own code raised on purpose, by a ``raise`` statement in a jrl module (every validation in jrl is
    one, and names the field, the value and what is allowed). The same exception types raised
    anywhere else (inside JAX or NumPy, by the interpreter in jrl's code, in a module of yours that
    registers an environment) are not checks of your input: they are reported as internal errors.
    """
    if isinstance(err, (UsageError, OSError)):
        return True
    if not isinstance(err, (ValueError, TypeError, ImportError)) or err.__traceback__ is None:
        return False
    frame = traceback.extract_tb(err.__traceback__)[-1]
    package = Path(__file__).resolve().parent
    return Path(frame.filename).resolve().is_relative_to(package) and (frame.line or "").lstrip().startswith("raise")


def _report_internal_error(prog: str, err: BaseException) -> int:
    """A short message on stderr, the whole traceback in a file; exit status ``INTERNAL_ERROR``."""
    import datetime
    import tempfile

    text = "".join(traceback.format_exception(err))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"jrl-traceback-{stamp}-{os.getpid()}.txt"
    try:
        path.write_text(f"$ jrl {' '.join(sys.argv[1:])}\n{text}")
        where = f"the traceback is in {path}"
    except OSError:
        where, path = "the traceback follows", None
    message = " ".join(str(err).split()) or "(no message)"
    print(f"{prog}: internal error: {type(err).__name__}: {message}", file=sys.stderr)
    print(
        f"  This is a bug in jrl or in code it ran, not a problem with your command line; {where}. "
        f"Please report it with the command and that traceback. {DEBUG_VARIABLE}=1 prints it here instead.",
        file=sys.stderr,
    )
    if path is None:
        print(text, file=sys.stderr, end="")
    return INTERNAL_ERROR


def _out_of_memory(err: BaseException) -> bool:
    return type(err).__name__ in ("XlaRuntimeError", "JaxRuntimeError") and "RESOURCE_EXHAUSTED" in str(err)


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


def _parse(parser: _Parser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, with errors that name the subcommand (``jrl train: error: unrecognized
    arguments: --bogus``) and a missing command told apart from an unknown flag (``jrl --bogus``)."""
    args, extras = parser.parse_known_args(argv)
    prog = "jrl" if args.command is None else f"jrl {args.command}"
    if extras:
        raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see `{prog} --help`)", prog=prog)
    if args.command is None:
        raise UsageError(f"a command is required: {', '.join(HANDLERS)} (see `jrl --help`)", prog="jrl")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jrl`` command; returns the exit status: 0 ok; 1 a run produced non-finite
    values, every configuration of a sweep failed, or the device ran out of memory; 2 bad input
    (one line on stderr); 70 an internal error (a bug: a short message, the traceback in a file);
    130 interrupted. ``JRL_DEBUG=1`` raises every error with its traceback instead."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    output = _Output()
    prog = "jrl"
    # `--env my_envs:my/Corridor-v0` imports my_envs, which for a console script means from the
    # working directory too (as `python -m` would); appended, so it never shadows an installed package.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        args = _parse(parser, argv)
        prog = f"jrl {args.command}"
        return HANDLERS[args.command](args, output)
    except KeyboardInterrupt:
        where = output.directory
        if where is not None and where.is_dir():
            print(f"{prog}: interrupted (continue with `jrl resume {where}`)", file=sys.stderr)
        else:
            print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as err:
        if _debug():
            raise
        if isinstance(err, UsageError) and err.prog is not None:
            prog = err.prog
        if is_bad_input(err):
            print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
            return USAGE_ERROR
        if _out_of_memory(err):
            first = str(err).strip().splitlines()[0]
            print(
                f"{prog}: error: the device ran out of memory ({first}); use fewer seeds or environments "
                "(num_envs), a smaller network or replay buffer",
                file=sys.stderr,
            )
            return 1
        return _report_internal_error(prog, err)


def entry_point() -> NoReturn:
    """The console script."""
    try:
        code = main()
        if code == INTERRUPTED:
            # Skip the interpreter's teardown: after an interrupt inside XLA's compilation it can
            # crash (SIGSEGV) instead of exiting. Everything jrl writes is on disk by now.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)
    except BrokenPipeError:  # `jrl envs | head`: the reader left; not an error of ours
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    entry_point()
