"""Progress of a chunked run or a sweep: a live ``rich`` display on a terminal, plain lines otherwise.

What is counted, everywhere in jrl: an *env step* is one transition of one environment copy (for a
text environment, one token). Progress counts the work in the unit of the job (``unit``: env steps
per seed for a run, trainings for a sweep, iterations where the env steps of an iteration are not
known in advance) and gives the throughput as env steps per second over everything being trained
(``scope``: "4 seeds", "64 trainings").
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["Progress"]


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Reports compiling, then the work done, its throughput, the latest result and the ETA.

    On a terminal (``stream.isatty()``) it draws a two-line ``rich`` display that fits 80 columns
    (the bar, counts and ETA; then the throughput and the latest result); otherwise (a file, a
    pipe, CI) it prints one plain line per update, so logs stay readable. ``enabled=False``
    prints nothing.

    Args:
        total: units of work in all (``unit``), e.g. env steps per seed.
        done: units done before this session (a resumed run).
        unit: what a unit is, as shown after the counts: ``"env steps per seed"``, ``"trainings"``.
        scope: what the env steps per second cover: ``"4 seeds"``, ``"64 trainings"``.
    """

    def __init__(
        self,
        total: int,
        done: int = 0,
        *,
        unit: str = "env steps",
        scope: str = "",
        stream: TextIO | None = None,
        enabled: bool = True,
    ):
        self.total = total
        self.start_done = done
        self.done = done
        self.unit = unit
        self.scope = scope
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self.started = time.perf_counter()
        self.run_seconds = 0.0  # time spent running chunks (compilation excluded)
        self.env_steps = 0  # env steps taken in this session, over everything being trained
        self._bar = None
        if self.live:
            self._bar = _display(self.stream)
            self._task = self._bar.add_task("starting", total=max(total, 1), completed=done, counts="", eta="")
            self._bar.update(self._task, counts=self._counts(), detail="")
            self._bar.start()

    def _counts(self) -> str:
        return f"{self.done:,}/{self.total:,} {self.unit}"

    def compiling(self, what: str) -> None:
        """Say that ``what`` is compiling (it can take a while, with no steps to show)."""
        if self.live:
            self._bar.update(self._task, description="compiling", detail=what)
        elif self.enabled:
            print(f"compiling {what} ...", file=self.stream, flush=True)

    def compiled(self, what: str, seconds: float) -> None:
        if self.live:
            self._bar.update(self._task, description="training", detail=f"compiled {what} in {seconds:.1f} s")
        elif self.enabled:
            print(f"compiled {what} in {seconds:.1f} s", file=self.stream, flush=True)

    def update(self, done: int, chunk_seconds: float, latest: str, env_steps: int | None = None) -> None:
        """``done`` units so far; the last chunk ran ``chunk_seconds`` and took ``env_steps`` env
        steps over everything being trained (``None``: unknown, no rate shown); ``latest`` is the
        newest result, e.g. ``"eval return 23.5"``."""
        self.done = done
        self.run_seconds += chunk_seconds
        if env_steps is not None and self.env_steps is not None:
            self.env_steps += env_steps
        else:
            self.env_steps = None
        units_per_second = (self.done - self.start_done) / self.run_seconds if self.run_seconds > 0 else math.nan
        eta = (self.total - self.done) / units_per_second if units_per_second > 0 else math.nan
        parts = []
        if self.env_steps is not None and self.run_seconds > 0:
            rate = f"{self.env_steps / self.run_seconds:,.0f} env steps/s"
            parts.append(f"{self.scope}: {rate}" if self.scope else rate)
        if latest:
            parts.append(latest)
        if self.live:
            self._bar.update(
                self._task,
                completed=self.done,
                counts=self._counts(),
                eta=f"ETA {_format_seconds(eta)}",
                detail=" · ".join(parts),
            )
        elif self.enabled:
            percent = 100 * self.done / self.total if self.total else 100.0
            print(
                ", ".join([f"{self._counts()} ({percent:.0f}%)", *parts, f"ETA {_format_seconds(eta)}"]),
                file=self.stream,
                flush=True,
            )

    def rebase(self, done: int) -> None:
        """``done`` units are done, and rates and the ETA count from here on: for a first chunk
        whose time is mostly its compilation."""
        self.start_done = self.done = done
        self.run_seconds, self.env_steps = 0.0, 0
        if self.live:
            self._bar.update(self._task, completed=done, counts=self._counts())

    def message(self, text: str) -> None:
        """Print ``text`` as it is (above the live display on a terminal)."""
        if self.live:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif self.enabled:
            print(text, file=self.stream, flush=True)

    def close(self, final: str | None = None) -> None:
        """Stop the live display, then print ``final`` (the run's last word) below it."""
        if self.live:
            self._bar.stop()
            self.live = False
        if final is not None and self.enabled:
            print(final, file=self.stream, flush=True)


def _display(stream: TextIO) -> Any:
    """The live two-line display: ``training ━━━━ 25%  500,000/2,000,000 env steps per seed  ETA 0:03``,
    then ``  4 seeds: 1,234,000 env steps/s · eval return 470``. The bar takes the width the rest
    leaves, so the counts are never cut at 80 columns."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class TwoLines(RichProgress):
        def get_renderables(self) -> Iterator[Any]:
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                if task.fields.get("detail"):
                    yield Text(f"  {task.fields['detail']}", no_wrap=True, overflow="ellipsis")

    return TwoLines(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[eta]}"),
        console=Console(file=stream),
        expand=True,
    )
