"""Stable-Baselines3 on jrl environments: SB3's own checker, DQN through the single-environment
wrapper, JrlSB3VecEnv step for step against SB3's DummyVecEnv over the same environments, and
PPO on it."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecMonitor

import jrl  # noqa: F401  (registers jrl/<id> in Gymnasium)
from jrl.wrappers.sb3 import JrlSB3VecEnv

torch.set_num_threads(1)  # tiny networks: threads only add overhead on a 2-core machine


@pytest.fixture(autouse=True)
def sb3_log_dir_in_tmp_path(monkeypatch, tmp_path):
    """SB3's ``learn`` makes a log folder (``SB3_LOGDIR``, else a new ``SB3-<date>`` folder in the
    system's temporary directory, left behind): keep it in the test's own directory."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3"))


def test_sb3_checker_and_dqn_on_jrl_cartpole_without_warnings():
    env = gymnasium.make("jrl/CartPole-v1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        check_env(env)
        model = DQN("MlpPolicy", env, learning_starts=500, train_freq=4, seed=0, device="cpu")
        model.learn(total_timesteps=3_000)
    assert [str(w.message) for w in caught] == []
    assert model.num_timesteps == 3_000
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))


def test_jrl_vec_env_steps_as_dummy_vec_env_over_the_same_environments():
    """Same seeds, same actions: observations, rewards, dones, terminal observations and
    TimeLimit.truncated equal SB3's DummyVecEnv of jrl/CartPole-v1 copies (time limit 20, so both
    terminations and truncations happen)."""
    n = 4
    ours = JrlSB3VecEnv("CartPole-v1", n, max_episode_steps=20)
    theirs = make_vec_env("jrl/CartPole-v1", n_envs=n, env_kwargs={"max_episode_steps": 20})
    ours.seed(7)
    theirs.seed(7)
    np.testing.assert_array_equal(ours.reset(), theirs.reset())
    rng = np.random.default_rng(0)
    seen = {"terminated": 0, "truncated": 0}
    for _ in range(60):
        actions = rng.integers(0, 2, n)
        obs_a, rew_a, done_a, info_a = ours.step(actions)
        obs_b, rew_b, done_b, info_b = theirs.step(actions)
        np.testing.assert_allclose(obs_a, obs_b, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        for i in np.flatnonzero(done_a):
            np.testing.assert_allclose(info_a[i]["terminal_observation"], info_b[i]["terminal_observation"], atol=1e-6)
            assert info_a[i]["TimeLimit.truncated"] == info_b[i]["TimeLimit.truncated"]
            seen["truncated" if info_a[i]["TimeLimit.truncated"] else "terminated"] += 1
    assert seen["terminated"] > 0 and seen["truncated"] > 0, seen
    assert ours.observation_space == theirs.observation_space and ours.action_space == theirs.action_space


def test_reaching_the_goal_on_the_time_limit_s_step_is_no_truncation_for_sb3():
    """Non-slippery FrozenLake, 6 steps to the goal and a time limit of 6: copy 0 reaches the goal
    on the limit's step (terminated and truncated: SB3 must not bootstrap, TimeLimit.truncated is
    False), copy 1 walks into the wall (truncated alone: True), as SB3's DummyVecEnv reports."""
    kwargs = {"is_slippery": False, "max_episode_steps": 6}
    ours = JrlSB3VecEnv("FrozenLake-v1", 2, **kwargs)
    theirs = make_vec_env("jrl/FrozenLake-v1", n_envs=2, env_kwargs=kwargs)
    for venv in (ours, theirs):
        venv.seed(0)
        venv.reset()
    for t, action in enumerate((1, 1, 2, 2, 1, 2)):  # down, down, right, right, down, right: the goal (state 15)
        actions = np.array([action, 0])  # copy 1 goes left, into the wall
        # SB3 hands Discrete actions as [num_envs] or [num_envs, 1]: both are taken.
        _, reward, done, info = ours.step(actions[:, None] if t % 2 else actions)
        _, their_reward, their_done, their_info = theirs.step(actions)
        np.testing.assert_array_equal(reward, their_reward)
        np.testing.assert_array_equal(done, their_done)
    assert done.tolist() == [True, True] and reward.tolist() == [1.0, 0.0]
    assert [i["TimeLimit.truncated"] for i in info] == [i["TimeLimit.truncated"] for i in their_info] == [False, True]
    assert int(info[0]["terminal_observation"]) == 15 and int(info[1]["terminal_observation"]) == 0
    # SB3 asks the copies' attributes by index, a list of them, or all.
    assert ours.get_attr("num_envs", 1) == [2] and ours.get_attr("num_envs", [0, 1]) == [2, 2]
    assert ours.env_is_wrapped(VecMonitor) == [False, False] and len(ours.get_attr("num_envs")) == 2


def test_ppo_trains_on_the_jrl_vec_env():
    venv = VecMonitor(JrlSB3VecEnv("CartPole-v1", 8))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=2_048)
    assert model.num_timesteps == 2_048
    assert len(model.ep_info_buffer) > 0  # VecMonitor saw whole episodes end
    assert all(1 <= info["l"] <= 500 and info["r"] == info["l"] for info in model.ep_info_buffer)


def test_jrl_vec_env_bad_input():
    venv = JrlSB3VecEnv("CartPole-v1", 2)
    venv.reset()
    with pytest.raises(ValueError, match="actions"):
        venv.step(np.array([0, 2]))
    with pytest.raises(AttributeError, match="share one compiled environment"):
        venv.set_attr("gravity", 3.0)
    with pytest.raises(ValueError, match="unknown environment id"):
        JrlSB3VecEnv("CartPole-v9", 2)
