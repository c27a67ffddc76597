"""``CartPole-v1``: Gymnasium's cart-pole (Barto, Sutton and Anderson, 1983) in pure JAX.

Same constants, explicit Euler integration, termination thresholds, reset distribution, rewards
(``sutton_barto_reward`` included) and spaces as Gymnasium's ``CartPoleEnv``; arithmetic is
float32. Observation ``(x, x_dot, theta, theta_dot)`` float32 ``[4]``; actions ``Discrete(2)``
(0 pushes the cart left, 1 right).
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
from jrl._validation import check_bool
from jrl.envs import drawing
from jrl.envs.core import Environment, uniform_in
from jrl.spaces import Box, Discrete

__all__ = ["CartPole", "CartPoleParams", "CartPoleState", "cartpole_factory"]

X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360  # 12 degrees, in radians


@struct.dataclass
class CartPoleParams:
    """Physics constants, thresholds, reward scheme and time limit (scalar arrays, vmappable)."""

    gravity: jax.Array
    masscart: jax.Array
    masspole: jax.Array
    length: jax.Array  # half the pole's length
    force_mag: jax.Array
    tau: jax.Array  # seconds per step
    x_threshold: jax.Array
    theta_threshold_radians: jax.Array
    sutton_barto_reward: jax.Array  # bool: reward 0 per step and -1 on termination
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class CartPoleState:
    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class CartPole(Environment):
    """Gymnasium's ``CartPoleEnv`` (no static settings)."""

    num_actions = 2  # a class constant, not a field
    uniform_shapes = ((0,), (4,))  # the step draws nothing, the reset four uniforms (step_batch)

    @property
    def default_params(self) -> CartPoleParams:
        f32 = jnp.float32
        return CartPoleParams(
            gravity=f32(9.8),
            masscart=f32(1.0),
            masspole=f32(0.1),
            length=f32(0.5),
            force_mag=f32(10.0),
            tau=f32(0.02),
            x_threshold=f32(X_THRESHOLD),
            theta_threshold_radians=f32(THETA_THRESHOLD),
            sutton_barto_reward=jnp.bool_(False),
            max_steps_in_episode=jnp.int32(500),
        )

    def observation_space(self, params: Any = None) -> Box:
        """Gymnasium's bounds (for the default thresholds): twice the termination thresholds."""
        high = np.array([2 * X_THRESHOLD, np.inf, 2 * THETA_THRESHOLD, np.inf], np.float32)
        return Box(-high, high, (4,))

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_actions)

    render_modes = ("rgb_array",)
    render_fps = 50  # Gymnasium's: one frame per step of tau = 0.02 s

    def render(self, state: CartPoleState, params: CartPoleParams) -> np.ndarray:
        """``uint8 [400, 600, 3]``, Gymnasium's picture: the track, the cart (black) and the pole
        (brown, ``2 * length`` long) at its angle, 600 pixels spanning ``x_threshold`` either side
        of the centre."""
        width, height, pole_width, cart_w, cart_h, cart_y = 600, 400, 10.0, 50.0, 30.0, 100.0
        scale = width / (2 * float(params.x_threshold))
        pole_length = scale * 2 * float(params.length)  # params.length is half the pole
        # Drawn as Gymnasium draws it, then flipped upside down. pygame fills a pixel when its corner
        # (x, y) is inside a shape, drawing.fill_* when its centre is: shapes move half a pixel.
        image = np.full((height, width, 3), 255, np.uint8)
        cart_x = float(state.x) * scale + width / 2
        w, h = cart_w / 2, cart_h / 2
        cart = drawing.rotated(((-w, -h), (-w, h), (w, h), (w, -h)), 0.0, (cart_x + 0.5, cart_y + 0.5))
        drawing.fill_polygon(image, cart, (0, 0, 0))
        axle_y = cart_y + cart_h / 4
        w, top = pole_width / 2, pole_length - pole_width / 2  # the pole starts half its width below the axle
        pole = drawing.rotated(
            ((-w, -w), (-w, top), (w, top), (w, -w)), -float(state.theta), (cart_x + 0.5, axle_y + 0.5)
        )
        drawing.fill_polygon(image, pole, (202, 152, 101))
        drawing.fill_circle(image, int(cart_x) + 0.5, int(axle_y) + 0.5, int(w), (129, 132, 203))  # the axle
        image[int(cart_y)] = 0  # the track, drawn last as Gymnasium draws it
        return np.ascontiguousarray(image[::-1])

    def reset_env(self, key: jax.Array, params: CartPoleParams) -> tuple[jax.Array, CartPoleState]:
        return self.reset_from_uniform(jax.random.uniform(key, (4,), jnp.float32), params)

    def reset_from_uniform(self, u: jax.Array, params: CartPoleParams) -> tuple[jax.Array, CartPoleState]:
        """Start state ``U[-0.05, 0.05)^4`` from ``u`` float32 ``[4]`` ~ U[0, 1) (``uniform_in``:
        the bits ``jax.random.uniform(key, (4,), float32, -0.05, 0.05)`` gives)."""
        s = uniform_in(u, -0.05, 0.05)
        state = CartPoleState(x=s[0], x_dot=s[1], theta=s[2], theta_dot=s[3], time=jnp.zeros((), jnp.int32))
        return _obs(state), state

    def step_env(self, key: jax.Array, state: CartPoleState, action: jax.Array, params: CartPoleParams):
        del key
        return self.step_env_from_uniform(jnp.zeros((0,), jnp.float32), state, action, params)

    def step_env_from_uniform(self, u: jax.Array, state: CartPoleState, action: jax.Array, params: CartPoleParams):
        """The deterministic transition (``u``, float32 ``[0]``, is unused)."""
        del u
        p = params
        force = jnp.where(action == 1, p.force_mag, -p.force_mag)
        total_mass = p.masspole + p.masscart
        polemass_length = p.masspole * p.length
        cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
        temp = (force + rounded(polemass_length * state.theta_dot**2 * sin)) / total_mass
        thetaacc = (rounded(p.gravity * sin) - rounded(cos * temp)) / (
            p.length * (4.0 / 3.0 - rounded(p.masspole * cos**2) / total_mass)
        )
        xacc = temp - rounded(polemass_length * thetaacc * cos) / total_mass
        # Explicit Euler: positions advance with the old velocities.
        new = CartPoleState(
            x=state.x + rounded(p.tau * state.x_dot),
            x_dot=state.x_dot + rounded(p.tau * xacc),
            theta=state.theta + rounded(p.tau * state.theta_dot),
            theta_dot=state.theta_dot + rounded(p.tau * thetaacc),
            time=state.time + 1,
        )
        terminated = (jnp.abs(new.x) > p.x_threshold) | (jnp.abs(new.theta) > p.theta_threshold_radians)
        sutton_barto = jnp.where(terminated, -1.0, 0.0)  # Gymnasium 1.x: else 1.0, termination included
        reward = jnp.where(p.sutton_barto_reward, sutton_barto, 1.0).astype(jnp.float32)
        truncated = new.time >= p.max_steps_in_episode
        return _obs(new), new, reward, terminated, truncated, {}


def _obs(state: CartPoleState) -> jax.Array:
    return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot]).astype(jnp.float32)


def cartpole_factory(
    env_id: str, max_steps_in_episode: int, sutton_barto_reward: bool = False
) -> tuple[CartPole, CartPoleParams]:
    """Registry factory: Gymnasium's ``CartPole-v1`` keyword ``sutton_barto_reward`` (bool)."""
    del env_id
    env = CartPole()
    params = env.default_params.replace(
        sutton_barto_reward=jnp.bool_(check_bool("sutton_barto_reward", sutton_barto_reward)),
        max_steps_in_episode=jnp.int32(max_steps_in_episode),
    )
    return env, params
