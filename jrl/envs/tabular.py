"""Tabular environments: an explicit finite model, sampled in ``step_env``.

A ``TabularMDP`` lists, for every state ``s`` and action ``a``, up to ``K`` outcomes ``k`` with
probability ``transition_probs[s, a, k]``, next state, reward and a terminal flag, exactly like
Gymnasium's ``env.unwrapped.P[s][a]`` (zero-probability padding when rows have fewer outcomes).
The model lives in the environment's params, so it is data: it can be inspected, replaced or
vmapped like any other parameter.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl.envs.core import Environment, GridLayout
from jrl.spaces import Discrete

__all__ = ["TabularEnv", "TabularMDP", "TabularParams", "TabularPicture", "TabularState", "make_tabular"]


@struct.dataclass
class TabularMDP:
    """An explicit finite MDP.

    Attributes:
        transition_probs: float32 ``[S, A, K]``, probability of outcome ``k``; rows sum to 1.
        next_states: int32 ``[S, A, K]``.
        rewards: float32 ``[S, A, K]``.
        terminals: bool ``[S, A, K]``, the outcome ends the episode (terminated).
        initial_distribution: float32 ``[S]``.
    """

    transition_probs: jax.Array
    next_states: jax.Array
    rewards: jax.Array
    terminals: jax.Array
    initial_distribution: jax.Array

    @property
    def num_states(self) -> int:
        return self.transition_probs.shape[0]

    @property
    def num_actions(self) -> int:
        return self.transition_probs.shape[1]

    @property
    def num_outcomes(self) -> int:
        return self.transition_probs.shape[2]

    def validate(self) -> None:
        """Check shapes, ranges and normalization on the host; raise ``ValueError`` naming the problem."""
        p = np.asarray(self.transition_probs, dtype=np.float64)
        if p.ndim != 3:
            raise ValueError(f"transition_probs must be [S, A, K], got shape {p.shape}")
        for name in ("next_states", "rewards", "terminals"):
            shape = np.shape(getattr(self, name))
            if shape != p.shape:
                raise ValueError(f"{name} must have shape {p.shape} like transition_probs, got {shape}")
        init = np.asarray(self.initial_distribution, dtype=np.float64)
        if init.shape != (p.shape[0],):
            raise ValueError(f"initial_distribution must have shape ({p.shape[0]},), got {init.shape}")
        if np.any(p < 0) or np.any(np.abs(p.sum(-1) - 1.0) > 1e-5):
            bad = np.argwhere(np.abs(p.sum(-1) - 1.0) > 1e-5)
            raise ValueError(
                f"transition_probs must be >= 0 and sum to 1 over outcomes; (s, a) = {bad[:3].tolist()} do not"
            )
        if np.any(init < 0) or abs(init.sum() - 1.0) > 1e-5:
            raise ValueError(f"initial_distribution must be >= 0 and sum to 1, sums to {init.sum()}")
        ns = np.asarray(self.next_states)
        if np.any(ns < 0) or np.any(ns >= p.shape[0]):
            raise ValueError(f"next_states must be in [0, {p.shape[0]}), got range [{ns.min()}, {ns.max()}]")
        if p.shape[0] >= 2**24:
            raise ValueError(f"at most 2**24 - 1 states are supported, got {p.shape[0]}")
        if not np.all(np.isfinite(np.asarray(self.rewards))):
            raise ValueError("rewards must be finite")


def tabular_mdp_from_numpy(
    transition_probs: np.ndarray,
    next_states: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    initial_distribution: np.ndarray,
) -> TabularMDP:
    """Build a validated ``TabularMDP`` with the contract's dtypes from host arrays."""
    mdp = TabularMDP(
        transition_probs=jnp.asarray(transition_probs, jnp.float32),
        next_states=jnp.asarray(next_states, jnp.int32),
        rewards=jnp.asarray(rewards, jnp.float32),
        terminals=jnp.asarray(terminals, bool),
        initial_distribution=jnp.asarray(initial_distribution, jnp.float32),
    )
    mdp.validate()
    return mdp


def outcome_table(
    num_states: int, num_actions: int, outcomes: dict[tuple[int, int], list[tuple[float, int, float, bool]]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pack Gymnasium-style outcome lists ``P[(s, a)] = [(prob, next_state, reward, terminated)]``
    into padded ``[S, A, K]`` arrays (padding: probability 0, next state ``s``, reward 0)."""
    k = max(len(v) for v in outcomes.values())
    probs = np.zeros((num_states, num_actions, k))
    nexts = np.repeat(np.arange(num_states)[:, None, None], num_actions, 1).repeat(k, 2)
    rewards = np.zeros((num_states, num_actions, k))
    terms = np.zeros((num_states, num_actions, k), dtype=bool)
    for (s, a), rows in outcomes.items():
        for i, (p, s2, r, t) in enumerate(rows):
            probs[s, a, i], nexts[s, a, i], rewards[s, a, i], terms[s, a, i] = p, s2, r, t
    return probs, nexts, rewards, terms


@struct.dataclass
class TabularParams:
    """Dynamic settings of a tabular environment: its model and its time limit (int)."""

    mdp: TabularMDP
    max_steps_in_episode: Any


@struct.dataclass
class TabularState:
    """``state``: int32 current state index. ``time``: int32 steps taken in this episode."""

    state: jax.Array
    time: jax.Array


def outcome_thresholds(probs: jax.Array) -> jax.Array:
    """Inverse-CDF thresholds for sampling outcomes: float32 ``[..., K - 1]`` from ``probs [..., K]``.

    Outcome ``k = #{j : thresholds[j] <= u}`` for ``u`` ~ U[0, 1). Thresholds at and after the
    last positive-probability outcome are ``inf``, so zero-probability padding is never chosen even
    when float32 rounding leaves the total a hair below 1.
    """
    num = probs.shape[-1]
    cdf = jnp.cumsum(probs, axis=-1)[..., :-1]
    last_positive = num - 1 - jnp.argmax((probs > 0)[..., ::-1], axis=-1)
    return jnp.where(jnp.arange(num - 1) >= last_positive[..., None], jnp.inf, cdf)


def count_below(thresholds: jax.Array, u: jax.Array) -> jax.Array:
    """``#{j : thresholds[..., j] <= u}`` as int32 for sorted thresholds: unrolled compares for a
    short (static) last axis, binary search for a long one (e.g. Taxi's 500 start states)."""
    if thresholds.ndim == 1 and thresholds.shape[0] > 64:
        return jnp.searchsorted(thresholds, u, side="right").astype(jnp.int32)
    count = jnp.zeros(jnp.shape(u), jnp.int32)
    for j in range(thresholds.shape[-1]):
        count = count + (thresholds[..., j] <= u).astype(jnp.int32)
    return count


def packed_outcomes(mdp: TabularMDP) -> jax.Array:
    """float32 ``[S, A, 4K - 1]``: outcome thresholds, next states, rewards, terminal flags (0/1).

    State indices are exact in float32 (S < 2**24 is enforced by ``TabularMDP.validate``).
    """
    return jnp.concatenate(
        [
            outcome_thresholds(mdp.transition_probs),
            mdp.next_states.astype(jnp.float32),
            mdp.rewards.astype(jnp.float32),
            mdp.terminals.astype(jnp.float32),
        ],
        axis=-1,
    )


def select_index(index: jax.Array, values: jax.Array) -> jax.Array:
    """``values[index]`` for a short static last axis, as a chain of selects (no gather)."""
    out = values[..., 0]
    for j in range(1, values.shape[-1]):
        out = jnp.where(index == j, values[..., j], out)
    return out


@dataclasses.dataclass(frozen=True)
class TabularPicture:
    """How a tabular environment draws its state index: a gridworld's layout (its map) and its
    pictures. Subclasses (``FrozenLakePicture``, ``CliffWalkingPicture``, ``TaxiPicture``) are
    frozen dataclasses of their layout and implement ``image`` and ``text``.

    Attributes:
        modes: what it draws (``render_modes``): ``"rgb_array"``, ``"ansi"``.
        fps: frames per second (Gymnasium's ``render_fps`` for its toy-text environments: 4).
    """

    modes: ClassVar[tuple[str, ...]] = ("rgb_array", "ansi")
    fps: ClassVar[int] = 4

    @property
    def num_states(self) -> int:  # pragma: no cover - abstract
        """The states it draws, ``0 .. num_states - 1`` (the model's ``S``)."""
        raise NotImplementedError

    @property
    def layout(self) -> GridLayout | None:
        """The map whose cells are the states (``Environment.grid_layout``); ``None`` here."""
        return None

    def image(self, s: int) -> np.ndarray:  # pragma: no cover - abstract
        """``uint8 [H, W, 3]``: the picture of state index ``s``."""
        raise NotImplementedError

    def text(self, s: int, last_action: int | None) -> str:  # pragma: no cover - abstract
        """Gymnasium's ``"ansi"`` text of state index ``s`` after ``last_action``."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class TabularEnv(Environment):
    """A finite MDP sampled from its explicit model (``params.mdp``).

    Static settings: ``num_states`` (S), ``num_actions`` (A), ``num_outcomes`` (K), and the
    ``env_id`` (keyword-only). Observations are the int32 state index, ``0 <= obs < S``.
    ``model_params`` (keyword-only) is the params ``jrl.make`` or ``make_tabular`` built with it,
    returned by ``default_params``; it takes no part in equality or hashing (the model is data).
    ``picture`` (keyword-only, ``None`` for a model without a layout) is how it renders: a
    ``TabularPicture`` holding its map; host side only, so it takes no part in equality either.
    """

    num_states: int
    num_actions: int
    num_outcomes: int
    model_params: TabularParams | None = dataclasses.field(default=None, kw_only=True, compare=False, repr=False)
    picture: TabularPicture | None = dataclasses.field(default=None, kw_only=True, compare=False, repr=False)

    @property
    def default_params(self) -> TabularParams:
        """The params (model and time limit) this environment was made with."""
        if self.model_params is None:
            raise ValueError(
                f"{self!r} was built without a model, so it has no default params: "
                "build tabular environments with jrl.make or jrl.make_tabular"
            )
        return self.model_params

    def observation_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_states)

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_actions)

    @property
    def render_modes(self) -> tuple[str, ...]:
        """The picture's modes; empty without a picture (a model has no layout to draw)."""
        return () if self.picture is None else self.picture.modes

    @property
    def render_fps(self) -> int:
        return 0 if self.picture is None else self.picture.fps

    def render(self, state: TabularState, params: TabularParams) -> np.ndarray:
        """``uint8 [H, W, 3]``: the picture of ``state.state`` (see ``Environment.render``)."""
        if "rgb_array" not in self.render_modes:
            return super().render(state, params)
        return self.picture.image(int(state.state))

    def render_text(self, state: TabularState, params: TabularParams, last_action: int | None = None) -> str:
        """Gymnasium's ``"ansi"`` text of ``state.state`` (see ``Environment.render_text``)."""
        if "ansi" not in self.render_modes:
            return super().render_text(state, params, last_action)
        return self.picture.text(int(state.state), None if last_action is None else int(last_action))

    def grid_layout(self, params: TabularParams) -> GridLayout | None:
        """The picture's map (``Environment.grid_layout``); ``None`` without a picture or layout."""
        return None if self.picture is None else self.picture.layout

    def mdp(self, params: TabularParams) -> TabularMDP:
        """The exact model: ``TabularMDP`` with arrays ``[S, A, K]`` and ``[S]``."""
        return params.mdp

    # The uniform-driven core: one uniform number per draw, so a batched caller (Q-learning,
    # Environment.step_batch) can draw every random number of a step in one call instead of one
    # PRNG key per env.
    uniform_shapes = ((), ())  # one uniform for the outcome (slip), one for the reset

    def reset_from_uniform(self, u: jax.Array, params: TabularParams) -> tuple[jax.Array, TabularState]:
        """Reset driven by ``u`` ~ U[0, 1). Returns ``(obs, state)``."""
        s = count_below(outcome_thresholds(params.mdp.initial_distribution), u)
        return s, TabularState(state=s, time=jnp.zeros((), jnp.int32))

    def step_env_from_uniform(
        self, u: jax.Array, state: TabularState, action: jax.Array, params: TabularParams
    ) -> tuple[jax.Array, TabularState, jax.Array, jax.Array, jax.Array, dict]:
        """Transition without reset, driven by ``u`` ~ U[0, 1)."""
        k_out = self.num_outcomes
        # One row of a packed table [S, A, 4K - 1] (thresholds, next states, rewards, terminal
        # flags) instead of four gathers: gathers dominate this step on CPU. Under vmap with
        # shared params the table is built once per step, not once per environment.
        row = packed_outcomes(params.mdp)[state.state, jnp.asarray(action, jnp.int32)]
        k = count_below(row[: k_out - 1], u)
        pick = functools.partial(select_index, k)
        next_s = pick(row[k_out - 1 : 2 * k_out - 1]).astype(jnp.int32)
        reward = pick(row[2 * k_out - 1 : 3 * k_out - 1])
        terminated = pick(row[3 * k_out - 1 :]) > 0.5
        time = state.time + 1
        truncated = time >= params.max_steps_in_episode
        return next_s, TabularState(state=next_s, time=time), reward, terminated, truncated, {}

    # step_from_uniforms(u_step, u_reset, ...): Environment's, with scalar uniforms (``step`` with
    # auto-reset driven by two uniforms instead of a key; Q-learning and step_batch use it).

    def reset_env(self, key: jax.Array, params: TabularParams) -> tuple[jax.Array, TabularState]:
        return self.reset_from_uniform(jax.random.uniform(key), params)

    def step_env(self, key: jax.Array, state: TabularState, action: jax.Array, params: TabularParams):
        return self.step_env_from_uniform(jax.random.uniform(key), state, action, params)

    def step(self, key: jax.Array, state: TabularState, action: jax.Array, params: TabularParams):
        """One transition with same-step auto-reset (see ``Environment.step``)."""
        u = jax.random.uniform(key, (2,))
        return self.step_from_uniforms(u[0], u[1], state, action, params)


def make_tabular(
    mdp: TabularMDP, max_steps_in_episode: int, name: str = "Tabular", *, picture: TabularPicture | None = None
) -> tuple[TabularEnv, TabularParams]:
    """A tabular environment for your own model: ``(env, params)``. The model is validated;
    ``name`` becomes the environment's ``env_id`` (shown in its repr and errors); ``picture``, a
    ``TabularPicture`` whose states are the model's, makes it render."""
    mdp.validate()
    if isinstance(max_steps_in_episode, bool) or not isinstance(max_steps_in_episode, (int, np.integer)):
        raise TypeError(f"max_steps_in_episode must be an int, got {max_steps_in_episode!r}")
    if max_steps_in_episode < 1:
        raise ValueError(f"max_steps_in_episode must be >= 1, got {max_steps_in_episode}")
    params = TabularParams(mdp=mdp, max_steps_in_episode=jnp.int32(max_steps_in_episode))
    if picture is not None and not isinstance(picture, TabularPicture):
        raise TypeError(f"picture must be a jrl.envs.tabular.TabularPicture or None, got {type(picture).__name__}")
    if picture is not None and picture.num_states != mdp.num_states:
        raise ValueError(
            f"{name}: the picture draws {picture.num_states} states ({picture!r}), the model has {mdp.num_states}"
        )
    env = TabularEnv(
        mdp.num_states, mdp.num_actions, mdp.num_outcomes, env_id=name, model_params=params, picture=picture
    )
    return env, params
