"""Taxi-v4 (Gymnasium's toy-text Taxi, Dietterich 2000), as an explicit model.

A 5x5 grid with walls and four stands R(0,0), G(0,4), Y(4,0), B(4,3). State
``((row * 5 + col) * 5 + passenger) * 4 + destination``, passenger 4 = in the taxi. Actions:
0 south, 1 north, 2 east, 3 west, 4 pickup, 5 dropoff. Reward -1 per step, -10 for an illegal
pickup/dropoff, +20 for delivering (terminal). Episodes start with the passenger at a stand other
than the destination. ``is_rainy``: a move goes as intended with ``rainy_probability`` and
sideways otherwise. Gymnasium's ``fickle_passenger`` changes the destination with hidden state
that is not in its ``P``; it is not a tabular MDP over these 500 states, so jrl refuses it.

Pictures (``TaxiPicture``): 320 x 320, the walls, the four stands in their colours, the destination
framed, the passenger (purple) and the taxi (orange); and Gymnasium's ``"ansi"`` text.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from jrl._validation import check_bool, check_float
from jrl.envs import drawing
from jrl.envs.tabular import TabularPicture, outcome_table, tabular_mdp_from_numpy

MAP = (
    "+---------+",
    "|R: | : :G|",
    "| : | : : |",
    "| : : : : |",
    "| | : | : |",
    "|Y| : |B: |",
    "+---------+",
)
LOCS = ((0, 0), (0, 4), (4, 0), (4, 3))
MAX_ROW = MAX_COL = 4


def encode(row: int, col: int, passenger: int, destination: int) -> int:
    """State index of a (taxi row, taxi col, passenger location, destination)."""
    return ((row * 5 + col) * 5 + passenger) * 4 + destination


def decode(s: int) -> tuple[int, int, int, int]:
    """``(taxi row, taxi col, passenger location, destination)`` of a state index (``encode``'s inverse)."""
    taxi, destination = divmod(s, 4)
    taxi, passenger = divmod(taxi, 5)
    return *divmod(taxi, 5), passenger, destination


def _open_east(row: int, col: int) -> bool:
    return MAP[1 + row][2 * col + 2] == ":"


def _open_west(row: int, col: int) -> bool:
    return MAP[1 + row][2 * col] == ":"


def _pickup(taxi: tuple[int, int], passenger: int) -> tuple[int, float]:
    if passenger < 4 and taxi == LOCS[passenger]:
        return 4, -1.0
    return passenger, -10.0


def _dropoff(taxi: tuple[int, int], passenger: int, destination: int) -> tuple[int, float, bool]:
    if passenger == 4 and taxi == LOCS[destination]:
        return destination, 20.0, True
    if passenger == 4 and taxi in LOCS:
        return LOCS.index(taxi), -1.0, False
    return passenger, -10.0, False


def _dry(row: int, col: int, passenger: int, destination: int, action: int):
    new_row, new_col, new_pass, reward, terminated = row, col, passenger, -1.0, False
    if action == 0:
        new_row = min(row + 1, MAX_ROW)
    elif action == 1:
        new_row = max(row - 1, 0)
    if action == 2 and _open_east(row, col):
        new_col = min(col + 1, MAX_COL)
    elif action == 3 and _open_west(row, col):
        new_col = max(col - 1, 0)
    elif action == 4:
        new_pass, reward = _pickup((row, col), passenger)
    elif action == 5:
        new_pass, reward, terminated = _dropoff((row, col), passenger, destination)
    return [(1.0, encode(new_row, new_col, new_pass, destination), reward, terminated)]


def _sideways(row: int, col: int, move: tuple[int, int]) -> tuple[int, int]:
    """Where a sideways (rain-blown) move ends: walls block east/west moves."""
    dr, dc = move
    r, c = max(0, min(row + dr, MAX_ROW)), max(0, min(col + dc, MAX_COL))
    if dc == 1 and MAP[1 + r][2 * c] != ":":
        return row, col
    if dc == -1 and MAP[1 + r][2 * c + 2] != ":":
        return row, col
    return r, c


# Intended move, then its left and right neighbours, for south, north, east, west.
_RAINY_MOVES = {
    0: ((1, 0), (0, 1), (0, -1)),
    1: ((-1, 0), (0, -1), (0, 1)),
    2: ((0, 1), (-1, 0), (1, 0)),
    3: ((0, -1), (1, 0), (-1, 0)),
}


def _rainy(row: int, col: int, passenger: int, destination: int, action: int, p_intended: float):
    new_row, new_col, new_pass, reward, terminated = row, col, passenger, -1.0, False
    left = right = (row, col)
    can_move = (
        (action == 0 and row < MAX_ROW)
        or (action == 1 and row > 0)
        or (action == 2 and _open_east(row, col))
        or (action == 3 and _open_west(row, col))
    )
    if can_move:
        dr, dc = _RAINY_MOVES[action][0]
        new_row, new_col = max(0, min(row + dr, MAX_ROW)), max(0, min(col + dc, MAX_COL))
        left = _sideways(row, col, _RAINY_MOVES[action][1])
        right = _sideways(row, col, _RAINY_MOVES[action][2])
    elif action == 4:
        new_pass, reward = _pickup((row, col), passenger)
    elif action == 5:
        new_pass, reward, terminated = _dropoff((row, col), passenger, destination)
    intended = encode(new_row, new_col, new_pass, destination)
    if action > 3:
        return [(1.0, intended, reward, terminated)]
    p_side = (1.0 - p_intended) / 2.0
    return [
        (p_intended, intended, -1.0, terminated),
        (p_side, encode(*left, new_pass, destination), -1.0, terminated),
        (p_side, encode(*right, new_pass, destination), -1.0, terminated),
    ]


def taxi_model(
    is_rainy: bool = False,
    fickle_passenger: bool = False,
    rainy_probability: float = 0.8,
    fickle_probability: float = 0.3,
):
    """Validate Gymnasium's keyword arguments and build the model (S = 500, A = 6)."""
    check_bool("is_rainy", is_rainy)
    check_bool("fickle_passenger", fickle_passenger)
    check_float("rainy_probability", rainy_probability, 0.0, 1.0)
    check_float("fickle_probability", fickle_probability, 0.0, 1.0)
    if fickle_passenger:
        raise ValueError(
            "Taxi: fickle_passenger=True depends on hidden state outside Gymnasium's P (not a tabular MDP "
            "over the 500 states); jrl supports fickle_passenger=False only"
        )
    outcomes, initial = {}, np.zeros(500)
    for row in range(5):
        for col in range(5):
            for passenger in range(5):
                for destination in range(4):
                    s = encode(row, col, passenger, destination)
                    if passenger < 4 and passenger != destination:
                        initial[s] += 1
                    for a in range(6):
                        if is_rainy:
                            outcomes[s, a] = _rainy(row, col, passenger, destination, a, rainy_probability)
                        else:
                            outcomes[s, a] = _dry(row, col, passenger, destination, a)
    return tabular_mdp_from_numpy(*outcome_table(500, 6, outcomes), initial / initial.sum())


_STANDS = ((220, 70, 70), (60, 170, 75), (230, 200, 40), (70, 110, 220))  # R, G, Y, B
_TAXI, _PASSENGER, _WALL = (245, 160, 0), (130, 30, 160), (20, 20, 20)
_ACTION_NAMES = ("South", "North", "East", "West", "Pickup", "Dropoff")


@dataclasses.dataclass(frozen=True)
class TaxiPicture(TabularPicture):
    """Taxi's pictures of a state index (the layout is fixed: ``MAP`` and the stands ``LOCS``)."""

    num_states = 500

    @functools.cached_property
    def _background(self) -> np.ndarray:
        colours = np.tile(np.array(drawing.FLOOR), (5, 5, 1))
        for (r, c), colour in zip(LOCS, _STANDS, strict=True):
            colours[r, c] = (np.array(colour) + 2 * np.array(drawing.FLOOR)) // 3  # the stand, faded
        background = drawing.grid_image(colours)
        cell = drawing.CELL
        for r in range(5):
            for c in range(4):
                if MAP[1 + r][2 * c + 2] == "|":  # a wall between (r, c) and (r, c + 1)
                    x = (c + 1) * cell
                    background[r * cell : (r + 1) * cell, x - 3 : x + 3] = _WALL
        return background

    def image(self, s: int) -> np.ndarray:
        """``uint8 [320, 320, 3]``: the destination framed in its stand's colour, the taxi, and the
        passenger at its stand or (smaller) in the taxi."""
        image = self._background.copy()
        cell = drawing.CELL
        row, col, passenger, destination = decode(s)
        dr, dc = LOCS[destination]
        frame = image[dr * cell : (dr + 1) * cell, dc * cell : (dc + 1) * cell]
        for edge in (np.s_[:4], np.s_[-4:], np.s_[:, :4], np.s_[:, -4:]):
            frame[edge] = _STANDS[destination]
        y, x = row * cell, col * cell
        image[y + 14 : y + cell - 14, x + 10 : x + cell - 10] = _TAXI
        if passenger < 4:
            drawing.disc(image, *LOCS[passenger], 0.15 * cell, _PASSENGER)
        else:  # in the taxi
            drawing.disc(image, row, col, 0.12 * cell, _PASSENGER)
        return image

    def text(self, s: int, last_action: int | None) -> str:
        """Gymnasium's text: ``MAP`` with the taxi highlighted (yellow, green with the passenger
        aboard), the waiting passenger's stand blue, the destination magenta, then the last action
        (``"  (South)"``; an empty line after a reset)."""
        rows = [list(line) for line in MAP]
        row, col, passenger, destination = decode(s)
        taxi = rows[1 + row][2 * col + 1]
        if passenger < 4:
            rows[1 + row][2 * col + 1] = drawing.ansi(taxi, "yellow", highlight=True)
            pr, pc = LOCS[passenger]
            rows[1 + pr][2 * pc + 1] = drawing.ansi(rows[1 + pr][2 * pc + 1], "blue", bold=True)
        else:  # aboard: a blank cell shows as "_"
            rows[1 + row][2 * col + 1] = drawing.ansi("_" if taxi == " " else taxi, "green", highlight=True)
        dr, dc = LOCS[destination]
        rows[1 + dr][2 * dc + 1] = drawing.ansi(rows[1 + dr][2 * dc + 1], "magenta")
        tail = "\n" if last_action is None else f"  ({_ACTION_NAMES[last_action]})\n"
        return "\n".join("".join(r) for r in rows) + "\n" + tail


def taxi_picture(**_: Any) -> TaxiPicture:
    """The picture (rain changes the moves, not the layout)."""
    return TaxiPicture()
