"""The progress display of runs and sweeps: what it counts, how it looks on an 80-column terminal
and in a log, and what it says once seeds have stopped early."""

from __future__ import annotations

import io
import re

import pytest

from jrl.experiment.progress import Progress
from jrl.experiment.runner import LatestResult

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """What rich writes to a terminal, kept as text."""

    def isatty(self) -> bool:
        return True


def frames(text: str) -> list[str]:
    """The lines a terminal shows, one entry per drawn line (rich redraws in place with
    carriage returns and erase-line codes), without colour codes."""
    lines = []
    for chunk in re.split(r"\r|\n|\x1b\[2K|\x1b\[1A", text):
        plain = ANSI.sub("", chunk)
        if plain.strip():
            lines.append(plain)
    return lines


def test_on_an_80_column_terminal_counts_are_whole_and_the_last_word_comes_last(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = Terminal()
    progress = Progress(2_000_000, 0, unit="env steps per seed", scope="4 seeds", stream=stream)
    progress.compiling("1 logging interval(s) x 4 seed(s)")
    progress.compiled("1 logging interval(s) x 4 seed(s)", 2.5)
    progress.update(500_000, 1.0, "mean eval return 470.3, 3 stopped", env_steps=2_000_000)
    progress.message("warning: hidden_sizes=[64] is [bold]not[/bold] markup")
    progress.close("done: runs/x (4 seed(s), mean greedy return over 100 episodes: 500)")
    shown = frames(stream.getvalue())
    assert all(len(line) <= 80 for line in shown), [line for line in shown if len(line) > 80]
    assert any("500,000/2,000,000 env steps per seed" in line for line in shown)
    assert any("4 seeds: 2,000,000 env steps/s · mean eval return 470.3, 3 stopped" in line for line in shown)
    assert "warning: hidden_sizes=[64] is [bold]not[/bold] markup" in shown
    # The final line is printed once, after the display's last frame (not above it, redrawn).
    assert shown[-1] == "done: runs/x (4 seed(s), mean greedy return over 100 episodes: 500)"
    assert sum("done: runs/x" in line for line in shown) == 1


def test_in_a_log_each_update_is_one_plain_line():
    stream = io.StringIO()
    progress = Progress(64, 16, unit="trainings", scope="64 trainings", stream=stream)
    progress.update(32, 2.0, "batch 2/4", env_steps=1_600_000)
    progress.close("best: alpha=0.1")
    assert stream.getvalue().splitlines() == [
        "32/64 trainings (50%), 64 trainings: 800,000 env steps/s, batch 2/4, ETA 0:04",  # 16 in 2 s, 32 left
        "best: alpha=0.1",
    ]


def rows(seed: int, evals: list[float | None], stopped_from: int | None = None) -> list[dict]:
    """DQN-like records of one seed: ``eval_return`` per interval, null once stopped."""
    return [
        {
            "seed": seed,
            "log": log,
            "env_steps": 1000.0 * (log + 1),
            "eval_return": value,
            "episode_return": None if value is None else value - 1.0,
            "stopped": stopped_from is not None and log >= stopped_from,
        }
        for log, value in enumerate(evals)
    ]


def test_a_seed_that_stopped_early_holds_its_stopping_evaluation_in_the_progress_line():
    """The issue's case: seeds that reached stop_return have null evaluations afterwards; the line
    must not say "no episode ended yet", nor average only the seeds still training."""
    early = rows(0, [100.0, 500.0, None, None], stopped_from=2)
    late = rows(1, [80.0, 200.0, 300.0, 400.0])
    latest = LatestResult(early[:2] + late[:2])
    assert str(latest) == "mean eval return 350"
    latest.add(early[2:] + late[2:])
    assert str(latest) == "mean eval return 450, 1 stopped"  # (500 held + 400) / 2
    both = LatestResult(rows(0, [500.0, None], stopped_from=1) + rows(1, [480.0, None], stopped_from=1))
    assert str(both) == "mean eval return 490, 2 stopped"
    assert str(LatestResult(rows(3, [None, None]))) == "no episode ended yet"


@pytest.mark.parametrize("seeds, expected", [(1, "eval return 7"), (2, "mean eval return 7")])
def test_one_seed_is_not_called_a_mean(seeds, expected):
    assert str(LatestResult([r for s in range(seeds) for r in rows(s, [7.0])])) == expected
