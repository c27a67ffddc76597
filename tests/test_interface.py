"""What a newcomer meets in the first hour: calls in the Gymnasium style, ints where keys belong,
reprs, registering an environment, ``desc`` forms. (Wrong-shaped actions, raw keys, ids, reprs
and ``default_params`` of every registered id: test_conformance.py.)"""

from __future__ import annotations

import dataclasses

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import jrl
from jrl.algorithms import dqn, q_learning
from jrl.envs import registry

GYMNASIUM_IDS = [
    "Acrobot-v1",
    "CartPole-v1",
    "CliffWalking-v1",
    "CliffWalkingSlippery-v1",
    "FrozenLake-v1",
    "FrozenLake8x8-v1",
    "MountainCar-v0",
    "Taxi-v4",
]


def first_state(env_id):
    env, params = jrl.make(env_id)
    obs, state = env.reset(jax.random.key(0), params)
    return env, params, obs, state


# --- Gymnasium-style calls and ints where keys belong --------------------------------------------------
def test_gymnasium_style_calls_say_what_jrl_expects():
    env, params, _, state = first_state("CartPole-v1")
    with pytest.raises(TypeError, match=r"CartPole-v1.reset takes \(key, params\), got \(0 positional, seed=\)"):
        env.reset(seed=0)
    with pytest.raises(TypeError, match=r"Gymnasium's interface.*env.reset\(jax.random.key\(seed\), env_params\)"):
        env.reset(seed=0)
    with pytest.raises(TypeError, match=r"step takes \(key, state, action, params\).*evaluate_in_gymnasium"):
        env.step(1)
    with pytest.raises(TypeError, match=r"step_env takes \(key, state, action, params\), got \(3 positional\)"):
        env.step_env(jax.random.key(0), state, 1)
    # Keywords by their jrl names work.
    obs, _ = env.reset(key=jax.random.key(0), params=params)
    assert obs.shape == (4,)


@pytest.mark.parametrize(
    "call",
    [
        lambda env, params, state: env.reset(0, params),
        lambda env, params, state: env.step(0, state, 1, params),
        lambda env, params, state: env.step_env(np.int64(3), state, 1, params),
        lambda env, params, state: jrl.evaluate(0, lambda p, o, k: jnp.int32(0), None, env, params, 4),
        lambda env, params, state: q_learning.make_train(
            q_learning.QLearningConfig(num_envs=2, num_steps=10), *jrl.make("FrozenLake-v1")
        )(0),
        lambda env, params, state: dqn.make_train(dqn.default_config("CartPole-v1"), env, params)(0),
    ],
    ids=["reset", "step", "step_env", "evaluate", "q_learning.train", "dqn.train"],
)
def test_an_int_where_a_key_belongs_says_pass_a_key(call):
    env, params, _, state = first_state("CartPole-v1")
    with pytest.raises(TypeError, match=r"key must be a JAX PRNG key: pass jax.random.key\(seed\).*got (int|an array)"):
        call(env, params, state)


def test_a_batch_of_keys_for_one_environment_is_refused():
    env, params, _, _ = first_state("FrozenLake-v1")
    with pytest.raises(ValueError, match=r"single PRNG key, got a batch of keys of shape \(3,\)"):
        env.reset(jax.random.split(jax.random.key(0), 3), params)


# --- reprs and attributes ------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", GYMNASIUM_IDS)
def test_spaces_print_as_gymnasium_prints_them(env_id):
    """MountainCar's Box used to print ``low=-1.2000000476837158`` and hide the velocity bounds."""
    env, params = jrl.make(env_id)
    reference = gymnasium.make(env_id)
    assert repr(env.observation_space(params)) == repr(reference.observation_space)
    assert repr(env.action_space(params)) == repr(reference.action_space)


def test_box_repr_shows_every_bound():
    env, params = jrl.make("MountainCar-v0")
    assert repr(env.observation_space(params)) == "Box([-1.2  -0.07], [0.6  0.07], (2,), float32)"
    assert repr(jrl.Box(0.0, 1.0, (3, 3))) == "Box(0.0, 1.0, (3, 3), float32)"


def test_environments_that_differ_only_in_id_share_compiled_functions():
    env_a, _ = jrl.make("FrozenLake-v1")
    env_b = dataclasses.replace(env_a, env_id="Other")
    assert env_a == env_b and hash(env_a) == hash(env_b)


def test_tabular_environment_built_without_a_model_explains_where_params_come_from():
    env = jrl.envs.TabularEnv(4, 2, 1)
    with pytest.raises(ValueError, match=r"jrl\.make or jrl\.make_tabular"):
        env.default_params  # noqa: B018


# --- FrozenLake desc in every form Gymnasium accepts --------------------------------------------------
ROWS = ["SFFH", "FHFF", "FFFG"]


@pytest.mark.parametrize(
    "desc",
    [
        [list(row) for row in ROWS],
        np.asarray(ROWS, dtype="c"),  # what Gymnasium stores as env.unwrapped.desc
        np.array([list(row) for row in ROWS]),
        tuple(ROWS),
        [row.encode() for row in ROWS],
    ],
    ids=["char-lists", "bytes-array", "str-array", "tuple", "bytes-rows"],
)
def test_frozen_lake_desc_forms_give_the_same_model(desc):
    _, expected = jrl.make("FrozenLake-v1", desc=ROWS)
    _, params = jrl.make("FrozenLake-v1", desc=desc)
    same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), expected, params)
    assert all(jax.tree_util.tree_leaves(same))
    # The same map in Gymnasium has the same number of states.
    assert params.mdp.num_states == gymnasium.make("FrozenLake-v1", desc=ROWS).observation_space.n


@pytest.mark.parametrize(
    "desc, error, fragment",
    [
        ("SFFG", TypeError, "list of strings"),
        ([["S", "FF"]], TypeError, "single characters"),
        ([[1, 2]], TypeError, "single characters"),
        (["SF", "FGF"], ValueError, "same length"),
        (["SX"], ValueError, "S, F, H, G"),
    ],
)
def test_bad_desc_is_refused(desc, error, fragment):
    with pytest.raises(error, match=fragment):
        jrl.make("FrozenLake-v1", desc=desc)


# --- registering your own environment --------------------------------------------------------------------
@struct.dataclass
class CorridorParams:
    reward: jax.Array
    max_steps_in_episode: jax.Array


@dataclasses.dataclass(frozen=True)
class Corridor(jrl.Environment):
    """Walk right along ``length`` cells (action 1) to the end; action 0 stays."""

    length: int = 3
    num_actions = 2

    @property
    def default_params(self):
        return CorridorParams(reward=jnp.float32(1.0), max_steps_in_episode=jnp.int32(50))

    def observation_space(self, params=None):
        return jrl.Discrete(self.length)

    def action_space(self, params=None):
        return jrl.Discrete(self.num_actions)

    def reset_env(self, key, params):
        return jnp.int32(0), (jnp.int32(0), jnp.int32(0))

    def step_env(self, key, state, action, params):
        position, time = state
        position = jnp.minimum(position + action, self.length - 1)
        time = time + 1
        terminated = position == self.length - 1
        reward = jnp.where(terminated, params.reward, 0.0)
        return position, (position, time), reward, terminated, time >= params.max_steps_in_episode, {}


@pytest.fixture
def clean_registry():
    with registry.temporary_registry():
        yield


def test_the_registry_s_public_functions(clean_registry):
    before = jrl.registered_envs()
    assert registry.is_registered("CartPole-v1") and not registry.is_registered("test/Corridor-v0")
    assert registry.spec("CartPole-v1").max_episode_steps == 500
    assert registry.spec("FrozenLake8x8-v1").kwargs == {"map_name": "8x8"}
    with pytest.raises(ValueError, match="unknown environment id 'test/Corridor-v0'"):
        registry.spec("test/Corridor-v0")
    with registry.temporary_registry():
        jrl.register("test/Corridor-v0", Corridor)
        registry.unregister("CartPole-v1")
        assert registry.is_registered("test/Corridor-v0") and not registry.is_registered("CartPole-v1")
        registry.unregister("test/Corridor-v0")
        jrl.register("test/Corridor-v0", Corridor, length=5)  # free again
        with pytest.raises(ValueError, match="not registered"):
            registry.unregister("CartPole-v1")
    assert jrl.registered_envs() == before  # both put back as they were
    with pytest.raises(RuntimeError), registry.temporary_registry():
        jrl.register("test/Corridor-v0", Corridor)
        raise RuntimeError
    assert jrl.registered_envs() == before  # also when the block raises


def test_register_a_custom_environment_and_make_it(clean_registry):
    jrl.register("test/Corridor-v0", Corridor, max_episode_steps=7, length=4)
    assert "test/Corridor-v0" in jrl.registered_envs()
    env, params = jrl.make("test/Corridor-v0")
    assert env == Corridor(length=4) and env.env_id == "test/Corridor-v0"
    assert int(params.max_steps_in_episode) == 7
    env5, params5 = jrl.make("test/Corridor-v0", length=5, max_episode_steps=-1)
    assert env5.length == 5 and int(params5.max_steps_in_episode) == jrl.NO_TIME_LIMIT
    # It runs through everything the built-ins run through: the walk-right policy takes 3 steps.
    returns = jrl.evaluate(jax.random.key(0), lambda p, o, k: jnp.int32(1), None, env, params, num_episodes=3)
    np.testing.assert_array_equal(np.asarray(returns), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"action must have shape \(\)"):
        env.step(jax.random.key(0), env.reset(jax.random.key(0), params)[1], jnp.array([1, 1]), params)


def test_register_keeps_the_params_time_limit_when_none_is_given(clean_registry):
    def factory(reward=2.0):
        env = Corridor()
        return env, env.default_params.replace(reward=jnp.float32(reward))

    jrl.register("test/CorridorPair-v1", factory)
    _, params = jrl.make("test/CorridorPair-v1", reward=3.0)
    assert int(params.max_steps_in_episode) == 50 and float(params.reward) == 3.0


def test_register_validates_like_the_built_in_ids(clean_registry):
    jrl.register("test/Corridor-v0", Corridor)
    with pytest.raises(ValueError, match="already registered"):
        jrl.register("test/Corridor-v0", Corridor)
    with pytest.raises(ValueError, match="already registered"):
        jrl.register("CartPole-v1", Corridor)
    with pytest.raises(ValueError, match=r"Gymnasium's form '\[namespace/\]Name\[-vN\]'"):
        jrl.register("has spaces-v0", Corridor)
    with pytest.raises(TypeError, match="callable"):
        jrl.register("test/NotCallable-v0", Corridor())
    with pytest.raises(TypeError, match=r"does not accept keyword\(s\) \['width'\]"):
        jrl.register("test/Wide-v0", Corridor, width=3)
    with pytest.raises(ValueError, match="max_episode_steps"):
        jrl.register("test/Zero-v0", Corridor, max_episode_steps=0)
    with pytest.raises(ValueError, match="Did you mean 'test/Corridor-v0'"):
        jrl.make("test/Coridor-v0")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['width'\]"):
        jrl.make("test/Corridor-v0", width=3)
    jrl.register("test/Broken-v0", lambda: "not an environment")
    with pytest.raises(TypeError, match="must return a jrl Environment"):
        jrl.make("test/Broken-v0")


# --- the gymnasium extra --------------------------------------------------------------------------------
def test_evaluate_in_gymnasium_without_gymnasium_names_the_extra(monkeypatch):
    import builtins

    from jrl.wrappers import evaluate_in_gymnasium

    real_import = builtins.__import__

    def no_gymnasium(name, *args, **kwargs):
        if name == "gymnasium" or name.startswith("gymnasium."):
            raise ImportError("No module named 'gymnasium'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gymnasium)
    with pytest.raises(ImportError, match=r"pip install 'jrl-jax\[gymnasium\]'"):
        evaluate_in_gymnasium(lambda p, o, k: jnp.int32(0), None, "CartPole-v1")
