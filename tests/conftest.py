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
