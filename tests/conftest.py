"""Test-session settings, applied before any test module imports JAX.

JAX's persistent compilation cache, in a fresh directory for this session: many tests (and the
subprocesses several of them start: killed and resumed runs, multi-device and multi-process
sweeps) compile the same programs again, and XLA's compile time dominates this suite on a CPU.
A compiled program loaded from the cache is the one a fresh compilation produces, so no result
changes; a session never sees another session's entries. A ``JAX_COMPILATION_CACHE_DIR`` already
set is respected.
"""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jrl-tests-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

# The longest test files first (seconds on 2 cores, summed over their tests, as measured in the
# fresh-clone CI; the rest take under 25 s each). The suite runs on 2 workers with ``--dist
# loadfile``, which hands out whole files in collection order: long files first and short ones
# filling in at the end keep both workers busy to the end (longest-processing-time-first), where
# alphabetical order left one worker idle for a minute while the other finished test_text.py.
LONGEST_FIRST = (
    "test_docs.py",  # 150
    "test_text.py",  # 120
    "test_dqn.py",  # 110
    "test_q_learning.py",  # 80
    "test_experiment.py",  # 80
    "test_dqn_learning.py",  # 70
    "test_run_devices.py",  # 70 (child processes on forced host devices)
    "test_text_devices.py",  # 45 (a child process on 2 forced host devices: GRPO and sharded text models)
    "test_tasks.py",  # 30 (GRPO and jrl pretrain on a task file)
    "test_export_formats.py",  # 45 (jax2onnx's first conversion: 7 s)
    "test_export_text.py",  # 40 (jax2onnx and jax2tf conversions, a Python with TensorFlow alone)
    "test_export_tf.py",  # 25 (TensorFlow's import, 3 s, and a Python that imports it alone)
    "test_hf_models.py",  # 25 (torch's and transformers' imports, 7 s)
    "test_batched_step.py",  # 25
    "test_sweep_devices.py",  # 55
    "test_sweep.py",  # 55
    "test_interop.py",  # 50
    "test_algorithm_contract.py",  # 40
    "test_conformance.py",  # 40
    "test_ppo.py",  # 30
    "test_gymnasium_wrappers.py",  # 30
    "test_sweep_cli.py",  # 30
    "test_runs.py",  # 30
    "test_pqn.py",  # 25
    "test_grpo.py",  # 15
    "test_cli.py",  # 25
    "test_open_contract.py",  # 25
    "test_rollout_algorithms_cli.py",  # 10
)


def pytest_configure(config: pytest.Config) -> None:
    # xdist's own reordering (files with more tests first) would undo LONGEST_FIRST.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collect the files of ``LONGEST_FIRST`` first, in its order (a stable sort: each file's tests,
    and the other files, keep their order). Every worker collects the same order, as xdist needs."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture
def interrupt_sweep_at_batch(monkeypatch):
    """``interrupt_sweep_at_batch(n)``: from then on the sweep's ``n``-th batch raises
    ``KeyboardInterrupt`` (Ctrl-C) instead of training; ``monkeypatch.undo()`` disarms it."""

    def arm(n: int) -> None:
        from jrl.experiment import sweep_members

        real, calls = sweep_members.run_batch, []

        def interrupted(*args):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args)

        monkeypatch.setattr(sweep_members, "run_batch", interrupted)

    return arm
