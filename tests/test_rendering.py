"""Environments' own pictures (``env.render``, ``env.render_text``, ``env.render_modes``): the
classic-control pictures against Gymnasium's own ``rgb_array`` frames of the same states, the
gridworlds' cells against their state index, RandomLake against FrozenLake's picture of the same
map, and the refusals of environments that do not draw."""

from __future__ import annotations

import gymnasium
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.envs.acrobot import AcrobotState
from jrl.envs.cartpole import CartPoleState
from jrl.envs.frozen_lake import FrozenLakePicture
from jrl.envs.mountain_car import MountainCarState
from jrl.envs.random_lake import RandomLakeState
from jrl.envs.tabular import TabularPicture, TabularState

# jrl's state of Gymnasium's state vector, for the environments Gymnasium draws with pygame.
CLASSIC_STATES = {
    "CartPole-v1": lambda s: CartPoleState(*s, time=jnp.int32(0)),  # x, x_dot, theta, theta_dot
    "Acrobot-v1": lambda s: AcrobotState(*s, time=jnp.int32(0)),  # theta1, theta2, dtheta1, dtheta2
    "MountainCar-v0": lambda s: MountainCarState(*s, time=jnp.int32(0)),  # position, velocity
}


def far_pixels(a: np.ndarray, b: np.ndarray, reach: int = 2, tolerance: int = 130) -> int:
    """Pixels of ``a`` whose colour is more than ``tolerance`` (largest channel difference) from
    every pixel of ``b`` within ``reach`` pixels. Gymnasium's pygame frames antialias their edges
    and round corners its own way, so edges may move a pixel or two; a blended edge pixel lies
    within 128 of one of its two neighbours' colours, so only a misplaced shape counts."""
    a, b = a.astype(np.int16), b.astype(np.int16)
    ys, xs = np.nonzero(np.abs(a - b).max(-1) > tolerance)  # only these can be far
    steps = np.arange(-reach, reach + 1)
    rows = np.clip(ys[:, None, None] + steps[None, :, None], 0, a.shape[0] - 1)
    cols = np.clip(xs[:, None, None] + steps[None, None, :], 0, a.shape[1] - 1)
    nearest = np.abs(b[rows, cols] - a[ys, xs][:, None, None]).max(-1).min(axis=(1, 2))
    return int(np.sum(nearest > tolerance))


@pytest.mark.parametrize("env_id", sorted(CLASSIC_STATES))
def test_classic_control_pictures_are_gymnasiums(env_id, monkeypatch):
    """Four states along Gymnasium's episodes: jrl's picture of each has Gymnasium's size and every
    shape where Gymnasium draws it (within two pixels), both ways."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # Gymnasium's rgb_array opens no window, but SDL starts
    theirs = gymnasium.make(env_id, render_mode="rgb_array").unwrapped
    env, params = jrl.make(env_id)
    rng = np.random.default_rng(0)
    theirs.reset(seed=3)
    assert env.render_fps == theirs.metadata["render_fps"]
    for _ in range(4):
        state = CLASSIC_STATES[env_id](np.asarray(theirs.state, np.float32))
        ours, frame = env.render(state, params), theirs.render()
        assert ours.dtype == np.uint8 and ours.shape == frame.shape
        assert far_pixels(ours, frame) <= 20 and far_pixels(frame, ours) <= 20
        for _ in range(9):
            if any(theirs.step(int(rng.integers(theirs.action_space.n)))[2:4]):
                theirs.reset()
    theirs.close()


def test_a_gridworld_draws_its_agent_in_the_cell_of_its_state():
    """FrozenLake 4x4 (state ``4 * row + col``): from state 0 to 1 exactly cells (0, 0) and (0, 1)
    of the picture change, from 1 to 5 exactly (0, 1) and (1, 1)."""
    env, params = jrl.make("FrozenLake-v1")
    state = TabularState(state=jnp.int32(0), time=jnp.int32(0))
    before = env.render(state, params)
    for index, cells in ((1, {(0, 0), (0, 1)}), (5, {(0, 1), (1, 1)})):
        state = state.replace(state=jnp.int32(index))
        after = env.render(state, params)
        changed = np.any(after != before, axis=-1)
        assert {(r // 64, c // 64) for r, c in zip(*np.nonzero(changed), strict=True)} == cells
        before = after


def test_random_lake_draws_its_map_as_frozen_lake_does():
    """RandomLake's picture and text of a state are FrozenLake's for the same map (holes from the
    state, start top left, goal bottom right) with the agent on the same cell."""
    env, params = jrl.make("RandomLake-v0", size=5)
    holes = np.random.default_rng(0).random((5, 5)) < 0.3
    holes[0, 0] = holes[-1, -1] = False
    state = RandomLakeState(holes=jnp.asarray(holes), row=jnp.int32(1), col=jnp.int32(3), time=jnp.int32(0))
    desc = ["".join("H" if h else "F" for h in row) for row in holes]
    desc = ["S" + desc[0][1:], *desc[1:-1], desc[-1][:-1] + "G"]
    lake, lake_params = jrl.make("FrozenLake-v1", desc=desc)
    lake_state = TabularState(state=jnp.int32(1 * 5 + 3), time=jnp.int32(0))
    np.testing.assert_array_equal(env.render(state, params), lake.render(lake_state, lake_params))
    assert env.render_text(state, params, 2) == lake.render_text(lake_state, lake_params, 2)
    assert env.render_modes == lake.render_modes == ("rgb_array", "ansi")


def test_what_does_not_draw_says_so():
    env, params = jrl.make("RandomMDP-v0")
    state = TabularState(state=jnp.int32(0), time=jnp.int32(0))
    assert env.render_modes == () and env.render_fps == 0
    with pytest.raises(ValueError, match=r"RandomMDP-v0 does not draw 'rgb_array' pictures \(render\)"):
        env.render(state, params)
    with pytest.raises(ValueError, match=r"does not draw 'ansi' pictures \(render_text\)"):
        jrl.make("CartPole-v1")[0].render_text(state, params)
    # jrl.make stays pure, and says where drawing happens instead
    with pytest.raises(ValueError, match=r"env\.render\(state, env_params\).*gymnasium\.make\('jrl/CartPole-v1'"):
        jrl.make("CartPole-v1", render_mode="human")


def test_your_own_tabular_model_renders_with_a_picture():
    """``make_tabular(..., picture=...)``: a model of FrozenLake's map drawn by FrozenLake's picture;
    anything else as a picture is refused, and so is a picture of another number of states."""
    mdp = jrl.envs.frozen_lake.frozen_lake_model(desc=["SF", "HG"])
    env, params = jrl.make_tabular(mdp, 10, "my/Lake-v0", picture=FrozenLakePicture(("SF", "HG")))
    ours, _ = jrl.make("FrozenLake-v1", desc=["SF", "HG"])
    state = TabularState(state=jnp.int32(1), time=jnp.int32(0))
    np.testing.assert_array_equal(env.render(state, params), ours.render(state, params))
    assert isinstance(env.picture, TabularPicture) and env.render_fps == 4
    assert jrl.make_tabular(mdp, 10)[0].render_modes == ()
    with pytest.raises(TypeError, match=r"picture must be a jrl\.envs\.tabular\.TabularPicture"):
        jrl.make_tabular(mdp, 10, picture="SFHG")
    with pytest.raises(ValueError, match=r"the picture draws 6 states .*, the model has 4"):
        jrl.make_tabular(mdp, 10, picture=FrozenLakePicture(("SFH", "HFG")))
