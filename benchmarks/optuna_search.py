"""``jrl.optuna_search`` against the Optuna loops a user would otherwise write, in the same run.

The search: Q-learning on FrozenLake8x8-v1 (``q_learning.default_config`` with ``num_envs=16``
instead of 1,024, as in ``benchmarks/sweep.py``), ``alpha`` log-uniform on [0.01, 0.8] and
``gamma`` uniform on [0.9, 0.999], 64 trials x 16 seeds, each trial scored by the mean over its
seeds of the exact expected return of the final greedy policy (``exact_greedy_returns``, the
sweep table's ``final_return_mean``). Every arm uses ``TPESampler(seed=0)``:

- **jrl.optuna_search**: batches of 16 trials, each batch one vmapped call (16 trials x 16 seeds
  = 256 members), compiled once for the whole search.
- **(a)** ``study.optimize(objective)`` where the objective builds the trial's config and calls
  ``jax.jit(jax.vmap(make_train(config, ...)))`` over the seeds: a fresh trace and compilation per
  trial (the hyperparameters are constants of the program), one trial at a time.
- **(b)** the same loop with one function compiled before it, the trial's hyperparameters passed
  as data (``make_train``'s ``hyperparams`` argument): one compilation, one call per trial.

(a) and (b) are sequential TPE (each trial proposed from every earlier one); the batched search
proposes 16 at a time from the batches before. So the arms do not try the same points; the table
reports each one's best value, and how many of (b)'s trials equal (a)'s (same proposals, same
numbers: they should all match). Compile and run are timed apart; ratios are totals.

    python benchmarks/optuna_search.py           # 64 trials (about 5 minutes on 2 CPU cores)
    python benchmarks/optuna_search.py --quick   # a smoke run: 8 trials x 4 seeds, NOT results
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import time

# jaxlib 0.10.2's batched LU waits on XLA's CPU pool from inside it (see benchmarks/sweep.py).
os.environ.setdefault("PJRT_NPROC", str((os.cpu_count() or 1) + 1))

import jax
import numpy as np
import optuna

import jrl
from jrl.algorithms import q_learning
from jrl.experiment import train_keys
from jrl.experiment.sweeps import exact_greedy_returns

ENV = "FrozenLake8x8-v1"
SPACE = {"alpha": (0.01, 0.8, True), "gamma": (0.9, 0.999, False)}


def sampler() -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=0)


def run_jrl(config, trials: int, per_batch: int, seeds: list[int]) -> dict:
    study = optuna.create_study(direction="maximize", sampler=sampler())
    space = {name: f"{'log:' if log else ''}{low}:{high}" for name, (low, high, log) in SPACE.items()}
    printed = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        jrl.optuna_search(
            study, "q_learning", ENV, config, space=space, num_trials=trials, trials_per_batch=per_batch, seeds=seeds
        )
    total = time.perf_counter() - start
    compile_s = float(re.search(r"compiled .* in ([\d.]+) s", printed.getvalue()).group(1))
    return {"compile_s": compile_s, "run_s": total - compile_s, "study": study}


def run_loop(config, trials: int, seeds: list[int], fresh_jit: bool) -> dict:
    """Optuna's own loop, one trial at a time; ``fresh_jit``: (a), else (b)."""
    env, env_params = jrl.make(ENV)
    keys = train_keys(seeds)
    timing = {"compile_s": 0.0, "run_s": 0.0}

    def data(trial_config):
        return jax.tree.map(lambda x: np.full((len(seeds),), x, np.float32), trial_config.hyperparams())

    if not fresh_jit:
        start = time.perf_counter()
        compiled = jax.jit(jax.vmap(q_learning.make_train(config, env, env_params)))
        compiled = compiled.lower(keys, data(config)).compile()
        timing["compile_s"] += time.perf_counter() - start

    def objective(trial: optuna.Trial) -> float:
        values = {name: trial.suggest_float(name, low, high, log=log) for name, (low, high, log) in SPACE.items()}
        trial_config = config.replace(**values)
        start = time.perf_counter()
        if fresh_jit:
            train = jax.jit(jax.vmap(q_learning.make_train(trial_config, env, env_params)))
            call = train.lower(keys).compile()
            timing["compile_s"] += time.perf_counter() - start
            start = time.perf_counter()
            result = jax.block_until_ready(call(keys))
        else:
            result = jax.block_until_ready(compiled(keys, data(trial_config)))
        finals = exact_greedy_returns(env, env_params, np.asarray(result.q_table))
        timing["run_s"] += time.perf_counter() - start
        return float(finals.mean())

    study = optuna.create_study(direction="maximize", sampler=sampler())
    study.optimize(objective, n_trials=trials)
    return {**timing, "study": study}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not results")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials, per_batch, seeds = (8, 4, list(range(4))) if args.quick else (64, 16, list(range(16)))
    config = q_learning.default_config(ENV).replace(num_envs=16)
    print(
        f"{ENV}, q_learning default with num_envs=16: {trials} trials x {len(seeds)} seeds over {sorted(SPACE)}; "
        f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores"
        + (" -- QUICK RUN, not results" if args.quick else "")
    )
    arms = {
        f"jrl.optuna_search, batches of {per_batch}": run_jrl(config, trials, per_batch, seeds),
        "(a) Optuna loop, fresh jit per trial": run_loop(config, trials, seeds, fresh_jit=True),
        "(b) Optuna loop, one compiled function": run_loop(config, trials, seeds, fresh_jit=False),
    }
    reference = next(iter(arms.values()))
    ours = reference["compile_s"] + reference["run_s"]
    print("\n| arm | compile s | run s | total s | total / jrl | best value | trials >= 0.9 x best |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, arm in arms.items():
        total = arm["compile_s"] + arm["run_s"]
        values = np.array([t.value for t in arm["study"].trials])
        good = int(np.sum(values >= 0.9 * values.max()))
        print(
            f"| {name} | {arm['compile_s']:.2f} | {arm['run_s']:.2f} | {total:.2f} | {total / ours:.1f}x | "
            f"{values.max():.4f} | {good} |"
        )
    a, b = arms["(a) Optuna loop, fresh jit per trial"], arms["(b) Optuna loop, one compiled function"]
    same = sum(
        ta.params == tb.params and ta.value == tb.value
        for ta, tb in zip(a["study"].trials, b["study"].trials, strict=True)
    )
    print(f"\n(a) and (b): {same} of {trials} trials with the same proposal and the same value")


if __name__ == "__main__":
    main()
