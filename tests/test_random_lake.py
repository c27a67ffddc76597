"""RandomLake-v0: generated maps, observations, dynamics on hand-made maps, auto-reset, tracing and
bad keywords.

Every check runs a few compiled, vmapped functions (compiled once each, shared by all tests) and
compares with independent references: a pure-Python BFS for solvability, ``scipy.ndimage.label``
for the conditional hole fraction, and a pure-Python FrozenLake move for the dynamics.
"""

from __future__ import annotations

import collections
import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import jrl
from jrl.envs.core import auto_reset
from jrl.envs.random_lake import RandomLake, RandomLakeState, draw_holes

N = 512  # environments per batched call (one shape, so each function compiles once)
N_SMALL = 8192  # draws per call on the hand-made 4x4 map
ATTEMPTS = 10  # map draws replayed per key (all ten unsolvable at 8x8, p = 0.2: odds ~1e-8)
MOVES = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}  # left, down, right, up

# The hand-made 4x4 map (S start, G goal, H hole).
HAND_MAP = ("SFHF", "FFFF", "HFFF", "FFFG")
HAND_HOLES = np.array([[c == "H" for c in row] for row in HAND_MAP])


# --------------------------------------------------------------------------------------------
# Shared compiled functions and references.
# --------------------------------------------------------------------------------------------


def _batch(params, n=N):
    """``params`` with every leaf repeated ``n`` times (the batched functions vmap over params too)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), params)


def _keys(seed, n=N):
    return jax.random.split(jax.random.key(seed), n)


@functools.cache
def _env8():
    return jrl.make("RandomLake-v0")


@functools.cache
def _reset8():
    env, _ = _env8()
    return jax.jit(jax.vmap(env.reset))


@functools.cache
def _step8():
    """The batched step of the 8x8 environment; it must trace once across the whole module."""
    env, _ = _env8()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(keys, states, actions, params):
        return jax.vmap(env.step)(keys, states, actions, params)

    return step


@functools.cache
def _draws():
    """Draws ``[N, ATTEMPTS, 8, 8]``: attempt ``i`` of key ``k`` uses ``fold_in(k, i)``, as the
    generator's rejection loop does."""

    def draws(key, hole_probability):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(ATTEMPTS))
        return jax.vmap(draw_holes, in_axes=(0, None, None))(keys, hole_probability, 8)

    return jax.jit(jax.vmap(draws, in_axes=(0, None)))


@functools.cache
def _env4():
    return jrl.make("RandomLake-v0", size=4)


@functools.cache
def _step4():
    """``N_SMALL`` draws of ``step`` from one (state, action) of the 4x4 environment."""
    env, _ = _env4()
    return jax.jit(jax.vmap(env.step, in_axes=(0, None, None, None)))


def _hand_state(row, col, time=0):
    return RandomLakeState(holes=jnp.asarray(HAND_HOLES), row=jnp.int32(row), col=jnp.int32(col), time=jnp.int32(time))


def _bfs_solvable(holes):
    """Pure-Python BFS: is there a 4-neighbour path of non-holes from (0, 0) to (n-1, n-1)?"""
    n = len(holes)
    if holes[0][0] or holes[n - 1][n - 1]:
        return False
    seen, queue = {(0, 0)}, collections.deque([(0, 0)])
    while queue:
        r, c = queue.popleft()
        if (r, c) == (n - 1, n - 1):
            return True
        for dr, dc in MOVES.values():
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < n and not holes[nr][nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                queue.append((nr, nc))
    return False


def _label_solvable(holes):
    """Solvability of a stack ``[B, n, n]`` of maps with ``scipy.ndimage.label`` (4-neighbour)."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # no links between maps
    labels, _ = ndimage.label(~holes, structure)
    return (labels[:, 0, 0] > 0) & (labels[:, 0, 0] == labels[:, -1, -1])


def _obs_np(holes, row, col):
    """The expected observation: one-hot (hole, goal, agent) channels."""
    n = len(holes)
    obs = np.zeros((n, n, 3), np.float32)
    obs[..., 0] = holes
    obs[n - 1, n - 1, 1] = 1.0
    obs[row, col, 2] = 1.0
    return obs


def _ref_move(holes, row, col, direction):
    """FrozenLake's move in pure Python: ``(row, col, reward, terminated)``."""
    n = len(holes)
    dr, dc = MOVES[direction]
    r, c = min(max(row + dr, 0), n - 1), min(max(col + dc, 0), n - 1)
    at_goal = (r, c) == (n - 1, n - 1)
    return r, c, float(at_goal), bool(holes[r][c]) or at_goal


def _agent(obs):
    """(row, col) of the agent channel's single 1, per observation ``[..., n, n, 3]``."""
    a = np.asarray(obs)[..., 2]
    flat = a.reshape(*a.shape[:-2], -1).argmax(-1)
    return np.stack(np.unravel_index(flat, a.shape[-2:]), -1)


def _maps(seed, hole_probability=None, calls=1):
    """Generated maps ``[calls * N, 8, 8]`` (numpy) from ``calls`` batched resets."""
    _, params = _env8()
    if hole_probability is not None:
        params = params.replace(hole_probability=jnp.float32(hole_probability))
    out = []
    for i in range(calls):
        _, state = _reset8()(_keys(1000 * seed + i), _batch(params))
        out.append(np.asarray(state.holes))
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# (a) Generated maps.
# --------------------------------------------------------------------------------------------


def test_maps_start_goal_free_and_every_map_solvable():
    holes = _maps(0, calls=2)
    assert holes.shape == (2 * N, 8, 8) and holes.dtype == np.bool_
    assert not holes[:, 0, 0].any() and not holes[:, -1, -1].any()
    assert all(_bfs_solvable(h.tolist()) for h in holes[:300])
    assert _label_solvable(holes).all()
    assert holes.any(axis=(1, 2)).mean() > 0.9  # there are holes at all


def test_hole_fraction_matches_conditional_distribution():
    """Per-map hole fraction among the 62 non-start/goal cells, against rejection sampling in numpy
    (iid holes, keep the solvable maps). Conditioning on solvability pulls the mean below
    ``hole_probability`` (about 0.193 for 0.2 at 8x8); unconditioned draws would fail this by ~10 SE."""
    p = 0.2
    jrl_frac = _maps(1, calls=16).reshape(-1, 64)[:, 1:-1].mean(1)

    rng = np.random.default_rng(0)
    ref = rng.random((40_000, 8, 8)) < p
    ref[:, 0, 0] = ref[:, -1, -1] = False
    ref = ref[_label_solvable(ref)]
    ref_frac = ref.reshape(-1, 64)[:, 1:-1].mean(1)

    diff = jrl_frac.mean() - ref_frac.mean()
    se = np.hypot(jrl_frac.std() / np.sqrt(len(jrl_frac)), ref_frac.std() / np.sqrt(len(ref_frac)))
    assert abs(diff) <= 5 * se, (jrl_frac.mean(), ref_frac.mean(), se)
    assert abs(jrl_frac.mean() - p) < 0.02  # and close to hole_probability itself


def test_generator_returns_the_first_solvable_draw():
    """Replaying the draws ``fold_in(key, 0), fold_in(key, 1), ...`` on the host, the map of a reset
    is the first one the pure-Python BFS finds solvable."""
    keys = _keys(9)
    holes, _ = jax.device_get(_draws()(keys, jnp.float32(0.2)))
    _, params = _env8()
    maps = np.asarray(_reset8()(keys, _batch(params))[1].holes)
    first_solvable = []
    for j in range(N):
        i = next(i for i in range(ATTEMPTS) if _bfs_solvable(holes[j, i].tolist()))
        np.testing.assert_array_equal(maps[j], holes[j, i])
        first_solvable.append(i)
    assert 0.7 < np.mean(np.array(first_solvable) == 0) < 0.95  # ~83% of draws are solvable


def test_unconditioned_draw_fraction_and_fallback_path():
    holes, path = jax.device_get(_draws()(_keys(5), jnp.float32(0.3)))
    holes, path = holes.reshape(-1, 8, 8), path.reshape(-1, 8, 8)
    inner = holes.reshape(-1, 64)[:, 1:-1]
    se = np.sqrt(0.3 * 0.7 / inner.size)  # iid cells
    assert abs(inner.mean() - 0.3) <= 5 * se
    assert not holes[:, 0, 0].any() and not holes[:, -1, -1].any()
    # Each path: 15 cells, a monotone staircase from (0, 0) to (7, 7).
    assert (path.sum((1, 2)) == 15).all()
    for p in path[:200]:
        cells = sorted(zip(*np.nonzero(p), strict=True), key=lambda rc: rc[0] + rc[1])
        steps = {(int(b[0] - a[0]), int(b[1] - a[1])) for a, b in itertools.pairwise(cells)}
        assert cells[0] == (0, 0) and cells[-1] == (7, 7) and steps <= {(1, 0), (0, 1)}
    # Uniform over the C(14, 7) paths: the first step goes down half the time, and the row where
    # the path crosses the anti-diagonal r + c = 7 (downs among the first 7 steps) is
    # hypergeometric, mean 3.5 and variance 7 * 0.5 * 0.5 * 7 / 13.
    first_down = path[:, 1, 0]
    assert abs(first_down.mean() - 0.5) <= 5 * np.sqrt(0.25 / len(path))
    anti = np.arange(8)[:, None] + np.arange(8)[None, :] == 7
    crossing_row = np.nonzero(path & anti)[1].reshape(len(path))  # one cell per path on the diagonal
    assert abs(crossing_row.mean() - 3.5) <= 5 * np.sqrt(7 * 0.25 * 7 / 13 / len(path))
    assert len({p.tobytes() for p in path}) > 1500


def test_fallback_keeps_maps_solvable_and_dense():
    """At hole_probability 0.85 an 8x8 solvable draw is very rare: the fallback carves a path."""
    holes = _maps(2, hole_probability=0.85)
    assert _label_solvable(holes).all()
    assert all(_bfs_solvable(h.tolist()) for h in holes[:100])
    frac = holes.reshape(-1, 64)[:, 1:-1].mean()
    assert 0.6 < frac < 0.85  # not an all-frozen fallback: only the path's cells were cleared


def test_zero_hole_probability_gives_frozen_maps():
    assert not _maps(3, hole_probability=0.0).any()


def test_maps_depend_on_the_key_only():
    a, b, c = _maps(4), _maps(4), _maps(5)
    np.testing.assert_array_equal(a, b)
    assert len({m.tobytes() for m in a}) == N  # all different
    assert not any(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


# --------------------------------------------------------------------------------------------
# (b) Observations; (c) dynamics on the hand-made map.
# --------------------------------------------------------------------------------------------


def _check_obs(env, obs, state):
    obs, holes = np.asarray(obs), np.asarray(state.holes)
    rows, cols = np.asarray(state.row), np.asarray(state.col)
    assert obs.dtype == np.float32 and obs.shape == (len(holes), env.size, env.size, 3)
    assert set(np.unique(obs)) <= {0.0, 1.0}
    np.testing.assert_array_equal(obs[..., 0], holes)
    assert (obs[..., 1].sum((1, 2)) == 1).all() and (obs[:, -1, -1, 1] == 1).all()
    assert (obs[..., 2].sum((1, 2)) == 1).all()
    np.testing.assert_array_equal(_agent(obs), np.stack([rows, cols], -1))
    space = env.observation_space(None)
    assert space.shape == (env.size, env.size, 3) and space.dtype == jnp.float32
    for o in obs[:8]:
        space.check(o, "obs")


def test_reset_observation_is_one_hot_and_consistent():
    env, params = _env8()
    obs, state = _reset8()(_keys(6), _batch(params))
    _check_obs(env, obs, state)
    assert (np.asarray(state.row) == 0).all() and (np.asarray(state.col) == 0).all()
    assert (np.asarray(state.time) == 0).all()
    assert bool(jax.vmap(env.observation_space(params).contains)(obs).all())


def _outcomes(row, col, action, time=0, **changes):
    """``N_SMALL`` draws of ``step`` on the hand-made map, as numpy."""
    _, params = _env4()
    params = params.replace(**{k: jnp.asarray(v, getattr(params, k).dtype) for k, v in changes.items()})
    out = _step4()(
        _keys(row * 100 + col * 10 + action, N_SMALL), _hand_state(row, col, time), jnp.int32(action), params
    )
    return jax.device_get(out)


@pytest.mark.parametrize(
    ("row", "col", "action", "expected"),
    [
        (0, 0, 0, (0, 0, 0.0, False)),  # left into the wall: stay
        (0, 0, 3, (0, 0, 0.0, False)),  # up into the wall
        (0, 3, 2, (0, 3, 0.0, False)),  # right into the wall
        (3, 1, 1, (3, 1, 0.0, False)),  # down into the wall
        (0, 1, 2, (0, 2, 0.0, True)),  # into a hole: terminated, reward 0
        (1, 0, 1, (2, 0, 0.0, True)),
        (3, 2, 2, (3, 3, 1.0, True)),  # onto the goal: terminated, reward 1
        (2, 3, 1, (3, 3, 1.0, True)),
        (1, 1, 0, (1, 0, 0.0, False)),
        (1, 1, 1, (2, 1, 0.0, False)),
        (1, 1, 2, (1, 2, 0.0, False)),
        (1, 1, 3, (0, 1, 0.0, False)),
        (0, 2, 1, (0, 2, 0.0, True)),  # from a hole (step_env without reset): self-loop, reward 0
        (3, 3, 3, (3, 3, 0.0, True)),  # from the goal: self-loop, reward 0
    ],
)
def test_non_slippery_moves_are_deterministic(row, col, action, expected):
    if (row, col) not in ((0, 2), (3, 3)):  # the reference does not model terminal self-loops
        assert _ref_move(HAND_HOLES.tolist(), row, col, action) == expected
    for changes in ({}, {"success_rate": 0.1}):  # success_rate only matters when slippery
        _, _, reward, terminated, truncated, info = _outcomes(row, col, action, **changes)
        final = info["final_observation"]
        assert (_agent(final) == expected[:2]).all()
        np.testing.assert_array_equal(final, np.broadcast_to(_obs_np(HAND_HOLES, *expected[:2]), final.shape))
        assert (reward == expected[2]).all() and reward.dtype == np.float32
        assert (terminated == expected[3]).all() and not truncated.any()


@pytest.mark.parametrize("success_rate", [1 / 3, 0.7, 0.0, 1.0])
@pytest.mark.parametrize("action", [0, 1, 2, 3])
def test_slippery_outcome_frequencies(action, success_rate):
    *_, info = _outcomes(1, 1, action, is_slippery=True, success_rate=success_rate)
    ends = [tuple(rc) for rc in _agent(info["final_observation"]).tolist()]
    counts = collections.Counter(ends)
    fail = (1 - success_rate) / 2
    expected = {(action - 1) % 4: fail, action: success_rate, (action + 1) % 4: fail, (action + 2) % 4: 0.0}
    for direction, prob in expected.items():
        dr, dc = MOVES[direction]
        freq = counts[1 + dr, 1 + dc] / N_SMALL
        se = np.sqrt(max(prob * (1 - prob), 1e-12) / N_SMALL)
        assert abs(freq - prob) <= 5 * se, (direction, freq, prob)
    assert sum(counts.values()) == N_SMALL and len(counts) <= 3


# --------------------------------------------------------------------------------------------
# (d) Auto-reset and truncation.
# --------------------------------------------------------------------------------------------


def test_auto_reset_after_reaching_the_goal():
    env, _ = _env4()
    obs, state, reward, terminated, truncated, info = _outcomes(3, 2, 2)
    assert terminated.all() and not truncated.any() and (reward == 1.0).all()
    assert (_agent(info["final_observation"]) == (3, 3)).all()
    # The returned obs/state belong to a fresh episode: a new solvable map, agent at (0, 0).
    assert (state.row == 0).all() and (state.col == 0).all() and (state.time == 0).all()
    _check_obs(env, obs, state)
    assert _label_solvable(state.holes).all()
    assert all(_bfs_solvable(h.tolist()) for h in state.holes[:200])
    assert len({h.tobytes() for h in state.holes}) > 100
    assert (state.holes != HAND_HOLES).any(axis=(1, 2)).mean() > 0.9


def test_auto_reset_after_a_hole():
    obs, state, reward, terminated, _, info = _outcomes(0, 1, 2)
    assert terminated.all() and (reward == 0.0).all()
    assert (_agent(info["final_observation"]) == (0, 2)).all()
    assert (info["final_observation"][:, 0, 2, 0] == 1).all()  # the hole it fell into
    assert (_agent(obs) == (0, 0)).all() and (state.time == 0).all()


def test_truncation_at_max_steps():
    # Limit 3: the step from time 1 does not truncate, the step from time 2 does.
    obs, state, _, terminated, truncated, _ = _outcomes(0, 0, 0, time=1, max_steps_in_episode=3)
    assert not truncated.any() and not terminated.any()
    assert (state.time == 2).all() and (state.holes == HAND_HOLES).all() and (_agent(obs) == (0, 0)).all()
    obs, state, reward, terminated, truncated, info = _outcomes(1, 1, 2, time=2, max_steps_in_episode=3)
    assert truncated.all() and not terminated.any() and (reward == 0).all()
    assert (_agent(info["final_observation"]) == (1, 2)).all()
    assert (state.time == 0).all() and (_agent(obs) == (0, 0)).all()
    # Terminal and truncated on the same step: both flags.
    _, _, reward, terminated, truncated, _ = _outcomes(3, 2, 2, time=2, max_steps_in_episode=3)
    assert terminated.all() and truncated.all() and (reward == 1).all()


@pytest.mark.parametrize(("slippery", "limit"), [(False, 256), (False, 5), (True, 7)])
def test_batched_rollouts_match_python_reference(slippery, limit):
    """512 environments (params vmapped too) for 40 steps, each transition checked against the
    pure-Python move (non-slippery) or its three possible outcomes (slippery)."""
    env, params = _env8()
    params = params.replace(is_slippery=jnp.bool_(slippery), max_steps_in_episode=jnp.int32(limit))
    rng = np.random.default_rng(limit)
    _, state = jax.device_get(_reset8()(_keys(7 + limit), _batch(params)))
    idx = np.arange(N)
    dones = truncations = 0
    for t in range(40):
        actions = rng.integers(4, size=N).astype(np.int32)
        out = jax.device_get(_step8()(_keys(10_000 + 100 * limit + t), state, actions, _batch(params)))
        obs, new, reward, terminated, truncated, info = out
        final = info["final_observation"]
        rows, cols, times = state.row, state.col, state.time
        assert not state.holes[idx, rows, cols].any() and not ((rows == 7) & (cols == 7)).any()  # live
        ends = _agent(final)
        holes_list = state.holes.tolist()
        for i, a in enumerate(actions.tolist()):
            candidates = [(a - 1) % 4, a, (a + 1) % 4] if slippery else [a]
            refs = {_ref_move(holes_list[i], int(rows[i]), int(cols[i]), d) for d in candidates}
            got = (int(ends[i, 0]), int(ends[i, 1]), float(reward[i]), bool(terminated[i]))
            assert got in refs, (i, t, got, refs)
        # The final observation: this map, the agent where it ended.
        np.testing.assert_array_equal(final[..., 0], state.holes)
        _check_obs(env, final, RandomLakeState(holes=state.holes, row=ends[:, 0], col=ends[:, 1], time=times))
        np.testing.assert_array_equal(truncated, times + 1 >= limit)
        done = terminated | truncated
        np.testing.assert_array_equal(new.row, np.where(done, 0, ends[:, 0]))
        np.testing.assert_array_equal(new.col, np.where(done, 0, ends[:, 1]))
        np.testing.assert_array_equal(new.time, np.where(done, 0, times + 1))
        np.testing.assert_array_equal(new.holes[~done], state.holes[~done])
        np.testing.assert_array_equal(obs[~done], final[~done])
        assert _label_solvable(new.holes[done]).all()
        _check_obs(env, obs, new)
        dones += int(done.sum())
        truncations += int(truncated.sum())
        state = new
    assert dones > 0
    if limit < 40:
        assert truncations > 0


@pytest.mark.parametrize("hole_probability", [0.2, 0.45])
def test_step_equals_the_generic_auto_reset_step(hole_probability):
    """RandomLake generates reset maps only where episodes end (reset_where); what step returns
    must be exactly the plain auto-reset's: a full reset_env for every environment, selected."""
    env, params = _env8()
    params = params.replace(hole_probability=jnp.float32(hole_probability), max_steps_in_episode=jnp.int32(5))

    def reference_step(key, state, action, params):
        key_step, key_reset = jax.random.split(key)
        obs, next_state, reward, terminated, truncated, info = env.step_env(key_step, state, action, params)
        reset = env.reset_env(key_reset, params)
        obs_out, state_out = auto_reset(terminated | truncated, (obs, next_state), reset)
        return obs_out, state_out, reward, terminated, truncated, {**info, "final_observation": obs}

    generic = jax.jit(jax.vmap(reference_step, in_axes=(0, 0, 0, None)))
    ours = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    _, state = jax.vmap(env.reset, in_axes=(0, None))(_keys(3), params)
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(12):
        actions = jnp.asarray(rng.integers(4, size=N), jnp.int32)
        keys = _keys(500 + t)
        expected, got = generic(keys, state, actions, params), ours(keys, state, actions, params)
        for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        ended += int(np.sum(np.asarray(got[3]) | np.asarray(got[4])))
        state = got[1]
    assert ended > N  # many resets, including time-limit ones


# --------------------------------------------------------------------------------------------
# (e) Shapes, tracing, vmap over params.
# --------------------------------------------------------------------------------------------


def _abstract(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype, getattr(x, "weak_type", False)), tree)


@pytest.mark.parametrize("size", [3, 8, 32])
def test_eval_shape_reset_equals_step(size):  # (raw keys, at the registered size: test_conformance.py)
    key_fn = jax.random.key
    env = RandomLake(size)
    params = env.default_params
    obs, state = jax.eval_shape(env.reset, key_fn(0), params)
    assert (obs.shape, obs.dtype) == ((size, size, 3), jnp.float32)
    assert (state.holes.shape, state.holes.dtype) == ((size, size), jnp.bool_)
    assert all(x.shape == () and x.dtype == jnp.int32 for x in (state.row, state.col, state.time))
    action = jax.ShapeDtypeStruct((), jnp.int32)
    s_obs, s_state, reward, terminated, truncated, info = jax.eval_shape(env.step, key_fn(0), state, action, params)
    assert _abstract((obs, state)) == _abstract((s_obs, s_state))
    assert _abstract(info["final_observation"]) == _abstract(obs)
    assert [(x.shape, x.dtype) for x in (reward, terminated, truncated)] == [
        ((), jnp.float32),
        ((), jnp.bool_),
        ((), jnp.bool_),
    ]
    e_out = jax.eval_shape(env.step_env, key_fn(0), state, action, params)
    assert _abstract(e_out[:2]) == _abstract((obs, state))
    assert params.max_steps_in_episode == 4 * size * size


def test_step_traces_once_and_vmaps_over_params():
    """``_step8`` is wrapped in ``chex.assert_max_traces(n=1)``: new params values, fresh reset
    states and states it returned itself must all reuse the one trace."""
    _, params = _env8()
    half = N // 2
    mixed = jax.tree.map(
        lambda a, b: jnp.concatenate([a, b]),
        _batch(params.replace(hole_probability=jnp.float32(0.0)), half),
        _batch(params.replace(hole_probability=jnp.float32(0.5), is_slippery=jnp.bool_(True)), half),
    )
    other = _batch(params.replace(success_rate=jnp.float32(0.9), max_steps_in_episode=jnp.int32(2)))
    obs, state = _reset8()(_keys(8), mixed)
    holes = np.asarray(state.holes)
    assert not holes[:half].any() and holes[half:].reshape(half, 64)[:, 1:-1].mean() > 0.3
    right = jnp.full((N,), 2, jnp.int32)
    # Non-slippery right moves from (0, 0) on the hole-free maps all land on (0, 1).
    out = _step8()(_keys(9), state, right, mixed)
    assert (_agent(out[5]["final_observation"][:half]) == (0, 1)).all()
    for i, p in enumerate([other, mixed, other, _batch(params)]):
        obs, state, *_ = _step8()(_keys(20 + i), out[1], right, p)
    assert obs.shape == (N, 8, 8, 3) and state.holes.shape == (N, 8, 8)


# --------------------------------------------------------------------------------------------
# (f) Registry and bad keywords.
# --------------------------------------------------------------------------------------------


def test_registry_defaults_and_time_limit():
    assert "RandomLake-v0" in jrl.registered_envs()
    env, params = jrl.make("RandomLake-v0")
    assert env == RandomLake(8) and env.action_space(params).n == 4
    assert int(params.max_steps_in_episode) == 256 == 4 * 8 * 8
    assert float(params.hole_probability) == np.float32(0.2) and not bool(params.is_slippery)
    assert float(params.success_rate) == np.float32(1 / 3)
    # The registered limit belongs to the id (as FrozenLake-v1's 100 does), whatever the size.
    env5, params5 = jrl.make("RandomLake-v0", size=5, is_slippery=True, success_rate=0.5, hole_probability=0.3)
    assert env5.size == 5 and int(params5.max_steps_in_episode) == 256
    assert bool(params5.is_slippery) and float(params5.success_rate) == 0.5
    assert float(params5.hole_probability) == np.float32(0.3)
    assert int(jrl.make("RandomLake-v0", size=5, max_episode_steps=100)[1].max_steps_in_episode) == 100
    assert int(RandomLake(5).default_params.max_steps_in_episode) == 100


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"size": 2}, ValueError, "size"),
        ({"size": 33}, ValueError, "size"),
        ({"size": 8.0}, TypeError, "size"),
        ({"size": True}, TypeError, "size"),
        ({"hole_probability": 0.95}, ValueError, "hole_probability"),
        ({"hole_probability": 0.9}, ValueError, "hole_probability"),
        ({"hole_probability": -0.1}, ValueError, "hole_probability"),
        ({"hole_probability": "0.2"}, TypeError, "hole_probability"),
        ({"is_slippery": 1}, TypeError, "is_slippery"),
        ({"success_rate": 1.5}, ValueError, "success_rate"),
        ({"map_name": "8x8"}, TypeError, "map_name"),
    ],
    ids=lambda x: "-".join(map(str, x.items())) if isinstance(x, dict) else str(x),
)
def test_bad_keywords(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        jrl.make("RandomLake-v0", **kwargs)


def test_bad_size_on_the_class():  # (out-of-range actions: test_conformance.py)
    with pytest.raises(ValueError, match="size"):
        RandomLake(2)
