"""Progress of a chunked run: a live ``rich`` bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Reports compiling, then environment steps, steps per second, the latest return and the ETA.

    On a terminal (``stream.isatty()``) it draws a ``rich`` progress bar; otherwise (a file, a pipe,
    CI) it prints one plain line per update, so logs stay readable. ``enabled=False`` prints nothing.
    """

    def __init__(
        self, total_env_steps: int, done_env_steps: int = 0, *, stream: TextIO | None = None, enabled: bool = True
    ):
        self.total = total_env_steps
        self.start_steps = done_env_steps
        self.done = done_env_steps
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self.started = time.perf_counter()
        self.run_seconds = 0.0  # time spent running chunks (compilation excluded)
        self._bar = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("env steps"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[latest]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task(
                "starting", total=total_env_steps, completed=done_env_steps, rate="", latest=""
            )
            self._bar.start()

    def compiling(self, what: str) -> None:
        """Say that ``what`` is compiling (it can take a while, with no steps to show)."""
        if self.live:
            self._bar.update(self._task, description=f"compiling {what}")
        elif self.enabled:
            print(f"compiling {what} ...", file=self.stream, flush=True)

    def compiled(self, what: str, seconds: float) -> None:
        if self.live:
            self._bar.update(self._task, description="training")
        elif self.enabled:
            print(f"compiled {what} in {seconds:.1f} s", file=self.stream, flush=True)

    def update(self, env_steps: int, chunk_seconds: float, latest: str) -> None:
        """``env_steps`` done so far; the last chunk ran ``chunk_seconds``; ``latest`` e.g. ``"return 23.5"``."""
        self.done = env_steps
        self.run_seconds += chunk_seconds
        rate = (self.done - self.start_steps) / self.run_seconds if self.run_seconds > 0 else math.nan
        eta = (self.total - self.done) / rate if rate > 0 else math.nan
        if self.live:
            self._bar.update(self._task, completed=self.done, rate=f"{rate:,.0f}/s", latest=latest)
        elif self.enabled:
            print(
                f"{self.done:,}/{self.total:,} env steps ({100 * self.done / self.total:.0f}%), {rate:,.0f} steps/s, "
                f"{latest}, ETA {_format_seconds(eta)}",
                file=self.stream,
                flush=True,
            )

    def message(self, text: str) -> None:
        if self.live:
            self._bar.console.print(text)
        elif self.enabled:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.live:
            self._bar.stop()
