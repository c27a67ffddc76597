"""jrl and Gymnasium (needs ``gymnasium``: the ``gymnasium`` extra).

Two directions:

- ``JrlEnv`` and ``JrlVectorEnv``: a jrl environment *as* a Gymnasium environment (one
  ``gymnasium.Env``, NumPy in and out) and vector environment (``gymnasium.vector.VectorEnv``,
  ``num_envs`` copies stepped by one compiled ``jax.jit(jax.vmap(...))`` call). ``import jrl``
  (with Gymnasium installed) registers every jrl id in Gymnasium's registry as ``jrl/<id>``, with
  this module's functions as entry points, so ``gymnasium.make("jrl/FrozenLake-v1")`` and
  ``gymnasium.make_vec("jrl/CartPole-v1", num_envs=1024)`` build them (``register_gymnasium_envs``
  adds ids registered later).
- ``evaluate_in_gymnasium``: a jrl policy run in Gymnasium's own environment.

Gymnasium stays optional: without it this module imports, and building a wrapper (or calling
``evaluate_in_gymnasium``) raises an ``ImportError`` that says how to install it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl._extras import install_hint
from jrl._validation import check_int
from jrl.envs import registry
from jrl.envs.core import Environment
from jrl.envs.gymnasium_ids import register_in_gymnasium
from jrl.spaces import Box, Discrete, Space, Tokens

try:
    import gymnasium
    from gymnasium.vector import AutoresetMode
    from gymnasium.vector.utils import batch_space

    _Env, _VectorEnv = gymnasium.Env, gymnasium.vector.VectorEnv
except ImportError:  # the wrappers' constructors raise the ImportError that says how to install it
    gymnasium = None
    _Env = _VectorEnv = object

# RENDERED_ENVS is an attribute too, computed on access (module __getattr__); it is left out of
# __all__ so that a star import does not make every registered environment.
__all__ = [
    "JrlEnv",
    "JrlVectorEnv",
    "evaluate_in_gymnasium",
    "gymnasium_space",
    "register_gymnasium_envs",
]


def __getattr__(name: str) -> Any:
    """``RENDERED_ENVS``: the registered ids whose environments draw images (``"rgb_array"`` in
    their ``render_modes``), sorted; a listing for readers, computed on each access by making every
    registered environment (the wrappers ask each environment's ``render_modes``, not this list)."""
    if name == "RENDERED_ENVS":
        return tuple(i for i in registry.registered_envs() if "rgb_array" in registry.make(i)[0].render_modes)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _missing_gymnasium(what: str) -> ImportError:
    return ImportError(
        f"{what} needs Gymnasium, which jrl installs only as its 'gymnasium' extra: {install_hint('gymnasium')}"
    )


def _require_gymnasium(what: str) -> None:
    if gymnasium is None:
        raise _missing_gymnasium(what)


# ------------------------------------------------------------------------------------------------
# Spaces
# ------------------------------------------------------------------------------------------------


def gymnasium_space(space: Space) -> Any:
    """The Gymnasium space of a jrl space, exactly: ``Discrete(n)`` -> ``spaces.Discrete(n)`` (int64,
    Gymnasium's own), ``Box`` -> ``spaces.Box`` with the same bounds, shape and float dtype,
    ``Tokens(n, L)`` -> ``spaces.MultiDiscrete([n] * L, dtype=np.int32)`` (int32 like jrl's tokens)."""
    _require_gymnasium("gymnasium_space")
    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(int(space.n))
    if isinstance(space, Box):
        dtype = np.dtype(space.dtype)
        return gymnasium.spaces.Box(
            np.asarray(space.low, dtype), np.asarray(space.high, dtype), tuple(space.shape), dtype
        )
    if isinstance(space, Tokens):
        return gymnasium.spaces.MultiDiscrete(np.full(space.shape, int(space.n)), dtype=np.int32)
    raise TypeError(f"no Gymnasium space for {space!r}: jrl spaces are Discrete, Box and Tokens")


def _host_dtype(space: Space) -> np.dtype:
    """The dtype the wrappers hand out: the Gymnasium space's (int64 for ``Discrete``)."""
    return np.dtype(np.int64) if isinstance(space, Discrete) else np.dtype(space.dtype)


def _action_problem(space: Space, action: Any, batch: tuple[int, ...] = ()) -> tuple[str | None, np.ndarray | None]:
    """``(why action is not an element of space (batched over batch), None)`` or ``(None, action
    as the jrl dtype)``. Host side, NumPy only: a bad action never reaches JAX. A ``Box`` action
    beyond the bounds passes, as in Gymnasium, whose environments clip it in ``step`` (jrl's
    ``Pendulum-v1``, ``MountainCarContinuous-v0`` too); one holding NaN does not."""
    shape = batch + tuple(space.shape)
    if isinstance(space, (Discrete, Tokens)):
        integer = isinstance(action, (int, np.integer)) or (
            isinstance(action, np.ndarray) and action.dtype.kind in "iub"
        )
        if not batch and isinstance(space, Discrete) and not integer:
            kind = f"{type(action).__name__}" + (f" of dtype {action.dtype}" if isinstance(action, np.ndarray) else "")
            return f"must be an int, a NumPy integer or a 0-d integer array, got {kind} {action!r}", None
        arr = np.asarray(action) if not isinstance(action, np.ndarray) else action
        if arr.dtype.kind not in "iub":
            return f"must hold integers, got dtype {arr.dtype}", None
        if arr.shape != shape:
            return f"must have shape {shape}, got shape {arr.shape}", None
        n = int(space.n)
        bad = np.flatnonzero((arr < 0) | (arr >= n)) if arr.size else np.array([], int)
        if bad.size:
            where = f" (entry {tuple(int(i) for i in np.unravel_index(bad[0], arr.shape))})" if arr.ndim else ""
            return f"must be in 0..{n - 1}, got {arr.ravel()[bad[0]].item()!r}{where}", None
        return None, arr.astype(np.int32)
    arr = np.asarray(action)
    if arr.dtype.kind not in "iuf":
        return f"must be a real array, got dtype {arr.dtype}", None
    if arr.shape != shape:
        return f"must have shape {shape}, got shape {arr.shape}", None
    arr = arr.astype(space.dtype)
    if np.any(np.isnan(arr)):
        return f"must be real numbers, got NaN in {arr}", None
    return None, arr


# ------------------------------------------------------------------------------------------------
# Keys: Gymnasium's integer seeds as jax.random.key(seed)
# ------------------------------------------------------------------------------------------------


@jax.jit
def _seed_keys(low: jax.Array, high: jax.Array) -> jax.Array:
    """``jax.random.key(seed)`` for each ``seed = high * 2**32 + low``: with 64-bit types off, JAX
    keeps only a seed's low 32 bits, so a nonzero high word is folded in (seeds below ``2**32``
    give exactly ``jax.random.key(seed)``)."""
    keys = jax.vmap(jax.random.key)(low)
    return jnp.where(high > 0, jax.vmap(jax.random.fold_in)(keys, high), keys)


def _keys_from_seeds(seeds: list[int]) -> jax.Array:
    words = np.asarray(seeds, dtype=np.uint64)
    return _seed_keys((words & np.uint64(0xFFFFFFFF)).astype(np.uint32), (words >> np.uint64(32)).astype(np.uint32))


def _check_seed(seed: Any) -> int:
    """Gymnasium's rule (a non-negative Python int), below ``2**64``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise gymnasium.error.Error(f"Seed must be a python integer in [0, 2**64), actual type: {type(seed)}, {seed!r}")
    return seed


def _fresh_seeds(n: int) -> list[int]:
    """Seeds from the operating system's entropy (Gymnasium's reset without a seed)."""
    return [int(s) for s in np.random.SeedSequence().generate_state(n, np.uint64)]


# ------------------------------------------------------------------------------------------------
# Compiled functions, one set per (equal) environment
# ------------------------------------------------------------------------------------------------


def _reset_at(env: Environment, key: jax.Array, count: jax.Array, params: Any) -> tuple[jax.Array, Any]:
    """``reset_env`` keyed by the ``count``-th draw of the stream ``key``: ``fold_in(key, count)``."""
    return env.reset_env(jax.random.fold_in(key, count), params)


def _step_at(env: Environment, key: jax.Array, count: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
    """``step_env`` (no auto-reset) keyed by ``fold_in(key, count)``."""
    return env.step_env(jax.random.fold_in(key, count), state, action, params)


@functools.cache
def _single_functions(env: Environment) -> tuple[Callable, Callable]:
    """Jitted ``reset(key, count, params)`` and ``step(key, count, state, action, params)`` of one
    environment (cached: equal environments share them, and params are arguments, so compiled once).

    Every reset and step of a wrapper takes the next draw of its key stream, ``fold_in(key, count)``
    with ``count = 0, 1, 2, ...`` from the last seeding: one hash per draw, and none where the
    environment ignores its key (CartPole's step), since the compiler drops an unused ``fold_in``.
    """
    return jax.jit(functools.partial(_reset_at, env)), jax.jit(functools.partial(_step_at, env))


def _flags(reward: jax.Array, terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """float32 ``[3, N]``: reward, terminated, truncated in one array (one transfer to the host
    instead of three: each costs tens of microseconds, as much as stepping a thousand CartPoles)."""
    return jnp.stack([reward.astype(jnp.float32), terminated.astype(jnp.float32), truncated.astype(jnp.float32)])


def _select(mask: jax.Array, a: Any, b: Any) -> Any:
    """``a`` where ``mask`` (``[N]``), ``b`` elsewhere, leaf by leaf (leaves ``[N, ...]``)."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y), a, b)


@functools.cache
def _vector_functions(env: Environment) -> dict[str, Callable]:
    """Jitted batched functions (params shared by every copy). Copy ``i`` draws from its own key
    stream exactly as a ``JrlEnv`` does (``_single_functions``), so copy ``i`` seeded ``seed + i``
    replays a ``JrlEnv`` seeded ``seed + i`` (stepped with the same actions, ``reset()`` where an
    episode ends). The step functions return ``(counts, state, observations, flags, info)``
    (``_flags``; in same-step mode the observations are ``[2, N, ...]``: the returned ones, then
    the final ones).
    """
    reset_all = jax.vmap(functools.partial(_reset_at, env), in_axes=(0, 0, None))
    step_all = jax.vmap(functools.partial(_step_at, env), in_axes=(0, 0, 0, 0, None))

    def reset(keys, counts, params):
        obs, state = reset_all(keys, counts, params)
        return counts + 1, obs, state

    def reset_masked(keys, counts, mask, state, params):
        """``reset`` where ``mask``, the old state elsewhere (observations: the fresh ones)."""
        obs, new_state = reset_all(keys, counts, params)
        return jnp.where(mask, counts + 1, counts), obs, _select(mask, new_state, state)

    def reset_where(keys, counts, mask, obs, state, params):
        """Copies where ``mask`` start a new episode, keyed by their next draw; the rest keep
        ``(obs, state)``. Episodes end in few copies per step, so when at most an eighth of them
        reset, only those are computed (gathered, reset, scattered back): a reset costs as much
        as a step (CartPole draws its start state), and most would be thrown away."""
        n = mask.shape[0]
        budget = max(1, n // 8)

        def few(_):
            index = jnp.nonzero(mask, size=budget, fill_value=n)[0]
            safe = jnp.minimum(index, n - 1)
            new_obs, new_state = reset_all(keys[safe], counts[safe], params)
            put = lambda full, part: full.at[index].set(part, mode="drop")  # noqa: E731
            return put(obs, new_obs), jax.tree_util.tree_map(put, state, new_state)

        def every(_):
            subkeys = jax.vmap(jax.random.fold_in)(keys, counts)
            new_obs, new_state = jax.vmap(env.reset_where, in_axes=(0, None, 0))(subkeys, params, mask)
            return _select(mask, new_obs, obs), _select(mask, new_state, state)

        obs, state = jax.lax.cond(jnp.sum(mask) <= budget, few, every, None)
        return counts + mask, obs, state

    def same_step(keys, counts, state, actions, params):
        final_obs, state, reward, terminated, truncated, info = step_all(keys, counts, state, actions, params)
        done = jnp.logical_or(terminated, truncated)
        counts, obs, state = reset_where(keys, counts + 1, done, final_obs, state, params)
        return counts, state, jnp.stack([obs, final_obs]), _flags(reward, terminated, truncated), info

    def next_step(keys, counts, state, reset_now, actions, params):
        # A copy that resets now takes this call's draw for its reset, as JrlEnv.reset() would.
        obs, state, reward, terminated, truncated, info = step_all(keys, counts, state, actions, params)
        _, obs, state = reset_where(keys, counts, reset_now, obs, state, params)
        reward = jnp.where(reset_now, jnp.zeros_like(reward), reward)
        not_reset = jnp.logical_not(reset_now)
        return counts + 1, state, obs, _flags(reward, terminated & not_reset, truncated & not_reset), info

    return {
        "reset": jax.jit(reset),
        "reset_masked": jax.jit(reset_masked),
        "same_step": jax.jit(same_step),
        "next_step": jax.jit(next_step),
    }


# ------------------------------------------------------------------------------------------------
# Rendering: the environment draws (env.render, env.render_text); the wrappers add Gymnasium's modes
# ------------------------------------------------------------------------------------------------


def _render_modes(env: Environment) -> list[str]:
    """Gymnasium's render modes of a jrl environment: ``"human"`` and ``"rgb_array"`` where it draws
    images, ``"ansi"`` where it draws text (``env.render_modes``)."""
    drawn = env.render_modes
    return (["human", "rgb_array"] if "rgb_array" in drawn else []) + (["ansi"] if "ansi" in drawn else [])


def _check_render_mode(render_mode: Any, modes: list[str], name: str) -> None:
    if render_mode is None or render_mode in modes:
        return
    if not modes:
        raise ValueError(
            f"{name} does not render (env.render_modes is empty), so render_mode must be None, got {render_mode!r}"
        )
    raise ValueError(f"{name}: render_mode must be None or one of {modes}, got {render_mode!r}")


class _Window:
    """``render_mode="human"``: frames shown in a pygame window at ``fps`` frames per second, as
    Gymnasium's own environments show theirs (pygame comes with the ``gymnasium`` extra). The
    window opens on the first frame."""

    def __init__(self, title: str, fps: int):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on stdout otherwise
        try:
            import pygame
        except ImportError as err:
            raise ImportError(
                f"{title}: render_mode='human' shows frames in a pygame window, and pygame is not installed; "
                f"jrl installs it with its 'gymnasium' extra: {install_hint('gymnasium')}"
            ) from err
        self._pygame, self._title, self._fps = pygame, title, fps
        self._screen = self._clock = None

    def show(self, frame: np.ndarray) -> None:
        """Draw ``frame`` (``uint8 [H, W, 3]``), then wait out the rest of this frame's ``1 / fps``."""
        pygame = self._pygame
        if self._screen is None:
            pygame.display.init()
            pygame.display.set_caption(self._title)
            self._screen = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
            self._clock = pygame.time.Clock()
        pygame.surfarray.blit_array(self._screen, frame.swapaxes(0, 1))  # pygame indexes [x, y]
        pygame.event.pump()  # keeps the window responsive
        self._clock.tick(self._fps)
        pygame.display.flip()

    def close(self) -> None:
        if self._screen is not None:
            self._pygame.display.quit()
            self._screen = self._clock = None


# ------------------------------------------------------------------------------------------------
# The wrappers
# ------------------------------------------------------------------------------------------------


def _build(env: Any, env_params: Any, make_kwargs: dict, what: str) -> tuple[Environment, Any, str | None]:
    """``(env, params, id)`` from a jrl id (``jrl.make(id, **make_kwargs)``) or an environment."""
    if isinstance(env, str):
        if env_params is not None:
            raise TypeError(f"{what}: env_params go with an Environment; an id takes jrl.make's keyword arguments")
        built, params = registry.make(env, **make_kwargs)
        return built, params, env
    if isinstance(env, Environment):
        if make_kwargs:
            raise TypeError(
                f"{what}: keyword arguments {sorted(make_kwargs)} build an environment from its id; "
                "with an Environment pass env_params instead"
            )
        return env, env.default_params if env_params is None else env_params, None
    raise TypeError(f"{what} takes a jrl id (str) or a jrl Environment, got {type(env).__name__} {env!r}")


def _to_host_obs(obs: np.ndarray, dtype: np.dtype) -> Any:
    """A writable NumPy copy of the space's dtype (``np.int64`` scalars for ``Discrete``)."""
    obs = np.array(obs, dtype=dtype)
    return obs[()] if obs.ndim == 0 else obs


class JrlEnv(_Env):
    """One jrl environment as a ``gymnasium.Env``: NumPy in and out.

    Args:
        env: a jrl id (built with ``jrl.make(env, **make_kwargs)``) or a jrl ``Environment``.
        env_params: the params, with an ``Environment`` (default: its ``default_params``).
        render_mode: ``None``, or one of ``metadata["render_modes"]`` for an environment that
            draws (``env.render_modes``): ``"rgb_array"`` (``render()`` returns ``uint8 [H, W, 3]``),
            ``"human"`` (each ``reset`` and ``step`` shows the frame in a pygame window at
            ``metadata["render_fps"]``), ``"ansi"`` for the gridworlds (``render()`` returns
            Gymnasium's text picture).
        **make_kwargs: ``jrl.make``'s keyword arguments (Gymnasium's, plus ``max_episode_steps``).

    ``reset(seed=s)`` keys the episode with ``jax.random.key(s)``; ``reset()`` continues the key
    stream (the first one draws a seed from the system's entropy). ``step(action)`` is
    ``env.step_env``: no auto-reset, as a Gymnasium environment; the time limit is the params'
    (``gymnasium.make("jrl/<id>")`` uses Gymnasium's ``TimeLimit`` instead). Observations are NumPy
    values of the observation space's dtype (``np.int64`` for ``Discrete``), rewards Python floats.
    A bad action raises ``ValueError`` before any JAX code runs; ``step`` before ``reset`` raises
    ``gymnasium.error.ResetNeeded``. ``jrl_env``, ``jrl_params`` and ``jrl_state`` hold the jrl side.
    """

    def __init__(
        self, env: str | Environment, env_params: Any = None, *, render_mode: str | None = None, **make_kwargs
    ):
        _require_gymnasium("JrlEnv")
        self.jrl_env, self.jrl_params, _ = _build(env, env_params, make_kwargs, "JrlEnv")
        self._name = self.jrl_env.env_id or type(self.jrl_env).__name__
        modes = _render_modes(self.jrl_env)
        _check_render_mode(render_mode, modes, self._name)
        self.render_mode = render_mode
        self.metadata = {"render_modes": modes, "render_fps": self.jrl_env.render_fps}
        self._window = _Window(f"jrl/{self._name}", self.jrl_env.render_fps) if render_mode == "human" else None
        self._last_action = None  # shown by the "ansi" text of the gridworlds whose Gymnasium text shows it
        self._jrl_observation_space = self.jrl_env.observation_space(self.jrl_params)
        self._jrl_action_space = self.jrl_env.action_space(self.jrl_params)
        self.observation_space = gymnasium_space(self._jrl_observation_space)
        self.action_space = gymnasium_space(self._jrl_action_space)
        self._obs_dtype = _host_dtype(self._jrl_observation_space)
        self._reset_fn, self._step_fn = _single_functions(self.jrl_env)
        self._key, self._count = None, 0  # the key stream and the next draw
        self.jrl_state = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)  # seeds np_random and checks the seed as Gymnasium does
        if seed is not None or self._key is None:
            seed = _fresh_seeds(1)[0] if seed is None else _check_seed(seed)
            self._key, self._count = _keys_from_seeds([seed])[0], 0
        obs, self.jrl_state = self._reset_fn(self._key, np.uint32(self._count), self.jrl_params)
        self._count += 1
        self._last_action = None
        if self.render_mode == "human":
            self.render()
        return _to_host_obs(jax.device_get(obs), self._obs_dtype), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self.jrl_state is None:
            raise gymnasium.error.ResetNeeded(f"{self._name}: cannot call step() before calling reset()")
        problem, action = _action_problem(self._jrl_action_space, action)
        if problem:
            raise ValueError(f"{self._name}: the action {problem}; the action space is {self.action_space}")
        out = self._step_fn(self._key, np.uint32(self._count), self.jrl_state, action, self.jrl_params)
        obs, self.jrl_state, reward, terminated, truncated, info = out
        self._count += 1
        self._last_action = int(action) if np.ndim(action) == 0 else None
        if self.render_mode == "human":
            self.render()
        obs, reward, terminated, truncated, info = jax.device_get((obs, reward, terminated, truncated, info))
        return _to_host_obs(obs, self._obs_dtype), float(reward), bool(terminated), bool(truncated), dict(info)

    def render(self) -> np.ndarray | str | None:
        """By ``render_mode``: ``"rgb_array"`` an ``uint8 [H, W, 3]`` image, ``"ansi"`` a string,
        ``"human"`` ``None`` (the frame goes to the window); ``None`` (and Gymnasium's warning)
        without a render mode."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"You are calling render method without specifying any render mode. You can specify the "
                f"render_mode at initialization, e.g. JrlEnv({self._name!r}, render_mode='rgb_array')"
            )
            return None
        if self.jrl_state is None:
            raise gymnasium.error.ResetNeeded(f"{self._name}: cannot call render() before calling reset()")
        state = jax.device_get(self.jrl_state)
        if self.render_mode == "ansi":
            return self.jrl_env.render_text(state, self.jrl_params, self._last_action)
        frame = self.jrl_env.render(state, self.jrl_params)
        if self.render_mode == "human":
            self._window.show(frame)
            return None
        return frame

    def close(self) -> None:
        """Close the ``"human"`` window, if one is open."""
        if self._window is not None:
            self._window.close()

    def __repr__(self) -> str:
        return f"JrlEnv({self._name})"


def _vector_info(info: dict, kept: np.ndarray) -> dict:
    """Gymnasium's vector info layout of batched ``info`` where ``kept``: ``info[k]`` (zeros elsewhere)
    and the mask ``info["_" + k]``; nested dicts recurse."""
    out = {}
    if not kept.any():
        return out
    for k, v in info.items():
        if isinstance(v, dict):
            out[k] = _vector_info(v, kept)
        else:
            v = np.array(v)
            v[~kept] = 0
            out[k] = v
        out["_" + k] = kept.copy()
    return out


class JrlVectorEnv(_VectorEnv):
    """``num_envs`` copies of a jrl environment as a ``gymnasium.vector.VectorEnv``, stepped by one
    compiled call (``jax.jit(jax.vmap(...))``), NumPy in and out.

    Args:
        env: a jrl id (built with ``jrl.make(env, **make_kwargs)``) or a jrl ``Environment``.
        num_envs: the number of copies.
        env_params: the params (shared by every copy), with an ``Environment``.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` (default: jrl's own auto-reset, the returned
            observation of a finished copy already starts its next episode and
            ``info["final_obs"]`` holds the last one), ``NEXT_STEP`` (Gymnasium's default: the step
            after the end resets, with reward 0 and the action ignored) or ``DISABLED`` (reset
            finished copies yourself with ``reset(options={"reset_mask": mask})``); the enum or its
            value string.
        render_mode: ``None`` or ``"rgb_array"`` for an environment that draws images
            (``render()`` returns one per copy; Gymnasium's ``wrappers.vector.HumanRendering``,
            which needs opencv, shows them in a window).
        **make_kwargs: ``jrl.make``'s keyword arguments; ``max_episode_steps`` is the time limit.

    ``reset(seed=s)`` seeds copy ``i`` with ``s + i`` (a list gives each its own; ``None`` entries
    continue their key stream), so copy ``i`` replays ``JrlEnv`` reset with ``s + i``. Observations
    are batched in ``observation_space = batch_space(single_observation_space, num_envs)``, rewards
    float64, terminations and truncations bool, ``info`` in Gymnasium's vector layout.
    """

    def __init__(
        self,
        env: str | Environment,
        num_envs: int = 1,
        *,
        env_params: Any = None,
        autoreset_mode: Any = None,
        render_mode: str | None = None,
        **make_kwargs,
    ):
        _require_gymnasium("JrlVectorEnv")
        self.num_envs = check_int("num_envs", num_envs, 1)
        if autoreset_mode is None:
            autoreset_mode = AutoresetMode.SAME_STEP
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(
                f"autoreset_mode must be one of {[m for m in AutoresetMode]} or their values "
                f"{[m.value for m in AutoresetMode]}, got {autoreset_mode!r}"
            ) from None
        self.jrl_env, self.jrl_params, _ = _build(env, env_params, make_kwargs, "JrlVectorEnv")
        self._name = self.jrl_env.env_id or type(self.jrl_env).__name__
        modes = ["rgb_array"] if "rgb_array" in self.jrl_env.render_modes else []
        if render_mode in ("human", "ansi") and modes:
            raise ValueError(
                f"{self._name}: JrlVectorEnv renders 'rgb_array' only (one image per copy), got {render_mode!r}; "
                f"to watch an episode, make one environment: gymnasium.make('jrl/...', render_mode={render_mode!r}) "
                "or JrlEnv(...); Gymnasium's gymnasium.wrappers.vector.HumanRendering (it needs opencv) shows "
                "every copy of a JrlVectorEnv(..., render_mode='rgb_array')"
            )
        _check_render_mode(render_mode, modes, self._name)
        self.render_mode = render_mode
        self.metadata = {
            "render_modes": modes,
            "render_fps": self.jrl_env.render_fps,
            "autoreset_mode": self.autoreset_mode,
        }
        self._jrl_observation_space = self.jrl_env.observation_space(self.jrl_params)
        self._jrl_action_space = self.jrl_env.action_space(self.jrl_params)
        self.single_observation_space = gymnasium_space(self._jrl_observation_space)
        self.single_action_space = gymnasium_space(self._jrl_action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs_dtype = _host_dtype(self._jrl_observation_space)
        self._functions = _vector_functions(self.jrl_env)
        self._keys = self._counts = self._obs = self.jrl_state = None  # key streams, next draws
        self._pending = np.zeros(self.num_envs, bool)  # finished copies that NEXT_STEP resets next

    def _seed_list(self, seed: Any) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int) and not isinstance(seed, bool):
            _check_seed(seed)
            return [seed + i for i in range(self.num_envs)]
        if not isinstance(seed, (list, tuple)) or len(seed) != self.num_envs:
            raise ValueError(
                f"{self._name}: seed must be None, an int or a list of {self.num_envs} ints or None, got {seed!r}"
            )
        return [None if s is None else _check_seed(s) for s in seed]

    def reset(self, *, seed: Any = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        seeds = self._seed_list(seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            if not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,)):
                raise ValueError(f"options['reset_mask'] must be a bool NumPy array of shape ({self.num_envs},)")
            if not mask.any():
                raise ValueError("options['reset_mask'] must select at least one environment")
            if self._keys is None and not mask.all():
                raise ValueError(f"{self._name}: the first reset resets every environment (reset_mask all True)")
        if self._keys is None:  # the first reset: every copy gets a key stream
            fresh = iter(_fresh_seeds(sum(s is None for s in seeds)))
            keys = _keys_from_seeds([next(fresh) if s is None else s for s in seeds])
            counts = jnp.zeros(self.num_envs, jnp.uint32)
        else:  # copies given a seed (and reset) start a new stream; the rest continue theirs
            reseed = np.array([s is not None for s in seeds]) & (True if mask is None else mask)
            keys, counts = self._keys, self._counts
            if reseed.any():
                keys = jnp.where(reseed, _keys_from_seeds([s or 0 for s in seeds]), keys)
                counts = jnp.where(reseed, jnp.uint32(0), counts)
        self._keys = keys
        if mask is None or self._obs is None:
            self._counts, obs, self.jrl_state = self._functions["reset"](keys, counts, self.jrl_params)
            self._obs = np.array(obs, dtype=self._obs_dtype)
            self._pending[:] = False
        else:
            self._counts, obs, self.jrl_state = self._functions["reset_masked"](
                keys, counts, mask, self.jrl_state, self.jrl_params
            )
            self._obs[mask] = np.asarray(obs)[mask]
            self._pending[mask] = False
        return self._obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if self.jrl_state is None:
            raise gymnasium.error.ResetNeeded(f"{self._name}: cannot call step() before calling reset()")
        problem, actions = _action_problem(self._jrl_action_space, actions, (self.num_envs,))
        if problem:
            raise ValueError(f"{self._name}: the actions {problem}; the action space is {self.action_space}")
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            self._counts, self.jrl_state, obs, flags, step_info = self._functions["same_step"](
                self._keys, self._counts, self.jrl_state, actions, self.jrl_params
            )
            obs, final_obs = np.array(obs, dtype=self._obs_dtype)  # the returned ones, the final ones
            reward, terminated, truncated = self._unpack(flags)
            done = terminated | truncated
            info = _vector_info(step_info, ~done) if step_info else {}
            if done.any():
                final = np.full(self.num_envs, None, dtype=object)
                for i in np.flatnonzero(done):
                    final[i] = final_obs[i]
                info |= {"final_obs": final, "_final_obs": done, "final_info": _vector_info(step_info, done)}
                info["_final_info"] = done.copy()
        else:
            if self.autoreset_mode == AutoresetMode.DISABLED and self._pending.any():
                raise ValueError(
                    f"{self._name}: autoreset_mode is DISABLED and environments {np.flatnonzero(self._pending).tolist()} "
                    "have ended: reset them first with reset(options={'reset_mask': mask})"
                )
            self._counts, self.jrl_state, obs, flags, step_info = self._functions["next_step"](
                self._keys, self._counts, self.jrl_state, self._pending, actions, self.jrl_params
            )
            obs = np.array(obs, dtype=self._obs_dtype)
            reward, terminated, truncated = self._unpack(flags)
            info = _vector_info(step_info, ~self._pending) if step_info else {}
            self._pending = terminated | truncated
        self._obs = obs
        return obs.copy(), reward, terminated, truncated, info

    @staticmethod
    def _unpack(flags: jax.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flags = np.asarray(flags)
        return flags[0].astype(np.float64), flags[1] > 0.5, flags[2] > 0.5

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One ``uint8 [H, W, 3]`` image per copy with ``render_mode="rgb_array"``, else ``None``."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"{self._name}: render() without a render_mode (JrlVectorEnv(..., render_mode='rgb_array'))"
            )
            return None
        if self.jrl_state is None:
            raise gymnasium.error.ResetNeeded(f"{self._name}: cannot call render() before calling reset()")
        state = jax.device_get(self.jrl_state)
        copy = lambda i: jax.tree_util.tree_map(lambda x: x[i], state)  # noqa: E731
        return tuple(self.jrl_env.render(copy(i), self.jrl_params) for i in range(self.num_envs))

    def __repr__(self) -> str:
        return f"JrlVectorEnv({self._name}, num_envs={self.num_envs})"


# ------------------------------------------------------------------------------------------------
# Gymnasium's registry
# ------------------------------------------------------------------------------------------------


def _make_single(jrl_id: str, **kwargs: Any) -> JrlEnv:
    """``gymnasium.make``'s entry point. Gymnasium's ``TimeLimit`` wrapper applies the time limit
    (``max_episode_steps`` of ``gymnasium.make`` or of the registration, ``-1`` for none), so the
    jrl environment runs without its own, unless the id leaves the limit to its params."""
    if registry._REGISTRY[jrl_id].max_episode_steps is not None:
        kwargs["max_episode_steps"] = -1
    return JrlEnv(jrl_id, **kwargs)


def _make_vector(jrl_id: str, num_envs: int = 1, **kwargs: Any) -> JrlVectorEnv:
    """``gymnasium.make_vec``'s vector entry point (it passes the registered ``max_episode_steps``)."""
    return JrlVectorEnv(jrl_id, num_envs, **kwargs)


def register_gymnasium_envs() -> list[str]:
    """Register every jrl id (``jrl.registered_envs()``) in Gymnasium's registry as ``jrl/<id>``
    (``jrl/ns.Name-vN`` for a jrl id with its own namespace), with the jrl time limit as Gymnasium's
    ``max_episode_steps``, ``JrlEnv`` as the entry point and ``JrlVectorEnv`` as the vector entry
    point. ``import jrl`` does this for the ids it has (``jrl.envs.gymnasium_ids``); call it again
    after ``jrl.register`` to add new ids. Returns the Gymnasium ids of every jrl environment."""
    _require_gymnasium("register_gymnasium_envs")
    return register_in_gymnasium()


if gymnasium is not None:
    register_gymnasium_envs()


# ------------------------------------------------------------------------------------------------
# A jrl policy in Gymnasium's own environment
# ------------------------------------------------------------------------------------------------


def evaluate_in_gymnasium(
    policy: Callable[[Any, jax.Array, jax.Array], jax.Array],
    policy_params: Any,
    env_id: str,
    num_episodes: int = 100,
    seed: int = 0,
    **make_kwargs: Any,
) -> np.ndarray:
    """Undiscounted returns of ``num_episodes`` episodes of ``gymnasium.make(env_id, **make_kwargs)``
    driven by ``policy(policy_params, obs, key)`` (the same signature ``jrl.evaluate`` takes):
    float64 ``[num_episodes]``. Episode ``i`` runs in its own environment instance, reset with seed
    ``seed + i``; all episodes advance together, one batched (vmapped, compiled) policy call per
    step, until each has ended. The policy's keys come from ``jax.random.key(seed)``. A check that
    what was learned in jrl holds in the reference. The policy returns what ``jrl.evaluate``
    takes: an integer for a ``Discrete`` action space (handed to Gymnasium as an ``int``), an
    array of the action space's shape for a ``Box`` (handed over as a NumPy array of its dtype,
    e.g. float32 ``[1]`` for ``Pendulum-v1``; beyond the bounds, Gymnasium's environment clips it).
    """
    try:
        import gymnasium
    except ImportError as err:
        raise _missing_gymnasium("evaluate_in_gymnasium") from err
    check_int("num_episodes", num_episodes, 1)
    check_int("seed", seed, 0)
    # One policy call for all episodes per step, instead of one per episode-step: a compiled call
    # costs tens of microseconds to dispatch, more than a classic-control step in Gymnasium.
    act = jax.jit(jax.vmap(policy, in_axes=(None, 0, 0)))
    envs = [gymnasium.make(env_id, **make_kwargs) for _ in range(num_episodes)]
    space = envs[0].action_space
    if isinstance(space, gymnasium.spaces.Discrete):
        as_action = int
    else:  # a Box: one array of its shape and dtype (Gymnasium's Pendulum-v1 takes float32 [1])
        as_action = lambda a: np.asarray(a, space.dtype).reshape(space.shape)  # noqa: E731
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    key = jax.random.key(seed)
    returns = np.zeros(num_episodes)
    running = np.ones(num_episodes, dtype=bool)
    while running.any():
        key, step_key = jax.random.split(key)
        # Ended episodes keep their last observation; their actions are computed and ignored.
        actions = np.asarray(act(policy_params, jnp.asarray(obs), jax.random.split(step_key, num_episodes)))
        for i in np.flatnonzero(running):
            obs[i], reward, terminated, truncated, _ = envs[i].step(as_action(actions[i]))
            returns[i] += float(reward)
            running[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns
