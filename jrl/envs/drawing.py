"""NumPy drawing for the environments' pictures (``Environment.render``): host side only, no JAX and
no pygame. Images are ``uint8 [H, W, 3]`` (rows from the top), coordinates in pixels, a pixel
covered when its centre is.

Gridworlds draw 64-pixel cells (``grid_image``) and discs on them (``disc``); the classic-control
environments draw Gymnasium's pictures with ``fill_polygon``, ``fill_circle`` and ``line``;
``ansi`` colours text the way Gymnasium's ``"ansi"`` render mode does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["CELL", "ansi", "disc", "fill_circle", "fill_polygon", "grid_image", "line", "rotated"]

Colour = tuple[int, int, int]

#: Side of a gridworld cell, in pixels.
CELL = 64
ICE, START, HOLE, GOAL = (204, 229, 255), (170, 205, 240), (25, 45, 95), (60, 170, 75)
AGENT, LINE, FLOOR, CLIFF = (215, 40, 40), (110, 110, 110), (235, 235, 235), (90, 60, 40)


def grid_image(colours: np.ndarray) -> np.ndarray:
    """``uint8 [rows * 64, cols * 64, 3]`` of coloured cells (``colours``: ``[rows, cols, 3]``)
    with 1-pixel grid lines."""
    image = np.repeat(np.repeat(colours.astype(np.uint8), CELL, axis=0), CELL, axis=1)
    image[::CELL, :] = image[:, ::CELL] = LINE
    image[-1, :] = image[:, -1] = LINE
    return image


def disc(image: np.ndarray, row: float, col: float, radius: float, colour: Colour) -> None:
    """Paint a disc of ``radius`` pixels centred on cell ``(row, col)``'s centre (fractions of a
    cell allowed), in place."""
    fill_circle(image, (col + 0.5) * CELL, (row + 0.5) * CELL, radius, colour)


def _window(image: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> tuple[tuple, np.ndarray, np.ndarray]:
    """The part of ``image`` whose pixel centres may lie in ``[x0, x1] x [y0, y1]``: its slices,
    and its pixel centres ``ys [h, 1]``, ``xs [1, w]`` (a shape is tested there only: a frame
    costs what its shapes cover, not what the image does)."""
    top, bottom = max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 1, image.shape[0])
    left, right = max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 1, image.shape[1])
    ys = np.arange(top, max(bottom, top))[:, None] + 0.5
    xs = np.arange(left, max(right, left))[None, :] + 0.5
    return np.s_[top : max(bottom, top), left : max(right, left)], ys, xs


def fill_circle(image: np.ndarray, x: float, y: float, radius: float, colour: Colour) -> None:
    """Paint the pixels whose centre lies within ``radius`` of ``(x, y)``, in place."""
    window, ys, xs = _window(image, x - radius, x + radius, y - radius, y + radius)
    image[window][(xs - x) ** 2 + (ys - y) ** 2 <= radius**2] = colour


def fill_polygon(image: np.ndarray, vertices: Sequence[tuple[float, float]], colour: Colour) -> None:
    """Paint the pixels whose centre lies inside the convex polygon ``vertices`` (``(x, y)`` pairs
    in either winding order), in place."""
    points = np.asarray(vertices, np.float64)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    window, ys, xs = _window(image, x0, x1, y0, y1)
    edges = np.roll(points, -1, axis=0) - points
    # The signed area's sign gives the winding; inside is on the same side of every edge.
    sign = np.sign(np.sum(points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1]))
    inside = np.ones((ys.shape[0], xs.shape[1]), bool)
    for (px, py), (ex, ey) in zip(points, edges, strict=True):
        inside &= sign * (ex * (ys - py) - ey * (xs - px)) >= 0
    image[window][inside] = colour


def rotated(
    points: Sequence[tuple[float, float]], angle: float, origin: tuple[float, float]
) -> list[tuple[float, float]]:
    """``points`` rotated by ``angle`` radians (from the x axis towards the y axis), then moved to
    ``origin``."""
    cos, sin = np.cos(angle), np.sin(angle)
    return [(u * cos - v * sin + origin[0], u * sin + v * cos + origin[1]) for u, v in points]


def line(image: np.ndarray, start: tuple[float, float], end: tuple[float, float], colour: Colour) -> None:
    """Paint a 1-pixel line from ``start`` to ``end`` (``(x, y)``), in place: one pixel per step
    along its longer axis."""
    (x0, y0), (x1, y1) = start, end
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.floor(np.linspace(x0, x1, steps)).astype(int)
    ys = np.floor(np.linspace(y0, y1, steps)).astype(int)
    keep = (xs >= 0) & (xs < image.shape[1]) & (ys >= 0) & (ys < image.shape[0])
    image[ys[keep], xs[keep]] = colour


#: ANSI colour numbers (Gymnasium's ``utils.colorize`` names).
_ANSI = {"gray": 30, "red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36, "white": 37}


def ansi(text: str, colour: str, bold: bool = False, highlight: bool = False) -> str:
    """``text`` between ANSI escape codes: ``colour`` as the foreground, or the background when
    ``highlight``; ``bold`` adds weight (the codes Gymnasium's ``"ansi"`` render mode writes)."""
    codes = [str(_ANSI[colour] + (10 if highlight else 0))] + (["1"] if bold else [])
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"
