"""CliffWalking-v1 (Gymnasium's toy-text CliffWalking, Sutton & Barto example 6.6).

A 4x12 grid; start at (3, 0), goal at (3, 11), a cliff along (3, 1..10). Actions: 0 up,
1 right, 2 down, 3 left. Every step costs -1; stepping into the cliff costs -100 and returns the
agent to the start (not terminal); reaching the goal terminates. ``is_slippery``: the intended
move and both perpendicular ones, 1/3 each. Gymnasium registers it without a time limit
(``max_steps_in_episode = NO_TIME_LIMIT``). As in Gymnasium's ``P``, the cliff and goal cells have
ordinary rows (they are never occupied).
"""

from __future__ import annotations

import numpy as np

from jrl._validation import check_bool
from jrl.envs.tabular import outcome_table, tabular_mdp_from_numpy

SHAPE = (4, 12)
START = 3 * 12 + 0
GOAL = (3, 11)
_MOVES = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # up, right, down, left


def cliff_walking_model(is_slippery: bool = False):
    """The exact model (``TabularMDP``, S = 48, A = 4, K = 3 if slippery else 1)."""
    check_bool("is_slippery", is_slippery)
    nrow, ncol = SHAPE
    cliff = {(3, c) for c in range(1, ncol - 1)}
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
