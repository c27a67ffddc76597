"""What every registered environment promises (``jrl.registered_envs()``, text environments
included): ``jrl.make``'s keyword and time-limit rules, the interface's argument checks, shapes and
dtypes, spaces that hold every observation, one compiled step for any params, vmap over params,
raw and typed keys, eager equal to jit, and same-step auto-reset with ``terminated`` and
``truncated`` kept apart.

Environment-specific behaviour (dynamics against Gymnasium, generated maps, text rewards) is
tested in the environment's own file. Each environment compiles four small programs here (reset
and step, alone and vmapped over two environments), shared by all of its tests.
"""

from __future__ import annotations

import collections
import functools
from types import SimpleNamespace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.envs import registry

ENV_IDS = jrl.registered_envs()

# Params that differ from the defaults but keep the environment (so its compiled functions): by
# jrl.make's keywords, or by replacing params fields. Every other id varies its time limit only.
OTHER_KEYWORDS = {
    "FrozenLake-v1": {"success_rate": 0.8, "reward_schedule": (2, -1, 0)},
    "FrozenLake8x8-v1": {"success_rate": 0.5},
    "RandomMDP-v0": {"seed": 1},
    "CartPole-v1": {"sutton_barto_reward": True},
    "MountainCar-v0": {"goal_velocity": 0.01},
    "RandomLake-v0": {"hole_probability": 0.5, "is_slippery": True},
    "GraphWalkText-v0": {"graph_seed": 1},
    "MaximizationBias-v0": {"reward_mean": -0.5},
    "Pendulum-v1": {"g": 9.81},
    "MountainCarContinuous-v0": {"goal_velocity": 0.01},
    "Arithmetic-v0": {"split": "test", "ops": "*"},  # resets draw other problems
    "Tasks-v0": {"split": "test", "format_reward": 0.5},  # resets draw other problems
}
OTHER_FIELDS = {  # physics that must be read from params, not fixed when tracing
    "CartPole-v1": {"gravity": 20.0},
    "Acrobot-v1": {"link_mass_2": 2.0},
    "MountainCar-v0": {"force": 0.003},
    "WordGen-v0": {"word_reward": 2.5},
    "GraphWalkText-v0": {"invalid_penalty": -3.0},  # random tokens are mostly not edges
    "Pendulum-v1": {"max_torque": 1.0},  # random torques beyond 1 are clipped there
    "MountainCarContinuous-v0": {"power": 0.003},
}
# One id per environment class (a stochastic one, where keys matter): eager execution is slow (one
# dispatch per operation), and ids of one class run the same code on other data.
ONE_PER_CLASS = [
    "Acrobot-v1",
    "Arithmetic-v0",
    "CartPole-v1",
    "FrozenLake-v1",
    "GraphWalkText-v0",
    "MaximizationBias-v0",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Pendulum-v1",
    "Probe-ActionReward-v0",
    "RandomLake-v0",
    "Tasks-v0",
    "WordGen-v0",
]
OTHER_LIMIT = 4  # the other params' time limit: every rollout below truncates
ROLLOUT_STEPS = 12


def _stack(*trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _random_actions(space, rng, count):
    """``count`` random actions of ``space``: uniform integers for ``Discrete``, and for a ``Box``
    uniform on 1.5 times its bounds (a third beyond them: the environment clips those)."""
    if isinstance(space, jrl.Box):
        return rng.uniform(1.5 * space.low, 1.5 * space.high, size=(count, *space.shape)).astype(space.dtype)
    return rng.integers(space.n, size=count).astype(np.int32)


def _largest_action(space):
    return space.high if isinstance(space, jrl.Box) else space.n - 1


def _assert_same(a, b, what=""):
    a, b = jax.device_get((a, b))
    assert jax.tree.structure(a) == jax.tree.structure(b), what
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype, what
        np.testing.assert_array_equal(x, y, err_msg=what)


@functools.cache
def _env(env_id):
    """``env``, its default ``params``, ``other`` params of the same environment, and its shared
    compiled functions: ``reset``/``step`` (one environment, typed keys; each counts its traces
    in ``traces``) and ``reset_v``/``step_v`` (vmapped over keys, states, actions and params, raw
    keys)."""
    env, params = jrl.make(env_id)
    other_env, other = jrl.make(env_id, **OTHER_KEYWORDS.get(env_id, {}))
    assert other_env == env, "OTHER_KEYWORDS must change params only"
    # Replaced as a user would (a jnp scalar of the field's dtype): must not trace again.
    fields = {k: jnp.asarray(v, getattr(other, k).dtype) for k, v in OTHER_FIELDS.get(env_id, {}).items()}
    other = other.replace(max_steps_in_episode=jnp.int32(OTHER_LIMIT), **fields)
    traces = collections.Counter()

    def counted(name, fn):
        def traced(*args):
            traces[name] += 1
            return fn(*args)

        return jax.jit(traced)

    return SimpleNamespace(
        env=env,
        params=params,
        other=other,
        traces=traces,
        reset=counted("reset", env.reset),
        step=counted("step", env.step),
        reset_v=jax.jit(jax.vmap(env.reset)),
        step_v=jax.jit(jax.vmap(env.step)),
    )


# --------------------------------------------------------------------------------------------
# jrl.make's keywords and time limits.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_keywords_and_time_limits(env_id):
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['no_such_keyword'\]; it accepts"):
        jrl.make(env_id, no_such_keyword=1)
    with pytest.raises(ValueError, match="render_mode must be None"):
        jrl.make(env_id, render_mode="human")
    with pytest.raises(ValueError, match="max_episode_steps"):
        jrl.make(env_id, max_episode_steps=0)
    with pytest.raises(TypeError, match="max_episode_steps"):
        jrl.make(env_id, max_episode_steps=2.5)
    env, params = _env(env_id).env, _env(env_id).params
    registered = registry.spec(env_id).max_episode_steps
    assert int(params.max_steps_in_episode) == (jrl.NO_TIME_LIMIT if registered is None else registered)
    assert int(jrl.make(env_id, max_episode_steps=None)[1].max_steps_in_episode) == int(params.max_steps_in_episode)
    assert int(jrl.make(env_id, max_episode_steps=7)[1].max_steps_in_episode) == 7
    assert int(jrl.make(env_id, max_episode_steps=-1)[1].max_steps_in_episode) == jrl.NO_TIME_LIMIT
    # The id, the repr, num_actions and default_params (a property, gymnax's spelling: what
    # jrl.make gives by default).
    assert env.env_id == env_id and registry.is_registered(env_id)
    assert repr(env).startswith(f"{type(env).__name__}(env_id={env_id!r}")
    space = env.action_space(params)
    if isinstance(space, jrl.Discrete):
        assert env.num_actions == space.n
    else:  # Box actions: Gymnasium's (1,) float32 torque or push
        assert isinstance(space, jrl.Box) and (space.shape, space.dtype) == ((1,), jnp.float32)
    assert type(env.default_params) is type(params)
    _assert_same(env.default_params, params, env_id)


# --------------------------------------------------------------------------------------------
# The interface's argument checks.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("method", ["step", "step_env"])
def test_bad_actions_are_refused(env_id, method):
    """Out of range (eager: the value is known), float, or a batch of actions given to one
    environment (also under jit: the shape and dtype are known while tracing; a batch used to
    broadcast, and MountainCar returned an observation of shape (2, 2))."""
    e = _env(env_id)
    env, params = e.env, e.params
    key = jax.random.key(1)
    _, state = e.reset(jax.random.key(0), params)
    step = getattr(env, method)
    space = env.action_space(params)
    if isinstance(space, jrl.Box):
        _check_box_actions(e, step, key, state)
        return
    n = space.n
    for bad in (-1, n, jnp.int32(n + 3)):
        with pytest.raises(ValueError, match="action") as err:
            step(key, state, bad, params)
        assert str(int(bad)) in str(err.value)
    for not_an_integer in (0.5, 1.0, jnp.float32(1.0)):  # Gymnasium's Discrete refuses floats too, even integral ones
        with pytest.raises(TypeError, match="must be integers, got dtype float32"):
            step(key, state, not_an_integer, params)
    with pytest.raises(TypeError, match="must be integers, got dtype float32"):
        jax.jit(step)(key, state, jnp.float32(1.0), params)
    with pytest.raises(ValueError, match=r"action must have shape \(\) \(Discrete\(\d+\)\), got shape \(2,\)"):
        step(key, state, jnp.array([0, 1]), params)
    with pytest.raises(ValueError, match=r"got shape \(2,\) \(for a batch of environments, jax.vmap the step\)"):
        jax.jit(step)(key, state, jnp.array([0, 1]), params)


def _check_box_actions(e, step, key, state):
    """A ``Box`` action: the wrong shape is refused (eagerly and under jit), so is a concrete NaN;
    beyond the bounds it is accepted, eagerly as under jit (the environment clips it, as
    Gymnasium's does; test_classic_control.py checks the clipped dynamics)."""
    space, params = e.env.action_space(e.params), e.params
    for bad_shape, batch in ((jnp.float32(0.5), ""), (jnp.zeros((2, 1)), r" \(for a batch of environments")):
        for fn in (step, jax.jit(step)):  # under jit the shape is refused while tracing: nothing compiles
            with pytest.raises(ValueError, match=rf"action must have shape \(1,\) \(Box\(.*got shape .*{batch}"):
                fn(key, state, bad_shape, params)
    with pytest.raises(ValueError, match="NaN"):
        step(key, state, jnp.full(space.shape, jnp.nan), params)
    beyond = jnp.asarray(10 * space.high)
    eager = step(key, state, beyond, params)
    if step.__name__ == "step":  # the shared compiled step (step_env's eager run is accepted, that is all)
        _assert_same(eager, e.step(key, state, beyond, params), "beyond the bounds")


# --------------------------------------------------------------------------------------------
# Shapes and dtypes.
# --------------------------------------------------------------------------------------------


def _abstract(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, [(leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False)) for leaf in leaves]


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("key_fn", [jax.random.key, jax.random.PRNGKey], ids=["typed", "raw"])
def test_reset_and_step_shapes(env_id, key_fn):
    env, params = _env(env_id).env, _env(env_id).params
    key = key_fn(0)
    obs_space = env.observation_space(params)
    obs, state = jax.eval_shape(env.reset, key, params)
    action = jax.ShapeDtypeStruct(env.action_space(params).shape, env.action_space(params).dtype)
    out = jax.eval_shape(env.step, key, state, action, params)
    s_obs, s_state, reward, term, trunc, info = out
    assert _abstract((obs, state)) == _abstract((s_obs, s_state))  # an episode never changes shapes
    assert obs.shape == obs_space.shape and obs.dtype == obs_space.dtype
    assert (reward.shape, reward.dtype) == ((), jnp.float32)
    assert (term.shape, term.dtype) == ((), jnp.bool_)
    assert (trunc.shape, trunc.dtype) == ((), jnp.bool_)
    final = info["final_observation"]
    assert (final.shape, final.dtype) == (obs.shape, obs.dtype)
    e_obs, e_state, e_reward, e_term, e_trunc, e_info = jax.eval_shape(env.step_env, key, state, action, params)
    assert _abstract((e_obs, e_state, e_reward, e_term, e_trunc)) == _abstract(out[:5])
    assert "final_observation" not in e_info  # step_env does not reset


# --------------------------------------------------------------------------------------------
# Keys, jit and determinism.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ONE_PER_CLASS)
def test_eager_with_raw_keys_equals_jit_with_typed_keys(env_id):
    """The same key bits, as a raw uint32 pair eagerly and as a typed key compiled, give the same
    reset and step (one comparison for both: the two paths share no code that could fail alike);
    the largest action is accepted. (Raw against typed keys under jit, for every id: the rollout
    test below.)"""
    e = _env(env_id)
    env, params = e.env, e.params
    space = env.action_space(params)
    action = _largest_action(space)
    obs, state = env.reset(jax.random.PRNGKey(3), params)
    eager = ((obs, state), env.step(jax.random.PRNGKey(4), state, action, params))
    obs, state = e.reset(jax.random.key(3), params)
    compiled = e.step(jax.random.key(4), state, jnp.asarray(action, space.dtype), params)
    _assert_same(eager, ((obs, state), compiled), env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rollout_compiles_once_vmaps_over_params_and_auto_resets(env_id):
    """Two environments (default params, and ``other`` params with a time limit of 4) step
    ``ROLLOUT_STEPS`` random actions vmapped over params and raw keys; each transition equals the
    one-environment compiled step on the same typed key. Along the way: observations and final
    observations in the observation space; ``truncated`` exactly when the episode's step count
    reaches its limit, whatever ``terminated`` says; a continuing step's observation is its final
    observation, and a finished episode restarts at time 0. The one-environment reset and step
    trace once for every params value and state they were given."""
    e = _env(env_id)
    env, params, other = e.env, e.params, e.other
    space, action_space = env.observation_space(params), env.action_space(params)
    both = _stack(params, other)
    # What must change a transition: the replaced fields alone where there are some (each must
    # be read from params), else the other keywords' params at the default time limit.
    fields = {k: getattr(other, k) for k in OTHER_FIELDS.get(env_id, {})}
    changed = params.replace(**fields) if fields else other.replace(max_steps_in_episode=params.max_steps_in_episode)
    limits = [int(params.max_steps_in_episode), OTHER_LIMIT]
    rng = np.random.default_rng(0)

    def raw_keys():  # raw PRNG keys: any uint32 pairs, drawn on the host to keep this light
        return rng.integers(0, 2**32, size=(2, 2), dtype=np.uint32)

    keys = raw_keys()
    obs, state = jax.device_get(e.reset_v(keys, both))
    for i, p in enumerate((params, other)):
        _assert_same(_index((obs, state), i), e.reset(jax.random.wrap_key_data(keys[i]), p), f"{env_id} reset {i}")
        space.check(obs[i], "obs")
    elapsed, differs = [0, 0], 0
    for t in range(ROLLOUT_STEPS):
        keys, actions = raw_keys(), _random_actions(action_space, rng, 2)
        out = jax.device_get(e.step_v(keys, state, actions, both))
        new_obs, new_state, _, term, trunc, info = out
        alone = []
        for i, p in enumerate((params, other)):
            alone.append(e.step(jax.random.wrap_key_data(keys[i]), _index(state, i), actions[i], p))
            _assert_same(_index(out, i), alone[i], f"{env_id} step {t}, environment {i}")
            space.check(new_obs[i], "obs")
            space.check(info["final_observation"][i], "final_observation")
            elapsed[i] += 1
            assert bool(trunc[i]) == (elapsed[i] == limits[i]), f"step {t}, environment {i}"
            if term[i] or trunc[i]:
                elapsed[i] = 0
            else:
                np.testing.assert_array_equal(new_obs[i], info["final_observation"][i])
            assert int(new_state.time[i]) == elapsed[i]
        # The changed params on the first environment's transition: params are read, not fixed
        # when tracing.
        with_other = e.step(jax.random.wrap_key_data(keys[0]), _index(state, 0), actions[0], changed)
        differs += any(
            not np.array_equal(a, b)
            for a, b in zip(jax.tree.leaves(with_other), jax.tree.leaves(alone[0]), strict=True)
        )
        state = new_state
    assert elapsed[1] < OTHER_LIMIT
    # (WordGen's word_reward is paid for a whole word, which 12 random letters rarely spell:
    # test_text_envs.py checks it is read from params.)
    if (env_id in OTHER_KEYWORDS or env_id in OTHER_FIELDS) and env_id != "WordGen-v0":
        assert differs > 0, "the other params changed no transition"
    # A fresh reset state, from either params, hits the one compiled step too.
    _, fresh = e.reset(jax.random.key(99), other)
    e.step(jax.random.key(100), fresh, jnp.zeros(action_space.shape, action_space.dtype), params)
    assert e.traces == {"reset": 1, "step": 1}, e.traces


def test_every_registered_id_is_covered():
    # The variations above name registered ids only (a renamed id must not silently drop out).
    assert set(OTHER_KEYWORDS) | set(OTHER_FIELDS) <= set(ENV_IDS)
    assert {type(_env(i).env) for i in ONE_PER_CLASS} == {type(_env(i).env) for i in ENV_IDS}
    chex.assert_equal(len(ENV_IDS), len(set(ENV_IDS)))
