"""Other JAX libraries' environments as jrl environments: gymnax (jrl.wrappers.gymnax) and
Gymnasium's functional environments (jrl.wrappers.functional). Trajectories against the foreign
library's own step, termination versus truncation (gymnax 1.x and the older merged ``done``),
registration, jrl's DQN on a wrapped gymnax environment, and bad input."""

from __future__ import annotations

import dataclasses
import sys

import gymnasium
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnasium.envs.phys2d.cartpole import CartPoleFunctional

import jrl
from jrl.algorithms import dqn
from jrl.envs import registry
from jrl.spaces import Discrete
from jrl.wrappers.functional import FunctionalEnv, from_functional
from jrl.wrappers.gymnax import GymnaxEnv, from_gymnax, register_gymnax_envs


@pytest.fixture(autouse=True, scope="module")
def _restore_registry():
    """The gymnax ids these tests register leave with them (other files compare the registry
    with the docs, in the same worker process)."""
    with registry.temporary_registry():
        yield


# --------------------------------------------------------------------------------------------
# gymnax
# --------------------------------------------------------------------------------------------


def test_gymnax_ids_are_registered_in_jrl_on_first_use():
    gymnax_ids = {f"gymnax/{i}" for i in gymnax.registered_envs}
    assert not gymnax_ids & set(jrl.registered_envs())  # importing the wrapper registers nothing
    env, params = jrl.make("gymnax/Catch-bsuite")
    assert gymnax_ids <= set(jrl.registered_envs())  # the first gymnax id registered them all
    assert register_gymnax_envs() == []
    assert isinstance(env, GymnaxEnv) and env.env_id == "gymnax/Catch-bsuite"
    assert int(params.max_steps_in_episode) == 1000  # gymnax's own limit for Catch
    space = env.observation_space(params)
    assert (space.shape, space.dtype, float(space.low.min()), float(space.high.max())) == ((10, 5), jnp.float32, 0, 1)
    assert env.action_space(params) == Discrete(3)
    _, short = jrl.make("gymnax/Catch-bsuite", max_episode_steps=4)
    assert int(short.max_steps_in_episode) == 4
    _, wide = jrl.make("gymnax/Catch-bsuite", columns=7)  # a gymnax.make keyword
    assert env.observation_space(wide).shape == (10, 5)
    assert jrl.make("gymnax/Catch-bsuite", columns=7)[0].observation_space(wide).shape == (10, 7)


# Catch's ball lands on step 9: a limit of 9 truncates and terminates on the same step.
@pytest.mark.parametrize(("gymnax_id", "limit"), [("Catch-bsuite", 9), ("Breakout-MinAtar", 12), ("CartPole-v1", 30)])
def test_gymnax_trajectories_equal_gymnax_step(gymnax_id, limit):
    """jrl's step (auto-reset included) on the wrapped environment returns what gymnax's own
    ``step`` returns for the same keys and actions, over several episodes of 8 copies."""
    genv, gparams = gymnax.make(gymnax_id)
    env, params = from_gymnax(genv, gparams)
    params = params.replace(max_steps_in_episode=jnp.int32(limit))  # some episodes end by truncation
    gparams = gparams.replace(max_steps_in_episode=limit)
    n_act = env.num_actions

    def rollout(step, reset, p):
        def one(key):
            obs, state = reset(jax.random.fold_in(key, 0), p)

            def body(carry, t):
                obs, state = carry
                k_act, k_step = jax.random.split(jax.random.fold_in(key, t + 1))
                action = jax.random.randint(k_act, (), 0, n_act)
                obs, state, reward, terminated, truncated, info = step(k_step, state, action, p)
                out = (
                    obs.astype(jnp.float32),
                    reward,
                    terminated,
                    truncated,
                    info["final_observation"].astype(jnp.float32),
                )
                return (obs, state), out

            return jax.lax.scan(body, (obs, state), jnp.arange(80))[1]

        return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), 8))

    ours = rollout(env.step, env.reset, params)
    theirs = rollout(genv.step, genv.reset, gparams)
    names = ("obs", "reward", "terminated", "truncated", "final_observation")
    for name, a, b in zip(names, ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert np.asarray(ours[3]).any()  # truncations happened
    if gymnax_id != "CartPole-v1":
        assert np.asarray(ours[2]).any()  # and terminations
    assert ours[0].dtype == jnp.float32 and ours[2].dtype == jnp.bool_


# jrl's classic-control state fields -> gymnax's (the rest have the same names).
_GYMNAX_FIELDS = {"theta1": "joint_angle1", "theta2": "joint_angle2", "dtheta1": "velocity_1", "dtheta2": "velocity_2"}


# Boxes of states an episode can be in, up to the terminal conditions: field -> (low, high).
# (CartPole's stop at its thresholds: gymnax rewards 0 for a step from beyond them, where Gymnasium
# and jrl reward 1, but an episode never takes that step.)
_STATE_BOXES = {
    "CartPole-v1": {"x": (-2.4, 2.4), "x_dot": (-2, 2), "theta": (-0.2094, 0.2094), "theta_dot": (-2, 2)},
    "Acrobot-v1": {"theta1": (-np.pi, np.pi), "theta2": (-np.pi, np.pi), "dtheta1": (-12, 12), "dtheta2": (-28, 28)},
    "MountainCar-v0": {"position": (-1.2, 0.6), "velocity": (-0.07, 0.07)},
}


@pytest.mark.parametrize(
    ("env_id", "rtol", "atol"), [("CartPole-v1", 0, 0), ("Acrobot-v1", 1e-4, 1e-5), ("MountainCar-v0", 0, 1e-6)]
)
def test_jrl_classic_control_steps_as_gymnax_does(env_id, rtol, atol):
    """The reference table's gymnax column (docs/interop.md): from 1,000 states drawn around the
    terminal conditions, jrl's step_env and gymnax's give the same rewards and terminations, and
    observations equal (CartPole) or within float32 rounding (MountainCar; Acrobot's RK4, whose
    velocities reach 28 rad/s, to 1e-4 relative: a few fast states amplify the rounding)."""
    env, params = jrl.make(env_id)
    genv, gparams = gymnax.make(env_id)
    box = _STATE_BOXES[env_id]
    keys = jax.random.split(jax.random.key(0), len(box))
    fields = {
        f: jax.random.uniform(k, (1000,), jnp.float32, lo, hi)
        for k, (f, (lo, hi)) in zip(keys, box.items(), strict=True)
    }
    fields["time"] = jnp.zeros(1000, jnp.int32)
    _, state = env.reset(jax.random.key(0), params)
    states = type(state)(**fields)
    gstates = type(genv.reset_env(jax.random.key(0), gparams)[1])(
        **{_GYMNAX_FIELDS.get(f, f): v for f, v in fields.items()}
    )
    keys = jax.random.split(jax.random.key(1), 1000)
    actions = jax.random.randint(jax.random.key(2), (1000,), 0, env.num_actions)
    obs, _, reward, terminated, _, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(keys, states, actions, params)
    gobs, _, greward, gterminated, _ = jax.vmap(genv.step_env, in_axes=(0, 0, 0, None))(keys, gstates, actions, gparams)
    np.testing.assert_allclose(np.asarray(obs), np.asarray(gobs), rtol=rtol, atol=atol)
    np.testing.assert_array_equal(np.asarray(reward), np.asarray(greward))
    np.testing.assert_array_equal(np.asarray(terminated), np.asarray(gterminated))
    assert 0 < int(np.sum(np.asarray(terminated))) < 1000  # both sides of the terminal conditions


@struct.dataclass
class _LegacyState:
    position: jax.Array
    time: jax.Array


@struct.dataclass
class _LegacyParams:
    goal: int = 3
    max_steps_in_episode: int = 5


class _LegacyWalk:
    """A gymnax environment written against gymnax before 1.0: ``step_env`` returns one ``done``
    with the time limit merged in, ``is_terminal`` includes the time limit, no ``is_truncated``.
    Action 1 moves right, 0 stays; reaching ``goal`` terminates with reward 1."""

    @property
    def default_params(self):
        return _LegacyParams()

    def observation_space(self, params):
        return gymnasium.spaces.Box(0, 10, (1,), np.float32)

    def action_space(self, params):
        return gymnasium.spaces.Discrete(2)

    def reset_env(self, key, params):
        state = _LegacyState(jnp.int32(0), jnp.int32(0))
        return state.position[None].astype(jnp.float32), state

    def is_terminal(self, state, params):
        return (state.position >= params.goal) | (state.time >= params.max_steps_in_episode)

    def step_env(self, key, state, action, params):
        state = _LegacyState(state.position + action, state.time + 1)
        reward = (state.position >= params.goal).astype(jnp.float32)
        done = self.is_terminal(state, params)
        return state.position[None].astype(jnp.float32), state, reward, done, {"discount": 1.0 - done}


@pytest.mark.parametrize(
    ("actions", "limit", "terminated_at", "truncated_at"),
    [
        ([1, 1, 1], 5, [2], []),  # goal at step 3, before the limit
        ([0, 0, 0, 0, 0], 5, [], [4]),  # the limit alone: truncated, not terminated (bootstrap)
        ([0, 0, 1, 1, 1], 5, [4], [4]),  # goal on the limit's step: both, as Gymnasium's TimeLimit
    ],
)
def test_legacy_gymnax_done_is_split_into_termination_and_truncation(actions, limit, terminated_at, truncated_at):
    env, params = from_gymnax(_LegacyWalk())
    assert env.legacy_done and int(params.max_steps_in_episode) == limit
    _, state = env.reset(jax.random.key(0), params)
    terminated, truncated = [], []
    for t, a in enumerate(actions):
        _, state, _, term, trunc, info = env.step(jax.random.key(t), state, jnp.int32(a), params)
        terminated += [t] if term else []
        truncated += [t] if trunc else []
        assert "discount" not in info
    assert (terminated, truncated) == (terminated_at, truncated_at)


def test_gymnax_1x_truncation_is_not_termination():
    env, params = jrl.make("gymnax/Catch-bsuite", max_episode_steps=3)  # a Catch episode lasts 9 steps
    assert not env.legacy_done
    _, state = env.reset(jax.random.key(0), params)
    flags = []
    for t in range(3):
        _, state, _, term, trunc, _ = env.step(jax.random.key(t), state, jnp.int32(1), params)
        flags.append((bool(term), bool(trunc)))
    assert flags == [(False, False), (False, False), (False, True)]


@pytest.mark.slow
def test_dqn_solves_wrapped_gymnax_catch():
    """jrl's DQN, unchanged, learns bsuite's Catch through the wrapper: every greedy episode of
    every seed catches the ball (return 1, the maximum)."""
    env, params = jrl.make("gymnax/Catch-bsuite")
    config = dqn.DQNConfig(
        num_envs=16,
        num_steps=1_500,
        learning_rate=1e-3,
        buffer_size=8_000,
        batch_size=64,
        learning_starts=500,
        target_update_interval=50,
        epsilon_decay_fraction=0.5,
        eval_episodes=32,
        log_interval=500,
    )
    train = jax.jit(jax.vmap(dqn.make_train(config, env, params)))
    result = train(jax.random.split(jax.random.key(0), 2))
    policy, policy_params = dqn.greedy_policy(config, env, params, jax.tree.map(lambda x: x[0], result))
    returns = jrl.evaluate(jax.random.key(1), policy, policy_params, env, params, num_episodes=100)
    assert float(jnp.min(returns)) == 1.0
    assert np.all(np.asarray(result.metrics["eval_return"])[:, -1] == 1.0), result.metrics["eval_return"]


def test_from_gymnax_keeps_the_params_it_is_given():
    """Params given with an id or an instance are the ones the wrapper steps with, their time limit
    included; without them, gymnax.make's."""
    genv, gparams = gymnax.make("Catch-bsuite")
    for source in ("Catch-bsuite", genv):
        _, params = from_gymnax(source, env_params=gparams.replace(max_steps_in_episode=7))
        assert int(params.max_steps_in_episode) == 7 and int(params.env_params.max_steps_in_episode) == 7
    assert int(from_gymnax("Catch-bsuite")[1].max_steps_in_episode) == 1000


def test_foreign_spaces_without_a_jrl_counterpart_are_named():
    from jrl.wrappers._foreign import jrl_space

    with pytest.raises(ValueError, match=r"Catch action space: Discrete\(3, start=1\) starts at 1; jrl's Discrete"):
        jrl_space(gymnasium.spaces.Discrete(3, start=1), "Catch action space")
    assert jrl_space(gymnasium.spaces.Discrete(3), "x") == Discrete(3)
    box = jrl_space(gymnasium.spaces.Box(0, 255, (2, 2), np.uint8), "pixels")  # a non-float box: float32
    assert box.dtype == jnp.float32 and box.shape == (2, 2) and float(box.high.max()) == 255.0

    class IntWalk(_LegacyWalk):  # integer observations in an integer box
        def observation_space(self, params):
            return gymnasium.spaces.Box(0, 10, (1,), np.int32)

        def reset_env(self, key, params):
            obs, state = super().reset_env(key, params)
            return obs.astype(jnp.int32), state

        def step_env(self, key, state, action, params):
            obs, *rest = super().step_env(key, state, action, params)
            return (obs.astype(jnp.int32), *rest)

    env, params = from_gymnax(IntWalk())
    obs, state = env.reset(jax.random.key(0), params)
    stepped = env.step(jax.random.key(1), state, jnp.int32(1), params)[0]
    assert obs.dtype == stepped.dtype == env.observation_space(params).dtype == jnp.float32
    assert float(stepped[0]) == 1.0


def test_a_gymnax_id_without_gymnax_names_the_extra(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "gymnax" else find_spec(name))
    with registry.temporary_registry():  # no gymnax/ id registered by an earlier test
        for env_id in registry.registered_envs():
            if "/" in env_id:
                registry.unregister(env_id)
        with pytest.raises(ImportError, match=r"needs gymnax.*'interop' extra \(pip install 'jrl-jax\[interop\]'"):
            jrl.make("gymnax/Catch-bsuite")
        # Installed but failing to import (gymnax 1.0.1 imports the undeclared six): the error says so.
        spec = find_spec("gymnax")
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "gymnax" else find_spec(name))
        monkeypatch.setitem(sys.modules, "gymnax", None)  # so that `import gymnax` raises ImportError
        with pytest.raises(ImportError, match=r"'interop' extra.*importing it failed"):
            jrl.make("gymnax/Catch-bsuite")


def test_from_gymnax_bad_input():
    with pytest.raises(ValueError, match="unknown gymnax id 'Catch-v9'"):
        from_gymnax("Catch-v9")
    with pytest.raises(ValueError, match="unknown environment id 'gymnax/Catch-v9'"):
        jrl.make("gymnax/Catch-v9")
    with pytest.raises(TypeError, match="needs a gymnax environment"):
        from_gymnax(object())
    with pytest.raises(TypeError, match=r"for gymnax\.make, given an id"):
        from_gymnax(gymnax.make("Catch-bsuite")[0], rows=3)
    with pytest.raises(TypeError, match="env_params must be the gymnax environment's params"):
        from_gymnax("Catch-bsuite", env_params={"max_steps_in_episode": 3})

    class TupleObs(_LegacyWalk):
        def observation_space(self, params):
            return gymnasium.spaces.Tuple((gymnasium.spaces.Discrete(2), gymnasium.spaces.Discrete(3)))

    with pytest.raises(ValueError, match=r"observation space: Tuple.*has no jrl counterpart"):
        from_gymnax(TupleObs())
    env, params = jrl.make("gymnax/Catch-bsuite")
    _, state = env.reset(jax.random.key(0), params)
    with pytest.raises(ValueError, match="out of range; Discrete\\(3\\)"):
        env.step(jax.random.key(0), state, jnp.int32(3), params)
    with pytest.raises(TypeError, match="must be integers"):
        env.step(jax.random.key(0), state, jnp.float32(1), params)


# --------------------------------------------------------------------------------------------
# Gymnasium's functional environments
# --------------------------------------------------------------------------------------------


def test_functional_cartpole_follows_gymnasiums_functional_jax_env():
    """The wrapped FuncEnv, given the keys Gymnasium's FunctionalJaxEnv draws, follows its
    trajectories through the end of several episodes: the same rewards, terminations and episode
    lengths, observations equal to float32 rounding (each is compiled its own way)."""
    env, params = from_functional("phys2d/CartPole-v1")
    assert isinstance(env, FunctionalEnv) and int(params.max_steps_in_episode) == 500
    space = env.observation_space(params)
    assert space.shape == (4,) and space.dtype == jnp.float32 and np.all(np.isinf(space.high))
    reset = jax.jit(env.reset_env)
    step = jax.jit(env.step_env)
    gym_env = gymnasium.make("phys2d/CartPole-v1")
    rng = np.random.default_rng(0)
    lengths = []
    for seed in range(3):
        gym_obs, _ = gym_env.reset(seed=seed)
        key, _ = jax.random.split(jax.random.PRNGKey(seed))  # the key FunctionalJaxEnv.reset uses
        obs, state = reset(jax.random.wrap_key_data(key), params)
        np.testing.assert_array_equal(np.asarray(obs), np.asarray(gym_obs))
        for t in range(200):
            action = int(rng.integers(2))
            gym_obs, gym_reward, gym_term, gym_trunc, _ = gym_env.step(action)
            obs, state, reward, term, trunc, _ = step(jax.random.key(t), state, jnp.int32(action), params)
            np.testing.assert_allclose(np.asarray(obs), np.asarray(gym_obs), rtol=1e-5, atol=1e-6)
            assert (float(reward), bool(term), bool(trunc)) == (gym_reward, gym_term, gym_trunc)
            if gym_term:
                lengths.append(t + 1)
                break
    assert len(lengths) == 3, lengths


def test_functional_cartpole_under_jit_vmap_truncates_at_the_limit():
    env, params = from_functional(CartPoleFunctional(), max_episode_steps=20)
    assert env.env_id == "" and int(params.max_steps_in_episode) == 20

    def run(key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state = carry
            obs, state, reward, term, trunc, _ = env.step(k, state, jnp.int32(1) - (obs[2] < 0), params)
            return (obs, state), (reward, term, trunc)

        return jax.lax.scan(body, (obs, state), jax.random.split(key, 100))[1]

    reward, term, trunc = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 64))
    assert reward.shape == (64, 100) and np.all(np.asarray(reward) == 1.0)
    # A balancing policy never falls in 20 steps: every episode is truncated at steps 20, 40, ...
    assert not np.asarray(term).any()
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(trunc)[0]), [19, 39, 59, 79, 99])
    # The FuncEnv's own params are a pytree inside jrl's: vmap over gravity.
    gravities = jnp.array([9.8, 30.0])
    batched = jax.vmap(lambda g: params.replace(env_params=params.env_params.replace(gravity=g)))(gravities)
    step = jax.vmap(env.step, in_axes=(None, 0, None, 0))
    obs, state = jax.vmap(env.reset, in_axes=(None, 0))(jax.random.key(1), batched)
    np.testing.assert_array_equal(np.asarray(obs[0]), np.asarray(obs[1]))  # same key, same start
    for t in range(2):
        obs, state, *_ = step(jax.random.key(t), state, jnp.int32(0), batched)
    assert not np.array_equal(np.asarray(obs[0]), np.asarray(obs[1]))  # stronger gravity, another fall


class _CountingFuncEnv:
    """A FuncEnv without params: the state counts the actions taken (0 or 1); the reward is
    ``next_state - state`` (the action); the episode ends once the count reaches 3."""

    observation_space = gymnasium.spaces.Box(0, 100, (1,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def initial(self, rng):
        return jnp.int32(0)

    def transition(self, state, action, rng):
        return state + action

    def observation(self, state, rng):
        return state[None]

    def reward(self, state, action, next_state, rng):
        return (next_state - state).astype(jnp.float32) * 10.0 - state

    def terminal(self, state, rng):
        return state >= 3


def test_a_func_env_without_params_and_its_argument_order():
    """A FuncEnv whose functions take no params gets none; ``reward`` gets ``(state, action,
    next_state)`` and ``terminal`` the state the transition led to."""
    env, params = from_functional(_CountingFuncEnv(), max_episode_steps=10)
    assert params.env_params is None
    _, state = env.reset(jax.random.key(0), params)
    rewards, terminations = [], []
    for action in (1, 0, 1, 1):
        _, state, reward, terminated, _, _ = env.step(jax.random.key(1), state, jnp.int32(action), params)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
    assert rewards == [10.0, -1.0, 9.0, 8.0] and terminations == [False, False, False, True]
    # Params given for a FuncEnv with params are the ones it steps with.
    from gymnasium.envs.phys2d.cartpole import CartPoleParams

    _, heavy = from_functional(CartPoleFunctional(), env_params=CartPoleParams(gravity=30.0))
    assert heavy.env_params.gravity == 30.0


def test_dqn_runs_on_a_functional_env():
    env, params = from_functional("phys2d/CartPole-v1")
    config = dqn.DQNConfig(num_envs=4, num_steps=200, buffer_size=400, learning_starts=64, eval_episodes=2)
    result = jax.jit(dqn.make_train(config, env, params))(jax.random.key(0))
    assert np.all(np.isfinite(np.asarray(result.metrics["loss"])[-1:]))
    assert int(result.metrics["env_steps"][-1]) == 800


def test_from_functional_bad_input():
    with pytest.raises(ValueError, match="unknown Gymnasium id"):
        from_functional("phys2d/CartPole-v9")
    with pytest.raises(ValueError, match="not a functional environment"):
        from_functional("CartPole-v1")
    with pytest.raises(TypeError, match="needs a Gymnasium FuncEnv"):
        from_functional(object())
    with pytest.raises(TypeError, match=r"for gymnasium\.make, given an id"):
        from_functional(CartPoleFunctional(), gravity=3.0)
    with pytest.raises(ValueError, match="max_episode_steps must be >= 1"):
        from_functional(CartPoleFunctional(), max_episode_steps=0)
    env, params = from_functional("phys2d/CartPole-v1", max_episode_steps=-1)
    assert int(params.max_steps_in_episode) == jrl.NO_TIME_LIMIT
    _, state = env.reset(jax.random.key(0), params)
    with pytest.raises(ValueError, match="out of range; Discrete\\(2\\)"):
        env.step(jax.random.key(0), state, jnp.int32(2), params)
    assert dataclasses.replace(env, env_id="x") == env  # equality ignores the id, so compiles are shared
