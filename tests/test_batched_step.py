"""Batched stepping (``Environment.step_batch``, ``reset_batch``): one key for N environments.

For every registered id with the uniform-driven hooks (``uniform_shapes``), a short rollout of
``step_batch`` is checked, transition by transition, against the per-environment
``step_from_uniforms`` compiled for ONE environment (no ``vmap``; params an argument, as in jrl's
own compiled loops) on the same uniforms; and the per-environment ``step(key)`` against
``step_from_uniforms`` on the uniforms the test draws from that key itself (the key path and the
uniform path are one transition; once per class: ``KEY_PATH_IDS``), all bit for bit. Where an
episode ended the observation must be the reset's, elsewhere the transition's
``final_observation``, and the step counter restarts. Handmade first states put termination,
truncation at the time limit and both on one step side by side (CartPole, FrozenLake). An id
without hooks goes through the default path (split keys). Also: no retracing across calls, bad
input refused before tracing, another PRNG implementation accepted.
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
from jrl.envs.tokens import TokenEnv

N, T, LIMIT = 4, 4, 3  # environments, steps, a short time limit so that episodes end
#: The ids with the uniform-driven hooks (test_the_fast_path_is_every_id_with_hooks checks the list).
FAST_IDS = [
    *("Acrobot-v1", "CartPole-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"),
    *("CliffWalking-v1", "CliffWalkingSlippery-v1", "FrozenLake-v1", "FrozenLake8x8-v1"),
    *("MaximizationBias-v0", "RandomMDP-v0", "Taxi-v4"),
]
DEFAULT_IDS = ["Probe-TwoStep-v0"]
TEXT_IDS = {"GraphWalkText-v0", "WordGen-v0"}  # token environments (TokenEnv): no hooks, slow to make
#: Where ``step(key)`` is checked against the hooks: each class's own key path (every tabular id
#: shares ``TabularEnv.step``; MaximizationBias overrides the uniform-driven step).
KEY_PATH_IDS = {*FAST_IDS[:5], "FrozenLake-v1", "MaximizationBias-v0"}
#: The step's own uniforms matter only where they are used: Acrobot's torque noise is 0 by default.
PARAMS = {"Acrobot-v1": {"torque_noise_max": 1.0}}


def test_the_fast_path_is_every_id_with_hooks():
    others = [i for i in jrl.registered_envs() if i not in TEXT_IDS and i not in FAST_IDS]
    assert all(_make(i)[0].uniform_shapes is not None for i in FAST_IDS)
    assert all(_make(i)[0].uniform_shapes is None for i in others), others
    assert TokenEnv.uniform_shapes is None and set(DEFAULT_IDS) <= set(others)


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


_make = functools.cache(jrl.make)  # each id made once in this file


@functools.cache
def _case(env_id):
    """``(env, params, one_env)``; ``one_env(u_step, u_reset, key, state, action, params)`` (compiled
    once per case) steps ONE environment (no ``vmap``) on the given uniforms and (``KEY_PATH_IDS``)
    by ``step(key)`` with the uniforms that key gives, and gives a reset's ``(obs, state)`` on
    ``u_reset``."""
    env, params = _make(env_id)
    params = params.replace(max_steps_in_episode=jnp.int32(LIMIT), **PARAMS.get(env_id, {}))

    def one_env(u_step, u_reset, key, state, action, params):
        by_key = (env.step(key, state, action, params), _key_uniforms(env, key)) if env_id in KEY_PATH_IDS else None
        return (
            env.step_from_uniforms(u_step, u_reset, state, action, params),
            by_key,
            *env.reset_from_uniform(u_reset, params),
        )

    return env, params, jax.jit(one_env)


def _boundary_states(env_id, params):
    """Four first states, stepped with action 1 (right, down): continuing, terminating, reaching
    the time limit, and both at once; and the final observations they lead to."""
    limit = int(params.max_steps_in_episode)
    time = jnp.array([0, 0, limit - 1, limit - 1], jnp.int32)
    if env_id == "CartPole-v1":  # the second and fourth carts leave the track
        zeros, edge = jnp.zeros(4, jnp.float32), jnp.array([0.0, 2.39, 0.0, 2.39], jnp.float32)
        states = CartPoleState(x=edge, x_dot=edge / 2.39, theta=zeros, theta_dot=zeros, time=time)
        return states, None
    # FrozenLake 4x4 SFFF/FHFH/FFFH/HFFG, slippery: every move from the start (0) lands on frozen
    # ice (0, 1 or 4); a hole (5) is terminal, a self-loop, as Gymnasium lists it.
    return TabularState(state=jnp.array([0, 5, 0, 5], jnp.int32), time=time), np.array([-1, 5, -1, 5])


def _assert_same(a, b):
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for (path, x), y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_same_uniforms_same_transitions(env_id):
    env, params, one_env = _case(env_id)
    space, rng = env.action_space(params), np.random.default_rng(0)
    boundaries = env_id in ("CartPole-v1", "FrozenLake-v1")
    if boundaries:
        states, final_expected = _boundary_states(env_id, params)
    else:  # start states from one_env's resets (no compile of its own): any state goes in
        shapes = jax.eval_shape(env.reset_from_uniform, jnp.zeros(env.uniform_shapes[1]), params)[1]
        blank = jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), shapes)
        u_step, u_reset = env.batch_uniforms(jax.random.key(3), N)
        action = np.zeros(space.shape, np.int32 if space.shape == () else np.float32)
        key = jax.random.key(0)
        starts = [one_env(u_step[i], u_reset[i], key, blank, action, params)[3] for i in range(N)]
        states = jax.tree_util.tree_map(lambda *x: np.stack(x), *starts)
    flags, truncations = [], []
    for t in range(T):
        if space.shape == ():
            actions = rng.integers(0, space.n, N).astype(np.int32)
        else:
            actions = rng.uniform(-1.5, 1.5, (N, *space.shape)).astype(np.float32)  # beyond the bounds too
        if boundaries and t == 0:
            actions = np.ones(N, np.int32)
        step_key = jax.random.key(t)
        batched = jax.device_get(env.step_batch(step_key, states, actions, params))
        u_step, u_reset = jax.device_get(env.batch_uniforms(step_key, N))
        keys = jax.random.wrap_key_data(rng.integers(0, 2**32, (N, 2), dtype=np.uint32))  # any per-env keys
        obs, new_states, _, terminated, truncated, info = batched
        done = terminated | truncated
        for i in range(N):
            state = jax.tree_util.tree_map(lambda x, i=i: np.asarray(x)[i], states)
            by_uniforms, by_key, reset_obs, _ = one_env(u_step[i], u_reset[i], keys[i], state, actions[i], params)
            _assert_same(jax.tree_util.tree_map(lambda x, i=i: x[i], batched), by_uniforms)  # the same uniforms
            if by_key is not None:  # step(key) = step_from_uniforms on the uniforms of that key
                _assert_same(by_key[0], one_env(*by_key[1], keys[i], state, actions[i], params)[0])
            # Where an episode ended the observation is the next episode's first, elsewhere the final one.
            np.testing.assert_array_equal(obs[i], reset_obs if done[i] else info["final_observation"][i])
        np.testing.assert_array_equal(new_states.time, np.where(done, 0, np.asarray(states.time) + 1))
        if boundaries and t == 0:
            np.testing.assert_array_equal(terminated, [False, True, False, True])
            np.testing.assert_array_equal(truncated, [False, False, True, True])
            final = info["final_observation"]
            if final_expected is None:
                assert final[0, 0] < 2.4 < min(final[1, 0], final[3, 0])  # off the track, not reset
            else:  # the holes' rows; the start's slip is the uniform's
                np.testing.assert_array_equal(final[[1, 3]], final_expected[[1, 3]])
                assert set(final[[0, 2]].tolist()) <= {0, 1, 4}
        flags.append(done)
        truncations.append(truncated)
        states = new_states
    assert np.any(flags) and not np.all(flags)  # the short time limit ended episodes, not every step
    assert np.any(truncations) or env_id == "MaximizationBias-v0"  # its episodes end within two steps


@pytest.mark.parametrize("env_id", DEFAULT_IDS)
def test_default_path_is_step_over_split_keys(env_id):
    env, params = jrl.make(env_id)
    key = jax.random.key(5)
    _, states = env.reset_batch(key, N, params)
    actions = jnp.arange(N, dtype=jnp.int32) % env.num_actions
    batched = env.step_batch(key, states, actions, params)
    step, keys = jax.jit(env.step), jax.random.split(key, N)
    for i in range(N):
        row = jax.tree_util.tree_map(lambda x, i=i: x[i], (states, actions))
        _assert_same(jax.tree_util.tree_map(lambda x, i=i: x[i], batched), step(keys[i], *row, params))


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
    with pytest.raises(ValueError, match=r"ONE key for the whole batch.*shape \(4,\)"):
        env.step_batch(jax.random.split(jax.random.key(0), N), states, actions, params)
    with pytest.raises(ValueError, match=r"leading batch axis N.*actions: 2"):
        env.step_batch(jax.random.key(0), states, actions[:2], params)
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


# -- the algorithms' batched_env_step -----------------------------------------------------------


def test_step_envs_and_collect_step_every_environment_as_chosen():
    """``rollout.step_envs`` is ``vmap(env.step)`` over split keys, or with ``batched=True``
    ``env.step_batch`` on the same key; ``rollout.collect(..., batched=True)`` is ``step_batch``
    on each step's key (``split(fold_in(key, t))[1]``), with the rollout's actions."""
    from jrl.algorithms import rollout

    env, params = _make("Pendulum-v1")  # Box actions; a reset drawn from uniforms
    params = params.replace(max_steps_in_episode=jnp.int32(1))  # every step ends an episode: resets
    key = jax.random.key(3)
    envs = rollout.reset_envs(key, env, params, N)
    actions = _actions(env, params, jax.random.key(4), N)
    per_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(key, N), envs.state, actions, params)
    _assert_same(rollout.step_envs(key, env, params, envs.state, actions), per_env)
    batched = rollout.step_envs(key, env, params, envs.state, actions, batched=True)
    _assert_same(batched, env.step_batch(key, envs.state, actions, params))
    assert not np.array_equal(batched[0], per_env[0])  # other random numbers: other resets

    def act(k, obs, t):
        return _actions(env, params, k, N), None

    _, got, _ = jax.jit(lambda k: rollout.collect(k, env, params, envs, act, T, batched=True))(key)
    obs, state = envs.obs, envs.state
    for t in range(T):
        k_act, k_env = jax.random.split(jax.random.fold_in(key, t))
        a = _actions(env, params, k_act, N)
        seen = obs
        obs, state, reward, terminated, truncated, info = env.step_batch(k_env, state, a, params)
        expected = (seen, a, reward, terminated, truncated, info["final_observation"])
        _assert_same(
            (got.obs[t], got.action[t], got.reward[t], got.terminated[t], got.truncated[t], got.next_obs[t]), expected
        )


def test_in_loop_evaluation_with_batched_draws_is_jrl_evaluate_batched():
    """``training.in_loop_evaluation(..., batched=True)`` (what ``batched_env_step`` asks for) is the
    mean of ``jrl.evaluate(..., batched=True)`` on the interval's key: CartPole's starts drawn in
    one call, so another mean than the per-episode draws' (``batched=False``, the default)."""
    from flax import struct

    from jrl.algorithms.training import in_loop_evaluation

    @struct.dataclass
    class State:
        eval_key: jax.Array
        log_index: jax.Array

    env, params = _make("CartPole-v1")

    def policy(p, obs, key):  # a poor controller: episodes of varying length
        return (obs[2] > p).astype(jnp.int32)

    state = State(jax.random.key(2), jnp.int32(3))
    key = jax.random.fold_in(state.eval_key, 3)
    means = {}
    for batched in (False, True):
        evaluate = in_loop_evaluation(env, params, 64, policy, lambda s: jnp.float32(0.1), batched)
        means[batched] = float(evaluate(state))
        expected = jrl.evaluate(key, policy, jnp.float32(0.1), env, params, 64, batched=batched)
        assert means[batched] == float(jnp.mean(expected))
    assert means[True] != means[False]


@pytest.mark.parametrize("name", ["dqn", "pqn", "ppo"])
def test_batched_env_step_reaches_the_program_and_is_written_only_when_set(name, monkeypatch):
    """The config field changes the traced program (the environments' step) and nothing is written
    for it at its default (a recorded run's config.toml and digest stay what they were)."""
    from jrl import algorithms

    module = algorithms.get(name).module
    env, params = _make("CartPole-v1")
    config = module.default_config("CartPole-v1")
    assert "batched_env_step" not in config.to_dict()
    batched = config.replace(batched_env_step=True)
    assert batched.to_dict()["batched_env_step"] is True
    assert type(config).from_toml(batched.to_toml()) == batched
    evaluations = []  # the in-loop evaluation draws batched too
    monkeypatch.setattr(module, "in_loop_evaluation", lambda *args: evaluations.append(args[5:]) or None)
    traced = [str(jax.make_jaxpr(module.make_train(c, env, params))(jax.random.key(0))) for c in (config, batched)]
    assert traced[0] != traced[1]
    assert evaluations == [(False,), (True,)]
    with pytest.raises(TypeError, match="batched_env_step"):
        config.replace(batched_env_step=1)
