"""FrozenLake-v1 / FrozenLake8x8-v1 (Gymnasium's toy-text FrozenLake, as an explicit model).

Cross a frozen lake from ``S`` to ``G`` without falling into a hole ``H``. Actions: 0 left,
1 down, 2 right, 3 up. Observation: ``row * ncol + col``. Reward ``reward_schedule[0]`` for
reaching G, ``[1]`` for a hole, ``[2]`` for frozen tiles (default ``(1, 0, 0)``). Slippery: the
intended direction with probability ``success_rate``, each perpendicular one with the rest split
evenly (Gymnasium lists the three outcomes as (a-1) % 4, a, (a+1) % 4). Holes and the goal are
terminal; Gymnasium lists their rows as a single self-loop ``(1.0, s, 0, True)``, and so do we.

Pictures (``FrozenLakePicture``, the environment's ``picture``): 64-pixel cells coloured by letter
(ice, start, holes dark, goal green) with the agent as a red disc, and Gymnasium's ``"ansi"`` text.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from jrl._validation import check_bool, check_float
from jrl.envs import drawing
from jrl.envs.core import GridLayout
from jrl.envs.tabular import TabularPicture, outcome_table, tabular_mdp_from_numpy

MAPS = {
    "4x4": ("SFFF", "FHFH", "FFFH", "HFFG"),
    "8x8": (
        "SFFFFFFF",
        "FFFFFFFF",
        "FFFHFFFF",
        "FFFFFHFF",
        "FFFHFFFF",
        "FHHFFFHF",
        "FHFFHFHF",
        "FFFHFFFG",
    ),
}
_MOVES = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}  # left, down, right, up


def _check_desc(desc: Any) -> tuple[str, ...]:
    """Gymnasium's forms of a map, as rows of letters: a list of strings (``["SFF", ...]``), a list
    of character lists (``[list("SFF"), ...]``), or a NumPy array of characters (``str`` or
    ``bytes``, e.g. Gymnasium's own ``np.asarray(desc, dtype="c")``)."""

    def letter(c: Any) -> str:
        c = c.decode() if isinstance(c, (bytes, np.bytes_)) else c
        if not isinstance(c, str) or len(c) != 1:
            raise TypeError(f"desc must hold single characters, got {c!r} in {desc!r}")
        return c

    def row(r: Any) -> str:
        if isinstance(r, (bytes, np.bytes_)):
            return r.decode()
        if isinstance(r, str):
            return str(r)
        if isinstance(r, (Sequence, np.ndarray)):
            return "".join(letter(c) for c in r)
        raise TypeError(f"desc rows must be strings or sequences of characters, got {r!r}")

    if isinstance(desc, (str, bytes)) or not isinstance(desc, (Sequence, np.ndarray)):
        raise TypeError(f"desc must be a list of strings, a list of character lists or a character array, got {desc!r}")
    rows = tuple(row(r) for r in desc)
    if not rows or not rows[0]:
        raise ValueError(f"desc must have at least one row and one column, got {desc!r}")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"desc rows must all have the same length, got lengths {[len(r) for r in rows]}")
    if any(c not in "SFHG" for r in rows for c in r):
        raise ValueError(f"desc may only contain the letters S, F, H, G, got {rows}")
    if "S" not in "".join(rows):
        raise ValueError("desc needs at least one start tile 'S'")
    return rows


def frozen_lake_mdp(desc: Sequence[str], is_slippery: bool, success_rate: float, reward_schedule: Sequence[float]):
    """The exact model of a FrozenLake map (``TabularMDP``, K = 3 if slippery else 1)."""
    nrow, ncol = len(desc), len(desc[0])
    fail_rate = (1.0 - success_rate) / 2.0
    goal_reward, hole_reward, frozen_reward = reward_schedule

    def move(row: int, col: int, a: int) -> tuple[int, float, bool]:
        dr, dc = _MOVES[a]
        r, c = min(max(row + dr, 0), nrow - 1), min(max(col + dc, 0), ncol - 1)
        letter = desc[r][c]
        reward = {"G": goal_reward, "H": hole_reward}.get(letter, frozen_reward)
        return r * ncol + c, reward, letter in "GH"

    outcomes = {}
    for row in range(nrow):
        for col in range(ncol):
            s = row * ncol + col
            for a in range(4):
                if desc[row][col] in "GH":
                    outcomes[s, a] = [(1.0, s, 0.0, True)]
                elif is_slippery:
                    outcomes[s, a] = [
                        (success_rate if b == a else fail_rate, *move(row, col, b))
                        for b in ((a - 1) % 4, a, (a + 1) % 4)
                    ]
                else:
                    outcomes[s, a] = [(1.0, *move(row, col, a))]
    start = np.array([c == "S" for r in desc for c in r], dtype=np.float64)
    return tabular_mdp_from_numpy(*outcome_table(nrow * ncol, 4, outcomes), start / start.sum())


def _map(desc: Any, map_name: str | None) -> tuple[str, ...]:
    """The map rows of Gymnasium's ``desc`` / ``map_name`` keywords (``desc`` wins)."""
    if desc is None:
        if map_name is None:
            raise ValueError(
                "FrozenLake: desc=None with map_name=None asks Gymnasium for an unseeded random map; "
                "jrl needs reproducible models: pass desc=[...] explicitly"
            )
        if map_name not in MAPS:
            raise ValueError(f"FrozenLake: map_name must be one of {sorted(MAPS)}, got {map_name!r}")
        desc = MAPS[map_name]
    return _check_desc(desc)


def frozen_lake_model(
    desc: Any = None,
    map_name: str | None = "4x4",
    is_slippery: bool = True,
    success_rate: float = 1.0 / 3.0,
    reward_schedule: Sequence[float] = (1, 0, 0),
):
    """Validate Gymnasium's keyword arguments and build the model."""
    desc = _map(desc, map_name)
    check_bool("is_slippery", is_slippery)
    check_float("success_rate", success_rate, 0.0, 1.0)
    schedule = tuple(reward_schedule)
    if len(schedule) != 3:
        raise ValueError(f"reward_schedule must have 3 entries (goal, hole, frozen), got {schedule}")
    for i, r in enumerate(schedule):
        check_float(f"reward_schedule[{i}]", r, -1e30, 1e30)
    return frozen_lake_mdp(desc, is_slippery, success_rate, schedule)


_PALETTE = {"S": drawing.START, "F": drawing.ICE, "H": drawing.HOLE, "G": drawing.GOAL}
_ACTION_NAMES = ("Left", "Down", "Right", "Up")


@dataclasses.dataclass(frozen=True)
class FrozenLakePicture(TabularPicture):
    """FrozenLake's pictures of state ``row * ncol + col`` on the map ``desc`` (rows of ``SFHG``)."""

    desc: tuple[str, ...]

    @property
    def num_states(self) -> int:
        return len(self.desc) * len(self.desc[0])

    @functools.cached_property
    def _background(self) -> np.ndarray:
        return drawing.grid_image(np.array([[_PALETTE[c] for c in row] for row in self.desc]))

    @property
    def layout(self) -> GridLayout:
        """The map; no action is taken in holes and at the goal (they are terminal)."""
        return GridLayout(self.desc, tuple((dc, dr) for dr, dc in _MOVES.values()), stops="HG")

    def image(self, s: int) -> np.ndarray:
        """``uint8 [64 * nrow, 64 * ncol, 3]``: the map, the agent a red disc."""
        image = self._background.copy()
        drawing.disc(image, *divmod(s, len(self.desc[0])), 0.3 * drawing.CELL, drawing.AGENT)
        return image

    def text(self, s: int, last_action: int | None) -> str:
        """Gymnasium's text: ``"  (Down)"`` (the last action; empty after a reset), then the map with
        the agent's letter on a red background."""
        rows = [list(row) for row in self.desc]
        row, col = divmod(s, len(self.desc[0]))
        rows[row][col] = drawing.ansi(rows[row][col], "red", highlight=True)
        head = "\n" if last_action is None else f"  ({_ACTION_NAMES[last_action]})\n"
        return head + "\n".join("".join(r) for r in rows) + "\n"


def frozen_lake_picture(desc: Any = None, map_name: str | None = "4x4", **_: Any) -> FrozenLakePicture:
    """The picture of the map that ``frozen_lake_model`` builds from the same keyword arguments."""
    return FrozenLakePicture(_map(desc, map_name))
