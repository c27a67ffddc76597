"""What the experiment layer costs: a recorded, chunked, checkpointed run against the same
training as one compiled call, in the same process.

    python3 benchmarks/experiment_overhead.py [--repeats 3]

For each case it times

- **one call**: ``jax.jit(jax.vmap(make_train(...)))`` on the seeds' keys: compile, then run;
- **jrl.experiment.train**: the same seeds and config through the runner, in 10 chunks (the
  default) and in 4, which appends every interval's metrics to ``metrics.jsonl``, prints progress
  (to a discarded stream) and saves a checkpoint after **every** chunk.

Both produce the same final state (the runner's chunks are ``make_train``, bit for bit). The
overhead is the runner's training loop (chunks, records, progress, checkpoints; its compilations
excluded, as the one call's) against the one call's run time. What a run costs once, whatever
its length (making the environment, collecting versions, the summary's final greedy evaluation),
is shown apart: "setup+summary". Each figure is the best of ``--repeats`` (the machines are
shared and noisy).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import jax

from jrl.experiment import RunSettings, RunSpec, timed, train, train_keys
from jrl.experiment.records import read_json

CASES = {
    "q_learning Taxi-v4 (1,024 envs x 5,000 steps)": RunSpec.resolve("q_learning", "Taxi-v4", 1),
    # num_steps pinned at 20,000, the CartPole default's budget when docs/benchmarks.md recorded
    # these cases (the default has 40,000 since; the overhead is per chunk, not per step).
    "dqn CartPole-v1 default, no early stop (10 envs x 20,000 steps)": RunSpec.resolve(
        "dqn", "CartPole-v1", 1, {"stop_return": "none", "num_steps": 20_000}
    ),
    # The same without in-loop evaluations (and so without keep_best): see docs/benchmarks.md
    # for why the in-loop evaluation makes the difference.
    "dqn CartPole-v1 default, no in-loop evaluation": RunSpec.resolve(
        "dqn", "CartPole-v1", 1, {"stop_return": "none", "num_steps": 20_000, "eval_episodes": 0, "keep_best": False}
    ),
}


def one_call(spec: RunSpec) -> tuple[float, float]:
    env, env_params = spec.make_env()
    train_fn = spec.algorithm.module.make_train(spec.config, env, env_params)
    timing = timed(jax.vmap(train_fn), train_keys(spec.seeds))
    return timing.compile_seconds, timing.run_seconds


def recorded(spec: RunSpec, chunk_logs: int | None) -> dict:
    """One ``jrl.experiment.train`` of ``spec``: its session record (compile, loop and summary
    seconds) and its total wall time."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        train(spec, Path(tmp) / "run", RunSettings(chunk_logs=chunk_logs, eval_episodes=10))
        wall = time.perf_counter() - start
        session = read_json(Path(tmp) / "run" / "metadata.json")["sessions"][0]
    return {**session, "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'case':<58} {'chunks':>6} {'compile s':>9} {'train s':>8} {'vs one call':>11}   {'setup+summary s':>15}")
    for name, spec in CASES.items():
        num_logs = spec.config.num_logs()
        base = min((one_call(spec) for _ in range(args.repeats)), key=lambda t: t[1])
        print(f"{name:<58} {'-':>6} {base[0]:>9.2f} {base[1]:>8.2f} {'':>11}   (one compiled call)")
        for chunk_logs in (None, num_logs // 4):
            rec = min((recorded(spec, chunk_logs) for _ in range(args.repeats)), key=lambda r: r["loop_seconds"])
            chunks = num_logs // RunSettings(chunk_logs=chunk_logs).resolved_chunk_logs(num_logs)
            rest = rec["wall_seconds"] - rec["compile_seconds"] - rec["loop_seconds"]
            print(
                f"{'':<58} {chunks:>6} {rec['compile_seconds']:>9.2f} {rec['loop_seconds']:>8.2f} "
                f"{rec['loop_seconds'] / base[1] - 1:>+11.1%}   {rest:>15.2f}"
            )


if __name__ == "__main__":
    main()
