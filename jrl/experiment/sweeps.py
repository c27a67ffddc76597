"""Hyperparameter sweeps: every configuration x seed of a grid (and random samples) trained with
``vmap`` in one compiled call per group, sharded over every device, on one host or several.

This module runs them and is the public face of the sweep; the jobs live beside it:

- ``sweep_spec``: what a sweep is (``SweepSpec``, ``Sample``, ``SweepSettings``, ``SweepResult``).
- ``sweep_members``: groups (one compilation each), batches that fit the memory budget, and one
  batch trained on the device mesh (``jrl.parallel`` places it).
- ``sweep_stats``: the statistics over seeds and the table (``results.csv``, ``results.json``).

Here: ``sweep``, ``run_sweep``, ``resume_sweep`` and ``load_sweep``; the sweep directory
(``sweep.toml``, ``metadata.json``, one file per finished batch, the table) and its resumption;
progress; and the guards of a multi-process sweep. With ``jax.distributed`` initialized,
``jax.devices()`` spans every process: each trains the shards on its own devices and process 0
gathers the results and writes the files.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jrl import parallel
from jrl.envs import make
from jrl.experiment import records
from jrl.experiment.progress import Progress
from jrl.experiment.sweep_members import (
    Batch,
    Group,
    exact_greedy_returns,
    members_per_call,
    plan_batches,
    train_batch,
)
from jrl.experiment.sweep_spec import SPEC, Sample, SweepError, SweepResult, SweepSettings, SweepSpec
from jrl.experiment.sweep_stats import RESULTS_CSV, RESULTS_JSON, best_line, tabulate, write_table

__all__ = [
    "BATCHES",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "SPEC",
    "Sample",
    "SweepError",
    "SweepResult",
    "SweepSettings",
    "SweepSpec",
    "best_line",
    "exact_greedy_returns",
    "load_sweep",
    "resume_sweep",
    "run_sweep",
    "sweep",
    "write_table",
]

#: The folder of batch files in a sweep directory.
BATCHES = "batches"


def _batch_path(directory: Path, batch: Batch) -> Path:
    return directory / BATCHES / f"batch-{batch.number:05d}.npz"


def _save_batch(directory: Path, batch: Batch, numbers: dict, digest: str) -> None:
    path = _batch_path(directory, batch)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, spec_sha256=np.asarray(digest), **numbers)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_batch(directory: Path, batch: Batch, digest: str) -> dict | None:
    """A finished batch's numbers, or ``None`` if it is missing; a batch of another sweep is refused."""
    path = _batch_path(directory, batch)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            numbers = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # truncated, empty, not an npz
        raise SweepError(f"{path} is not a readable batch file ({err}); delete it to train that batch again") from err
    if str(numbers.pop("spec_sha256", "")) != digest:
        raise SweepError(f"{path} belongs to another sweep (its spec digest differs); it cannot be resumed here")
    configs = [int(c) for c in numbers.get("configs", [])]
    if configs != batch.configs:
        raise SweepError(f"{path} holds configurations {configs}, expected {batch.configs}")
    return numbers


def sweep(
    algo: str,
    env: str,
    config: Any = None,
    *,
    grid: dict | None = None,
    sample: dict | None = None,
    num_samples: int = 0,
    sample_seed: int = 0,
    seeds: int | Sequence[int] = 1,
    env_kwargs: dict | None = None,
    threshold: float | None = None,
    curve: str | None = None,
    eval_episodes: int = 100,
    out: str | Path | None = None,
    settings: SweepSettings | None = None,
    progress: bool = True,
) -> SweepResult:
    """Train every configuration x seed of a sweep and tabulate the results.

    ``jrl.sweep("q_learning", "FrozenLake8x8-v1", grid={"alpha": [0.05, 0.1], "gamma": [0.9, 0.99]},
    seeds=16)`` trains 4 x 16 members in one compiled call. See ``SweepSpec.resolve`` for the
    arguments (all validated before anything compiles) and ``SweepSettings`` for batching. With
    ``out`` the sweep is recorded in that directory (``sweep.toml``, ``metadata.json``, one file per
    finished batch, ``results.csv`` and ``results.json``) and ``resume_sweep(out)`` continues it.
    """
    spec = SweepSpec.resolve(
        algo,
        env,
        grid=grid,
        sample=sample,
        num_samples=num_samples,
        sample_seed=sample_seed,
        seeds=seeds,
        config=config,
        env_kwargs=env_kwargs,
        threshold=threshold,
        curve=curve,
        eval_episodes=eval_episodes,
    )
    return run_sweep(spec, out, settings, progress=progress)


def run_sweep(
    spec: SweepSpec, out: str | Path | None = None, settings: SweepSettings | None = None, *, progress: bool = True
) -> SweepResult:
    """``sweep`` for a resolved spec (``out``: a new or empty directory, or ``None``)."""
    settings = settings or SweepSettings()
    source = spec.resolve_paths(Path.cwd())  # paths as typed: relative to the working directory
    if out is None:
        return _execute(source, None, settings, progress, resolved=source)
    directory = Path(out)
    # The directory keeps a copy of each file the config names (a pretrained model), and its
    # sweep.toml names the copy relative to itself: it resumes from any working directory.
    paths = source.paths()
    stored = dataclasses.replace(
        spec, config=spec.config.replace(**{name: f"{records.INPUTS}/{name}" for name in paths})
    )
    # Process 0 alone checks and writes the directory (on a shared file system another process
    # would find it made already), and only once the sweep is planned: bad input leaves nothing.
    problem = _in_the_way(directory, stored) if jax.process_index() == 0 else None
    _raise_on_every_process(problem)

    def create(planned: SweepSettings) -> None:
        inputs = {}
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, path in paths.items():
                (directory / records.INPUTS).mkdir(exist_ok=True)
                records.copy_input(path, directory / records.INPUTS / name)
                inputs[name] = {"source": path, "sha256": records.tree_sha256(directory / records.INPUTS / name)}
            (directory / SPEC).write_text(stored.to_toml())
        except OSError as err:
            raise SweepError(f"cannot write the sweep directory {str(directory)!r}: {err.strerror or err}") from err
        metadata = {
            "command": records.command_line(),
            "created": records.now(),
            # The budget as resolved, not as asked: a resumed sweep must cut the same batches,
            # whatever memory is free then and however many processes resume it.
            "settings": dataclasses.asdict(planned),
            "processes": jax.process_count(),
            **({"inputs": inputs} if inputs else {}),
            **records.environment_metadata(),
            "sessions": [],
        }
        records.write_json(directory / records.METADATA, metadata)

    return _execute(stored, directory, settings, progress, create, resolved=source)


def _in_the_way(directory: Path, spec: SweepSpec) -> str | None:
    """Why a new sweep cannot be made in ``directory`` (``None``: it can), with advice that fits
    what is there: only the same sweep can be continued."""
    if not directory.exists():
        return None
    if not directory.is_dir():
        return f"{directory} is a file: choose another --out"
    if not any(directory.iterdir()):
        return None
    if (directory / SPEC).is_file():
        try:
            same = load_sweep(directory)[0].digest() == spec.digest()
        except (ValueError, TypeError, OSError):
            same = False
        if same:
            return f"{directory} holds this sweep already: continue it with `jrl resume {directory}`"
        return f"{directory} holds another sweep (its {SPEC} differs): choose another --out"
    return f"{directory} exists and is not empty: choose another --out"


def _raise_on_every_process(problem: str | None) -> None:
    """Raise ``SweepError(problem)`` where process 0 found ``problem``: on every process, so that
    no process waits in a collective for one that stopped."""
    problem = parallel.agree(problem, "process 0 stopped the sweep (its error says why)")
    if problem is not None:
        raise SweepError(problem)


def load_sweep(directory: str | Path) -> tuple[SweepSpec, SweepSettings]:
    """The spec and settings of an existing sweep directory (``SweepError`` if it is not one)."""
    directory = Path(directory)
    if not (directory / SPEC).is_file() or not (directory / records.METADATA).is_file():
        raise SweepError(f"{directory} is not a jrl sweep directory (it needs {SPEC} and metadata.json)")
    spec = SweepSpec.load(directory / SPEC)
    recorded = records.read_json(directory / records.METADATA)["settings"]
    if recorded.get("devices") is not None and recorded["devices"] > len(jax.devices()):
        recorded["devices"] = None  # made where it had more devices: use all of these
    return spec, SweepSettings(**recorded)


def resume_sweep(directory: str | Path, *, progress: bool = True) -> SweepResult:
    """Continue an interrupted sweep: batches already on disk are read back, the rest trained.
    The finished table is the one an uninterrupted sweep writes."""
    directory = Path(directory)
    spec, settings = load_sweep(directory)
    resolved = spec.resolve_paths(directory)
    recorded = records.read_json(directory / records.METADATA).get("inputs", {})
    for name, path in resolved.paths().items():  # the files the finished batches were trained from
        if name in recorded and records.tree_sha256(path) != recorded[name]["sha256"]:
            raise SweepError(f"{path} has changed since the sweep started (its sha256 differs): it cannot be resumed")
    for stale in (directory / BATCHES).glob(".*.tmp.npz"):
        stale.unlink(missing_ok=True)
    return _execute(spec, directory, settings, progress, resolved=resolved)


def _execute(
    spec: SweepSpec,
    directory: Path | None,
    settings: SweepSettings,
    show: bool,
    create: Callable | None = None,
    *,
    resolved: SweepSpec,
) -> SweepResult:
    """Plan, train the batches not on disk yet, tabulate. ``create(settings)`` (a new sweep
    directory) is called on process 0 once the plan stands, with the settings it was made with.
    ``spec`` is the sweep as recorded (its digest marks the batch files); ``resolved`` is the same
    with its path fields absolute: what the algorithm reads."""
    lead = jax.process_index() == 0
    if settings.devices and jax.process_count() > 1:
        raise SweepError("devices= cannot limit a multi-process sweep: every process's devices take part")
    mesh = parallel.device_mesh(settings.devices)
    devices = list(mesh.devices.flat)
    env, env_params = make(spec.env, **spec.env_kwargs)
    groups = [Group(resolved, static, indices, env, env_params) for static, indices in resolved.groups()]
    if settings.memory_budget is None:  # as resolved, so that a resumed sweep cuts the same batches
        settings = dataclasses.replace(settings, memory_budget=parallel.memory_budget(devices))
    messages: list[str] = []
    batches = plan_batches(groups, len(spec.seeds), settings, messages.append)
    if create is not None:
        problem = None
        if lead:
            try:
                create(settings)
            except (SweepError, OSError) as err:
                problem = str(err)
        _raise_on_every_process(problem)
    num_members = len(spec.points()) * len(spec.seeds)
    head = (
        f"sweep: {len(spec.points())} configuration(s) x {len(spec.seeds)} seed(s) = {num_members} trainings of "
        f"{spec.algo} on {spec.env}, in {len(batches)} batch(es) over {len(devices)} device(s)"
        f"{f' in {jax.process_count()} processes' if jax.process_count() > 1 else ''}; "
        f"{len(groups)} group(s): {len(groups)} compilation(s)"
    )
    digest = spec.digest()
    done = {} if directory is None else _read_batches(directory, batches, digest)
    finished = set(done)  # on every process (process 0 read the files)
    # Progress counts trainings (configuration x seed), and env steps per second over all of them.
    trainings_done = sum(len(b.configs) * len(spec.seeds) for b in batches if b.number in finished)
    bar = Progress(num_members, trainings_done, unit="trainings", scope="all trainings", enabled=show and lead)
    last_word = None
    session = {"started": records.now(), "batches_before": len(finished), "compile_seconds": 0.0, "run_seconds": 0.0}
    try:
        bar.message(head)
        for text in messages:
            bar.message(text)
        for batch in batches:
            if batch.number in finished:
                continue
            group = groups[batch.group]
            size = parallel.padded_size(members_per_call(batches, batch, len(spec.seeds)), len(devices))
            numbers, compile_seconds, seconds = train_batch(group, batch, mesh, size, bar)
            session["compile_seconds"] += compile_seconds
            session["run_seconds"] += seconds
            if directory is not None:
                _write_batch(directory, batch, numbers, digest)
            done[batch.number] = numbers
            trainings = len(batch.configs) * len(spec.seeds)
            trainings_done += trainings
            failed = int((~numbers["finite"]).sum())
            latest = f"batch {batch.number + 1}/{len(batches)}" + (f", {failed} diverged" if failed else "")
            per_training = group.env_steps()
            bar.update(trainings_done, seconds, latest, None if per_training is None else per_training * trainings)
        if not lead:
            return SweepResult(spec, [], np.empty((0, 0)), None, np.empty((0, 0), bool), directory)
        result = tabulate(spec, batches, done, directory)
        if directory is not None:
            write_table(result)
            session["finished"] = records.now()
        last_word = best_line(result)
        return result
    finally:
        bar.close(last_word)  # below the live display's last frame
        if directory is not None and lead:  # interrupted or broken sessions are recorded too
            session["batches_after"] = len(done)  # read back or trained
            _record_session(directory, session)


def _read_batches(directory: Path, batches: list[Batch], digest: str) -> dict[int, dict]:
    """The finished batches' numbers by batch number: read by process 0; every other process gets
    their numbers' keys only (empty dicts), which is all it needs to skip them."""
    done: dict[int, dict] = {}
    problem = None
    if jax.process_index() == 0:
        try:
            for batch in batches:
                numbers = _load_batch(directory, batch, digest)
                if numbers is not None:
                    done[batch.number] = numbers
        except SweepError as err:
            problem = str(err)
    _raise_on_every_process(problem)
    if jax.process_count() > 1:
        flags = np.zeros(len(batches), np.int32)
        flags[list(done)] = 1
        flags = parallel.broadcast_from_lead(flags)
        if jax.process_index() != 0:
            done = {int(i): {} for i in np.flatnonzero(flags)}
    return done


def _write_batch(directory: Path, batch: Batch, numbers: dict, digest: str) -> None:
    """Process 0 writes a finished batch's file; a failure stops every process."""
    problem = None
    if jax.process_index() == 0:
        try:
            _save_batch(directory, batch, numbers, digest)
        except OSError as err:
            problem = f"cannot write {_batch_path(directory, batch)}: {err}"
    _raise_on_every_process(problem)


def _record_session(directory: Path, session: dict) -> None:
    """Append this session (finished, interrupted or broken) to ``metadata.json``."""
    if "finished" not in session:
        session["interrupted"] = records.now()
    try:
        meta_path = directory / records.METADATA
        metadata = records.read_json(meta_path)
        metadata["sessions"].append(session)
        records.write_json(meta_path, metadata)
    except OSError:
        if "finished" in session:
            raise
