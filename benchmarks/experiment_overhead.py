"""What the experiment layer costs: a recorded, chunked, checkpointed run against the same
training as one compiled call, in the same process.

    python3 benchmarks/experiment_overhead.py [--repeats 3]

For each case it times

- **one call**: ``jax.jit(jax.vmap(make_train(...)))`` on the seeds' keys: compile, then run;
- **jrl.experiment.train**: the same seeds and config through the runner at its default chunk
  size (a tenth of the run), which appends every interval's metrics to ``metrics.jsonl``, prints
  progress (to a discarded stream) and saves a checkpoint after **every** chunk, then writes the
  summary. The summary's final greedy evaluation is not part of the training, so it is timed
  apart and left out of the ratio.

Both produce the same final state (the runner's chunks are ``make_train``, bit for bit); the
ratio of wall times, compile included and excluded, is the overhead. Each is the best of
``--repeats`` (the machines are shared and noisy).
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
from jrl.experiment import runner as runner_module

CASES = {
    "q_learning Taxi-v4 (1,024 envs x 5,000 steps)": RunSpec.resolve("q_learning", "Taxi-v4", 1),
    "dqn CartPole-v1 default, no early stop (10 envs x 20,000 steps)": RunSpec.resolve(
        "dqn", "CartPole-v1", 1, {"stop_return": "none"}
    ),
}


def one_call(spec: RunSpec) -> tuple[float, float]:
    env, env_params = spec.make_env()
    train_fn = spec.algorithm.module.make_train(spec.config, env, env_params)
    timing = timed(jax.vmap(train_fn), train_keys(spec.seeds))
    return timing.compile_seconds, timing.run_seconds


def recorded(spec: RunSpec) -> tuple[float, float, float, int]:
    """(compile s, training wall s excluding compile, final evaluation s, checkpoints saved)."""
    evaluation_seconds = 0.0
    original = runner_module.evaluate_state

    def timed_evaluation(*args, **kwargs):
        nonlocal evaluation_seconds
        start = time.perf_counter()
        out = original(*args, **kwargs)
        evaluation_seconds += time.perf_counter() - start
        return out

    runner_module.evaluate_state = timed_evaluation
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            train(spec, Path(tmp) / "run", RunSettings(eval_episodes=10))
            wall = time.perf_counter() - start
            metadata = runner_module.records.read_json(Path(tmp) / "run" / "metadata.json")
            session = metadata["sessions"][0]
            saved = int(spec.config.num_logs() / RunSettings().resolved_chunk_logs(spec.config.num_logs()))
    finally:
        runner_module.evaluate_state = original
    compile_seconds = session["compile_seconds"]
    return compile_seconds, wall - compile_seconds - evaluation_seconds, evaluation_seconds, saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'case':<66} {'':>14} {'compile s':>9} {'run s':>7} {'total s':>8}")
    for name, spec in CASES.items():
        base = min((one_call(spec) for _ in range(args.repeats)), key=lambda t: t[1])
        runs = [recorded(spec) for _ in range(args.repeats)]
        rec = min(runs, key=lambda t: t[1])
        print(f"{name:<66} {'one call':>14} {base[0]:>9.2f} {base[1]:>7.2f} {sum(base):>8.2f}")
        print(
            f"{'':<66} {'jrl train':>14} {rec[0]:>9.2f} {rec[1]:>7.2f} {rec[0] + rec[1]:>8.2f}"
            f"   ({rec[3]} chunks, a checkpoint after each; final evaluation {rec[2]:.2f} s apart)"
        )
        print(
            f"{'':<66} {'overhead':>14} {'':>9} {rec[1] / base[1] - 1:>+7.1%} {(rec[0] + rec[1]) / sum(base) - 1:>+8.1%}"
        )


if __name__ == "__main__":
    main()
