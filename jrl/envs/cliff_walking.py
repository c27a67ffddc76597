"""CliffWalking-v1 (Gymnasium's toy-text CliffWalking, Sutton & Barto example 6.6).

A 4x12 grid; start at (3, 0), goal at (3, 11), a cliff along (3, 1..10). Actions: 0 up,
1 right, 2 down, 3 left. Every step costs -1; stepping into the cliff costs -100 and returns the
agent to the start (not terminal); reaching the goal terminates. ``is_slippery``: the intended
move and both perpendicular ones, 1/3 each. Gymnasium registers it without a time limit
(``max_steps_in_episode = NO_TIME_LIMIT``). As in Gymnasium's ``P``, the cliff and goal cells have
ordinary rows (they are never occupied).

Pictures (``CliffWalkingPicture``): 64-pixel cells, 768 x 256, the cliff brown, start, goal and the
agent (a red disc), and Gymnasium's ``"ansi"`` text.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from jrl._validation import check_bool
from jrl.envs import drawing
from jrl.envs.core import GridLayout
from jrl.envs.tabular import TabularPicture, outcome_table, tabular_mdp_from_numpy

SHAPE = (4, 12)
START = 3 * 12 + 0
GOAL = (3, 11)
_MOVES = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # up, right, down, left


def _cliff() -> set[tuple[int, int]]:
    """The cliff's cells: the bottom row between start and goal."""
    nrow, ncol = SHAPE
    return {(nrow - 1, c) for c in range(1, ncol - 1)}


def cliff_walking_model(is_slippery: bool = False):
    """The exact model (``TabularMDP``, S = 48, A = 4, K = 3 if slippery else 1)."""
    check_bool("is_slippery", is_slippery)
    nrow, ncol = SHAPE
    cliff = _cliff()
    outcomes = {}
    for s in range(nrow * ncol):
        row, col = divmod(s, ncol)
        for a in range(4):
            moves = ((a - 1) % 4, a, (a + 1) % 4) if is_slippery else (a,)
            rows = []
            for b in moves:
                dr, dc = _MOVES[b]
                r, c = min(max(row + dr, 0), nrow - 1), min(max(col + dc, 0), ncol - 1)
                if (r, c) in cliff:
                    rows.append((1 / len(moves), START, -100.0, False))
                else:
                    rows.append((1 / len(moves), r * ncol + c, -1.0, (r, c) == GOAL))
            outcomes[s, a] = rows
    initial = np.zeros(nrow * ncol)
    initial[START] = 1.0
    return tabular_mdp_from_numpy(*outcome_table(nrow * ncol, 4, outcomes), initial)


@dataclasses.dataclass(frozen=True)
class CliffWalkingPicture(TabularPicture):
    """CliffWalking's pictures of state ``row * 12 + col`` (the layout is fixed: ``SHAPE``, the
    cliff along the bottom row, ``START`` and ``GOAL``)."""

    num_states = SHAPE[0] * SHAPE[1]

    @functools.cached_property
    def _background(self) -> np.ndarray:
        nrow, ncol = SHAPE
        colours = np.tile(np.array(drawing.FLOOR), (nrow, ncol, 1))
        for cell in _cliff():
            colours[cell] = drawing.CLIFF
        colours[divmod(START, ncol)] = drawing.START
        colours[GOAL] = drawing.GOAL
        return drawing.grid_image(colours)

    @property
    def layout(self) -> GridLayout:
        """``S`` the start, ``C`` the cliff, ``G`` the goal, ``.`` the rest; no action is taken on the
        cliff (never occupied) and at the goal."""
        nrow, ncol = SHAPE
        cliff = _cliff()

        def cell(position: tuple[int, int]) -> str:
            if position == divmod(START, ncol):
                return "S"
            return "G" if position == GOAL else "C" if position in cliff else "."

        rows = tuple("".join(cell((r, c)) for c in range(ncol)) for r in range(nrow))
        return GridLayout(rows, tuple((dc, dr) for dr, dc in _MOVES.values()), stops="CG")

    def image(self, s: int) -> np.ndarray:
        """``uint8 [256, 768, 3]``: the grid, the agent a red disc."""
        image = self._background.copy()
        drawing.disc(image, *divmod(s, SHAPE[1]), 0.3 * drawing.CELL, drawing.AGENT)
        return image

    def text(self, s: int, last_action: int | None) -> str:
        """Gymnasium's text: ``x`` the agent, ``T`` the goal, ``C`` the cliff, ``o`` the rest, then
        an empty line (Gymnasium shows no action for CliffWalking)."""
        nrow, ncol = SHAPE
        cliff = _cliff()

        def cell(position: tuple[int, int]) -> str:
            if position == divmod(s, ncol):
                return "x"
            return "T" if position == GOAL else "C" if position in cliff else "o"

        rows = ("  ".join(cell((r, c)) for c in range(ncol)) for r in range(nrow))
        return "".join(row + "\n" for row in rows) + "\n"


def cliff_walking_picture(**_: Any) -> CliffWalkingPicture:
    """The picture (``is_slippery`` changes the moves, not the layout)."""
    return CliffWalkingPicture()
