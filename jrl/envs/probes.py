"""Probe environments: tiny tasks with analytic values, to test a learner's bootstrapping.

Observations are float32 ``[1]`` (``Box``); each probe isolates one mechanism:

- ``Probe-OneStep-v0``: one action, reward 1, terminates at once. ``Q = 1``.
- ``Probe-TwoStep-v0``: one action; obs 0 then obs 1, reward 0 then 1, terminates after the
  second step. ``Q(0) = gamma``, ``Q(1) = 1`` (discounting and bootstrapping).
- ``Probe-ActionReward-v0``: two actions, reward +1 for action 1 and -1 for action 0,
  terminates at once. ``Q = [-1, 1]`` (the network must tell actions apart).
- ``Probe-Truncation-v0``: one action, reward 1, never terminates, truncated after every step.
  ``Q = 1 / (1 - gamma)``, reachable only by bootstrapping through truncation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl.envs.core import Environment
from jrl.spaces import Box, Discrete

__all__ = ["PROBES", "ProbeEnv", "ProbeParams", "ProbeState"]

# kind -> (number of actions, episode length before termination; 0 = never terminates)
PROBES = {"OneStep": (1, 1), "TwoStep": (1, 2), "ActionReward": (2, 1), "Truncation": (1, 0)}


@struct.dataclass
class ProbeParams:
    max_steps_in_episode: Any


@struct.dataclass
class ProbeState:
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class ProbeEnv(Environment):
    """One of ``PROBES`` (static ``kind``)."""

    kind: str

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=jnp.int32(1 if self.kind == "Truncation" else 2**31 - 1))

    @property
    def num_actions(self) -> int:
        return PROBES[self.kind][0]

    def observation_space(self, params: Any = None) -> Box:
        return Box(0.0, 1.0, (1,))

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_actions)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        del key
        return jnp.zeros(1, jnp.float32), ProbeState(time=jnp.int32(0))

    def step_env(self, key: jax.Array, state: ProbeState, action: jax.Array, params: ProbeParams):
        del key
        length = PROBES[self.kind][1]
        time = state.time + 1
        if self.kind == "ActionReward":
            reward = jnp.where(action == 1, 1.0, -1.0).astype(jnp.float32)
        elif self.kind == "TwoStep":
            reward = jnp.where(time == 2, 1.0, 0.0).astype(jnp.float32)
        else:
            reward = jnp.float32(1.0)
        terminated = jnp.bool_(False) if length == 0 else time >= length
        truncated = time >= params.max_steps_in_episode
        obs = jnp.minimum(time, 1).astype(jnp.float32)[None] if self.kind == "TwoStep" else jnp.zeros(1, jnp.float32)
        return obs, ProbeState(time=time), reward, terminated, truncated, {}


def probe_factory(kind: str):
    """A registry factory for one probe kind."""

    def factory(env_id: str, max_steps_in_episode: int) -> tuple[ProbeEnv, ProbeParams]:
        del env_id
        return ProbeEnv(kind), ProbeParams(max_steps_in_episode=jnp.int32(max_steps_in_episode))

    return factory
