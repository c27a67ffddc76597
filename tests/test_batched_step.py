"""Batched stepping (``Environment.step_batch``, ``reset_batch``): one key for N environments.

For every registered id with the uniform-driven hooks (``uniform_shapes``), a rollout compares,
step for step from the same states and actions, ``step_batch`` against the per-environment
``step_from_uniforms`` run one environment at a time (``lax.map``, no ``vmap``) on the same
uniforms, and the per-environment ``step(key)`` against ``step_from_uniforms`` on the uniforms that
the test draws from that key itself (the key path and the uniform path are one transition), all
bit for bit. Handmade states put termination, truncation at the time limit and both on one step
side by side (CartPole, FrozenLake); ids without hooks go through the default path (split keys).
Also: no retracing across calls, and bad input refused before tracing.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.envs.cartpole import CartPole, CartPoleState
from jrl.envs.tabular import TabularEnv, TabularState

N, T, LIMIT = 6, 10, 4  # environments, steps, a short time limit so that episodes end
FAST_IDS = [i for i in jrl.registered_envs() if jrl.make(i)[0].uniform_shapes is not None]
DEFAULT_IDS = ["Probe-TwoStep-v0"]
#: The step's own uniforms matter only where they are used: Acrobot's torque noise is 0 by default.
PARAMS = {"Acrobot-v1": {"torque_noise_max": 1.0}}


def test_the_fast_path_covers_classic_control_and_tabular():
    expected = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0"}
    expected |= {"FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4", "RandomMDP-v0"}
    assert expected <= set(FAST_IDS)
    assert not set(DEFAULT_IDS) & set(FAST_IDS)


def _make(env_id):
    env, params = jrl.make(env_id)
    params = params.replace(max_steps_in_episode=jnp.int32(LIMIT), **PARAMS.get(env_id, {}))
    return env, params


def _actions(env, params, key, n):
    space = env.action_space(params)
    if space.shape == ():
        return jax.random.randint(key, (n,), 0, space.n)
    return jax.random.uniform(key, (n, *space.shape), jnp.float32, -1.5, 1.5)  # beyond the bounds too


def _key_uniforms(env, key):
    """The uniforms ``env.step(key, ...)`` draws, derived here independently: a tabular step takes
    two from its key, any other environment splits it into the step's key and the reset's."""
    step_shape, reset_shape = env.uniform_shapes
    if isinstance(env, TabularEnv):
        u = jax.random.uniform(key, (2,))
        return u[0], u[1]
    key_step, key_reset = jax.random.split(key)
    return jax.random.uniform(key_step, step_shape), jax.random.uniform(key_reset, reset_shape)


def _assert_same(a, b):
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for (path, x), y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def _row(tree, i):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[i], tree)


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_same_uniforms_same_transitions(env_id):
    """``T`` batched steps of ``N`` environments; each transition also taken one environment at a
    time (compiled, no ``vmap``; params an argument, as in jrl's own loops) on the same uniforms,
    and by ``step`` on a per-environment key against ``step_from_uniforms`` on that key's uniforms."""
    env, params = _make(env_id)
    by_uniforms, by_key = jax.jit(env.step_from_uniforms), jax.jit(env.step)
    key_uniforms = jax.jit(functools.partial(_key_uniforms, env))
    reset = jax.jit(env.reset_from_uniform)
    _, states = env.reset_batch(jax.random.key(3), N, params)
    flags = []
    for t in range(T):
        key_action, key_step = jax.random.split(jax.random.key(t))
        actions = _actions(env, params, key_action, N)
        batched = env.step_batch(key_step, states, actions, params)
        u_step, u_reset = env.batch_uniforms(key_step, N)
        keys = jax.random.split(key_step, N)
        for i in range(N):
            s_i, a_i = _row(states, i), _row(actions, i)
            # step_batch = the per-environment step on the same uniforms
            _assert_same(_row(batched, i), by_uniforms(u_step[i], u_reset[i], s_i, a_i, params))
            # step(key) = step_from_uniforms on the uniforms the key gives
            _assert_same(by_key(keys[i], s_i, a_i, params), by_uniforms(*key_uniforms(keys[i]), s_i, a_i, params))
        obs, states, _, terminated, truncated, info = batched
        done = np.asarray(terminated | truncated)
        # Where an episode ended the observation is the next episode's first, elsewhere the final one.
        for i in range(N):
            expected = reset(u_reset[i], params)[0] if done[i] else info["final_observation"][i]
            np.testing.assert_array_equal(obs[i], expected)
        flags.append((np.asarray(terminated), np.asarray(truncated)))
    terminated, truncated = np.array(flags).transpose(1, 0, 2)
    assert (terminated | truncated).any() and not (terminated | truncated).all()  # episodes ended, not all the time
    assert truncated.any() or env_id == "MaximizationBias-v0"  # its episodes end within two steps


@pytest.mark.parametrize("env_id", DEFAULT_IDS)
def test_default_path_is_vmapped_step_over_split_keys(env_id):
    env, params = _make(env_id)
    key = jax.random.key(5)
    _, states = env.reset_batch(key, N, params)
    np.testing.assert_array_equal(  # reset_batch: vmap(reset) over split keys
        jax.tree_util.tree_leaves(states)[0],
        jax.tree_util.tree_leaves(jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, N), params)[1])[0],
    )
    step = jax.jit(env.step)
    for t in range(3):
        key_t = jax.random.fold_in(key, t)
        actions = _actions(env, params, key_t, N)
        batched = env.step_batch(key_t, states, actions, params)
        keys = jax.random.split(key_t, N)
        for i in range(N):
            row = _row((states, actions), i)
            _assert_same(_row(batched, i), step(keys[i], *row, params))
        states = batched[1]


def _boundary_cases(env, params, states, final_expected):
    """Step the handmade ``states`` (each with action 1) both ways; check flags and final observations."""
    actions = jnp.ones(4, jnp.int32)
    key = jax.random.key(0)
    batched = env.step_batch(key, states, actions, params)
    u_step, u_reset = env.batch_uniforms(key, 4)
    by_uniforms = jax.jit(env.step_from_uniforms)
    for i in range(4):
        _assert_same(_row(batched, i), by_uniforms(*_row((u_step, u_reset, states, actions), i), params))
    obs, new_states, _, terminated, truncated, info = jax.device_get(batched)
    np.testing.assert_array_equal(terminated, [False, True, False, True])
    np.testing.assert_array_equal(truncated, [False, False, True, True])
    np.testing.assert_array_equal(info["final_observation"], final_expected)
    np.testing.assert_array_equal(new_states.time, [states.time[0] + 1, 0, 0, 0])  # fresh episodes where done
    reset_obs = jax.vmap(env.reset_from_uniform, in_axes=(0, None))(u_reset, params)[0]
    np.testing.assert_array_equal(obs[1:], np.asarray(reset_obs)[1:])


def test_episode_boundaries_cartpole():
    env, params = jrl.make("CartPole-v1")
    limit = int(params.max_steps_in_episode)
    f32 = lambda *v: jnp.array(v, jnp.float32)  # noqa: E731
    # Pushed right (action 1): the second and fourth carts leave the track; the last two are at the limit.
    states = CartPoleState(
        x=f32(0.0, 2.39, 0.0, 2.39),
        x_dot=f32(0.0, 1.0, 0.0, 1.0),
        theta=f32(0.0, 0.0, 0.0, 0.0),
        theta_dot=f32(0.0, 0.0, 0.0, 0.0),
        time=jnp.array([7, 7, limit - 1, limit - 1], jnp.int32),
    )
    final = np.asarray(
        jax.vmap(env.step_env, in_axes=(None, 0, 0, None))(jax.random.key(0), states, jnp.ones(4, jnp.int32), params)[0]
    )
    assert final[1, 0] > 2.4 and final[3, 0] > 2.4  # the final observations are off the track, not reset
    _boundary_cases(env, params, states, final)


def test_episode_boundaries_frozen_lake():
    env, params = jrl.make("FrozenLake-v1", is_slippery=False)
    limit = int(params.max_steps_in_episode)
    # 4x4 map SFFF/FHFH/FFFH/HFFG; action 1 moves down: 0 -> 4 (frozen), 1 -> 5 (a hole).
    states = TabularState(state=jnp.array([0, 1, 0, 1], jnp.int32), time=jnp.array([3, 3, limit - 1, limit - 1]))
    _boundary_cases(env, params, states, np.array([4, 5, 4, 5]))


@dataclasses.dataclass(frozen=True)
class _CountingCartPole(CartPole):
    """CartPole that counts how often its uniform-driven step is traced (a Python side effect)."""

    traces: list = dataclasses.field(default_factory=list, compare=False, hash=False)

    def step_env_from_uniform(self, u, state, action, params):
        self.traces.append(1)
        return super().step_env_from_uniform(u, state, action, params)


@pytest.fixture(scope="module")
def counting():
    env = _CountingCartPole()
    params = env.default_params
    _, states = env.reset_batch(jax.random.key(0), N, params)
    return env, params, states


def test_no_retracing_across_calls(counting):
    env, params, states = counting
    before = len(env.traces)
    for t in range(4):
        key = jax.random.key(t)
        _, states, *_ = env.step_batch(key, states, jax.random.randint(key, (N,), 0, 2), params)
    assert len(env.traces) - before == 1  # traced on the first call only
    env.reset_batch(jax.random.key(9), N, params)
    env.reset_batch(jax.random.key(10), N, params)
    step = jax.jit(env.step_batch)  # inside a user's jit too
    step(jax.random.key(1), states, jnp.zeros(N, jnp.int32), params)
    step(jax.random.key(2), states, jnp.ones(N, jnp.int32), params)
    assert len(env.traces) - before == 1  # the compiled batch step is reused there


def test_bad_input_is_refused_before_tracing(counting):
    env, params, states = counting
    before = len(env.traces)
    actions = jnp.zeros(N, jnp.int32)
    with pytest.raises(ValueError, match=r"ONE key for the whole batch.*shape \(6,\)"):
        env.step_batch(jax.random.split(jax.random.key(0), N), states, actions, params)
    with pytest.raises(ValueError, match=r"leading batch axis N.*actions: 5"):
        env.step_batch(jax.random.key(0), states, actions[:5], params)
    short = states.replace(time=states.time[:3])
    with pytest.raises(ValueError, match=r"states\.time: 3"):
        env.step_batch(jax.random.key(0), short, actions, params)
    with pytest.raises(ValueError, match=r"shape \(N, \*\(\)\)"):
        env.step_batch(jax.random.key(0), states, jnp.zeros((N, 1), jnp.int32), params)
    with pytest.raises(TypeError, match="must be integers"):
        env.step_batch(jax.random.key(0), states, jnp.zeros(N, jnp.float32), params)
    with pytest.raises(ValueError, match=r"in 0\.\.1, got 0\.\.2"):
        env.step_batch(jax.random.key(0), states, actions.at[0].set(2), params)
    with pytest.raises(TypeError, match="must be a JAX PRNG key"):
        env.step_batch(0, states, actions, params)
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        env.reset_batch(jax.random.key(0), 0, params)
    assert len(env.traces) == before


def test_other_prng_implementations_are_accepted(counting):
    """A typed key of another implementation (``rbg``) drives the batch: other draws, same physics."""
    env, params, states = counting
    key = jax.random.key(0, impl="rbg")
    out = env.step_batch(key, states, jnp.ones(N, jnp.int32), params)
    threefry = env.step_batch(jax.random.key(0), states, jnp.ones(N, jnp.int32), params)
    np.testing.assert_array_equal(out[5]["final_observation"], threefry[5]["final_observation"])
    _, fresh = env.reset_batch(key, N, params)
    assert np.all(np.abs(np.asarray(fresh.x)) < 0.05)
