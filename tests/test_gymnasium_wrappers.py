"""jrl environments behind Gymnasium's API (jrl.wrappers.gymnasium): Gymnasium's own checker on
every registered id, trajectories against Gymnasium's own environments and vector environments
(exactly where the dynamics are deterministic, in distribution where they are not, within float32
tolerance for CartPole), seeding, auto-reset modes, registration, rendering and bad input."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import jrl
from jrl.envs import registry
from jrl.envs.pendulum import PendulumState
from jrl.wrappers import gymnasium as jrl_gymnasium
from jrl.wrappers.gymnasium import JrlEnv, JrlVectorEnv, evaluate_in_gymnasium, register_gymnasium_envs

ROOT = Path(__file__).resolve().parents[1]
SAME, NEXT = AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP

# What check_env may warn about: Gymnasium's CartPole has the same unbounded velocities, its
# Pendulum-v1 the same torque Box(-2, 2, (1,)) (not normalised), and checking a wrapped
# environment (as gymnasium.make returns it) is itself worth a warning.
ALLOWED_WARNINGS = (
    r"A Box observation space (maximum|minimum) value is -?infinity",
    r"is different from the unwrapped version",
    r"For Box action spaces, we recommend using a symmetric and normalized space",
)


def warning_texts(caught) -> set[str]:
    return {re.sub(r"\x1b\[\d+m", "", str(w.message)) for w in caught}


# The ids that draw Gymnasium's "ansi" text: its toy-text gridworlds, and RandomLake (as FrozenLake).
TEXT_PICTURES = {"CliffWalking-v1", "CliffWalkingSlippery-v1", "FrozenLake-v1", "FrozenLake8x8-v1"}
TEXT_PICTURES |= {"RandomLake-v0", "Taxi-v4"}
# The built-in ids that draw images (and so take render_mode "human" and "rgb_array").
IMAGES = TEXT_PICTURES | {"Acrobot-v1", "CartPole-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"}


class NoWaitClock:
    """pygame's ``Clock`` without its wait between frames."""

    def tick(self, framerate: float = 0) -> int:
        return 0


@pytest.fixture
def headless(monkeypatch):
    """pygame (the gymnasium extra brings it) drawing to SDL's dummy display: no screen needed."""
    import pygame

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    return pygame


# --------------------------------------------------------------------------------------------
# Registration and Gymnasium's checker
# --------------------------------------------------------------------------------------------


def test_every_jrl_id_is_registered_with_gymnasiums_time_limit():
    # (an id with its own namespace, gymnax/Catch-bsuite, becomes jrl/gymnax.Catch-bsuite)
    assert register_gymnasium_envs() == ["jrl/" + env_id.replace("/", ".") for env_id in jrl.registered_envs()]
    for env_id in jrl.registered_envs():
        spec = gymnasium.spec(f"jrl/{env_id}")
        assert spec.kwargs == {"jrl_id": env_id}
        assert spec.vector_entry_point is not None
        limit = registry.spec(env_id).max_episode_steps
        assert spec.max_episode_steps == (None if limit == jrl.NO_TIME_LIMIT else limit)
        if env_id in gymnasium.registry:  # Gymnasium's own environment of that id
            assert spec.max_episode_steps == gymnasium.spec(env_id).max_episode_steps, env_id


@pytest.mark.parametrize("env_id", jrl.registered_envs())
def test_check_env_passes(env_id, headless, monkeypatch):
    # check_env opens every declared render mode, "human" included (a window per environment):
    # on the dummy display, without the wait between frames.
    monkeypatch.setattr(headless.time, "Clock", NoWaitClock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gymnasium.make(f"jrl/{env_id}")
        check_env(env.unwrapped)
        # Probe-Truncation-v0 truncates after its first step by design, which check_env refuses
        # of a wrapped environment (next test): with Gymnasium's wrappers it is checked with a limit of 2.
        check_env(gymnasium.make(f"jrl/{env_id}", max_episode_steps=2) if env_id == "Probe-Truncation-v0" else env)
    unexpected = [m for m in warning_texts(caught) if not any(re.search(p, m) for p in ALLOWED_WARNINGS)]
    assert not unexpected, unexpected
    modes = (["human", "rgb_array"] if env_id in IMAGES else []) + (["ansi"] if env_id in TEXT_PICTURES else [])
    assert env.unwrapped.metadata["render_modes"] == modes
    if env_id in gymnasium.registry:  # Gymnasium's own environment of that id: the same modes, at its fps
        own = gymnasium.spec(env_id).make()
        assert sorted(own.metadata["render_modes"]) == sorted(modes), env_id
        assert env.unwrapped.metadata["render_fps"] == own.metadata["render_fps"], env_id


def test_rendered_envs_lists_the_ids_that_draw_images():
    # Asked of each registered environment's render_modes on access.
    assert jrl.wrappers.RENDERED_ENVS == jrl_gymnasium.RENDERED_ENVS == tuple(sorted(IMAGES))
    with pytest.raises(AttributeError, match="RENDERED_ENV"):
        jrl_gymnasium.RENDERED_ENV  # noqa: B018


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_check_env_refuses_a_one_step_time_limit():
    with pytest.raises(AssertionError, match="truncates after 1 step"):
        check_env(gymnasium.make("jrl/Probe-Truncation-v0"))


def test_make_vec_modes():
    vec = gymnasium.make_vec("jrl/CartPole-v1", num_envs=8)
    assert isinstance(vec, JrlVectorEnv) and vec.num_envs == 8
    assert vec.metadata["autoreset_mode"] == SAME
    assert vec.spec.id == "jrl/CartPole-v1" and vec.spec.kwargs["vectorization_mode"] == "vector_entry_point"
    assert int(vec.jrl_params.max_steps_in_episode) == 500  # Gymnasium passes its registered limit
    assert vec.single_observation_space == gymnasium.spec("CartPole-v1").make().observation_space
    assert vec.observation_space == gymnasium.vector.utils.batch_space(vec.single_observation_space, 8)
    assert vec.action_space == gymnasium.spaces.MultiDiscrete([2] * 8)
    limited = gymnasium.make_vec("jrl/CartPole-v1", num_envs=2, max_episode_steps=7, autoreset_mode="NextStep")
    assert int(limited.jrl_params.max_steps_in_episode) == 7 and limited.metadata["autoreset_mode"] == NEXT
    sync = gymnasium.make_vec("jrl/FrozenLake-v1", num_envs=2, vectorization_mode="sync", is_slippery=False)
    assert isinstance(sync, gymnasium.vector.SyncVectorEnv) and isinstance(sync.envs[0].unwrapped, JrlEnv)
    with pytest.raises(gymnasium.error.Error, match="vector_kwargs"):
        gymnasium.make_vec("jrl/CartPole-v1", num_envs=2, vector_kwargs={"copy": False})


def test_spaces_map_exactly():
    to_gym = jrl_gymnasium.gymnasium_space
    assert to_gym(jrl.Discrete(7)) == gymnasium.spaces.Discrete(7)
    box = jrl.make("CartPole-v1")[0].observation_space()
    assert to_gym(box) == gymnasium.make("CartPole-v1").observation_space
    assert to_gym(jrl.Tokens(5, 3)) == gymnasium.spaces.MultiDiscrete([5, 5, 5], dtype=np.int32)
    with pytest.raises(TypeError, match="no Gymnasium space"):
        to_gym(object())
    env = JrlEnv("WordGen-v0")
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.int32 and obs in env.observation_space


# --------------------------------------------------------------------------------------------
# Trajectories against Gymnasium's own environments
# --------------------------------------------------------------------------------------------

CLIFF_ROUTE = [0] + [1] * 11 + [2]  # up, right x 11, down: the goal in 13 steps


def scripted_action(env_id: str, episode: int, t: int, rng: np.random.Generator) -> int:
    """Episodes that end every way: terminated (a hole or the goal), truncated (standing still)."""
    if episode % 3 == 0:
        return 0  # FrozenLake: left at the start stays put until the time limit; Cliff: up, then up
    if env_id.startswith("CliffWalking") and episode % 3 == 1:
        return CLIFF_ROUTE[t] if t < len(CLIFF_ROUTE) else 1
    return int(rng.integers(4))


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("FrozenLake-v1", {"is_slippery": False}), ("CliffWalking-v1", {"max_episode_steps": 30})],
)
@pytest.mark.parametrize("wrapper", ["gymnasium.make", "JrlEnv"])
def test_deterministic_trajectories_equal_gymnasiums(env_id, kwargs, wrapper):
    reference = gymnasium.make(env_id, **kwargs)
    ours = gymnasium.make(f"jrl/{env_id}", **kwargs) if wrapper == "gymnasium.make" else JrlEnv(env_id, **kwargs)
    rng = np.random.default_rng(0)
    endings = {"terminated": 0, "truncated": 0}
    episode = t = 0
    assert ours.reset(seed=0)[0] == reference.reset(seed=0)[0]
    for _ in range(400):
        action = scripted_action(env_id, episode, t, rng)
        got, want = ours.step(action), reference.step(action)
        assert got[:4] == tuple(want[:4]), (episode, t, action)
        assert type(got[0]) is np.int64 and type(got[1]) is float
        t += 1
        if got[2] or got[3]:
            endings["terminated" if got[2] else "truncated"] += 1
            episode, t = episode + 1, 0
            assert ours.reset()[0] == reference.reset()[0]
    assert min(endings.values()) >= 2, endings


@pytest.mark.parametrize(("max_episode_steps", "truncated_at"), [(None, 100), (150, 150), (-1, None)])
def test_time_limit_follows_gymnasium_make(max_episode_steps, truncated_at):
    """``max_episode_steps`` of ``gymnasium.make`` replaces the limit (``-1`` removes it), as for
    Gymnasium's own environments: the jrl environment inside runs without its own."""
    env = gymnasium.make("jrl/FrozenLake-v1", is_slippery=False, max_episode_steps=max_episode_steps)
    env.reset(seed=0)
    truncations = [env.step(0)[3] for _ in range(200)]  # left at the start: stays put
    assert truncations.index(True) + 1 == truncated_at if truncated_at else not any(truncations)


def chi_squared(counts: dict, probs: dict, n: int) -> float:
    return sum((counts.get(k, 0) - n * p) ** 2 / (n * p) for k, p in probs.items())


# Upper 0.1% points of the chi-squared distribution with 1 and 2 degrees of freedom.
CHI2_CRITICAL = {1: 10.828, 2: 13.816}


def test_slippery_frozen_lake_matches_gymnasium_in_distribution():
    n = 3000
    model = gymnasium.make("FrozenLake-v1", is_slippery=True).unwrapped.P
    vec = JrlVectorEnv("FrozenLake-v1", n, autoreset_mode=NEXT, is_slippery=True)
    vec.reset(seed=0)
    for s, a in [(0, 1), (6, 0), (14, 2)]:
        vec.reset()
        vec.jrl_state = vec.jrl_state.replace(state=jnp.full(n, s, jnp.int32))
        obs, reward, terminated, _, _ = vec.step(np.full(n, a))
        outcomes = {(s2, float(r), bool(t)): 0.0 for _, s2, r, t in model[s][a]}
        for p, s2, r, t in model[s][a]:
            outcomes[s2, float(r), bool(t)] += p
        seen = list(zip(obs.tolist(), reward.tolist(), terminated.tolist(), strict=True))
        assert set(seen) <= set(outcomes), (s, a)
        counts = {k: seen.count(k) for k in outcomes}
        assert chi_squared(counts, outcomes, n) < CHI2_CRITICAL[len(outcomes) - 1], (s, a, counts)


# --------------------------------------------------------------------------------------------
# Vector environments against Gymnasium's SyncVectorEnv
# --------------------------------------------------------------------------------------------


def compare_final_infos(got: dict, want: dict, close) -> None:
    """Gymnasium's same-step layout: final_obs (object array, None where not done) and the masks.
    Gymnasium's FrozenLake adds its own ``prob`` info, jrl environments have none."""
    assert ("final_obs" in got) == ("final_obs" in want)
    assert set(got) == set(want) - {"prob", "_prob"}
    if "final_obs" in want:
        np.testing.assert_array_equal(got["_final_obs"], want["_final_obs"])
        np.testing.assert_array_equal(got["_final_info"], want["_final_info"])
        assert got["final_obs"].dtype == object and got["final_obs"].shape == want["final_obs"].shape
        for g, w in zip(got["final_obs"], want["final_obs"], strict=True):
            assert (g is None) == (w is None)
            if w is not None:
                close(g, w)
        assert got["final_info"] == {}


@pytest.mark.parametrize("mode", [SAME, NEXT])
def test_frozen_lake_vector_equals_sync_vector_env(mode):
    n = 6
    ours = gymnasium.make_vec("jrl/FrozenLake-v1", num_envs=n, autoreset_mode=mode, is_slippery=False)
    reference = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make("FrozenLake-v1", is_slippery=False)] * n, autoreset_mode=mode
    )
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(ours.reset(seed=0)[0], reference.reset(seed=0)[0])
    ends = 0
    for _ in range(250):
        actions = rng.integers(0, 4, size=n)
        actions[0] = 0  # copy 0 stands still: truncated every 100 steps
        got, want = ours.step(actions), reference.step(actions)
        for g, w in zip(got[:4], want[:4], strict=True):
            np.testing.assert_array_equal(g, w)
        assert got[0].dtype == np.int64 and got[1].dtype == np.float64
        if mode == SAME:
            compare_final_infos(got[4], want[4], lambda g, w: (g == w) or pytest.fail(f"{g} != {w}"))
        else:
            assert got[4] == {}
        ends += int(np.sum(got[2] | got[3]))
    assert ends >= 20


def sync_cartpoles(reference, obs: np.ndarray, which) -> None:
    """Start Gymnasium's copies ``which`` from jrl's states (the reset draws differ)."""
    for i in which:
        reference.envs[i].unwrapped.state = obs[i].astype(np.float64)


@pytest.mark.parametrize("mode", [SAME, NEXT])
def test_cartpole_vector_matches_sync_vector_env(mode):
    """Gymnasium's CartPole is float64, jrl's float32: compared within tolerance, from the same
    states (each new episode of Gymnasium's copies is started from jrl's reset state)."""
    n, limit = 8, 40
    ours = gymnasium.make_vec("jrl/CartPole-v1", num_envs=n, autoreset_mode=mode, max_episode_steps=limit)
    reference = gymnasium.make_vec(
        "CartPole-v1",
        num_envs=n,
        vectorization_mode="sync",
        max_episode_steps=limit,
        vector_kwargs={"autoreset_mode": mode},
    )
    obs, _ = ours.reset(seed=0)
    reference.reset(seed=0)
    sync_cartpoles(reference, obs, range(n))
    endings = np.zeros(2, int)
    pending = np.zeros(n, bool)  # next-step mode: copies whose next step is a reset

    def close(g, w):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)

    for t in range(150):
        # Half the copies balance (long episodes, truncated at the limit), half follow a pattern.
        balance = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
        actions = np.where(np.arange(n) < n // 2, balance, (t // (np.arange(n) + 1)) % 2)
        got, want = ours.step(actions), reference.step(actions)
        obs = got[0]
        done = got[2] | got[3]
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_array_equal(got[3], want[3])
        np.testing.assert_array_equal(got[1], want[1])
        if mode == SAME:
            close(got[0][~done], want[0][~done])  # done copies: a fresh episode each
            compare_final_infos(got[4], want[4], close)
            sync_cartpoles(reference, obs, np.flatnonzero(done))
        else:
            close(got[0][~pending], want[0][~pending])
            assert not (got[1][pending].any() or got[2][pending].any() or got[3][pending].any())
            sync_cartpoles(reference, obs, np.flatnonzero(pending))
            pending = done
        endings += [int(got[2].sum()), int(got[3].sum())]
    assert endings.min() >= 4, endings  # several terminations and truncations


@pytest.mark.parametrize("mode", [SAME, NEXT])
def test_vector_copy_i_replays_single_env_seeded_seed_plus_i(mode):
    n, seed = 3, 10
    vec = JrlVectorEnv("CartPole-v1", n, autoreset_mode=mode, max_episode_steps=15)
    singles = [JrlEnv("CartPole-v1", max_episode_steps=15) for _ in range(n)]
    obs, _ = vec.reset(seed=seed)
    np.testing.assert_array_equal(obs, np.stack([s.reset(seed=seed + i)[0] for i, s in enumerate(singles)]))
    pending = [False] * n
    for t in range(60):
        actions = np.array([(t + i) % 2 for i in range(n)])
        obs, reward, terminated, truncated, info = vec.step(actions)
        for i, single in enumerate(singles):
            if mode == NEXT and pending[i]:
                want = (single.reset()[0], 0.0, False, False)
                pending[i] = False
            else:
                want = single.step(actions[i])[:4]
                if want[2] or want[3]:
                    if mode == SAME:
                        np.testing.assert_array_equal(info["final_obs"][i], want[0])
                        want = (single.reset()[0], *want[1:])
                    else:
                        pending[i] = True
            np.testing.assert_array_equal(obs[i], want[0])
            assert (reward[i], terminated[i], truncated[i]) == want[1:]


# --------------------------------------------------------------------------------------------
# Seeding, reset masks and the disabled auto-reset
# --------------------------------------------------------------------------------------------


def test_seeds_are_jax_keys():
    env = JrlEnv("CartPole-v1")
    jrl_env, params = jrl.make("CartPole-v1")
    first, _ = env.reset(seed=5)
    want, _ = jrl_env.reset_env(jax.random.fold_in(jax.random.key(5), 0), params)  # draw 0 of key(5)
    np.testing.assert_array_equal(first, np.asarray(want))
    np.testing.assert_array_equal(env.reset(seed=5)[0], first)
    assert not np.array_equal(env.reset()[0], first)  # the key stream continues
    assert not np.array_equal(env.reset(seed=5 + 2**32)[0], first)  # high bits count
    fresh = [JrlEnv("CartPole-v1").reset()[0] for _ in range(2)]  # seeds from entropy
    assert not np.array_equal(*fresh)
    with pytest.raises(gymnasium.error.Error, match="greater or equal to zero"):
        env.reset(seed=-1)
    vec = JrlVectorEnv("CartPole-v1", 3)
    both = vec.reset(seed=[7, None, 9])[0]  # a None seed on the first reset draws from entropy
    np.testing.assert_array_equal(both[[0, 2]], vec.reset(seed=[7, None, 9])[0][[0, 2]])
    with pytest.raises(ValueError, match="list of 3"):
        vec.reset(seed=[1, 2])
    with pytest.raises(gymnasium.error.Error, match="Seed must be"):
        vec.reset(seed=[1, -2, 3])


def test_reset_mask_and_disabled_autoreset():
    vec = JrlVectorEnv("FrozenLake-v1", 3, autoreset_mode="Disabled", is_slippery=False)
    vec.reset(seed=0)
    vec.step(np.array([1, 2, 1]))  # down, right, down
    obs, _, terminated, *_ = vec.step(np.array([2, 1, 1]))  # copies 0 and 1 into the hole at 5
    np.testing.assert_array_equal(obs, [5, 5, 8])
    np.testing.assert_array_equal(terminated, [True, True, False])
    with pytest.raises(ValueError, match=r"environments \[0, 1\] have ended"):
        vec.step(np.zeros(3, int))
    mask = np.array([True, True, False])
    obs, _ = vec.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(obs, [0, 0, 8])
    obs = vec.step(np.array([2, 2, 1]))[0]
    np.testing.assert_array_equal(obs, [1, 1, 12])
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": [True, False, True]})
    # A copy the mask leaves alone keeps its key stream, whatever seed the list gives it.
    twins = [JrlVectorEnv("CartPole-v1", 2) for _ in range(2)]
    for twin, seeds in zip(twins, ([5, 6], [5, None]), strict=True):
        twin.reset(seed=0)
        twin.reset(seed=seeds, options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(twins[0].reset()[0], twins[1].reset()[0])
    with pytest.raises(ValueError, match="at least one"):
        vec.reset(options={"reset_mask": np.zeros(3, bool)})
    with pytest.raises(ValueError, match=r"the first reset resets every environment"):
        JrlVectorEnv("FrozenLake-v1", 3).reset(options={"reset_mask": mask})


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "shape", "actions"),
    [
        ("FrozenLake-v1", (256, 256, 3), [2]),
        ("FrozenLake8x8-v1", (512, 512, 3), [2]),
        ("CliffWalking-v1", (256, 768, 3), [0]),
        ("Taxi-v4", (320, 320, 3), [0, 1]),  # south, else north: one of them moves the taxi
        ("CartPole-v1", (400, 600, 3), [1]),
    ],
)
def test_render_rgb_array(env_id, shape, actions):
    env = gymnasium.make(
        f"jrl/{env_id}", render_mode="rgb_array", **({"is_slippery": False} if "Frozen" in env_id else {})
    )
    start, _ = env.reset(seed=0)
    before = env.render()
    assert before.dtype == np.uint8 and before.shape == shape
    for a in actions:
        if not np.array_equal(env.step(a)[0], start):
            break
    assert not np.array_equal(env.render(), before)  # the agent moved (or the pole turned)


def test_render_errors_and_vector_render():
    with pytest.raises(ValueError, match=r"RandomMDP-v0 does not render \(env.render_modes is empty\)"):
        JrlEnv("RandomMDP-v0", render_mode="rgb_array")
    with pytest.raises(ValueError, match=r"render_mode must be None or one of \['human', 'rgb_array'\], got 'ansi'"):
        JrlEnv("CartPole-v1", render_mode="ansi")
    with pytest.raises(ValueError, match=r"'rgb_array' only .* gymnasium\.make\('jrl/\.\.\.', render_mode='human'\)"):
        JrlVectorEnv("CartPole-v1", 2, render_mode="human")
    # The environment draws its own map, so a gridworld passed as an Environment renders too.
    env = JrlEnv(*jrl.make("FrozenLake-v1", desc=["SFH", "FFG"]), render_mode="rgb_array")
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.render()
    env.reset(seed=0)
    assert env.render().shape == (128, 192, 3)
    with pytest.warns(UserWarning, match="without specifying any render mode"):
        assert JrlEnv("FrozenLake-v1").render() is None
    frames = JrlVectorEnv("Taxi-v4", 2, render_mode="rgb_array")
    frames.reset(seed=0)
    assert [f.shape for f in frames.render()] == [(320, 320, 3)] * 2


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("FrozenLake-v1", {"is_slippery": False}),
        ("FrozenLake-v1", {"is_slippery": False, "map_name": "8x8"}),
        ("CliffWalking-v1", {}),
        ("Taxi-v4", {}),
    ],
)
def test_ansi_text_is_gymnasiums(env_id, kwargs):
    """render_mode="ansi": the same text as Gymnasium's own environment, after every step of the
    same episode (jrl's Taxi starts where Gymnasium's does), last action included."""
    theirs = gymnasium.make(env_id, render_mode="ansi", **kwargs).unwrapped
    ours = gymnasium.make(f"jrl/{env_id}", render_mode="ansi", **kwargs).unwrapped
    start, _ = theirs.reset(seed=1)
    ours.reset(seed=1)
    ours.jrl_state = ours.jrl_state.replace(state=jnp.int32(start))
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert ours.render() == theirs.render()
        action = int(rng.integers(theirs.action_space.n))
        theirs_done, ours_done = theirs.step(action)[2], ours.step(action)[2]
        assert theirs_done == ours_done
        if theirs_done:
            break
    assert ours.render() == theirs.render()


def test_human_render_mode_shows_every_frame_at_render_fps(headless, monkeypatch):
    """render_mode="human": reset and each step put the environment's picture of its state in a
    pygame window, each frame timed by pygame's clock at render_fps; close() closes it."""
    pygame = headless
    ticks = []

    class Clock:  # pygame's clock, recording instead of waiting
        def tick(self, framerate: float = 0) -> int:
            ticks.append(framerate)
            return 0

    monkeypatch.setattr(pygame.time, "Clock", Clock)
    env = gymnasium.make("jrl/CartPole-v1", render_mode="human")
    inner = env.unwrapped
    assert inner.metadata["render_fps"] == 50

    def shown():
        return pygame.surfarray.array3d(pygame.display.get_surface()).swapaxes(0, 1)

    def drawn():
        return inner.jrl_env.render(jax.device_get(inner.jrl_state), inner.jrl_params)

    env.reset(seed=0)
    np.testing.assert_array_equal(shown(), drawn())
    for _ in range(5):
        env.step(1)
        np.testing.assert_array_equal(shown(), drawn())
    assert ticks == [50] * 6  # one frame per reset and step, at 50 frames per second
    assert env.render() is None
    env.close()
    assert not pygame.display.get_init()


def test_human_render_mode_without_pygame_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame raises ImportError
    with pytest.raises(ImportError, match=r"render_mode='human' .* pygame .*pip install 'jrl-jax\[gymnasium\]'"):
        JrlEnv("CartPole-v1", render_mode="human")


# --------------------------------------------------------------------------------------------
# Bad input: Gymnasium's errors or a clear ValueError, never a JAX error
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (4, r"must be in 0\.\.3, got 4"),
        (-1, r"must be in 0\.\.3, got -1"),
        (1.0, "must be an int, a NumPy integer or a 0-d integer array, got float"),
        (np.float32(1), "got float32"),
        ([1], "got list"),
        (np.array([1]), r"must have shape \(\), got shape \(1,\)"),
        ("1", "got str"),
        (None, "got NoneType"),
    ],
)
def test_bad_actions_single(action, match):
    env = gymnasium.make("jrl/FrozenLake-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    env.step(np.int64(1))  # and it still steps
    env.step(np.array(2, np.int32))


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (np.zeros(5, int), r"must have shape \(4,\), got shape \(5,\)"),
        (np.zeros(4), "must hold integers, got dtype float64"),
        (np.array([0, 1, 2, 7]), r"must be in 0\.\.3, got 7 \(entry \(3,\)\)"),
        (0, r"must have shape \(4,\), got shape \(\)"),
    ],
)
def test_bad_actions_vector(actions, match):
    vec = gymnasium.make_vec("jrl/FrozenLake-v1", num_envs=4)
    with pytest.raises(gymnasium.error.ResetNeeded):
        vec.step(np.zeros(4, int))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        vec.step(actions)
    vec.step([0, 1, 2, 3])  # a list of ints is a batch of actions


def test_bad_construction_and_order():
    with pytest.raises(gymnasium.error.ResetNeeded):
        gymnasium.make("jrl/CartPole-v1").step(0)  # Gymnasium's OrderEnforcing
    with pytest.raises(gymnasium.error.ResetNeeded, match="before calling reset"):
        JrlEnv("CartPole-v1").step(0)
    with pytest.raises(gymnasium.error.NameNotFound, match="doesn't exist"):
        gymnasium.make("jrl/CartPool-v1")
    with pytest.raises(ValueError, match="Did you mean 'CartPole-v1'"):
        JrlEnv("CartPool-v1")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['slippery'\]"):
        gymnasium.make("jrl/FrozenLake-v1", slippery=True)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['slippery'\]"):
        gymnasium.make_vec("jrl/FrozenLake-v1", num_envs=2, slippery=True)
    with pytest.raises(ValueError, match="map_name must be one of"):
        gymnasium.make("jrl/FrozenLake-v1", map_name="5x5")
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        JrlVectorEnv("CartPole-v1", 2, autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        JrlVectorEnv("CartPole-v1", 0)
    with pytest.raises(TypeError, match="with an Environment pass env_params"):
        JrlEnv(jrl.make("CartPole-v1")[0], is_slippery=True)
    with pytest.raises(TypeError, match="takes a jrl id"):
        JrlEnv(42)


# --------------------------------------------------------------------------------------------
# An environment of your own (Box actions), registered after the import
# --------------------------------------------------------------------------------------------


@struct.dataclass
class DriftParams:
    max_steps_in_episode: jax.Array


@dataclasses.dataclass(frozen=True)
class Drift(jrl.Environment):
    """A point pushed by Box actions; the episode ends when it leaves [-1, 1]."""

    @property
    def default_params(self):
        return DriftParams(max_steps_in_episode=jnp.int32(100))

    def observation_space(self, params=None):
        return jrl.Box(-2.0, 2.0, (2,))

    def action_space(self, params=None):
        return jrl.Box(-0.5, 0.5, (2,))

    def reset_env(self, key, params):
        return jnp.zeros(2), (jnp.zeros(2), jnp.int32(0))

    def step_env(self, key, state, action, params):
        pos, time = state[0] + action, state[1] + 1
        terminated = jnp.any(jnp.abs(pos) > 1.0)
        return pos, (pos, time), jnp.float32(1.0), terminated, time >= params.max_steps_in_episode, {}


@dataclasses.dataclass(frozen=True)
class DriftWithInfo(Drift):
    """Drift whose steps report the push's size in ``info["push"]``."""

    def step_env(self, key, state, action, params):
        *out, info = super().step_env(key, state, action, params)
        return (*out, {**info, "push": jnp.abs(action).sum()})


def test_vector_info_follows_gymnasiums_layout():
    """Same-step auto-reset: ``info[k]`` holds the copies still running (zeros elsewhere) with the
    mask ``info["_" + k]``; the finished copies' step info is in ``info["final_info"]``."""
    vec = JrlVectorEnv(DriftWithInfo(), 2)
    vec.reset(seed=0)
    for _ in range(2):
        vec.step(np.array([[0.5, 0.0], [0.1, 0.0]]))
    _, _, terminated, _, info = vec.step(np.array([[0.5, 0.25], [0.2, 0.0]]))  # copy 0 leaves [-1, 1]
    assert terminated.tolist() == [True, False]
    np.testing.assert_allclose(info["push"], [0.0, 0.2], rtol=1e-6)
    assert info["_push"].tolist() == [False, True]
    np.testing.assert_allclose(info["final_info"]["push"], [0.75, 0.0], rtol=1e-6)
    assert info["final_info"]["_push"].tolist() == [True, False] and info["_final_info"].tolist() == [True, False]


def test_own_environment_registered_later():
    jrl.register("test/Drift-v0", Drift, max_episode_steps=3)
    try:
        assert "jrl/test.Drift-v0" not in gymnasium.registry
        assert "jrl/test.Drift-v0" in register_gymnasium_envs()
        env = gymnasium.make("jrl/test.Drift-v0")
        assert env.spec.max_episode_steps == 3
        env.reset(seed=0)
        obs, *_ = env.step([0.5, -0.25])  # a list is a Box element
        np.testing.assert_array_equal(obs, np.array([0.5, -0.25], np.float32))
        with pytest.raises(ValueError, match=r"must be real numbers, got NaN"):
            env.step(np.array([np.nan, 0.0]))
        # Beyond the bounds, as in Gymnasium, the action reaches the environment (Gymnasium's and
        # jrl's own clip it; Drift does not).
        obs, *_ = env.step(np.array([-0.75, 0.0]))
        np.testing.assert_array_equal(obs, np.array([-0.25, -0.25], np.float32))
        with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
            env.step(0.1)
        with pytest.raises(ValueError, match="must be a real array"):
            env.step(np.array([True, False]))
        terminated, truncated = env.step(np.array([0.5, 0.0]))[2:4]  # the third step
        assert terminated is False and truncated is True
        direct = JrlEnv(Drift(), DriftParams(max_steps_in_episode=jnp.int32(2)))
        direct.reset(seed=1)
        assert direct.step(np.zeros(2))[3] is False and direct.step(np.zeros(2))[3] is True
    finally:
        registry.unregister("test/Drift-v0")
        gymnasium.registry.pop("jrl/test.Drift-v0", None)


# --------------------------------------------------------------------------------------------
# Box actions: a jrl policy in Gymnasium's own Pendulum-v1
# --------------------------------------------------------------------------------------------


def pump(gain, obs, key):
    """Torque ``gain * theta_dot``, float32 ``[1]``: it pumps energy until the pendulum spins at its
    speed limit, asking for torques beyond the bounds (the environments clip them) on most steps."""
    del key
    return gain * obs[2:3]


@functools.cache
def _replay_pendulum(num_steps=200):
    """Jitted ``(theta [N], theta_dot [N], gain) -> returns [N]``: ``pump`` run in jrl's
    Pendulum-v1 (``step_env``) from given start states."""
    env, params = jrl.make("Pendulum-v1")

    def one(theta, theta_dot, gain):
        state = PendulumState(theta=theta, theta_dot=theta_dot, last_u=jnp.float32(0), time=jnp.int32(0))

        def body(state, _):
            obs = jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot])
            _, state, reward, *_ = env.step_env(jax.random.key(0), state, pump(gain, obs, None), params)
            return state, reward

        return jax.lax.scan(body, state, None, length=num_steps)[1].sum()

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def test_pendulum_policy_scores_alike_in_gymnasium_and_in_jrl():
    """``evaluate_in_gymnasium`` runs a jrl policy whose actions are float32 ``[1]`` arrays in
    Gymnasium's own Pendulum-v1. Each of its episodes, replayed in jrl from the start state
    Gymnasium drew (seed ``5 + i``), scores the same return (float32 against float64 dynamics);
    ``jrl.evaluate`` over its own start states scores the same mean, within sampling error. Out
    of bounds is valid for a Box (clipped); NaN is not."""
    gain, n = jnp.float32(1.5), 16
    theirs = evaluate_in_gymnasium(pump, gain, "Pendulum-v1", num_episodes=n, seed=5)
    starts = []
    for i in range(n):
        reference = gymnasium.make("Pendulum-v1").unwrapped
        reference.reset(seed=5 + i)
        starts.append(np.asarray(reference.state, np.float32))
    theta, theta_dot = jnp.asarray(np.stack(starts).T)
    replayed = np.asarray(_replay_pendulum()(theta, theta_dot, gain))
    np.testing.assert_allclose(replayed, theirs, rtol=1e-5)
    assert theirs.std() > 10  # the starts matter: the replays did not agree by accident

    env, params = jrl.make("Pendulum-v1")
    ours = np.asarray(jrl.evaluate(jax.random.key(0), pump, gain, env, params, num_episodes=256))
    error = np.sqrt(ours.var() / ours.size + theirs.var() / theirs.size)
    assert abs(ours.mean() - theirs.mean()) < 4 * error, (ours.mean(), theirs.mean(), error)
    # A NaN gain makes every action NaN: refused (the same compiled evaluation: the gain is a param).
    with pytest.raises(ValueError, match=r"NaN actions for Box\(-2.0, 2.0, \(1,\), float32\)"):
        jrl.evaluate(jax.random.key(0), pump, jnp.float32(np.nan), env, params, num_episodes=256)
    stats = jrl.evaluate_episodes(jax.random.key(0), pump, jnp.float32(np.nan), env, params, num_episodes=256)
    assert (np.asarray(stats.invalid_actions) == 200).all() and np.isnan(stats.returns).all()


# --------------------------------------------------------------------------------------------
# Gymnasium optional; registration without importing the module
# --------------------------------------------------------------------------------------------


def test_without_gymnasium_the_wrappers_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # `import gymnasium` raises ImportError
    spec = importlib.util.spec_from_file_location("jrl_gymnasium_missing", jrl_gymnasium.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for build in (lambda: module.JrlEnv("CartPole-v1"), lambda: module.JrlVectorEnv("CartPole-v1", 2)):
        with pytest.raises(ImportError, match=r"pip install 'jrl-jax\[gymnasium\]'"):
            build()


def test_import_jrl_registers_in_gymnasium_without_importing_the_wrappers():
    """``import jrl`` registers every jrl id in Gymnasium with string entry points: the wrappers
    are imported only when Gymnasium builds one. Gymnasium's own ``"module:id"`` form works too.
    Gymnasium 1.x has no plugin entry points (0.x loaded the ``gymnasium.envs`` entry-point group
    with ``load_env_plugins``; 1.0 removed it), so importing jrl is what registers."""
    assert not hasattr(gymnasium.envs.registration, "load_env_plugins")
    code = (
        "import sys, gymnasium\n"
        "assert not any(i.startswith('jrl/') for i in gymnasium.registry)\n"
        "import jrl\n"
        "assert 'jrl.wrappers' not in sys.modules\n"
        "ids = [f'jrl/{i}' for i in jrl.registered_envs()]\n"
        "assert all(i in gymnasium.registry for i in ids), ids\n"
        "env = gymnasium.make('jrl/FrozenLake-v1', is_slippery=False)\n"
        "assert 'jrl.wrappers.gymnasium' in sys.modules\n"
        "print(env.reset(seed=0)[0], env.step(2)[0])\n"
        "envs = gymnasium.make_vec('jrl/CartPole-v1', num_envs=4)\n"
        "print(envs.reset(seed=0)[0].shape[0])\n"
        "env = gymnasium.make('jrl.wrappers.gymnasium:jrl/FrozenLake-v1', is_slippery=False)\n"
        "print(env.reset(seed=0)[0], env.step(2)[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "4", "0", "1"]
