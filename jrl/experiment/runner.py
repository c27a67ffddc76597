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
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl._extras import install_hint
from jrl.algorithms.common import divisor_closest_to
from jrl.evaluate import evaluate_episodes
from jrl.experiment import checkpoint, records
from jrl.experiment.progress import Progress
from jrl.experiment.spec import RunSpec, evaluation_key, train_key

__all__ = ["Run", "RunError", "RunSettings", "evaluate_state", "load_run", "resume", "train"]


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
    """A run directory opened for work: its spec, settings, environment and algorithm."""

    directory: Path
    spec: RunSpec
    settings: RunSettings

    def __post_init__(self) -> None:
        self.env, self.env_params = self.spec.make_env()
        self.algorithm = self.spec.algorithm.make_algorithm(self.spec.config, self.env, self.env_params)
        self.keys = jnp.stack([train_key(seed) for seed in self.spec.seeds])
        # Seeds are vmapped along axis 0 of every state leaf but the interval counter, which they
        # share (they advance together). Kept unbatched, the counter, and the iteration numbers
        # derived from it, stay scalars under vmap, so a lax.cond on them (DQN's "learn now?")
        # stays a branch; batched, vmap would turn it into a select that computes both sides on
        # every iteration (measured: DQN on CartPole 40% slower).
        single = jax.eval_shape(self.algorithm.init, self.keys[0])
        self.state_axes = jax.tree_util.tree_map(lambda _: 0, single).replace(log_index=None)
        self.init = jax.jit(jax.vmap(self.algorithm.init, out_axes=self.state_axes))

    def vmap_run(self, num_logs: int) -> Any:
        """The algorithm's ``run`` over every seed: ``(state, metrics [seeds, num_logs])``."""
        run = functools.partial(self.algorithm.run, num_logs=num_logs)
        return jax.vmap(run, in_axes=(self.state_axes,), out_axes=(self.state_axes, 0))

    def seed_state(self, state: Any, index: int) -> Any:
        """Seed ``index``'s state, out of the state of every seed."""
        return jax.tree_util.tree_map(lambda x, axis: x if axis is None else x[index], state, self.state_axes)

    @property
    def checkpoint_dir(self) -> Path:
        return self.directory / records.CHECKPOINTS

    def abstract_state(self) -> Any:
        return jax.eval_shape(self.init, self.keys)

    def checkpoint_meta(self) -> dict:
        return {"algorithm": self.spec.algo, "spec_sha256": self.spec.digest(), "seeds": list(self.spec.seeds)}

    def load_checkpoint(self, path: Path | None = None) -> tuple[Any, int]:
        """The state of the checkpoint at ``path`` (default: the newest) and its log index."""
        path = path or checkpoint.latest(self.checkpoint_dir)
        if path is None:
            raise checkpoint.CheckpointError(f"{self.directory} has no checkpoint yet")
        expect = {k: v for k, v in self.checkpoint_meta().items() if k != "seeds"}
        state, header = checkpoint.load(path, self.abstract_state(), expect=expect)
        return state, header["log_index"]

    def env_steps(self, log_index: int) -> int:
        return log_index * self.spec.config.resolved_log_interval() * self.spec.config.num_envs


def evaluate_state(run: Run, state: Any, num_episodes: int) -> dict:
    """The greedy policy of every seed's state, evaluated with ``jrl.evaluate_episodes`` on the
    seed's evaluation key (``spec.evaluation_key``): per seed, mean and std of the return, mean
    length, fraction terminated, and the count of invalid actions."""
    algorithm, spec = run.algorithm, run.spec
    first = run.seed_state(state, 0)
    policy, _ = spec.algorithm.greedy_policy(spec.config, run.env, run.env_params, algorithm.result(first, {}))

    @jax.jit
    def evaluate_all(state, keys):
        def one(seed_state, key):
            _, params = spec.algorithm.greedy_policy(
                spec.config, run.env, run.env_params, algorithm.result(seed_state, {})
            )
            return evaluate_episodes(key, policy, params, run.env, run.env_params, num_episodes)

        return jax.vmap(one, in_axes=(run.state_axes, 0))(state, keys)

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
    return {
        "algo": run.spec.algo,
        "env": run.spec.env,
        "seeds": list(run.spec.seeds),
        "num_logs": run.algorithm.num_logs,
        "env_steps": run.env_steps(run.algorithm.num_logs),
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


def _latest(rows: list[dict]) -> str:
    """The progress display's latest result: mean over seeds of the last evaluation or return."""
    for name, label in (("eval_return", "eval return"), ("episode_return", "return")):
        values = [r[name] for r in rows if r.get(name) is not None]
        if values:
            last_log = max(r["log"] for r in rows if r.get(name) is not None)
            latest = [r[name] for r in rows if r["log"] == last_log and r.get(name) is not None]
            return f"{label} {np.mean(latest):.4g}"
    return "no episode ended yet"


def _advance(run: Run, state: Any, log_index: int, progress: Progress, session: dict) -> Any:
    """Run chunks from ``log_index`` to the end, recording as it goes. Returns the final state."""
    settings, algorithm = run.settings, run.algorithm
    num_logs = algorithm.num_logs
    chunk = settings.resolved_chunk_logs(num_logs)
    compiled: dict[int, Any] = {}
    writer = _tensorboard_writer(run) if settings.tensorboard else None
    metrics_path = run.directory / records.METRICS
    chunks_done = 0
    reported_nonfinite: set[int] = set()
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
            records.append_metrics(metrics_path, rows)
            if writer is not None:
                for row in rows:
                    step_count = run.env_steps(row["log"] + 1)
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
            progress.update(run.env_steps(log_index), seconds, _latest(rows))
            if chunks_done % settings.checkpoint_every == 0 or log_index == num_logs:
                if pending is not None:
                    pending.result()  # one save at a time, in order; re-raises a failed save
                pending = saver.submit(
                    checkpoint.save,
                    run.checkpoint_dir,
                    state,
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


def _finish(run: Run, state: Any, progress: Progress, session: dict) -> dict:
    started = time.perf_counter()
    summary = _summary(run, state, run.settings.eval_episodes)
    records.write_json(run.directory / records.SUMMARY, summary)
    session["summary_seconds"] = time.perf_counter() - started
    session["finished"] = records.now()
    meta_path = run.directory / records.METADATA
    metadata = records.read_json(meta_path)
    metadata["sessions"].append(session)
    records.write_json(meta_path, metadata)
    evaluation = summary["mean"]["evaluation"].get("mean_return")
    progress.message(
        f"done: {run.directory} ({len(run.spec.seeds)} seed(s), mean greedy return over "
        f"{run.settings.eval_episodes} episodes: {evaluation if evaluation is None else f'{evaluation:.4g}'})"
    )
    return summary


def train(spec: RunSpec, run_dir: str | Path, settings: RunSettings | None = None, *, progress: bool = True) -> dict:
    """Train ``spec`` into a new run directory ``run_dir`` and return the summary.

    Raises ``RunError`` if ``run_dir`` exists and is not empty (``resume`` continues a run).
    """
    settings = settings or RunSettings()
    directory = Path(run_dir)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise RunError(
            f"{directory} exists already: continue it with `jrl resume {directory}`, or choose another --out"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / records.CONFIG).write_text(spec.to_toml())
    except OSError as err:
        raise RunError(f"cannot write the run directory {str(directory)!r}: {err.strerror}") from err
    run = Run(directory, spec, settings)
    metadata = {
        "command": records.command_line(),
        "created": records.now(),
        "seeds": list(spec.seeds),
        "settings": dataclasses.asdict(settings),
        **records.environment_metadata(),
        "sessions": [],
    }
    records.write_json(directory / records.METADATA, metadata)
    return _train_from(run, None, 0, progress)


def _train_from(run: Run, state: Any, log_index: int, show: bool) -> dict:
    session = {"started": records.now(), "from_log": log_index, "compile_seconds": 0.0, "run_seconds": 0.0}
    progress = Progress(run.env_steps(run.algorithm.num_logs), run.env_steps(log_index), enabled=show)
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
        return _finish(run, state, progress, session)
    finally:
        progress.close()


def load_run(run_dir: str | Path) -> Run:
    """Open an existing run directory (``RunError`` if it is not one)."""
    directory = Path(run_dir)
    config = directory / records.CONFIG
    meta = directory / records.METADATA
    if not directory.is_dir() or not config.is_file() or not meta.is_file():
        raise RunError(f"{directory} is not a jrl run directory (it needs config.toml and metadata.json)")
    spec = RunSpec.load(config)
    settings = RunSettings(**records.read_json(meta)["settings"])
    return Run(directory, spec, settings)


def resume(run_dir: str | Path, *, progress: bool = True) -> dict:
    """Continue a run from its newest complete checkpoint (from the start if it has none) and
    return the summary; a finished run is finished again (same summary)."""
    run = load_run(run_dir)
    for stale in run.checkpoint_dir.glob(".tmp-*"):  # a save that a kill interrupted
        shutil.rmtree(stale, ignore_errors=True)
    if checkpoint.latest(run.checkpoint_dir) is None:
        state, log_index = None, 0
    else:
        state, log_index = run.load_checkpoint()
    records.truncate_metrics(run.directory / records.METRICS, log_index)
    return _train_from(run, state, log_index, progress)
