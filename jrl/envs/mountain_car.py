"""``MountainCar-v0``: Gymnasium's mountain car (Moore, 1990) in pure JAX.

``velocity += (action - 1) * force - gravity * cos(3 position)``, clipped to ``max_speed``; then
``position += velocity``, clipped to ``[min_position, max_position]``; hitting the left wall
while moving left stops the car. Terminates when ``position >= goal_position`` and
``velocity >= goal_velocity``; reward -1 every step. Reset: position uniform in
``[-0.6, -0.4)``, velocity 0. Observation float32 ``[2]`` ``(position, velocity)``; actions
``Discrete(3)``: push left, no push, push right. Arithmetic is float32.
"""

from __future__ import annotations

import dataclasses
import itertools
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
from jrl.spaces import Box, Discrete

__all__ = ["MountainCar", "MountainCarParams", "MountainCarState", "mountain_car_factory", "picture"]


@struct.dataclass
class MountainCarParams:
    """Physics constants, goal and time limit (scalar arrays, vmappable)."""

    force: jax.Array
    gravity: jax.Array
    min_position: jax.Array
    max_position: jax.Array
    max_speed: jax.Array
    goal_position: jax.Array
    goal_velocity: jax.Array
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class MountainCarState:
    position: jax.Array
    velocity: jax.Array
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class MountainCar(Environment):
    """Gymnasium's ``MountainCarEnv`` (no static settings)."""

    num_actions = 3  # a class constant, not a field
    uniform_shapes = ((0,), ())  # the step draws nothing, the reset one uniform (step_batch)

    @property
    def default_params(self) -> MountainCarParams:
        f32 = jnp.float32
        return MountainCarParams(
            force=f32(0.001),
            gravity=f32(0.0025),
            min_position=f32(-1.2),
            max_position=f32(0.6),
            max_speed=f32(0.07),
            goal_position=f32(0.5),
            goal_velocity=f32(0.0),
            max_steps_in_episode=jnp.int32(200),
        )

    def observation_space(self, params: Any = None) -> Box:
        """Gymnasium's bounds (for the default positions and speed limit)."""
        return Box(np.array([-1.2, -0.07], np.float32), np.array([0.6, 0.07], np.float32), (2,))

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_actions)

    render_modes = ("rgb_array",)
    render_fps = 30  # Gymnasium's

    def render(self, state: MountainCarState, params: MountainCarParams) -> np.ndarray:
        """``uint8 [400, 600, 3]``, Gymnasium's picture: the hill ``0.45 sin(3 x) + 0.55``, the car
        (black, tilted along the slope, grey wheels) and the flag at ``goal_position``."""
        return picture(
            float(state.position), float(params.min_position), float(params.max_position), float(params.goal_position)
        )

    def reset_env(self, key: jax.Array, params: MountainCarParams) -> tuple[jax.Array, MountainCarState]:
        return self.reset_from_uniform(jax.random.uniform(key, (), jnp.float32), params)

    def reset_from_uniform(self, u: jax.Array, params: MountainCarParams) -> tuple[jax.Array, MountainCarState]:
        """Start position ``U[-0.6, -0.4)`` from ``u`` ~ U[0, 1) (float32 scalar), velocity 0."""
        position = uniform_in(u, -0.6, -0.4)
        state = MountainCarState(position=position, velocity=jnp.zeros((), jnp.float32), time=jnp.zeros((), jnp.int32))
        return _obs(state), state

    def step_env(self, key: jax.Array, state: MountainCarState, action: jax.Array, params: MountainCarParams):
        del key
        return self.step_env_from_uniform(jnp.zeros((0,), jnp.float32), state, action, params)

    def step_env_from_uniform(
        self, u: jax.Array, state: MountainCarState, action: jax.Array, params: MountainCarParams
    ):
        """The deterministic transition (``u``, float32 ``[0]``, is unused)."""
        del u
        p = params
        # Products rounded before they are added (jrl._numerics.rounded): same bits on any device count.
        push = rounded((jnp.asarray(action, jnp.float32) - 1.0) * p.force)
        velocity = state.velocity + (push + rounded(jnp.cos(3 * state.position) * -p.gravity))
        velocity = jnp.clip(velocity, -p.max_speed, p.max_speed)
        position = jnp.clip(state.position + velocity, p.min_position, p.max_position)
        velocity = jnp.where((position == p.min_position) & (velocity < 0), 0.0, velocity).astype(jnp.float32)
        terminated = (position >= p.goal_position) & (velocity >= p.goal_velocity)
        new = MountainCarState(position=position, velocity=velocity, time=state.time + 1)
        truncated = new.time >= p.max_steps_in_episode
        return _obs(new), new, jnp.float32(-1.0), terminated, truncated, {}


def _obs(s: MountainCarState) -> jax.Array:
    return jnp.stack([s.position, s.velocity]).astype(jnp.float32)


def picture(position: float, low: float, high: float, goal_position: float) -> np.ndarray:
    """``uint8 [400, 600, 3]``: Gymnasium's picture of a mountain car at ``position`` on the hill
    ``0.45 sin(3 x) + 0.55`` from ``low`` to ``high``, its flag at ``goal_position`` (the picture of
    ``MountainCar-v0`` and ``MountainCarContinuous-v0`` alike)."""
    width, height, car_w, car_h, clearance = 600, 400, 40.0, 20.0, 10.0
    scale = width / (high - low)

    def hill(x: np.ndarray | float) -> np.ndarray | float:
        return np.sin(3 * x) * 0.45 + 0.55

    # Drawn as Gymnasium draws it, then flipped upside down. pygame fills a pixel when its corner
    # (x, y) is inside a shape, drawing.fill_* when its centre is: shapes move half a pixel.
    image = np.full((height, width, 3), 255, np.uint8)
    xs = np.linspace(low, high, 100)
    # (The hill is an antialiased line in Gymnasium, darkest on the pixel nearest to it: rounded.)
    points = list(zip((xs - low) * scale + 0.5, hill(xs) * scale + 0.5, strict=True))
    for start, end in itertools.pairwise(points):
        drawing.line(image, start, end, (0, 0, 0))
    angle = math.cos(3 * position)  # Gymnasium tilts the car by cos(3 x) radians, not by the slope
    x0, y0 = (position - low) * scale, clearance + hill(position) * scale
    half = car_w / 2
    corners = ((-half, 0), (-half, car_h), (half, car_h), (half, 0))
    drawing.fill_polygon(image, drawing.rotated(corners, angle, (x0 + 0.5, y0 + 0.5)), (0, 0, 0))
    for wheel_x, wheel_y in drawing.rotated(((car_w / 4, 0), (-car_w / 4, 0)), angle, (x0, y0)):
        drawing.fill_circle(image, int(wheel_x) + 0.5, int(wheel_y) + 0.5, int(car_h / 2.5), (128, 128, 128))
    flag_x = int((goal_position - low) * scale)
    flag_y = int(hill(goal_position) * scale)
    image[flag_y : flag_y + 51, flag_x] = 0
    flag = [(flag_x + 0.5, flag_y + 50.5), (flag_x + 0.5, flag_y + 40.5), (flag_x + 25.5, flag_y + 45.5)]
    drawing.fill_polygon(image, flag, (204, 204, 0))
    return np.ascontiguousarray(image[::-1])


def mountain_car_factory(
    env_id: str, max_steps_in_episode: int, goal_velocity: float = 0.0
) -> tuple[MountainCar, MountainCarParams]:
    """Registry factory: Gymnasium's ``MountainCar-v0`` keyword ``goal_velocity`` (a real number)."""
    del env_id
    goal_velocity = check_float("goal_velocity", goal_velocity, -math.inf, math.inf)
    env = MountainCar()
    params = env.default_params.replace(
        goal_velocity=jnp.float32(goal_velocity), max_steps_in_episode=jnp.int32(max_steps_in_episode)
    )
    return env, params
