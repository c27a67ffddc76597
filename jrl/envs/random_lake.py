"""``RandomLake-v0``: FrozenLake on a new, random, solvable map every episode (pure JAX).

The rules are FrozenLake's (``jrl.envs.frozen_lake``): actions 0 left, 1 down, 2 right, 3 up; a
move into the edge of the grid stays put; slippery: the intended direction with probability
``success_rate``, each perpendicular one with ``(1 - success_rate) / 2``; holes and the goal are
terminal; reward 1.0 for reaching the goal, 0.0 otherwise. What changes is the map: every
``reset`` draws a fresh ``size x size`` lake. The start is the top-left cell, the goal the
bottom-right one, and every other cell is a hole with probability ``hole_probability``,
independently, conditioned on the map being solvable (a 4-neighbour path of non-hole cells from
start to goal).

Why a table cannot learn this and a network can
------------------------------------------------
The state is the pair (map, position). There are up to ``2 ** (size * size - 2)`` maps (about
``4.6e18`` at 8x8), so an agent practically never meets the same map twice: a Q-table indexed by
the full state never revisits an entry, and nothing it writes helps on the next map. A table
indexed by the position alone ignores the map, so the best it can do is one map-agnostic route
that walks into whatever holes lie on it. A convolutional network reads the observation below as
an image: its filters see "a hole to my right", "frozen below me", "the goal is down and to the
right" the same way wherever the agent stands and on whatever map, so what it learns on one map
transfers to maps it has never seen.

Observation: float32 ``[size, size, 3]``, one-hot channels ``(hole, goal, agent)`` (the hole
channel is the map; the goal channel has its single 1 at the bottom-right; the agent channel its
single 1 at the agent's cell), ``Box(0, 1, (size, size, 3))``. Actions: ``Discrete(4)``.

Map generation (in JAX, under ``jit``/``vmap``): attempt ``i`` draws the holes with
``fold_in(key, i)``; a flood fill from the start (pad-and-shift growth, a ``lax.while_loop`` that
stops when the goal is reached or nothing grows, so at most ``size * size`` rounds) decides
solvability; a ``lax.while_loop`` redraws until the map is solvable. The attempts are capped at
``MAX_ATTEMPTS`` (100). Solvable maps are common below roughly ``hole_probability = 0.4`` (at the
default 0.2 and 8x8 about five draws in six are solvable, so the cap is never met in practice), but
above the site-percolation threshold (about 0.41 holes) they become exponentially rare as ``size``
grows. When all ``MAX_ATTEMPTS`` draws fail, the last draw is kept and the cells of a uniformly
random monotone (right/down) path from start to goal are cleared: the map is then solvable and
still hole-dense, but not an exact draw from the conditional distribution. Because of the
conditioning (and this fallback) the hole fraction of a generated map is a little below
``hole_probability``.

Time limit: ``jrl.make("RandomLake-v0")`` registers ``max_episode_steps = 256 = 4 * 8 * 8``. As
with Gymnasium's ``FrozenLake-v1`` (100 steps whatever its map), the registered limit belongs to
the id, not to the keyword arguments: ``jrl.make("RandomLake-v0", size=16)`` still has 256 steps;
pass ``max_episode_steps=4 * 16 * 16`` along with ``size`` to keep the ``4 * size * size`` rule.
``RandomLake(size).default_params`` (building the environment directly) uses ``4 * size * size``.

Auto-reset: ``Environment.step`` computes a reset on every step and keeps it where the episode
ended. ``RandomLake.reset_where`` passes ``done`` into the map loops, so a map is generated only
where it is kept: under ``vmap`` a batched ``while_loop`` runs until every member's condition
fails, and without that every step of a batch would pay for a full map generation of all its
environments. The results are the same (tested).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._validation import check_bool, check_float, check_int
from jrl.envs.core import Environment
from jrl.envs.frozen_lake import FrozenLakePicture
from jrl.spaces import Box, Discrete

__all__ = [
    "MAX_ATTEMPTS",
    "RandomLake",
    "RandomLakeParams",
    "RandomLakeState",
    "draw_holes",
    "generate_map",
    "random_lake_factory",
    "reachable",
]

#: Map draws before the fallback (see the module docstring).
MAX_ATTEMPTS = 100
MIN_SIZE, MAX_SIZE = 3, 32
#: Row and column change of actions 0 left, 1 down, 2 right, 3 up.
_DROW = (0, 1, 0, -1)
_DCOL = (-1, 0, 1, 0)


@struct.dataclass
class RandomLakeParams:
    """Dynamic settings (scalar arrays, vmappable)."""

    hole_probability: jax.Array  # float32, in [0, 0.9)
    is_slippery: jax.Array  # bool
    success_rate: jax.Array  # float32: probability of the intended direction when slippery
    max_steps_in_episode: jax.Array  # int32


@struct.dataclass
class RandomLakeState:
    """One episode: its map, the agent's cell and the elapsed steps."""

    holes: jax.Array  # bool [size, size]; start (0, 0) and goal (size-1, size-1) are never holes
    row: jax.Array  # int32
    col: jax.Array  # int32
    time: jax.Array  # int32


def draw_holes(key: jax.Array, hole_probability: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """One unconditioned draw from one key (a single ``uniform`` call).

    Returns ``(holes, path)``: ``holes`` bool ``[size, size]``, each cell but start and goal a hole
    with probability ``hole_probability``, independently; ``path`` bool ``[size, size]``, the cells
    of a uniformly random monotone (right/down) path from start to goal, independent of ``holes``
    (only the fallback uses it).
    """
    n = size
    u = jax.random.uniform(key, (n * n + 2 * (n - 1),), jnp.float32)
    holes = (u[: n * n] < hole_probability).reshape(n, n)
    holes = holes.at[0, 0].set(False).at[n - 1, n - 1].set(False)
    # The ranks of 2(n-1) iid uniforms are a uniform permutation: the first n-1 ranks step down.
    down = (jnp.argsort(u[n * n :]) < n - 1).astype(jnp.int32)
    rows, cols = jnp.cumsum(down), jnp.cumsum(1 - down)
    path = jnp.zeros((n, n), bool).at[0, 0].set(True).at[rows, cols].set(True)
    return holes, path


def reachable(free: jax.Array, active: jax.Array | bool = True) -> jax.Array:
    """Cells reachable from ``(0, 0)`` through ``free`` cells (4-neighbour), bool ``[n, m]``.

    Grows the reached set by one step per round (zero-padded shifts) until it stops growing or
    contains the bottom-right cell, so the result is exact at the goal and wherever growth stopped.
    ``active=False`` skips the growth (the result is then just the start cell): under ``vmap`` a
    batched ``while_loop`` runs as long as any member's condition holds, so members whose result
    is not needed must not keep it running.
    """
    n, m = free.shape
    start = jnp.zeros((n, m), bool).at[0, 0].set(free[0, 0])

    def grow(reach):
        p = jnp.pad(reach, 1)
        return (reach | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]) & free

    def cond(carry):
        reach, changed, rounds = carry
        return active & changed & ~reach[n - 1, m - 1] & (rounds < n * m)

    def body(carry):
        reach, _, rounds = carry
        # Two growth steps per round (a small static unroll) halve the loop's overhead.
        grown = grow(grow(reach))
        return grown, jnp.any(grown != reach), rounds + 2

    reach, _, _ = jax.lax.while_loop(cond, body, (start, jnp.bool_(True), jnp.int32(0)))
    return reach


def generate_map(key: jax.Array, hole_probability: jax.Array, size: int, needed: jax.Array | bool = True) -> jax.Array:
    """A solvable map, bool ``[size, size]`` of holes (see the module docstring).

    ``needed=False`` returns an arbitrary map without drawing (``step`` passes whether the
    episode ended, so under ``vmap`` only the environments that reset keep the loops running).
    """

    def cond(carry):
        _, solvable, attempt = carry
        return needed & ~solvable & (attempt < MAX_ATTEMPTS)

    def body(carry):
        _, _, attempt = carry
        holes, path = draw_holes(jax.random.fold_in(key, attempt), hole_probability, size)
        return (holes, path), reachable(~holes, needed)[size - 1, size - 1], attempt + 1

    empty = jnp.zeros((size, size), bool)
    init = ((empty, empty), jnp.bool_(False), jnp.int32(0))
    (holes, path), solvable, _ = jax.lax.while_loop(cond, body, init)
    # Fallback after MAX_ATTEMPTS unsolvable draws: clear the last draw's random monotone path.
    return jnp.where(solvable, holes, holes & ~path)


@dataclasses.dataclass(frozen=True)
class RandomLake(Environment):
    """Random solvable FrozenLake maps, one per episode.

    Args:
        size: the map is ``size x size`` (static: it sets the observation's shape), in [3, 32].
    """

    size: int = 8

    def __post_init__(self) -> None:
        check_int("size", self.size, MIN_SIZE, MAX_SIZE)

    num_actions = 4  # a class constant, not a field

    @property
    def default_params(self) -> RandomLakeParams:
        return RandomLakeParams(
            hole_probability=jnp.float32(0.2),
            is_slippery=jnp.bool_(False),
            success_rate=jnp.float32(1.0 / 3.0),
            max_steps_in_episode=jnp.int32(4 * self.size * self.size),
        )

    def observation_space(self, params: Any = None) -> Box:
        return Box(0.0, 1.0, (self.size, self.size, 3))

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(self.num_actions)

    # Pictures: FrozenLake's, of the episode's map (host side).
    render_modes = ("rgb_array", "ansi")
    render_fps = FrozenLakePicture.fps

    def _picture(self, state: RandomLakeState) -> tuple[FrozenLakePicture, int]:
        """FrozenLake's picture of the state's map, and the agent's cell index."""
        desc = [["H" if hole else "F" for hole in row] for row in np.asarray(state.holes)]
        desc[0][0], desc[-1][-1] = "S", "G"
        return FrozenLakePicture(tuple("".join(row) for row in desc)), int(state.row) * self.size + int(state.col)

    def render(self, state: RandomLakeState, params: RandomLakeParams) -> np.ndarray:
        """``uint8 [64 * size, 64 * size, 3]``: the map as FrozenLake draws its own, the agent a red disc."""
        picture, cell = self._picture(state)
        return picture.image(cell)

    def render_text(self, state: RandomLakeState, params: RandomLakeParams, last_action: int | None = None) -> str:
        """FrozenLake's ``"ansi"`` text of the map (``S`` start, ``F`` ice, ``H`` holes, ``G`` goal)."""
        picture, cell = self._picture(state)
        return picture.text(cell, None if last_action is None else int(last_action))

    def get_obs(self, state: RandomLakeState) -> jax.Array:
        """float32 ``[size, size, 3]``: one-hot channels (hole, goal, agent)."""
        n = self.size
        idx = jnp.arange(n)
        goal = jnp.zeros((n, n), bool).at[n - 1, n - 1].set(True)
        agent = (idx[:, None] == state.row) & (idx[None, :] == state.col)
        return jnp.stack([state.holes, goal, agent], axis=-1).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: RandomLakeParams) -> tuple[jax.Array, RandomLakeState]:
        return self.reset_where(key, params, jnp.bool_(True))

    def reset_where(self, key: jax.Array, params: RandomLakeParams, done: jax.Array):
        """``reset_env``'s map where ``done``; elsewhere (``step`` discards it) no map is drawn:
        under ``vmap`` the map loops would otherwise keep running for every environment."""
        holes = generate_map(key, params.hole_probability, self.size, done)
        zero = jnp.zeros((), jnp.int32)
        state = RandomLakeState(holes=holes, row=zero, col=zero, time=zero)
        return self.get_obs(state), state

    def step_env(self, key: jax.Array, state: RandomLakeState, action: jax.Array, params: RandomLakeParams):
        n = self.size
        action = jnp.asarray(action, jnp.int32)
        success = params.success_rate
        u = jax.random.uniform(key, (), jnp.float32)
        # Slippery outcomes as Gymnasium lists them: (a - 1) % 4, a, (a + 1) % 4.
        slipped = jnp.where(
            u < success, action, jnp.where(u < success + (1.0 - success) / 2.0, (action - 1) % 4, (action + 1) % 4)
        )
        direction = jnp.where(params.is_slippery, slipped, action)
        row = jnp.clip(state.row + jnp.asarray(_DROW, jnp.int32)[direction], 0, n - 1)
        col = jnp.clip(state.col + jnp.asarray(_DCOL, jnp.int32)[direction], 0, n - 1)
        # A hole or the goal is terminal: stepping from one (step_env without auto-reset) is a
        # self-loop with reward 0 that terminates again, as in Gymnasium's P.
        was_terminal = state.holes[state.row, state.col] | ((state.row == n - 1) & (state.col == n - 1))
        row = jnp.where(was_terminal, state.row, row)
        col = jnp.where(was_terminal, state.col, col)
        at_goal = (row == n - 1) & (col == n - 1)
        terminated = state.holes[row, col] | at_goal
        reward = jnp.where(at_goal & ~was_terminal, 1.0, 0.0).astype(jnp.float32)
        new = state.replace(row=row, col=col, time=state.time + 1)
        truncated = new.time >= params.max_steps_in_episode
        return self.get_obs(new), new, reward, terminated, truncated, {}


def random_lake_factory(
    env_id: str,
    max_steps_in_episode: int,
    size: int = 8,
    hole_probability: float = 0.2,
    is_slippery: bool = False,
    success_rate: float = 1.0 / 3.0,
) -> tuple[RandomLake, RandomLakeParams]:
    """Registry factory. ``size`` int in [3, 32]; ``hole_probability`` in [0, 0.9);
    ``is_slippery`` bool; ``success_rate`` in [0, 1]. The time limit is the registry's
    (256 unless ``max_episode_steps`` is given, whatever ``size`` is: see the module docstring)."""
    del env_id
    size = check_int("size", size, MIN_SIZE, MAX_SIZE)
    hole_probability = check_float("hole_probability", hole_probability, 0.0, 0.9, high_open=True)
    is_slippery = check_bool("is_slippery", is_slippery)
    success_rate = check_float("success_rate", success_rate, 0.0, 1.0)
    env = RandomLake(size)
    params = env.default_params.replace(
        hole_probability=jnp.float32(hole_probability),
        is_slippery=jnp.bool_(is_slippery),
        success_rate=jnp.float32(success_rate),
        max_steps_in_episode=jnp.int32(max_steps_in_episode),
    )
    return env, params
