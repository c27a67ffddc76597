"""``Pendulum-v1``: Gymnasium's inverted pendulum swing-up in pure JAX (continuous actions).

One explicit Euler step of ``dt = 0.05`` s per action: the torque ``u`` (the action, clipped to
``[-max_torque, max_torque]`` as Gymnasium clips it) drives
``theta_dot += (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt``, clipped to ``max_speed``; then
``theta += theta_dot dt`` with the new velocity. ``theta`` is the angle from upright (0 up, pi
down), kept unwrapped as Gymnasium keeps it. Reward ``-(angle^2 + 0.1 theta_dot^2 + 0.001 u^2)``
with ``angle`` = ``theta`` wrapped into ``[-pi, pi)`` and the old (pre-step) state, the clipped
torque: in ``[-16.27, 0]``. Never terminates; Gymnasium's time limit is 200 steps. Reset: ``theta``
uniform in ``[-pi, pi)``, ``theta_dot`` uniform in ``[-1, 1)``. Observation float32 ``[3]``
``(cos theta, sin theta, theta_dot)``; actions ``Box(-2, 2, (1,), float32)``. Arithmetic is float32
(Gymnasium's is float64).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._numerics import rounded
from jrl._validation import check_float
from jrl.envs import drawing
from jrl.envs.core import Environment, uniform_in
from jrl.spaces import Box

__all__ = ["MAX_TORQUE", "Pendulum", "PendulumParams", "PendulumState", "pendulum_factory"]

#: Gymnasium's torque bound (the action space's, whatever ``params.max_torque`` says).
MAX_TORQUE = 2.0
MAX_SPEED = 8.0


@struct.dataclass
class PendulumParams:
    """Physics constants, bounds and time limit (scalar arrays, vmappable). ``max_torque`` is the
    clip applied to the action; the action space reports Gymnasium's bound, ``MAX_TORQUE``."""

    max_speed: jax.Array  # rad/s
    max_torque: jax.Array  # N m
    dt: jax.Array  # seconds per step
    g: jax.Array  # m/s^2
    m: jax.Array  # kg
    l: jax.Array  # m  # noqa: E741 - Gymnasium's name
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class PendulumState:
    theta: jax.Array  # rad from upright, unwrapped
    theta_dot: jax.Array  # rad/s
    last_u: jax.Array  # the clipped torque of the last step (0 after a reset): drawn as the arrow
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class Pendulum(Environment):
    """Gymnasium's ``PendulumEnv`` (no static settings)."""

    @property
    def default_params(self) -> PendulumParams:
        f32 = jnp.float32
        return PendulumParams(
            max_speed=f32(MAX_SPEED),
            max_torque=f32(MAX_TORQUE),
            dt=f32(0.05),
            g=f32(10.0),
            m=f32(1.0),
            l=f32(1.0),
            max_steps_in_episode=jnp.int32(200),
        )

    def observation_space(self, params: Any = None) -> Box:
        """Gymnasium's bounds (for the default ``max_speed``)."""
        high = np.array([1.0, 1.0, MAX_SPEED], np.float32)
        return Box(-high, high, (3,))

    def action_space(self, params: Any = None) -> Box:
        """Gymnasium's ``Box(-2, 2, (1,), float32)``: the torque. ``step`` clips any real torque
        into ``[-params.max_torque, params.max_torque]`` (Gymnasium's ``np.clip``)."""
        return Box(-MAX_TORQUE, MAX_TORQUE, (1,))

    render_modes = ("rgb_array",)
    render_fps = 30  # Gymnasium's

    def render(self, state: PendulumState, params: PendulumParams) -> np.ndarray:
        """``uint8 [500, 500, 3]``, Gymnasium's picture: the rod (red, ``l`` = 1 drawn whatever
        ``params.l``, as Gymnasium draws it) at ``theta``, round ends, the black axle, and the arrow
        of the last torque (its size ``|last_u|``, turning the way the torque pushes)."""
        del params
        size, bound = 500, 2.2
        scale = size / (bound * 2)
        offset = size // 2
        rod_length, rod_width = scale, 0.2 * scale
        red = (204, 77, 77)
        # Drawn as Gymnasium draws it, then flipped upside down. pygame fills a pixel when its corner
        # (x, y) is inside a shape, drawing.fill_* when its centre is: shapes move half a pixel.
        image = np.full((size, size, 3), 255, np.uint8)
        angle = float(state.theta) + math.pi / 2
        w = rod_width / 2
        rod = drawing.rotated(((0, -w), (0, w), (rod_length, w), (rod_length, -w)), angle, (offset + 0.5, offset + 0.5))
        drawing.fill_polygon(image, rod, red)
        drawing.fill_circle(image, offset + 0.5, offset + 0.5, int(w), red)
        ((end_x, end_y),) = drawing.rotated(((rod_length, 0),), angle, (offset, offset))
        drawing.fill_circle(image, int(end_x) + 0.5, int(end_y) + 0.5, int(w), red)
        _draw_arrow(image, float(state.last_u), scale, offset)
        drawing.fill_circle(image, offset + 0.5, offset + 0.5, int(0.05 * scale), (0, 0, 0))  # the axle
        return np.ascontiguousarray(image[::-1])

    uniform_shapes = ((0,), (2,))  # the step draws nothing, the reset two uniforms (step_batch)

    def reset_env(self, key: jax.Array, params: PendulumParams) -> tuple[jax.Array, PendulumState]:
        return self.reset_from_uniform(jax.random.uniform(key, (2,), jnp.float32), params)

    def reset_from_uniform(self, u: jax.Array, params: PendulumParams) -> tuple[jax.Array, PendulumState]:
        """Start ``(theta, theta_dot)`` ~ ``U[-pi, pi) x U[-1, 1)`` from ``u`` float32 ``[2]`` ~ U[0, 1)."""
        high = jnp.array([math.pi, 1.0], jnp.float32)
        s = uniform_in(u, -high, high)
        zero = jnp.zeros((), jnp.float32)
        state = PendulumState(theta=s[0], theta_dot=s[1], last_u=zero, time=jnp.zeros((), jnp.int32))
        return _obs(state), state

    def step_env(self, key: jax.Array, state: PendulumState, action: jax.Array, params: PendulumParams):
        del key
        return self.step_env_from_uniform(jnp.zeros((0,), jnp.float32), state, action, params)

    def step_env_from_uniform(self, u: jax.Array, state: PendulumState, action: jax.Array, params: PendulumParams):
        """The deterministic transition (``u``, float32 ``[0]``, is unused)."""
        del u
        p = params
        # Gymnasium clips the torque inside step, and its cost is that of the clipped torque.
        u = jnp.clip(jnp.asarray(action, jnp.float32)[0], -p.max_torque, p.max_torque)
        th, thdot = state.theta, state.theta_dot
        # Products rounded before they are added (jrl._numerics.rounded): same bits with and without vmap.
        costs = rounded(_angle_normalize(th) ** 2) + rounded(0.1 * thdot**2) + rounded(0.001 * u**2)
        accel = rounded(3 * p.g / (2 * p.l) * jnp.sin(th)) + rounded(3.0 / (p.m * p.l**2) * u)
        new_thdot = jnp.clip(thdot + rounded(accel * p.dt), -p.max_speed, p.max_speed)
        new = PendulumState(theta=th + rounded(new_thdot * p.dt), theta_dot=new_thdot, last_u=u, time=state.time + 1)
        truncated = new.time >= p.max_steps_in_episode
        return _obs(new), new, (-costs).astype(jnp.float32), jnp.bool_(False), truncated, {}


def _angle_normalize(x: jax.Array) -> jax.Array:
    """``x`` wrapped into ``[-pi, pi)`` (Gymnasium's ``angle_normalize``)."""
    return jnp.mod(x + math.pi, 2 * math.pi) - math.pi


def _obs(state: PendulumState) -> jax.Array:
    return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot]).astype(jnp.float32)


# Gymnasium's arrow picture (assets/clockwise.png, 329 x 312 pixels): a ring of radius 150.5 and
# width 10.3 around (173.7, 155.5) from its top clockwise to its left, ending in an arrowhead that
# points up; measured from the image, so that jrl needs neither the file nor an image library.
_ARROW_SIZE, _ARROW_CENTRE, _ARROW_RADIUS, _ARROW_HALF_WIDTH = (329.0, 312.0), (173.7, 155.5), 150.5, 5.15
_ARROW_ARC = (-91.4, 176.4)  # degrees, y down: the ring drawn from its top clockwise to its left
_ARROW_HEAD = ((21.5, 112.0), (0.0, 167.5), (43.0, 167.5))


def _draw_arrow(image: np.ndarray, last_u: float, scale: float, offset: int) -> None:
    """Paint Gymnasium's torque arrow in place (image still upside down): its picture scaled to a
    square of ``scale |u| / 2`` pixels centred on the axle, turning clockwise on the final picture
    for ``u < 0`` and mirrored for ``u > 0``."""
    side = int(scale * abs(last_u) / 2)
    if side <= 0:
        return
    # Pixel centres of the square, in the arrow picture's coordinates.
    ys, xs = np.mgrid[0:side, 0:side] + 0.5
    px, py = xs * _ARROW_SIZE[0] / side, ys * _ARROW_SIZE[1] / side
    dx, dy = px - _ARROW_CENTRE[0], py - _ARROW_CENTRE[1]
    ring = np.abs(np.hypot(dx, dy) - _ARROW_RADIUS) <= _ARROW_HALF_WIDTH
    angle = np.degrees(np.arctan2(dy, dx))  # y down: -90 the top, 0 the right, 180 the left
    arc = ring & (angle >= _ARROW_ARC[0]) & (angle <= _ARROW_ARC[1])
    # Inside the head: on the same side of its three edges.
    sides = [
        (px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)
        for (x0, y0), (x1, y1) in zip(_ARROW_HEAD, _ARROW_HEAD[1:] + _ARROW_HEAD[:1], strict=True)
    ]
    head = np.all([d >= 0 for d in sides], axis=0) | np.all([d <= 0 for d in sides], axis=0)
    mask = arc | head
    # Gymnasium blits it flipped upside down (and mirrored for u > 0), then flips the whole
    # picture: here, before that last flip, the picture goes in upside down.
    mask = mask[::-1, ::-1] if last_u > 0 else mask[::-1]
    top = offset - side // 2
    window = image[top : top + side, top : top + side]
    window[mask[: window.shape[0], : window.shape[1]]] = 0


def pendulum_factory(env_id: str, max_steps_in_episode: int, g: float = 10.0) -> tuple[Pendulum, PendulumParams]:
    """Registry factory: Gymnasium's ``Pendulum-v1`` keyword ``g``, the gravity in m/s^2 (a real
    number; Gymnasium's default 10.0)."""
    del env_id
    g = check_float("g", g, -math.inf, math.inf)
    env = Pendulum()
    params = env.default_params.replace(g=jnp.float32(g), max_steps_in_episode=jnp.int32(max_steps_in_episode))
    return env, params
