"""``Acrobot-v1``: Gymnasium's two-link acrobot (Sutton and Barto's "book" dynamics) in pure JAX.

One fourth-order Runge-Kutta step of ``dt = 0.2`` per action (the torque held constant over the
step, as Gymnasium appends it to the integrated state), then both angles wrapped into
``[-pi, pi]`` and the velocities clipped to ``4 pi`` and ``9 pi``. The episode terminates when the
free end rises more than one link length above the pivot, ``-cos(t1) - cos(t1 + t2) > 1``;
reward -1 per step, 0 on the terminating step. Observation float32 ``[6]``
``(cos t1, sin t1, cos t2, sin t2, dt1, dt2)``; actions ``Discrete(3)``: torque -1, 0, +1.
Arithmetic is float32.
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
from jrl.envs import drawing
from jrl.envs.core import Environment, uniform_in
from jrl.spaces import Box, Discrete

__all__ = ["Acrobot", "AcrobotParams", "AcrobotState", "acrobot_factory"]


@struct.dataclass
class AcrobotParams:
    """Physics constants and time limit (scalar arrays except ``avail_torque`` ``[3]``)."""

    dt: jax.Array
    gravity: jax.Array
    link_length_1: jax.Array
    link_mass_1: jax.Array
    link_mass_2: jax.Array
    link_com_pos_1: jax.Array
    link_com_pos_2: jax.Array
    link_moi: jax.Array
    max_vel_1: jax.Array
    max_vel_2: jax.Array
    avail_torque: jax.Array  # float32 [3]: the torque of each action
    torque_noise_max: jax.Array  # uniform noise added to the torque (0 in Gymnasium)
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class AcrobotState:
    theta1: jax.Array
    theta2: jax.Array
    dtheta1: jax.Array
    dtheta2: jax.Array
    time: jax.Array


def _derivs(p: AcrobotParams, s: jax.Array, torque: jax.Array) -> jax.Array:
    """Time derivative of ``s = (t1, t2, dt1, dt2)`` under ``torque`` on the second joint."""
    t1, t2, dt1, dt2 = s
    m1, m2, l1, lc1, lc2, inertia, g = (
        p.link_mass_1,
        p.link_mass_2,
        p.link_length_1,
        p.link_com_pos_1,
        p.link_com_pos_2,
        p.link_moi,
        p.gravity,
    )
    # Every product is rounded before it is added (jrl._numerics.rounded), so no compilation
    # fuses it into a multiply-add: the same bits on one device or sharded over several.
    r = rounded
    cos2, sin2 = jnp.cos(t2), jnp.sin(t2)
    d1 = r(m1 * lc1**2) + r(m2 * (l1**2 + lc2**2 + r(2 * l1 * lc2 * cos2))) + 2 * inertia
    d2 = r(m2 * (lc2**2 + r(l1 * lc2 * cos2))) + inertia
    # cos(a - pi/2) written as sin(a): the same value, more accurate in float32.
    phi2 = m2 * lc2 * g * jnp.sin(t1 + t2)
    phi1 = r(-m2 * l1 * lc2 * sin2 * (dt2**2 + r(2 * dt2 * dt1))) + r((r(m1 * lc1) + r(m2 * l1)) * g * jnp.sin(t1))
    phi1 = phi1 + r(phi2)
    ddt2 = (torque + r(d2 / d1 * phi1) - r(m2 * l1 * lc2 * dt1**2 * sin2) - r(phi2)) / (
        r(m2 * lc2**2) + inertia - r(d2**2 / d1)
    )
    ddt1 = -(r(d2 * ddt2) + phi1) / d1
    return jnp.stack([dt1, dt2, ddt1, ddt2])


def _wrap(x: jax.Array, low: float, high: float) -> jax.Array:
    """Shift ``x`` by whole periods into ``[low, high]`` (Gymnasium's ``wrap``, without the loops)."""
    period = high - low
    x = x - rounded(period * jnp.maximum(jnp.ceil((x - high) / period), 0))
    return x + rounded(period * jnp.maximum(jnp.ceil((low - x) / period), 0))


@dataclasses.dataclass(frozen=True)
class Acrobot(Environment):
    """Gymnasium's ``AcrobotEnv`` (no static settings)."""

    num_actions = 3  # a class constant, not a field
    uniform_shapes = ((), (4,))  # the step's torque noise, the reset's start state (step_batch)

    @property
    def default_params(self) -> AcrobotParams:
        f32 = jnp.float32
        return AcrobotParams(
            dt=f32(0.2),
            gravity=f32(9.8),
            link_length_1=f32(1.0),
            link_mass_1=f32(1.0),
            link_mass_2=f32(1.0),
            link_com_pos_1=f32(0.5),
            link_com_pos_2=f32(0.5),
            link_moi=f32(1.0),
            max_vel_1=f32(4 * math.pi),
            max_vel_2=f32(9 * math.pi),
            avail_torque=jnp.array([-1.0, 0.0, 1.0], f32),
            torque_noise_max=f32(0.0),
            max_steps_in_episode=jnp.int32(500),
        )

    def observation_space(self, params: Any = None) -> Box:
        """Gymnasium's bounds (for the default velocity limits)."""
        high = np.array([1.0, 1.0, 1.0, 1.0, 4 * math.pi, 9 * math.pi], np.float32)
        return Box(-high, high, (6,))

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_actions)

    render_modes = ("rgb_array",)
    render_fps = 15  # Gymnasium's

    def render(self, state: AcrobotState, params: AcrobotParams) -> np.ndarray:
        """``uint8 [500, 500, 3]``, Gymnasium's picture: the two links (cyan) from the pivot, their
        joints (yellow) and the line one link length above the pivot that the tip must cross."""
        size, link_2 = 500, 1.0  # Gymnasium's second link is 1 long (its length is not in the dynamics)
        link_1 = float(params.link_length_1)
        scale = size / (2 * (link_1 + link_2 + 0.2))
        # Drawn as Gymnasium draws it, then flipped upside down. pygame fills a pixel when its corner
        # (x, y) is inside a shape, drawing.fill_* when its centre is: shapes move half a pixel.
        offset = size / 2
        image = np.full((size, size, 3), 255, np.uint8)
        y_line = scale + offset
        drawing.line(image, (-2.2 * scale + offset, y_line), (2.2 * scale + offset, y_line), (0, 0, 0))
        theta1, theta2 = float(state.theta1), float(state.theta2)
        joints = ((0.0, 0.0), (link_1 * math.sin(theta1) * scale, -link_1 * math.cos(theta1) * scale))
        angles = (theta1 - math.pi / 2, theta1 + theta2 - math.pi / 2)
        width = 0.1 * scale
        for (x, y), angle, length in zip(joints, angles, (link_1 * scale, link_2 * scale), strict=True):
            x, y = x + offset, y + offset
            corners = ((0, -width), (0, width), (length, width), (length, -width))
            drawing.fill_polygon(image, drawing.rotated(corners, angle, (x + 0.5, y + 0.5)), (0, 204, 204))
            drawing.fill_circle(image, int(x) + 0.5, int(y) + 0.5, int(width), (204, 204, 0))
        return np.ascontiguousarray(image[::-1])

    def reset_env(self, key: jax.Array, params: AcrobotParams) -> tuple[jax.Array, AcrobotState]:
        return self.reset_from_uniform(jax.random.uniform(key, (4,), jnp.float32), params)

    def reset_from_uniform(self, u: jax.Array, params: AcrobotParams) -> tuple[jax.Array, AcrobotState]:
        """Start state ``U[-0.1, 0.1)^4`` from ``u`` float32 ``[4]`` ~ U[0, 1)."""
        s = uniform_in(u, -0.1, 0.1)
        state = AcrobotState(theta1=s[0], theta2=s[1], dtheta1=s[2], dtheta2=s[3], time=jnp.zeros((), jnp.int32))
        return _obs(state), state

    def step_env(self, key: jax.Array, state: AcrobotState, action: jax.Array, params: AcrobotParams):
        return self.step_env_from_uniform(jax.random.uniform(key, (), jnp.float32), state, action, params)

    def step_env_from_uniform(self, u: jax.Array, state: AcrobotState, action: jax.Array, params: AcrobotParams):
        """The RK4 transition; ``u`` ~ U[0, 1) (float32 scalar) draws the torque noise
        ``U[-1, 1) * torque_noise_max`` (0 by default, as Gymnasium's)."""
        p = params
        noise = uniform_in(u, -1.0, 1.0) * p.torque_noise_max
        torque = p.avail_torque[action] + rounded(noise)
        # One classic RK4 step over [0, dt]; the torque's derivative is 0, so it stays constant.
        y0 = jnp.stack([state.theta1, state.theta2, state.dtheta1, state.dtheta2])
        half = p.dt / 2.0
        k1 = _derivs(p, y0, torque)
        k2 = _derivs(p, y0 + rounded(half * k1), torque)
        k3 = _derivs(p, y0 + rounded(half * k2), torque)
        k4 = _derivs(p, y0 + rounded(p.dt * k3), torque)
        y = y0 + rounded(p.dt / 6.0 * (k1 + rounded(2 * k2) + rounded(2 * k3) + k4))
        new = AcrobotState(
            theta1=_wrap(y[0], -math.pi, math.pi),
            theta2=_wrap(y[1], -math.pi, math.pi),
            dtheta1=jnp.clip(y[2], -p.max_vel_1, p.max_vel_1),
            dtheta2=jnp.clip(y[3], -p.max_vel_2, p.max_vel_2),
            time=state.time + 1,
        )
        terminated = -jnp.cos(new.theta1) - jnp.cos(new.theta2 + new.theta1) > 1.0
        reward = jnp.where(terminated, 0.0, -1.0).astype(jnp.float32)
        truncated = new.time >= p.max_steps_in_episode
        return _obs(new), new, reward, terminated, truncated, {}


def _obs(s: AcrobotState) -> jax.Array:
    t1, t2 = s.theta1, s.theta2
    return jnp.stack([jnp.cos(t1), jnp.sin(t1), jnp.cos(t2), jnp.sin(t2), s.dtheta1, s.dtheta2]).astype(jnp.float32)


def acrobot_factory(env_id: str, max_steps_in_episode: int) -> tuple[Acrobot, AcrobotParams]:
    """Registry factory (Gymnasium's ``Acrobot-v1`` takes no keyword arguments but ``render_mode``)."""
    del env_id
    env = Acrobot()
    return env, env.default_params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))
