"""Training runs that record themselves: chunked, compiled once per chunk size, checkpointed,
resumable bit for bit.

``train(spec, run_dir)`` creates the run directory (``records`` describes its files), then
advances every seed of the spec together (vmapped) by ``chunk_logs`` logging intervals at a time.
Between chunks, on the host, it appends the metrics, advances the progress display and, every
``checkpoint_every`` chunks and at the end, saves a checkpoint. ``resume(run_dir)`` loads the
newest complete checkpoint and carries on; the finished run's ``summary.json`` and final state
are those of an uninterrupted run, bit for bit, because ``run`` in chunks is ``make_train``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl import parallel
from jrl._extras import install_hint
from jrl.algorithms.common import divisor_closest_to
from jrl.evaluate import evaluate_episodes
from jrl.experiment import checkpoint, curves, records
from jrl.experiment.progress import Progress
from jrl.experiment.spec import RunSpec, evaluation_key, train_key

__all__ = ["LatestResult", "Run", "RunError", "RunSettings", "evaluate_state", "load_run", "resume", "train"]


class RunError(ValueError):
    """A run directory that cannot be used as asked (exists already, is not a run, ...)."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a run proceeds; none of it changes the results.

    Attributes:
        chunk_logs: logging intervals per compiled chunk (``None``: the divisor of the run's
            intervals closest to a tenth of them, so every chunk has one size and compiles once).
        checkpoint_every: chunks between checkpoints (a checkpoint is also saved at the end).
        keep: checkpoints kept (the newest).
        eval_episodes: greedy episodes per seed in the final evaluation (``summary.json``).
        tensorboard: also write TensorBoard event files (needs the ``tensorboard`` extra).
    """

    chunk_logs: int | None = None
    checkpoint_every: int = 1
    keep: int = 3
    eval_episodes: int = 100
    tensorboard: bool = False

    def __post_init__(self) -> None:
        from jrl._validation import check_bool, check_int

        if self.chunk_logs is not None:
            check_int("chunk_logs", self.chunk_logs, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_int("keep", self.keep, 1)
        check_int("eval_episodes", self.eval_episodes, 1, 2**20)
        check_bool("tensorboard", self.tensorboard)

    def resolved_chunk_logs(self, num_logs: int) -> int:
        if self.chunk_logs is not None:
            return min(self.chunk_logs, num_logs)
        return divisor_closest_to(num_logs, 10) if num_logs >= 10 else 1


@dataclasses.dataclass
class Run:
    """A run directory opened for work: its spec, settings, environment and algorithm.

    ``spec`` is the run as ``config.toml`` records it: its path fields (``spec.paths()``) name the
    run's own copies, relative to ``directory``. ``config`` is ``spec.config`` with those paths
    made absolute: what the algorithm reads, from any working directory.
    """

    directory: Path
    spec: RunSpec
    settings: RunSettings

    def __post_init__(self) -> None:
        self.config = self.spec.resolve_paths(self.directory).config
        self.env, self.env_params = self.spec.make_env()
        self.parallel = parallel.DataParallel(self.spec.devices)
        self.algorithm = self.spec.algorithm.make_algorithm(self.config, self.env, self.env_params, self.parallel)
        self.inputs_sha256 = {name: records.tree_sha256(getattr(self.config, name)) for name in self.spec.paths()}
        self.keys = jnp.stack([train_key(seed) for seed in self.spec.seeds])
        # Seeds are vmapped along axis 0 of every state leaf but the interval counter, which they
        # share (they advance together). Kept unbatched, the counter, and the iteration numbers
        # derived from it, stay scalars under vmap, so a lax.cond on them (DQN's "learn now?")
        # stays a branch; batched, vmap would turn it into a select that computes both sides on
        # every iteration (measured: DQN on CartPole 40% slower).
        #
        # Split over devices (spec.devices > 1), every leaf of the state gains a leading device
        # axis [D, ...], split over the mesh: each device holds its own environments, buffer and
        # keys, and its copy of the parameters, which the averaged gradients keep equal.
        # The shapes need no devices: vmap over a named axis runs the devices' program abstractly,
        # so a run split over devices can be read (eval, plot) where fewer exist.
        if self.parallel.active:
            per_device = jax.vmap(self.algorithm.init, None, axis_name=_DEVICES, axis_size=self.spec.devices)
            stacked = jax.eval_shape(per_device, self.keys[0])
            single = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), stacked)
        else:
            single = jax.eval_shape(self.algorithm.init, self.keys[0])
        self.state_axes = jax.tree_util.tree_map(lambda _: 0, single).replace(log_index=None)
        self._seeds_init = jax.vmap(self.algorithm.init, out_axes=self.state_axes)
        self._mesh: jax.sharding.Mesh | None = None

    @property
    def mesh(self) -> jax.sharding.Mesh:
        """The devices a run split over ``spec.devices`` trains on; ``RunError`` if JAX has fewer."""
        if self._mesh is None:
            self._mesh = _run_mesh(self.spec.devices)
        return self._mesh

    @property
    def init(self) -> Any:
        """``init(keys [seeds]) -> state`` of every seed (and device), jitted."""
        if not self.parallel.active:
            return jax.jit(self._seeds_init)
        per_device = self._on_devices(lambda keys: _add_device_axis(self._seeds_init(keys)), P(), P(_DEVICES))
        return jax.jit(per_device)

    def _on_devices(self, function: Any, in_specs: Any, out_specs: Any) -> Any:
        """``function`` as every device's program over the run's mesh (``shard_map``); itself on one device."""
        if not self.parallel.active:
            return function
        return jax.shard_map(function, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    def vmap_run(self, num_logs: int) -> Any:
        """The algorithm's ``run`` over every seed (and device): ``(state, metrics [seeds, num_logs])``."""
        run = jax.vmap(
            functools.partial(self.algorithm.run, num_logs=num_logs),
            in_axes=(self.state_axes,),
            out_axes=(self.state_axes, 0),
        )
        if not self.parallel.active:
            return run

        def per_device(state: Any) -> tuple[Any, dict]:
            state, metrics = run(_drop_device_axis(state))
            return _add_device_axis(state), metrics  # metrics are reduced over devices: equal on each

        return self._on_devices(per_device, (P(_DEVICES),), (P(_DEVICES), P()))

    def place(self, state: Any) -> Any:
        """A state read from a checkpoint, on the run's devices (split along the device axis);
        where JAX has fewer devices, left where it is (readable; training it raises ``RunError``)."""
        if not self.parallel.active or len(jax.devices()) < self.spec.devices:
            return state
        return jax.jit(lambda tree: tree, out_shardings=jax.sharding.NamedSharding(self.mesh, P(_DEVICES)))(state)

    def device_state(self, state: Any) -> Any:
        """The state of one device (the first): what every device agrees on (parameters, counters),
        with parameters split over the devices (``parallel.Sharded``) put back whole;
        ``state`` itself on one device."""
        return _drop_device_axis(parallel.unshard(state)) if self.parallel.active else state

    def seed_state(self, state: Any, index: int) -> Any:
        """Seed ``index``'s state, out of the state of every seed (of the first device)."""
        state = self.device_state(state)
        axes = parallel.unshard(self.state_axes)  # of the whole state (device_state's)
        return jax.tree_util.tree_map(lambda x, axis: x if axis is None else x[index], state, axes)

    @property
    def checkpoint_dir(self) -> Path:
        return self.directory / records.CHECKPOINTS

    def abstract_state(self) -> Any:
        """The shapes and dtypes of the state of every seed (and device)."""
        if not self.parallel.active:
            return jax.eval_shape(self._seeds_init, self.keys)
        per_device = jax.vmap(self._seeds_init, None, axis_name=_DEVICES, axis_size=self.spec.devices)
        return jax.eval_shape(per_device, self.keys)

    def checkpoint_meta(self) -> dict:
        meta = {"algorithm": self.spec.algo, "spec_sha256": self.spec.digest(), "seeds": list(self.spec.seeds)}
        if self.parallel.active:  # a one-device checkpoint's header is what it always was
            meta["devices"] = self.spec.devices
        if self.inputs_sha256:  # the files the algorithm reads (a pretrained model) must be the ones trained from
            meta["inputs_sha256"] = self.inputs_sha256
        return meta

    def load_checkpoint(self, path: Path | None = None) -> tuple[Any, int]:
        """The state of the checkpoint at ``path`` (default: the newest) and its log index."""
        path = path or checkpoint.latest(self.checkpoint_dir)
        if path is None:
            raise checkpoint.CheckpointError(f"{self.directory} has no checkpoint yet")
        # The device count first: a checkpoint split over devices loads only on as many.
        expect = {"devices": self.spec.devices if self.parallel.active else None}
        expect.update((k, v) for k, v in self.checkpoint_meta().items() if k not in ("seeds", "devices"))
        state, header = checkpoint.load(path, self.abstract_state(), expect=expect)
        return self.place(state), header["log_index"]

    def iterations(self, log_index: int) -> int:
        """Training iterations after ``log_index`` logging intervals."""
        return log_index * self.config.resolved_log_interval()

    def env_steps(self, log_index: int) -> int | None:
        """Env steps per seed after ``log_index`` logging intervals (``None`` where an
        iteration's env steps vary: a text run's are its tokens, which its metrics count)."""
        per_iteration = self.config.env_steps_per_iteration()
        return None if per_iteration is None else self.iterations(log_index) * per_iteration


_DEVICES = parallel.DEVICES


def P(*names: str | None) -> jax.sharding.PartitionSpec:
    return jax.sharding.PartitionSpec(*names)


def _add_device_axis(tree: Any) -> Any:
    """Every leaf ``[...]`` as ``[1, ...]``: one device's block of the device axis."""
    return jax.tree_util.tree_map(lambda x: x[None], tree)


def _drop_device_axis(tree: Any) -> Any:
    """The first entry of every leaf's leading (device) axis."""
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def _run_mesh(devices: int) -> jax.sharding.Mesh:
    """A mesh of the first ``devices`` devices for one run; ``RunError`` if JAX has fewer."""
    available = len(jax.devices())
    if devices > available:
        raise RunError(
            f"the run is split over {devices} devices (devices = {devices}) but JAX sees {available} "
            f"({jax.devices()[0].platform}); on a CPU give --host-devices {devices}, on a cluster start every "
            "process (--distributed, or --coordinator/--num-processes/--process-id). A checkpoint resumes only on "
            "the device count it was written with: the devices' random streams and sums are part of the run"
        )
    return parallel.device_mesh(devices, axis=_DEVICES)


def evaluate_state(run: Run, state: Any, num_episodes: int) -> dict:
    """The greedy policy of every seed's state, evaluated with ``jrl.evaluate_episodes`` on the
    seed's evaluation key (``spec.evaluation_key``): per seed, mean and std of the return, mean
    length, fraction terminated, and the count of invalid actions."""
    algorithm, spec = run.algorithm, run.spec
    first = run.seed_state(state, 0)
    state = run.device_state(state)
    policy, _ = spec.algorithm.greedy_policy(run.config, run.env, run.env_params, algorithm.result(first, {}))

    @jax.jit
    def evaluate_all(state, keys):
        def one(seed_state, key):
            _, params = spec.algorithm.greedy_policy(
                run.config, run.env, run.env_params, algorithm.result(seed_state, {})
            )
            return evaluate_episodes(key, policy, params, run.env, run.env_params, num_episodes)

        return jax.vmap(one, in_axes=(parallel.unshard(run.state_axes), 0))(state, keys)

    keys = jnp.stack([evaluation_key(seed) for seed in spec.seeds])
    stats = jax.device_get(evaluate_all(state, keys))
    out = {}
    for i, seed in enumerate(spec.seeds):
        returns = np.asarray(stats.returns[i], np.float64)
        out[str(seed)] = {
            "episodes": num_episodes,
            "mean_return": records._plain(returns.mean()),
            "std_return": records._plain(returns.std()),
            "mean_length": float(np.mean(stats.lengths[i])),
            "terminated": float(np.mean(stats.terminated[i])),
            "invalid_actions": int(np.sum(stats.invalid_actions[i])),
        }
    return out


def _summary(run: Run, state: Any, num_episodes: int) -> dict:
    """``summary.json``'s content: deterministic (no times), recomputed from the records and the
    final state."""
    rows = records.read_metrics(run.directory / records.METRICS)
    per_seed: dict[str, dict] = {}
    evaluation = evaluate_state(run, state, num_episodes)
    for seed in run.spec.seeds:
        mine = sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["log"])
        final = {k: v for k, v in mine[-1].items() if k not in ("seed", "log")}
        per_seed[str(seed)] = {
            "final": final,
            "evaluation": evaluation[str(seed)],
            "finite": all(r["finite"] for r in mine),
            "logs": len(mine),
        }
    mean = {}
    for part in ("final", "evaluation"):
        names = per_seed[str(run.spec.seeds[0])][part]
        mean[part] = {}
        for name in names:
            values = [s[part][name] for s in per_seed.values()]
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) == len(values):
                mean[part][name] = float(np.mean(numbers))
    env_steps = run.env_steps(run.algorithm.num_logs)
    if env_steps is None:  # varies (tokens): the mean over seeds of what each took
        env_steps = float(np.mean([s["final"]["env_steps"] for s in per_seed.values()]))
    return {
        "algo": run.spec.algo,
        "env": run.spec.env,
        "seeds": list(run.spec.seeds),
        "num_logs": run.algorithm.num_logs,
        "env_steps": env_steps,
        "finite": all(s["finite"] for s in per_seed.values()),
        "per_seed": per_seed,
        "mean": mean,
    }


def _tensorboard_writer(run: Run) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ImportError(
            f"--tensorboard needs tensorboardX, jrl's 'tensorboard' extra: {install_hint('tensorboard')}"
        ) from err
    return SummaryWriter(str(run.directory / "tensorboard"))


class LatestResult:
    """The progress line's latest result: ``curves.latest``, kept up to date chunk by chunk, of
    ``eval_return`` (``episode_return`` in a run that never evaluates): the mean over seeds at the
    newest interval with a value. A seed that stopped early (DQN's ``stop_return``: its later
    records are null) holds the evaluation that stopped it, as its learning curve does, so the mean
    stays over every seed."""

    def __init__(self, rows: list[dict]):
        self.trackers = {name: curves.Latest(name) for name in ("eval_return", "episode_return")}
        self.seeds: dict[str, set[int]] = {name: set() for name in self.trackers}
        self.add(rows)

    def add(self, rows: list[dict]) -> None:
        for name, tracker in self.trackers.items():
            tracker.add(rows)
            self.seeds[name] |= {r["seed"] for r in rows if r.get(name) is not None}

    def __str__(self) -> str:
        for name, label in (("eval_return", "eval return"), ("episode_return", "return")):
            tracker = self.trackers[name]
            if math.isfinite(tracker.value):
                shown = f"{'' if len(self.seeds[name]) == 1 else 'mean '}{label} {tracker.value:.4g}"
                return shown + (f", {len(tracker.stopped)} stopped" if tracker.stopped else "")
        return "no episode ended yet"


def _advance(run: Run, state: Any, log_index: int, progress: Progress, session: dict) -> Any:
    """Run chunks from ``log_index`` to the end, recording as it goes. Returns the final state."""
    settings, algorithm = run.settings, run.algorithm
    num_logs = algorithm.num_logs
    chunk = settings.resolved_chunk_logs(num_logs)
    compiled: dict[int, Any] = {}
    lead = parallel.is_lead()  # process 0 writes; every process trains its devices' shares
    writer = _tensorboard_writer(run) if settings.tensorboard and lead else None
    metrics_path = run.directory / records.METRICS
    chunks_done = 0
    reported_nonfinite: set[int] = set()
    earlier = records.read_metrics(metrics_path) if lead else []  # a resumed run's records, up to its checkpoint
    latest = LatestResult(earlier)
    env_steps = {seed: 0.0 for seed in run.spec.seeds}  # each seed's env_steps metric so far
    for row in earlier:
        env_steps[row["seed"]] = max(env_steps[row["seed"]], row["env_steps"])
    # Checkpoints are written by one background thread while the next chunk trains: a save is
    # mostly waiting on the disk (a fsync per file), which would otherwise stall the run.
    # Arrays are immutable, so the state being written cannot change under the writer.
    saver = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jrl-checkpoint")
    pending: concurrent.futures.Future | None = None
    try:
        while log_index < num_logs:
            size = min(chunk, num_logs - log_index)
            if size not in compiled:
                what = f"{size} logging interval(s) x {len(run.spec.seeds)} seed(s)"
                progress.compiling(what)
                started = time.perf_counter()
                compiled[size] = jax.jit(run.vmap_run(size)).lower(state).compile()
                session["compile_seconds"] += time.perf_counter() - started
                progress.compiled(what, time.perf_counter() - started)
            started = time.perf_counter()
            state, metrics = compiled[size](state)
            metrics = jax.device_get(metrics)
            seconds = time.perf_counter() - started
            session["run_seconds"] += seconds
            rows = records.metric_records(run.spec.seeds, log_index, metrics)
            if lead:
                records.append_metrics(metrics_path, rows)
            if writer is not None:
                for row in rows:
                    step_count = int(row["env_steps"])
                    for name, value in row.items():
                        if name not in ("seed", "log") and isinstance(value, (int, float)):
                            writer.add_scalar(f"{name}/seed_{row['seed']}", float(value), step_count)
                writer.flush()
            for row in rows:
                if not row["finite"] and row["seed"] not in reported_nonfinite:
                    reported_nonfinite.add(row["seed"])
                    progress.message(
                        f"warning: seed {row['seed']} produced non-finite values in the interval ending at step "
                        f"{row['step']} (too high a step size?); the other seeds carry on, summary.json marks it"
                    )
            log_index += size
            chunks_done += 1
            latest.add(rows)
            before = sum(env_steps.values())
            for row in rows:
                env_steps[row["seed"]] = max(env_steps[row["seed"]], row["env_steps"])
            progress.update(
                _progress_done(run, log_index), seconds, str(latest), round(sum(env_steps.values()) - before)
            )
            if chunks_done % settings.checkpoint_every == 0 or log_index == num_logs:
                saved = parallel.host_state(state) if jax.process_count() > 1 else state  # every process
                if not lead:
                    continue
                if pending is not None:
                    pending.result()  # one save at a time, in order; re-raises a failed save
                pending = saver.submit(
                    checkpoint.save,
                    run.checkpoint_dir,
                    saved,
                    log_index=log_index,
                    meta=run.checkpoint_meta(),
                    keep=settings.keep,
                    sync_first=(metrics_path,),
                )
        if pending is not None:
            pending.result()
    finally:
        saver.shutdown(wait=True)
        if writer is not None:
            writer.close()
    return state


def _progress(run: Run, log_index: int, show: bool) -> Progress:
    """The run's progress display: env steps per seed, or iterations where those vary (text)."""
    seeds = len(run.spec.seeds)
    scope = f"{seeds} seed{'s' if seeds > 1 else ''}"
    end = run.algorithm.num_logs
    unit = "iterations" if run.env_steps(end) is None else "env steps per seed"
    return Progress(_progress_done(run, end), _progress_done(run, log_index), unit=unit, scope=scope, enabled=show)


def _progress_done(run: Run, log_index: int) -> int:
    env_steps = run.env_steps(log_index)
    return run.iterations(log_index) if env_steps is None else env_steps


def _finish(run: Run, state: Any, progress: Progress, session: dict) -> tuple[dict, str]:
    """Write the summary and the session's record; returns the summary and the closing line.
    With several processes each computes the summary (from process 0's records and the gathered
    state) and process 0 writes it."""
    started = time.perf_counter()
    if jax.process_count() > 1:
        state = parallel.host_state(state)
        parallel.barrier("jrl-run-records-written")
    summary = _summary(run, state, run.settings.eval_episodes)
    session["summary_seconds"] = time.perf_counter() - started
    session["finished"] = records.now()
    if parallel.is_lead():
        records.write_json(run.directory / records.SUMMARY, summary)
        meta_path = run.directory / records.METADATA
        metadata = records.read_json(meta_path)
        metadata["sessions"].append(session)
        records.write_json(meta_path, metadata)
    evaluation = summary["mean"]["evaluation"].get("mean_return")
    done = (
        f"done: {run.directory} ({len(run.spec.seeds)} seed(s), mean greedy return over "
        f"{run.settings.eval_episodes} episodes: {evaluation if evaluation is None else f'{evaluation:.4g}'})"
    )
    return summary, done


def train(spec: RunSpec, run_dir: str | Path, settings: RunSettings | None = None, *, progress: bool = True) -> dict:
    """Train ``spec`` into a new run directory ``run_dir`` and return the summary.

    Everything is checked before ``run_dir`` is created (the environment, the algorithm, the
    files its config names), and a start that fails before its first checkpoint removes what it
    wrote, so the same command can be retried. Paths in the config are relative to the working
    directory; the run keeps a copy of what they name (``inputs/``), so it works from anywhere.

    Raises ``RunError`` if ``run_dir`` exists and is not empty (``resume`` continues a run).
    """
    settings = settings or RunSettings()
    directory = Path(run_dir)
    # Process 0 alone checks and writes the directory (on a shared file system another process
    # would find it made already); every process stops on what it finds.
    problem = None
    if parallel.is_lead() and directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        problem = f"{directory} exists already: continue it with `jrl resume {directory}`, or choose another --out"
    problem = parallel.agree(problem, "process 0 stopped the run (its error says why)")
    if problem is not None:
        raise RunError(problem)
    source = spec.resolve_paths(Path.cwd())
    run = Run(directory, source, settings)  # validates: builds the environment and the algorithm
    if run.parallel.active:
        run.mesh  # noqa: B018 (refuses, before anything is written, a device count JAX does not have)
    if not parallel.is_lead():
        parallel.barrier("jrl-run-created")
        if not (directory / records.CONFIG).is_file():
            raise RunError("process 0 stopped the run (its error says why)")
        stored = RunSpec.load(directory / records.CONFIG)
        return _train_from(Run(directory, stored, settings) if stored.paths() else run, None, 0, False)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        stored, inputs = _copy_inputs(source, directory)
        (directory / records.CONFIG).write_text(stored.to_toml())
        metadata = {
            "command": records.command_line(),
            "created": records.now(),
            "seeds": list(spec.seeds),
            "settings": dataclasses.asdict(settings),
            **({"inputs": inputs} if inputs else {}),
            **records.environment_metadata(),
            "sessions": [],
        }
        records.write_json(directory / records.METADATA, metadata)
    except OSError as err:
        _remove_start(directory, created)
        parallel.barrier("jrl-run-created")
        raise RunError(f"cannot write the run directory {str(directory)!r}: {err.strerror or err}") from err
    parallel.barrier("jrl-run-created")
    try:
        if stored is not source:
            run = Run(directory, stored, settings)  # reads the run's own copies from now on
        return _train_from(run, None, 0, progress)
    except Exception:
        if checkpoint.latest(run.checkpoint_dir) is None:  # nothing to resume: free --out for a retry
            _remove_start(directory, created)
        raise


def _copy_inputs(spec: RunSpec, directory: Path) -> tuple[RunSpec, dict]:
    """Copy what ``spec``'s path fields name (absolute paths) into ``directory/inputs/<field>``.
    Returns the spec naming the copies relative to ``directory``, and per field the original
    path and the copy's ``records.tree_sha256``."""
    paths = spec.paths()
    if not paths:
        return spec, {}
    (directory / records.INPUTS).mkdir()
    inputs, changes = {}, {}
    for name, path in paths.items():
        target = directory / records.INPUTS / name
        records.copy_input(path, target)
        changes[name] = f"{records.INPUTS}/{name}"
        inputs[name] = {"source": path, "sha256": records.tree_sha256(target)}
    return dataclasses.replace(spec, config=spec.config.replace(**changes)), inputs


def _remove_start(directory: Path, created: bool) -> None:
    """Undo a start that failed before its first checkpoint: what ``train`` wrote into the
    (empty or new) run directory, and the directory itself if ``train`` created it."""
    if not directory.is_dir():
        return
    if created:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _train_from(run: Run, state: Any, log_index: int, show: bool) -> dict:
    session = {"started": records.now(), "from_log": log_index, "compile_seconds": 0.0, "run_seconds": 0.0}
    if jax.process_count() > 1:
        session["processes"] = jax.process_count()
    progress = _progress(run, log_index, show and parallel.is_lead())
    final = None
    try:
        if state is None:
            progress.compiling("init")
            started = time.perf_counter()
            init = run.init.lower(run.keys).compile()
            session["compile_seconds"] += time.perf_counter() - started
            progress.compiled("init", time.perf_counter() - started)
            state = init(run.keys)
        started = time.perf_counter()
        compiled_before = session["compile_seconds"]
        state = _advance(run, state, log_index, progress, session)
        # The training loop's wall time without its compilations: chunks, records, progress and
        # checkpoints (benchmarks/experiment_overhead.py compares it with one compiled call).
        session["loop_seconds"] = time.perf_counter() - started - (session["compile_seconds"] - compiled_before)
        summary, final = _finish(run, state, progress, session)
        return summary
    finally:
        progress.close(final)  # the live display's last frame, then the "done:" line below it


def load_run(run_dir: str | Path) -> Run:
    """Open an existing run directory (``RunError`` if it is not one)."""
    directory = Path(run_dir)
    config = directory / records.CONFIG
    meta = directory / records.METADATA
    if not directory.is_dir() or not config.is_file() or not meta.is_file():
        raise RunError(f"{directory} is not a jrl run directory (it needs config.toml and metadata.json)")
    spec = RunSpec.load(config)
    try:
        settings = RunSettings(**records.read_json(meta)["settings"])
    except (ValueError, KeyError, TypeError) as err:  # not JSON, no settings, or settings of another version
        raise RunError(f"{meta} is damaged or not a jrl run's metadata: {type(err).__name__}: {err}") from err
    return Run(directory, spec, settings)


def resume(run_dir: str | Path, *, progress: bool = True) -> dict:
    """Continue a run from its newest complete checkpoint (from the start if it has none) and
    return the summary; a finished run is finished again (same summary)."""
    run = load_run(run_dir)
    if parallel.is_lead():
        for stale in run.checkpoint_dir.glob(".tmp-*"):  # a save that a kill interrupted
            shutil.rmtree(stale, ignore_errors=True)
    parallel.barrier("jrl-run-stale-removed")
    if checkpoint.latest(run.checkpoint_dir) is None:
        state, log_index = None, 0
    else:
        state, log_index = run.load_checkpoint()
    parallel.barrier("jrl-run-checkpoint-read")
    if parallel.is_lead():
        records.truncate_metrics(run.directory / records.METRICS, log_index)
    return _train_from(run, state, log_index, progress)
