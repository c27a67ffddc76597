"""jrl vector environments for Stable-Baselines3 (the ``sb3`` extra).

SB3 trains on jrl environments without changes in two ways:

- one environment, or SB3's own ``DummyVecEnv``/``SubprocVecEnv`` of them:
  ``stable_baselines3.DQN("MlpPolicy", "jrl/CartPole-v1")`` or
  ``make_vec_env("jrl/CartPole-v1", n_envs=8)`` (after ``import jrl``);
- ``JrlSB3VecEnv``: SB3's ``VecEnv`` interface over ``JrlVectorEnv``, so all copies step in one
  compiled call instead of one Python ``step`` each.

``JrlSB3VecEnv`` follows SB3's conventions: a finished copy's returned observation already starts
its next episode, ``infos[i]["terminal_observation"]`` holds the one the episode ended on, and
``infos[i]["TimeLimit.truncated"]`` is True when the time limit (not a terminal state) ended it, so
SB3 bootstraps there. Episode statistics (``infos[i]["episode"]``, SB3's ``ep_rew_mean``) come from
SB3's own ``VecMonitor``: ``VecMonitor(JrlSB3VecEnv("CartPole-v1", 8))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jrl._extras import install_hint
from jrl.envs.core import Environment
from jrl.wrappers.gymnasium import JrlVectorEnv

try:
    from stable_baselines3.common.vec_env import VecEnv
except ImportError:  # the constructor raises the ImportError that says how to install it
    VecEnv = object

__all__ = ["JrlSB3VecEnv"]


class JrlSB3VecEnv(VecEnv):
    """``num_envs`` copies of a jrl environment as a Stable-Baselines3 ``VecEnv``.

    Args:
        env: a jrl id (built with ``jrl.make(env, **make_kwargs)``) or a jrl ``Environment``.
        num_envs: the number of copies.
        env_params: the params, with an ``Environment``.
        **make_kwargs: ``jrl.make``'s keyword arguments (``max_episode_steps`` included).

    ``seed(s)`` then ``reset()`` seeds copy ``i`` with ``s + i``, as SB3's ``DummyVecEnv`` does.
    Observations are NumPy ``[num_envs, *obs_shape]``, rewards float32, dones bool.
    """

    def __init__(self, env: str | Environment, num_envs: int = 1, *, env_params: Any = None, **make_kwargs: Any):
        if VecEnv is object:
            raise ImportError(
                "JrlSB3VecEnv needs Stable-Baselines3, which jrl installs only as its 'sb3' extra: "
                f"{install_hint('sb3')}"
            )
        self.vector_env = JrlVectorEnv(env, num_envs, env_params=env_params, autoreset_mode="SameStep", **make_kwargs)
        super().__init__(num_envs, self.vector_env.single_observation_space, self.vector_env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, _ = self.vector_env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions) first")
        actions = np.asarray(self._actions)
        if actions.dtype.kind in "iu" and actions.ndim == 2 and actions.shape[1] == 1:
            actions = actions[:, 0]  # SB3 hands Discrete actions as [num_envs] or [num_envs, 1]
        obs, reward, terminated, truncated, info = self.vector_env.step(actions)
        self._actions = None
        dones = terminated | truncated
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def _indices(self, indices: int | Sequence[int] | None) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices: int | Sequence[int] | None = None) -> list[Any]:
        """The vector environment's attribute, once per index (the copies share their settings)."""
        return [getattr(self.vector_env, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: int | Sequence[int] | None = None) -> None:
        raise AttributeError(
            f"JrlSB3VecEnv copies share one compiled environment; set {attr_name!r} with jrl.make's keywords instead"
        )

    def env_method(
        self, method_name: str, *method_args: Any, indices: int | Sequence[int] | None = None, **method_kwargs: Any
    ) -> list[Any]:
        method = getattr(self.vector_env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: int | Sequence[int] | None = None) -> list[bool]:
        """False: the copies are not Gymnasium environments, so no Gymnasium wrapper is around them."""
        return [False for _ in self._indices(indices)]

    def __repr__(self) -> str:
        return f"JrlSB3VecEnv({self.vector_env.jrl_env.env_id or type(self.vector_env.jrl_env).__name__}, num_envs={self.num_envs})"
