"""The host-side helpers every experiment and benchmark script uses: compile-then-run timing,
many seeds in one call under the one key rule, CSV files.

The key rule (``jrl.experiment.spec``): seed ``s`` trains with ``train_key(s) = jax.random.key(s)``
and is evaluated with ``evaluation_key(s) = fold_in(key(s), EVALUATION_STREAM)``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jrl.experiment.spec import RunSpec, evaluation_key, train_key

__all__ = [
    "Timing",
    "check_per_step",
    "episodes_from_steps",
    "evaluation_keys",
    "load_per_step_run",
    "read_csv",
    "run_sweep_file",
    "timed",
    "train_keys",
    "train_seeds",
    "write_columns",
    "write_csv",
]


class Timing(NamedTuple):
    """``output`` of a compiled call, its ``compile_seconds`` (lowering + XLA compile) and
    ``run_seconds`` (the fastest of the timed runs, until every output is ready)."""

    output: Any
    compile_seconds: float
    run_seconds: float


def timed(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 1,
    warmup: bool = False,
    in_shardings: Any = None,
    static_argnums: int | Sequence[int] = (),
) -> Timing:
    """Compile ``jax.jit(fn)`` for ``args`` ahead of time, then run it ``repeats`` times.

    Compile time is measured apart from run time (benchmarks report both, separately). ``warmup``
    runs once untimed first (caches, page faults); ``in_shardings`` and ``static_argnums`` go to
    ``jax.jit``.
    """
    jit_kwargs: dict[str, Any] = {"static_argnums": static_argnums}
    if in_shardings is not None:
        jit_kwargs["in_shardings"] = in_shardings
    dynamic = [a for i, a in enumerate(args) if i not in _as_tuple(static_argnums)]
    start = time.perf_counter()
    compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    if warmup:
        jax.block_until_ready(compiled(*dynamic))
    best, output = float("inf"), None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        output = jax.block_until_ready(compiled(*dynamic))
        best = min(best, time.perf_counter() - start)
    return Timing(output, compile_seconds, best)


def _as_tuple(x: int | Sequence[int]) -> tuple[int, ...]:
    return (x,) if isinstance(x, int) else tuple(x)


def train_keys(seeds: Iterable[int]) -> jax.Array:
    """Stacked training keys of ``seeds`` (typed keys ``[len(seeds)]``)."""
    return jnp.stack([train_key(int(s)) for s in seeds])


def evaluation_keys(seeds: Iterable[int]) -> jax.Array:
    """Stacked evaluation keys of ``seeds``."""
    return jnp.stack([evaluation_key(int(s)) for s in seeds])


def train_seeds(train: Callable[..., Any], seeds: Sequence[int], hyperparams: Any = None) -> Timing:
    """Every seed of ``seeds`` trained in one compiled call: ``jit(vmap(train))(train_keys(seeds))``
    (with ``hyperparams`` shared by all, when given). Returns the ``Timing`` of that call; its
    output has a leading ``[len(seeds)]`` axis."""
    keys = train_keys(seeds)
    if hyperparams is None:
        return timed(jax.vmap(train), keys)
    return timed(jax.vmap(train, in_axes=(0, None)), keys, hyperparams)


def write_csv(path: str | Path, rows: Sequence[dict], fields: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (dicts) as CSV with a header (``fields``, default: the first row's keys);
    creates the parent directory. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(fields) if fields is not None else list(rows[0]) if rows else []
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_columns(path: str | Path, columns: dict[str, Any], index: str = "episode", digits: int = 3) -> Path:
    """Write equal-length curves as CSV: one row per position (``index`` counts from 1), one
    column per curve, values with ``digits`` decimals."""
    length = len(next(iter(columns.values())))
    rows = [
        {index: i + 1, **{name: f"{values[i]:.{digits}f}" for name, values in columns.items()}} for i in range(length)
    ]
    return write_csv(path, rows)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts of strings (``[]`` if the file is missing)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def check_per_step(spec: RunSpec, where: str = "the run") -> None:
    """Refuse a spec whose metrics cannot give per-episode curves: ``episodes_from_steps`` needs
    at most one episode to end per record, so one environment (``num_envs = 1``) and a record
    every step (``log_interval = 1``)."""
    config = spec.config
    if config.num_envs != 1 or config.log_interval != 1:
        raise ValueError(
            f"{where}: per-episode curves need num_envs = 1 and log_interval = 1, got {config.num_envs} and "
            f"{config.log_interval}"
        )


def load_per_step_run(path: str | Path) -> dict[str, Any]:
    """Read a run file (``RunSpec``: algo, env, seeds, [env_kwargs], [config]) for per-episode
    curves (``check_per_step``). Returns ``dict(name=<file stem>, env_id, env_kwargs, seeds=<count>,
    config)``."""
    path = Path(path)
    spec = RunSpec.load(path)
    check_per_step(spec, str(path))
    return dict(name=path.stem, env_id=spec.env, env_kwargs=spec.env_kwargs, seeds=len(spec.seeds), config=spec.config)


def episodes_from_steps(metrics: dict, num_episodes: int) -> dict[str, jax.Array]:
    """The first ``num_episodes`` episodes of one run from its per-step metrics (one environment,
    a record every step: ``check_per_step``), inside ``jit``.

    Returns ``returns`` and ``lengths`` float32 ``[num_episodes]`` (NaN past the episodes the run
    finished), ``finished`` (int32, episodes finished in all) and ``steps_needed`` (int32, the
    step at which episode ``num_episodes`` ended; 0 if it did not).
    """
    count = jnp.cumsum(metrics["episodes"])
    # The k-th episode (k from 1) ends in the record where the count reaches k; other records
    # scatter to index num_episodes, which is dropped.
    index = jnp.where(metrics["episodes"] == 1, count - 1, num_episodes)
    empty = jnp.full(num_episodes, jnp.nan, jnp.float32)
    reached = count >= num_episodes
    return {
        "returns": empty.at[index].set(metrics["episode_return"], mode="drop"),
        "lengths": empty.at[index].set(metrics["episode_length"], mode="drop"),
        "finished": count[-1],
        "steps_needed": jnp.where(jnp.any(reached), jnp.argmax(reached) + 1, 0),
    }


def run_sweep_file(
    path: str | Path, out: str | Path, *, settings: Any = None, progress: bool = True, **overrides: Any
) -> Any:
    """The sweep of a TOML sweep file (``SweepSpec.load(path, **overrides)``, the file ``jrl sweep
    --config`` reads), recorded in ``out``: a new sweep when ``out`` does not exist, else the sweep
    there is continued (``resume_sweep``: batches already on disk are read back, the rest trained).
    A directory that holds another sweep (its ``sweep.toml`` differs) is refused with ``SweepError``:
    delete it to run the file again. ``settings``: ``SweepSettings`` of a new sweep (a continued one
    keeps its own). Returns the ``SweepResult``."""
    from jrl.experiment.sweeps import SweepError, SweepSpec, load_sweep, resume_sweep, run_sweep

    spec = SweepSpec.load(path, **overrides)
    out = Path(out)
    if not out.exists():
        return run_sweep(spec, out, settings, progress=progress)
    recorded, _ = load_sweep(out)
    if recorded.digest() != spec.digest():
        raise SweepError(f"{out} holds another sweep than {path} describes: delete it to run {path} again")
    return resume_sweep(out, progress=progress)
