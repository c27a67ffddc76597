"""Adaptive hyperparameter search with Optuna: each batch of trials is one vmapped call.

Optuna's ask-and-tell interface proposes hyperparameters from the results so far (TPE by
default). ``optuna_search`` asks the study for ``trials_per_batch`` proposals, trains every
proposal x seed as one batch of a sweep (one call of one compiled function, its members sharded
over ``jax.devices()``), and tells the study each trial's mean final greedy return over the
seeds. The proposals are data, as a sweep's numeric axes are, so the whole search compiles once.

Only numeric hyperparameters (the config's ``HYPERPARAMS`` fields: ``alpha``, ``gamma``,
``learning_rate``, ``tau``, ...) can be searched; every other field is fixed by ``config``. A
member trains exactly as the same configuration and seed does in ``jrl.sweep`` (key
``jax.random.key(seed)``, evaluated with ``evaluation_key(seed)``; the proposed value rounded to
float32, as every numeric hyperparameter is), so a trial's value is the ``final_return_mean`` a
sweep reports for that point. With a seeded sampler (``optuna.samplers.TPESampler(seed=0)``)
the same search proposes the same trials and gets the same values.

A trial with a seed whose numbers went non-finite is told ``FAIL`` (the others complete): Optuna
then proposes away from it. Optuna is the ``optuna`` extra (``pip install "jrl-jax[optuna]"``).

A batch trains through the sweep's own path (``jrl.experiment.sweep_members``: the group's
compiled function and ``run_batch`` on the ``jrl.parallel`` device mesh, with the sweep's memory
budget and progress); only its batches are cut from the proposals as they come instead of planned
ahead. Two of a sweep's guarantees do not hold here:

- **No resume**: nothing is recorded per batch (``out`` holds ``trials.csv`` only). An
  interrupted batch's trials are told ``FAIL``; the trials told before stay in the study, and with
  an Optuna storage a later ``optuna_search`` on the same study adds trials to them, but it does
  not finish the interrupted search as it would have run (the sampler sees the failed trials).
- **One process**: the study proposes the trials, so ``jax.distributed`` with several processes
  is refused; the devices of the one process share each batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jrl import parallel
from jrl._extras import install_hint
from jrl._validation import check_int
from jrl.envs import make
from jrl.experiment import sweep_members
from jrl.experiment.progress import Progress
from jrl.experiment.sweep_spec import Sample, SweepError, SweepSpec
from jrl.experiment.sweep_stats import configuration_stats, csv_cell

__all__ = ["TRIALS_CSV", "optuna_search"]

#: The table ``optuna_search(..., out=DIR)`` writes (rewritten after every batch).
TRIALS_CSV = "trials.csv"


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise ImportError(
            f"optuna_search needs Optuna: {install_hint('optuna')} (importing it failed: {err})"
        ) from None
    return optuna


def optuna_search(
    study: Any,
    algo: str,
    env: str,
    config: Any = None,
    *,
    space: dict[str, str | Sample],
    num_trials: int,
    trials_per_batch: int,
    seeds: int | Sequence[int] = 1,
    env_kwargs: dict | None = None,
    threshold: float | None = None,
    curve: str | None = None,
    eval_episodes: int = 100,
    out: str | Path | None = None,
    memory_budget: int | None = None,
    progress: bool = True,
) -> Any:
    """Run ``num_trials`` trials of ``study``, ``trials_per_batch`` per compiled call; return the study.

    ``jrl.optuna_search(optuna.create_study(direction="maximize"), "dqn", "CartPole-v1",
    space={"learning_rate": "log:1e-4:1e-2", "tau": "0.1:1.0"}, num_trials=64,
    trials_per_batch=16, seeds=4)`` trains 4 batches of 16 trials x 4 seeds.

    Args:
        study: an ``optuna.Study`` with one objective, ``direction="maximize"`` (a trial's value
            is a return). Its sampler chooses the proposals; its storage keeps them (an RDB storage
            keeps a search across processes and restarts).
        algo, env, config, seeds, env_kwargs, threshold, curve, eval_episodes: as in ``jrl.sweep``.
        space: numeric hyperparameter -> range, ``"low:high"`` (uniform) or ``"log:low:high"``
            (log-uniform), or a ``Sample``; Optuna samples within it.
        num_trials: trials to run (>= 1).
        trials_per_batch: trials per compiled call (>= 1); the last batch may hold fewer (padded,
            so the one compilation serves it). Memory per call grows with ``trials_per_batch * seeds``.
        out: a new or empty directory for ``trials.csv`` (one row per trial, rewritten after every
            batch); ``None``: nothing is written.
        memory_budget: bytes one batch may take (``None``: half the free host memory on CPU, half
            of the accelerators' memory, as for a sweep); a batch that does not fit is refused
            before anything compiles.
        progress: print the plan, compilation and one line per batch.

    Each trial gets user attributes: ``final_returns`` (per seed; ``None`` where it diverged) and
    the sweep table's statistics for its point (``final_return_mean``, ``_std``, ``_ci_low``,
    ``_ci_high``: 95% bootstrap over seeds; ``auc_mean``, ``auc_std``, ``diverged_seeds``, and with
    ``threshold`` ``seeds_reached`` and ``steps_to_threshold``). Everything is validated before
    anything compiles.
    """
    optuna = _import_optuna()
    if not isinstance(study, optuna.Study):
        raise TypeError(f"study must be an optuna.Study (optuna.create_study(...)), got {type(study).__name__}")
    if len(study.directions) != 1 or study.directions[0] != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(
            f"the study must have one objective, direction='maximize' (trials are scored by their return); "
            f"got directions {[d.name.lower() for d in study.directions]}"
        )
    check_int("num_trials", num_trials, 1)
    check_int("trials_per_batch", trials_per_batch, 1)
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, 1)
    if not isinstance(space, dict) or not space:
        raise SweepError(f"space must name at least one numeric hyperparameter and its range, got {space!r}")
    if jax.process_count() > 1:
        raise SweepError("optuna_search runs in one process (its study proposes the trials); use jrl.sweep for hosts")
    # A sweep spec with the space as sample axes validates every name and range, and fixes the
    # config, seeds and evaluation exactly as jrl.sweep would (its own draw is never trained).
    spec = SweepSpec.resolve(
        algo,
        env,
        sample=space,
        num_samples=trials_per_batch,
        seeds=seeds,
        config=config,
        env_kwargs=env_kwargs,
        threshold=threshold,
        curve=curve,
        eval_episodes=eval_episodes,
    )
    directory = None if out is None else Path(out)
    if directory is not None and directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SweepError(f"{directory} exists already and is not empty: choose another out")
    distributions = {
        name: optuna.distributions.FloatDistribution(rng.low, rng.high, log=rng.log)
        for name, rng in spec.sample.items()
    }
    mesh = parallel.device_mesh()
    devices = list(mesh.devices.flat)
    environment, env_params = make(spec.env, **spec.env_kwargs)
    trials_per_batch = min(trials_per_batch, num_trials)
    group = sweep_members.Group(spec, {}, list(range(trials_per_batch)), environment, env_params)
    per_trial = group.member_bytes() * len(spec.seeds)
    budget = parallel.memory_budget(devices) if memory_budget is None else memory_budget
    _check_budget(per_trial, trials_per_batch, len(spec.seeds), budget)
    size = parallel.padded_size(trials_per_batch * len(spec.seeds), len(devices))
    num_batches = math.ceil(num_trials / trials_per_batch)
    bar = Progress(
        num_trials * len(spec.seeds), unit="trainings (trials x seeds)", scope="all trainings", enabled=progress
    )
    rows: list[dict] = []
    last_word = None
    try:
        bar.message(
            f"optuna search: {num_trials} trial(s) x {len(spec.seeds)} seed(s) of {spec.algo} on {spec.env} over "
            f"{sorted(distributions)}, {num_batches} batch(es) of up to {trials_per_batch} trial(s) over "
            f"{len(devices)} device(s); 1 compilation; estimated memory per trial {parallel.format_bytes(per_trial)}"
        )
        # Before the first trial is asked: an interrupted compilation leaves no trial in the study.
        sweep_members.compile_batch(group, mesh, size, bar, f"{size} members")
        for number in range(num_batches):
            count = min(trials_per_batch, num_trials - number * trials_per_batch)
            trials: list = []
            try:  # interrupted or broken: the batch's trials must not stay RUNNING
                for _ in range(count):
                    trials.append(study.ask(distributions))
                hyperparams = [spec.config.replace(**trial.params).hyperparams() for trial in trials]
                batch = sweep_members.Batch(0, number, list(range(count)), hyperparams)
                numbers, _, seconds = sweep_members.train_batch(group, batch, mesh, size, bar)
            except BaseException:
                for trial in trials:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            for j, trial in enumerate(trials):
                rows.append(_tell(optuna, study, trial, numbers, j, spec))
            if directory is not None:
                _write_trials(directory, rows, list(distributions))
            env_steps = None if group.env_steps() is None else count * len(spec.seeds) * group.env_steps()
            bar.update(len(rows) * len(spec.seeds), seconds, _batch_line(rows, count, number, num_batches), env_steps)
        last_word = _best_trial_line(rows, list(distributions))
    finally:
        bar.close(last_word)  # below the live display's last frame
    return study


def _check_budget(per_trial: int, trials_per_batch: int, num_seeds: int, budget: int) -> None:
    """Refuse a batch of trials that does not fit the memory budget, before anything compiles."""
    mib = parallel.format_bytes
    if per_trial > budget:
        raise SweepError(
            f"one trial x {num_seeds} seeds needs about {mib(per_trial)}, more than the memory budget {mib(budget)}: "
            "use fewer seeds or a smaller config (num_envs, buffer_size), or raise memory_budget"
        )
    if trials_per_batch * per_trial > budget:
        raise SweepError(
            f"a batch of {trials_per_batch} trials x {num_seeds} seeds needs about {mib(trials_per_batch * per_trial)} "
            f"({mib(per_trial)} per trial) but the memory budget is {mib(budget)}: lower trials_per_batch to "
            f"{budget // per_trial} or less, use fewer seeds, or raise memory_budget"
        )


def _batch_line(rows: list[dict], count: int, number: int, num_batches: int) -> str:
    """The progress line's latest result after batch ``number`` (its ``count`` trials are the last rows)."""
    completed = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(completed, key=lambda r: r["value"]) if completed else None
    failed = sum(r["state"] == "FAIL" for r in rows[-count:])
    latest = f"batch {number + 1}/{num_batches}" + (f", {failed} failed" if failed else "")
    if best is not None:
        latest += f", best trial {best['number']}: {best['value']:.4g}"
    return latest


def _best_trial_line(rows: list[dict], axes: list[str]) -> str | None:
    """The search's last word: its best trial, or that none finished."""
    if rows and all(r["state"] == "FAIL" for r in rows):
        return "no trial finished with finite values"
    if not rows:
        return None
    best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["value"])
    params = ", ".join(f"{name}={best[name]:.4g}" for name in axes)
    return f"best of this search: trial {best['number']}: {params}: final return {best['value']:.4g}"


def _tell(optuna: Any, study: Any, trial: Any, numbers: dict, j: int, spec: SweepSpec) -> dict:
    """Tell ``study`` trial ``trial``'s result (the batch's ``j``-th configuration); its table row."""
    num_seeds = len(spec.seeds)
    rows = slice(j * num_seeds, (j + 1) * num_seeds)
    finite = numbers["finite"][rows]
    final = np.where(finite, numbers["final_return"][rows], np.nan)
    stats = configuration_stats(final, finite, numbers["curve"][rows], numbers["env_steps"][rows], spec)
    failed = stats.pop("failed")
    attrs = {"final_returns": [float(v) if math.isfinite(v) else None for v in final], **stats}
    for name, value in attrs.items():
        trial.set_user_attr(name, value)
    if failed:  # as a sweep marks a configuration with a diverged seed failed
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        state, value = "FAIL", None
    else:
        study.tell(trial, stats["final_return_mean"])
        state, value = "COMPLETE", stats["final_return_mean"]
    return {"number": trial.number, **trial.params, "state": state, "value": value, "seeds": num_seeds, **attrs}


def _write_trials(directory: Path, rows: list[dict], axes: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    columns = ["number", *axes, "state", "value", "seeds"]
    columns += [c for c in rows[0] if c not in columns and c != "final_returns"]
    lines = [",".join(columns)] + [",".join(csv_cell(row[c]) for c in columns) for row in rows]
    tmp = directory / f".{TRIALS_CSV}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, directory / TRIALS_CSV)
