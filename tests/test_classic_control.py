"""Classic control (CartPole-v1, Acrobot-v1, MountainCar-v0, and with continuous actions
Pendulum-v1, MountainCarContinuous-v0) against Gymnasium's own environments.

Single transitions are compared from the same float32 states and actions: Gymnasium steps in
float64, jrl in float32 (one jitted, vmapped call over every state). The states are drawn uniformly,
near the discontinuities and along Gymnasium's own episodes (step for step); the continuous actions
are uniform on 1.5 times the bounds, so a third lie beyond them, where both environments clip.
Next observations must agree to ``ATOL`` absolute (Acrobot: ``ATOL`` relative to
``max(1, |value|)``, plus an allowance for the few fast, ill-conditioned states, measured from
Gymnasium itself), ``terminated`` exactly and rewards exactly (the continuous ones' float32
rewards: to ``REWARD_TOLERANCE``), except at states whose float64 successor lies within ``BAND`` of a
discontinuity (termination threshold, the mountain cars' left wall), where float32 may
legitimately decide the other way: those are counted and must be rare. Shapes, tracing once,
vmap over physics params and bad actions: test_conformance.py.
"""

from __future__ import annotations

import functools
import math

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from test_rendering import far_pixels

import jrl
from jrl.envs.acrobot import AcrobotState
from jrl.envs.cartpole import CartPoleState
from jrl.envs.mountain_car import MountainCarState
from jrl.envs.mountain_car_continuous import MountainCarContinuousState
from jrl.envs.pendulum import PendulumState

IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0"]
LIMITS = {"CartPole-v1": 500, "Acrobot-v1": 500, "MountainCar-v0": 200, "Pendulum-v1": 200}
LIMITS["MountainCarContinuous-v0"] = 999
NUM_ACTIONS = {"CartPole-v1": 2, "Acrobot-v1": 3, "MountainCar-v0": 3}
BOX_HIGH = {"Pendulum-v1": 2.0, "MountainCarContinuous-v0": 1.0}  # Gymnasium's Box(-high, high, (1,))
STATE_CLS = {"CartPole-v1": CartPoleState, "Acrobot-v1": AcrobotState, "MountainCar-v0": MountainCarState}
STATE_CLS["MountainCarContinuous-v0"] = MountainCarContinuousState
ATOL = 1e-5
BAND = {"CartPole-v1": 1e-6, "Acrobot-v1": 1e-4, "MountainCar-v0": 1e-6, "Pendulum-v1": 0.0}
BAND["MountainCarContinuous-v0"] = 1e-6
# Reward tolerances (rtol, atol), else exact. Pendulum's cost squares the wrapped angle: float32
# wraps an unwrapped angle of up to ~20 rad (one rounding: 2e-6) and sums terms up to 16.
# MountainCarContinuous charges 0.1 a^2, which Gymnasium computes in float64: two float32 roundings.
REWARD_TOLERANCE = {"Pendulum-v1": (0.0, 5e-5), "MountainCarContinuous-v0": (2.5e-7, 1e-9)}
NEVER_TERMINATES = {"Pendulum-v1"}  # no terminal state at all
THETA_THRESHOLD = 12 * 2 * math.pi / 360

COMPARE_CASES = [
    ("CartPole-v1", {}),
    ("CartPole-v1", {"sutton_barto_reward": True}),
    ("Acrobot-v1", {}),
    ("MountainCar-v0", {}),
    ("MountainCar-v0", {"goal_velocity": 0.02}),
    ("Pendulum-v1", {}),
    ("Pendulum-v1", {"g": 9.81}),
    ("MountainCarContinuous-v0", {}),
    ("MountainCarContinuous-v0", {"goal_velocity": 0.02}),
]


def _gym(env_id, **kwargs):
    return gymnasium.make(env_id, disable_env_checker=True, **kwargs).unwrapped


def _random_actions(env_id, rng, n):
    """``n`` random actions: uniform on the ``Discrete`` ones (int ``[n]``), or float32 ``[n, 1]``
    uniform on 1.5 times a ``Box``'s bounds (a third beyond them, on both sides)."""
    if env_id in BOX_HIGH:
        return rng.uniform(-1.5 * BOX_HIGH[env_id], 1.5 * BOX_HIGH[env_id], size=(n, 1)).astype(np.float32)
    return rng.integers(NUM_ACTIONS[env_id], size=n)


def _gym_action(env_id, action):
    """One action as Gymnasium's environment takes it: an int, or the float32 ``[1]`` array."""
    return np.asarray(action, np.float32) if env_id in BOX_HIGH else int(action)


def _jrl_state(env_id, states):
    """jrl's state of float32 Gymnasium state vectors ``[n, k]``, at time 0."""
    n = len(states)
    cols = [jnp.asarray(c) for c in states.T]
    if env_id == "Pendulum-v1":  # theta, theta_dot (last_u only draws the arrow)
        return PendulumState(*cols, last_u=jnp.zeros(n, jnp.float32), time=jnp.zeros(n, jnp.int32))
    return STATE_CLS[env_id](*cols, time=jnp.zeros(n, jnp.int32))


def _draw_states(env_id, rng, n=2000):
    """Float32 states ``[n, k]``: uniform, near the discontinuities, and from Gymnasium rollouts."""
    u = rng.uniform
    if env_id == "CartPole-v1":
        s = np.stack([u(-2.6, 2.6, n), u(-3, 3, n), u(-0.25, 0.25, n), u(-3.5, 3.5, n)], 1)
        q = n // 4  # x (then theta) placed so that one Euler step lands within 1e-3 of the threshold
        side = rng.choice([-1.0, 1.0], n)
        s[:q, 0] = side[:q] * 2.4 - 0.02 * s[:q, 1] + u(-1e-3, 1e-3, q)
        s[q : 2 * q, 2] = side[q : 2 * q] * THETA_THRESHOLD - 0.02 * s[q : 2 * q, 3] + u(-1e-3, 1e-3, q)
    elif env_id == "Acrobot-v1":
        s = np.stack(
            [u(-np.pi, np.pi, n), u(-np.pi, np.pi, n), u(-4 * np.pi, 4 * np.pi, n), u(-9 * np.pi, 9 * np.pi, n)], 1
        )
        q = n // 4  # slow, with the tip near height 1 (the termination line)
        t1 = u(np.pi / 2, np.pi, q) * rng.choice([-1.0, 1.0], q)
        c = np.clip(-1.0 - np.cos(t1) - u(-0.05, 0.05, q), -1, 1)
        s[:q] = np.stack([t1, rng.choice([-1.0, 1.0], q) * np.arccos(c) - t1, u(-0.5, 0.5, q), u(-0.5, 0.5, q)], 1)
        s[:q, 1] = (s[:q, 1] + np.pi) % (2 * np.pi) - np.pi
    elif env_id == "Pendulum-v1":
        s = np.stack([u(-2 * np.pi, 2 * np.pi, n), u(-8, 8, n)], 1)
        q = n // 4
        s[:q, 1] = rng.choice([-1.0, 1.0], q) * u(7, 8, q)  # where the speed limit clips
    else:
        goal = 0.45 if env_id == "MountainCarContinuous-v0" else 0.5
        s = np.stack([u(-1.2, 0.6, n), u(-0.07, 0.07, n)], 1)
        q = n // 4
        s[:q] = np.stack([u(-1.2, -1.1, q), u(-0.07, 0.0, q)], 1)  # at the left wall
        s[:q:5, 0] = -1.2
        s[q : 2 * q] = np.stack([u(goal - 0.08, 0.6, q), u(-0.03, 0.07, q)], 1)  # at the goal
    return np.concatenate([s, _rollout_states(env_id, rng)]).astype(np.float32)


def _rollout_states(env_id, rng, n=500):
    env, states = _gym(env_id), []
    env.reset(seed=int(rng.integers(2**31)))
    while len(states) < n:
        states.append(np.array(env.state, np.float64))
        _, _, term, _, _ = env.step(_gym_action(env_id, _random_actions(env_id, rng, 1)[0]))
        if term or len(states) % 200 == 0:
            env.reset()
    return np.stack(states)


def _margin(env_id, s, a, next_s, kwargs):
    """Distance of the float64 transition ``s --a--> next_s`` from a discontinuity."""
    if env_id == "CartPole-v1":
        return min(abs(abs(next_s[0]) - 2.4), abs(abs(next_s[2]) - THETA_THRESHOLD))
    if env_id == "Acrobot-v1":
        return abs(-np.cos(next_s[0]) - np.cos(next_s[0] + next_s[1]) - 1.0)
    if env_id == "Pendulum-v1":
        return math.inf  # continuous: the clips are continuous, and the cost squares the wrapped angle
    goal_v = kwargs.get("goal_velocity", 0.0)
    if env_id == "MountainCarContinuous-v0":
        push, goal_x = np.clip(a[0], -1.0, 1.0) * 0.0015, 0.45
    else:
        push, goal_x = (a - 1) * 0.001, 0.5
    v = np.clip(s[1] + push - 0.0025 * np.cos(3 * s[0]), -0.07, 0.07)
    wall = abs(s[0] + v + 1.2)
    goal = abs(next_s[0] - goal_x) if next_s[0] < goal_x else min(next_s[0] - goal_x, abs(next_s[1] - goal_v))
    return min(wall, goal)


def _batched_step_env(env):
    return jax.jit(jax.vmap(env.step_env, in_axes=(0, 0, 0, None)))


def _acrobot_obs64(state):
    t1, t2, v1, v2 = np.asarray(state, np.float64)
    return np.array([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), v1, v2])


def _acrobot_sensitivity(gym_env, s, a, rng, base):
    """How far Gymnasium's own float64 successor moves when ``s`` moves by one float32 rounding."""
    change = np.zeros(6)
    for _ in range(4):
        gym_env.state = s * (1 + 2.0**-24 * rng.choice([-1.0, 1.0], 4))
        gym_env.step(a)
        change = np.maximum(change, np.abs(_acrobot_obs64(gym_env.state) - base))
    return change


@pytest.mark.parametrize("env_id, kwargs", COMPARE_CASES, ids=[f"{i}{k}" for i, k in COMPARE_CASES])
def test_transitions_match_gymnasium(env_id, kwargs):
    rng = np.random.default_rng(COMPARE_CASES.index((env_id, kwargs)))
    states = _draw_states(env_id, rng)
    n = len(states)
    actions = _random_actions(env_id, rng, n)
    gym_env = _gym(env_id, **kwargs)
    gym_env.reset(seed=0)
    ref_obs, ref_reward, ref_term, margins, sens = [], [], [], [], []
    for s, a in zip(states.astype(np.float64), actions, strict=True):
        a = _gym_action(env_id, a)
        gym_env.reset()  # clears CartPole's steps_beyond_terminated
        gym_env.state = s.copy()
        obs, reward, term, trunc, _ = gym_env.step(a)
        assert not trunc
        next_s = np.array(gym_env.state, np.float64)
        ref_obs.append(obs)
        ref_reward.append(reward)
        ref_term.append(term)
        margins.append(_margin(env_id, s, a, next_s, kwargs))
        if env_id == "Acrobot-v1":
            sens.append(_acrobot_sensitivity(gym_env, s, a, rng, _acrobot_obs64(next_s)))
    ref_obs, ref_reward, ref_term = np.stack(ref_obs), np.array(ref_reward), np.array(ref_term)
    close = np.array(margins) < BAND[env_id]

    env, params = jrl.make(env_id, **kwargs)
    state = _jrl_state(env_id, states)
    keys = jax.random.split(jax.random.key(0), n)
    actions = jnp.asarray(actions, env.action_space(params).dtype)
    obs, next_state, reward, term, trunc, info = jax.device_get(_batched_step_env(env)(keys, state, actions, params))
    assert obs.dtype == np.float32 and obs.shape == ref_obs.shape and info == {}
    assert not trunc.any() and (next_state.time == 1).all()

    ok = ~close
    assert close.sum() <= max(2, n // 200), f"{close.sum()} of {n} states within {BAND[env_id]} of a discontinuity"
    diff = np.abs(obs - ref_obs)[ok]
    worst = diff.max()
    if env_id == "Acrobot-v1":
        # Velocities reach 9 pi: relative tolerance there. Fast states are ill-conditioned (one RK4
        # step of 0.2 s at up to 9 pi rad/s): there the float64 reference itself moves by
        # ``sens`` when the start state moves by one float32 rounding, which float32 cannot beat.
        scaled = diff / np.maximum(1.0, np.abs(ref_obs[ok]))
        allowance = 10 * np.stack(sens)[ok] / np.maximum(1.0, np.abs(ref_obs[ok]))
        excess = (scaled - ATOL - allowance).max()
        assert excess < 0, f"error beyond tolerance by {excess:.3g}"
        needs = (scaled.max(1) >= ATOL).sum()
        assert needs <= n // 100, f"{needs} states need the conditioning allowance"
        worst_rel = scaled.max()
        print(f"max |diff| {worst:.3g}, max relative {worst_rel:.3g}, {needs} states over {ATOL} relative")
    else:
        assert worst < ATOL, f"max difference {worst:.3g} at state {states[ok][diff.max(1).argmax()]}"
    np.testing.assert_array_equal(term[ok], ref_term[ok])
    rtol, atol = REWARD_TOLERANCE.get(env_id, (0.0, 0.0))  # 0: exactly
    np.testing.assert_allclose(reward[ok], ref_reward[ok].astype(np.float32), rtol=rtol, atol=atol)
    # Both outcomes are exercised (Pendulum never terminates).
    assert ref_term[ok].any() == (env_id not in NEVER_TERMINATES) and not ref_term[ok].all()
    print(f"{env_id} {kwargs}: {n} states, max |diff| {worst:.3g}, {close.sum()} near a discontinuity")


# Each reset's state fields: Gymnasium's uniform ranges (a point range: the value itself).
RESET_RANGES = {
    "CartPole-v1": {f: (-0.05, 0.05) for f in ("x", "x_dot", "theta", "theta_dot")},
    "Acrobot-v1": {f: (-0.1, 0.1) for f in ("theta1", "theta2", "dtheta1", "dtheta2")},
    "MountainCar-v0": {"position": (-0.6, -0.4), "velocity": (0.0, 0.0)},
    "MountainCarContinuous-v0": {"position": (-0.6, -0.4), "velocity": (0.0, 0.0)},
    "Pendulum-v1": {"theta": (-np.pi, np.pi), "theta_dot": (-1.0, 1.0)},
}


def _expected_obs(env_id, state):
    """The observation of a state, in float64 NumPy (Gymnasium's observation layouts)."""
    if env_id == "Acrobot-v1":
        t1, t2 = state.theta1, state.theta2
        return np.stack([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), state.dtheta1, state.dtheta2], 1)
    if env_id == "Pendulum-v1":
        return np.stack([np.cos(state.theta), np.sin(state.theta), state.theta_dot], 1)
    return np.stack([getattr(state, f) for f in RESET_RANGES[env_id]], 1)


@pytest.mark.parametrize("env_id", IDS)
def test_reset_distribution(env_id):
    env, params = jrl.make(env_id)
    obs, state = jax.device_get(
        jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(jax.random.key(1), 20_000), params)
    )
    assert obs.dtype == np.float32 and (state.time == 0).all()
    np.testing.assert_allclose(obs, _expected_obs(env_id, state), rtol=0, atol=1e-6)
    for field, (low, high) in RESET_RANGES[env_id].items():
        x = getattr(state, field)
        if low == high:
            assert (x == low).all(), field
            continue
        assert low <= x.min() and x.max() <= high
        assert abs(x.mean() - (low + high) / 2) < 0.05 * (high - low)
        assert stats.kstest(x, "uniform", args=(low, high - low)).pvalue > 1e-4
    # Gymnasium's resets lie in the same ranges (its state vectors list the same fields in order).
    gym_env = _gym(env_id)
    low, high = np.array(list(RESET_RANGES[env_id].values())).T
    for seed in range(20):
        gym_env.reset(seed=seed)
        s = np.asarray(gym_env.state, np.float64)
        assert (low <= s).all() and (s <= high).all()


def _smart_action(env_id, obs):
    """A policy that survives (CartPole) or reaches the goal (Acrobot, MountainCar)."""
    if env_id == "CartPole-v1":
        return (jnp.dot(jnp.array([0.1, 0.5, 10.0, 2.0]), obs) > 0).astype(jnp.int32)
    velocity = obs[5] if env_id == "Acrobot-v1" else obs[1]  # pump energy
    return jnp.where(velocity > 0, 2, 0).astype(jnp.int32)


@functools.cache
def _rollout_fn(env_id, num_steps, num_envs=8):
    """Jitted ``(params) -> records`` of ``num_envs`` environments (even: smart policy, odd:
    uniform random) stepped ``num_steps`` times with auto-reset."""
    env, _ = jrl.make(env_id)
    space = env.observation_space(None)

    def one(key, smart, params):
        key, k0 = jax.random.split(key)
        obs, state = env.reset(k0, params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            random = jax.random.randint(k_act, (), 0, NUM_ACTIONS[env_id], jnp.int32)
            action = jnp.where(smart, _smart_action(env_id, obs), random)
            obs, state, _, term, trunc, info = env.step(k_step, state, action, params)
            in_space = space.contains(obs) & space.contains(info["final_observation"])
            return (obs, state), {"term": term, "trunc": trunc, "time": state.time, "in_space": in_space}

        return jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))[1]

    keys = jax.random.split(jax.random.key(7), num_envs)
    smart = jnp.arange(num_envs) % 2 == 0
    rollout = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))
    return lambda params: jax.device_get(rollout(keys, smart, params))


def _check_time_limit(rec, limit):
    """``truncated`` exactly when the elapsed count reaches ``limit``; returns the truncation count."""
    assert rec["in_space"].all()
    num_truncations = 0
    for e in range(rec["term"].shape[0]):
        elapsed = 0
        for t in range(rec["term"].shape[1]):
            elapsed += 1
            term, trunc = bool(rec["term"][e, t]), bool(rec["trunc"][e, t])
            assert trunc == (elapsed == limit), f"env {e} step {t}: elapsed {elapsed}"
            assert int(rec["time"][e, t]) == (0 if term or trunc else elapsed)
            num_truncations += trunc
            elapsed = 0 if term or trunc else elapsed
    return num_truncations


@pytest.mark.parametrize("env_id", sorted(BOX_HIGH))
def test_continuous_time_limits_are_gymnasiums(env_id):
    """Pendulum's 200 and MountainCarContinuous's 999 (their truncation and auto-reset, for any
    limit: test_conformance.py; the long rollouts below are left to the discrete ids, whose step
    and auto-reset code are the same, to spare a compilation each)."""
    env, params = jrl.make(env_id)
    assert int(params.max_steps_in_episode) == LIMITS[env_id] == gymnasium.make(env_id).spec.max_episode_steps
    assert int(env.default_params.max_steps_in_episode) == LIMITS[env_id]


@pytest.mark.parametrize("env_id", [i for i in IDS if i not in BOX_HIGH])
def test_time_limit_and_observations_in_space(env_id):
    limit = LIMITS[env_id]
    env, params = jrl.make(env_id)
    assert int(params.max_steps_in_episode) == limit == gymnasium.make(env_id).spec.max_episode_steps
    assert int(env.default_params.max_steps_in_episode) == limit
    rollout = _rollout_fn(env_id, 2 * limit + 100)
    rec = rollout(params)
    assert _check_time_limit(rec, limit) >= 2
    # The smart policies terminate where they should (CartPole's survives).
    assert rec["term"][0::2].any() == (env_id != "CartPole-v1")
    # A tiny limit (same compiled rollout): a surviving episode is truncated every third step.
    rec = rollout(params.replace(max_steps_in_episode=jnp.int32(3)))
    _check_time_limit(rec, 3)
    assert (rec["trunc"][0] == (np.arange(rec["trunc"].shape[1]) % 3 == 2)).all()


@pytest.mark.parametrize(
    "env_id, kwargs, error",
    [
        ("CartPole-v1", {"sutton_barto_reward": 1}, TypeError),
        ("CartPole-v1", {"sutton_barto_reward": "yes"}, TypeError),
        ("Acrobot-v1", {"sutton_barto_reward": True}, TypeError),
        ("Acrobot-v1", {"book_or_nips": "nips"}, TypeError),
        ("MountainCar-v0", {"goal_velocity": "0.1"}, TypeError),
        ("MountainCar-v0", {"goal_velocity": None}, TypeError),
        ("MountainCar-v0", {"goal_velocity": float("nan")}, ValueError),
        ("MountainCar-v0", {"gravity": 0.1}, TypeError),
        ("Pendulum-v1", {"g": "9.81"}, TypeError),
        ("Pendulum-v1", {"g": float("nan")}, ValueError),
        ("Pendulum-v1", {"max_torque": 1.0}, TypeError),  # a param, not one of Gymnasium's keywords
        ("MountainCarContinuous-v0", {"goal_velocity": None}, TypeError),
        ("MountainCarContinuous-v0", {"goal_velocity": float("nan")}, ValueError),
        ("MountainCarContinuous-v0", {"power": 0.1}, TypeError),
    ],
)
def test_bad_keywords(env_id, kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        jrl.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", sorted(BOX_HIGH))
def test_continuous_pictures_are_gymnasiums(env_id, monkeypatch):
    """Gymnasium's ``rgb_array`` frames of states along its episodes (random actions beyond the
    bounds too): jrl's picture of each state has its size and every shape where Gymnasium draws it,
    within two pixels (``far_pixels``, as for the other classic-control pictures), Pendulum's torque
    arrow included (its size the clipped torque of the last step, its turn the torque's sign)."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # Gymnasium's rgb_array opens no window, but SDL starts
    theirs = gymnasium.make(env_id, render_mode="rgb_array").unwrapped
    env, params = jrl.make(env_id)
    assert env.render_modes == ("rgb_array",) and env.render_fps == theirs.metadata["render_fps"]
    rng = np.random.default_rng(0)
    theirs.reset(seed=3)
    signs = set()
    for _ in range(5):
        state = _jrl_state(env_id, np.asarray(theirs.state, np.float32)[None])
        state = jax.tree.map(lambda x: x[0], state)
        if env_id == "Pendulum-v1":
            last_u = 0.0 if theirs.last_u is None else float(theirs.last_u)  # None after a reset: no arrow
            state = state.replace(last_u=jnp.float32(last_u))
            signs.add(np.sign(last_u))
        ours, frame = env.render(state, params), theirs.render()
        assert ours.dtype == np.uint8 and ours.shape == frame.shape == (
            (500, 500, 3) if "Pendulum" in env_id else (400, 600, 3)
        )
        assert far_pixels(ours, frame) <= 20 and far_pixels(frame, ours) <= 20
        for _ in range(7):
            theirs.step(_gym_action(env_id, _random_actions(env_id, rng, 1)[0]))
    assert env_id != "Pendulum-v1" or signs == {-1.0, 0.0, 1.0}
