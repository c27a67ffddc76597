"""``MountainCarContinuous-v0``: Gymnasium's continuous mountain car in pure JAX.

``force`` = the action, clipped to ``[min_action, max_action]`` (Gymnasium clips it in ``step``);
``velocity += force * power - gravity * cos(3 position)``, clipped to ``max_speed``; then
``position += velocity``, clipped to ``[min_position, max_position]``; hitting the left wall while
moving left stops the car. Terminates when ``position >= goal_position`` (0.45) and ``velocity >=
goal_velocity``. Reward ``100`` on the terminating step, minus ``0.1 action^2`` on every step, with
the action as given, *not* clipped (Gymnasium's ``math.pow(action[0], 2) * 0.1``: a torque beyond
the bounds costs more and pushes no harder). Time limit 999 steps. Reset: position uniform in
``[-0.6, -0.4)``, velocity 0. Observation float32 ``[2]`` ``(position, velocity)``; actions
``Box(-1, 1, (1,), float32)``. Arithmetic is float32.
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
from jrl.envs import mountain_car
from jrl.envs.core import Environment, uniform_in
from jrl.spaces import Box

__all__ = [
    "MountainCarContinuous",
    "MountainCarContinuousParams",
    "MountainCarContinuousState",
    "mountain_car_continuous_factory",
]

#: Gymnasium's action bounds (the action space's, whatever ``params.min_action``/``max_action`` say).
MIN_ACTION, MAX_ACTION = -1.0, 1.0


@struct.dataclass
class MountainCarContinuousParams:
    """Physics constants, action clip, goal and time limit (scalar arrays, vmappable)."""

    power: jax.Array
    gravity: jax.Array
    min_action: jax.Array
    max_action: jax.Array
    min_position: jax.Array
    max_position: jax.Array
    max_speed: jax.Array
    goal_position: jax.Array
    goal_velocity: jax.Array
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class MountainCarContinuousState:
    position: jax.Array
    velocity: jax.Array
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class MountainCarContinuous(Environment):
    """Gymnasium's ``Continuous_MountainCarEnv`` (no static settings)."""

    @property
    def default_params(self) -> MountainCarContinuousParams:
        f32 = jnp.float32
        return MountainCarContinuousParams(
            power=f32(0.0015),
            gravity=f32(0.0025),
            min_action=f32(MIN_ACTION),
            max_action=f32(MAX_ACTION),
            min_position=f32(-1.2),
            max_position=f32(0.6),
            max_speed=f32(0.07),
            goal_position=f32(0.45),
            goal_velocity=f32(0.0),
            max_steps_in_episode=jnp.int32(999),
        )

    def observation_space(self, params: Any = None) -> Box:
        """Gymnasium's bounds (for the default positions and speed limit)."""
        return Box(np.array([-1.2, -0.07], np.float32), np.array([0.6, 0.07], np.float32), (2,))

    def action_space(self, params: Any = None) -> Box:
        """Gymnasium's ``Box(-1, 1, (1,), float32)``: the push. ``step`` clips any real action into
        ``[params.min_action, params.max_action]`` (the reward charges the unclipped one)."""
        return Box(MIN_ACTION, MAX_ACTION, (1,))

    render_modes = ("rgb_array",)
    render_fps = 30  # Gymnasium's

    def render(self, state: MountainCarContinuousState, params: MountainCarContinuousParams) -> np.ndarray:
        """``uint8 [400, 600, 3]``, Gymnasium's picture: ``MountainCar-v0``'s
        (``jrl.envs.mountain_car.picture``), the flag at ``goal_position``."""
        return mountain_car.picture(
            float(state.position), float(params.min_position), float(params.max_position), float(params.goal_position)
        )

    uniform_shapes = ((0,), ())  # the step draws nothing, the reset one uniform (step_batch)

    def reset_env(
        self, key: jax.Array, params: MountainCarContinuousParams
    ) -> tuple[jax.Array, MountainCarContinuousState]:
        return self.reset_from_uniform(jax.random.uniform(key, (), jnp.float32), params)

    def reset_from_uniform(
        self, u: jax.Array, params: MountainCarContinuousParams
    ) -> tuple[jax.Array, MountainCarContinuousState]:
        """Start position ``U[-0.6, -0.4)`` from ``u`` ~ U[0, 1) (float32 scalar), velocity 0."""
        position = uniform_in(u, -0.6, -0.4)
        zero = jnp.zeros((), jnp.float32)
        state = MountainCarContinuousState(position=position, velocity=zero, time=jnp.zeros((), jnp.int32))
        return _obs(state), state

    def step_env(
        self, key: jax.Array, state: MountainCarContinuousState, action: jax.Array, params: MountainCarContinuousParams
    ):
        del key
        return self.step_env_from_uniform(jnp.zeros((0,), jnp.float32), state, action, params)

    def step_env_from_uniform(
        self, u: jax.Array, state: MountainCarContinuousState, action: jax.Array, params: MountainCarContinuousParams
    ):
        """The deterministic transition (``u``, float32 ``[0]``, is unused)."""
        del u
        p = params
        a = jnp.asarray(action, jnp.float32)[0]
        force = jnp.clip(a, p.min_action, p.max_action)  # Gymnasium's min(max(action[0], -1), 1)
        # Products rounded before they are added (jrl._numerics.rounded): same bits with and without vmap.
        velocity = state.velocity + (rounded(force * p.power) - rounded(p.gravity * jnp.cos(3 * state.position)))
        velocity = jnp.clip(velocity, -p.max_speed, p.max_speed)
        position = jnp.clip(state.position + velocity, p.min_position, p.max_position)
        velocity = jnp.where((position == p.min_position) & (velocity < 0), 0.0, velocity).astype(jnp.float32)
        terminated = (position >= p.goal_position) & (velocity >= p.goal_velocity)
        reward = jnp.where(terminated, 100.0, 0.0) - rounded(a**2 * 0.1)  # the action as given, not clipped
        new = MountainCarContinuousState(position=position, velocity=velocity, time=state.time + 1)
        truncated = new.time >= p.max_steps_in_episode
        return _obs(new), new, reward.astype(jnp.float32), terminated, truncated, {}


def _obs(s: MountainCarContinuousState) -> jax.Array:
    return jnp.stack([s.position, s.velocity]).astype(jnp.float32)


def mountain_car_continuous_factory(
    env_id: str, max_steps_in_episode: int, goal_velocity: float = 0.0
) -> tuple[MountainCarContinuous, MountainCarContinuousParams]:
    """Registry factory: Gymnasium's ``MountainCarContinuous-v0`` keyword ``goal_velocity`` (a real
    number; Gymnasium's default 0)."""
    del env_id
    goal_velocity = check_float("goal_velocity", goal_velocity, -math.inf, math.inf)
    env = MountainCarContinuous()
    params = env.default_params.replace(
        goal_velocity=jnp.float32(goal_velocity), max_steps_in_episode=jnp.int32(max_steps_in_episode)
    )
    return env, params
