"""The environment interface and its one auto-reset.

Every environment is a frozen dataclass holding only *static* settings (shapes, sizes); every
dynamic setting lives in its ``params`` pytree (a ``flax.struct.dataclass``), so ``vmap`` can
run environments with different parameters side by side.

Conventions (Gymnasium's, made pure):
- ``reset(key, params) -> (obs, state)``.
- ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
- ``terminated``: the episode reached a true terminal state, do not bootstrap.
- ``truncated``: the time limit ``params.max_steps_in_episode`` was reached (Gymnasium's
  ``TimeLimit``: it fires on the step that makes the elapsed count equal the limit, whether or not
  that step also terminates), bootstrap from ``info["final_observation"]``.
- ``step`` auto-resets in the same step: when ``terminated | truncated`` the returned
  ``obs``/``state`` already belong to a fresh episode. ``info["final_observation"]`` is the
  observation the transition actually led to, on every step, so shapes never change.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jrl._validation import check_key
from jrl.spaces import Box, Discrete, Space

__all__ = ["NO_TIME_LIMIT", "Environment", "GridLayout", "auto_reset", "is_concrete", "uniform_in"]

#: ``max_steps_in_episode`` of an environment that Gymnasium registers without a time limit
#: (the largest int32: the limit never fires in practice).
NO_TIME_LIMIT = 2**31 - 1


def is_concrete(*xs: Any) -> bool:
    """True when no leaf of ``xs`` is a JAX tracer (so host-side checks can read the values)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def auto_reset(done: jax.Array, stepped: tuple[Any, Any], reset: tuple[Any, Any]) -> tuple[Any, Any]:
    """Select the reset ``(obs, state)`` where ``done``, the stepped one elsewhere.

    Works for one environment (``done`` a scalar) and under ``vmap``.
    """
    return jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset, stepped)


@jax.jit
def uniform_in(u: jax.Array, low: Any, high: Any) -> jax.Array:
    """``u`` ~ U[0, 1) mapped to U[low, high) exactly as ``jax.random.uniform(key, shape, float32,
    low, high)`` maps its own draw: ``max(low, u * (high - low) + low)`` in float32. So
    ``uniform_in(jax.random.uniform(key, shape), low, high)`` is bit for bit
    ``jax.random.uniform(key, shape, jnp.float32, low, high)``: an environment's ``reset_env`` and
    its ``reset_from_uniform`` draw the same start states from the same uniforms.

    Jitted, as JAX's own is: XLA on CPU contracts ``u * (high - low) + low`` into one fused
    multiply-add inside a compiled function, and op-by-op (eager) arithmetic would round twice, so
    an eager reset would differ from a compiled one in the last bit."""
    low = jnp.asarray(low, jnp.float32)
    high = jnp.asarray(high, jnp.float32)
    return jnp.maximum(low, u * (high - low) + low)


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """A gridworld's map, as pictures of its tabular values draw it (``jrl.experiment.plots``).

    Attributes:
        rows: the map, one character a cell, ``[nrow]`` strings of ``ncol``; state
            ``row * ncol + col`` is the cell ``rows[row][col]``.
        arrows: ``(dx, dy)`` of each action ``[A]`` in image coordinates (x right, y down).
        stops: the letters of the cells where no action is taken (holes, cliff, goal).
    """

    rows: tuple[str, ...]
    arrows: tuple[tuple[int, int], ...]
    stops: str

    def __post_init__(self) -> None:
        rows = tuple(self.rows)
        if not rows or not all(isinstance(r, str) and r and len(r) == len(rows[0]) for r in rows):
            raise ValueError(f"GridLayout: rows must be non-empty strings of one length, got {self.rows!r}")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "arrows", tuple(tuple(a) for a in self.arrows))


_SIGNATURES = {
    "reset": ("key", "params"),
    "reset_env": ("key", "params"),
    "step": ("key", "state", "action", "params"),
    "step_env": ("key", "state", "action", "params"),
}
_GYMNASIUM_HINT = {
    "reset": "obs, state = env.reset(jax.random.key(seed), env_params)",
    "reset_env": "obs, state = env.reset_env(jax.random.key(seed), env_params)",
    "step": "obs, state, reward, terminated, truncated, info = env.step(key, state, action, env_params)",
    "step_env": "obs, state, reward, terminated, truncated, info = env.step_env(key, state, action, env_params)",
}


def _checked(method: Callable) -> Callable:
    """Wrap ``reset``/``reset_env``/``step``/``step_env`` with the interface checks.

    The checks read only Python values, dtypes and shapes, so they run once per trace under
    ``jit`` and cost nothing in compiled code: a Gymnasium-style call (``env.reset(seed=0)``,
    ``env.step(action)``), an int where a key belongs, or an action of the wrong shape or dtype
    get an error that says what jrl expects instead of a JAX error deep inside the step.
    """
    name = method.__name__
    names = _SIGNATURES[name]

    @functools.wraps(method)
    def checked(self: Environment, *args: Any, **kwargs: Any) -> Any:
        unknown = sorted(set(kwargs) - set(names))
        if unknown or len(args) + len(kwargs) != len(names) or set(names[: len(args)]) & set(kwargs):
            got = ", ".join([f"{len(args)} positional"] + [f"{k}=" for k in kwargs])
            gymnasium = (
                " (that is Gymnasium's interface)"
                if {"seed", "options"} & set(kwargs) or (name.startswith("step") and len(args) + len(kwargs) == 1)
                else ""
            )
            raise TypeError(
                f"{self.env_id or type(self).__name__}.{name} takes ({', '.join(names)}), got ({got}){gymnasium}. "
                f"jrl environments are pure functions: {_GYMNASIUM_HINT[name]}, with "
                "env, env_params = jrl.make(env_id). To run a jrl policy in Gymnasium's own environment, "
                "see jrl.wrappers.evaluate_in_gymnasium"
            )
        bound = dict(zip(names, args, strict=False)) | kwargs
        check_key("key", bound["key"])
        if "action" in bound:
            self._check_action(bound["action"], bound["params"])
        return method(self, *(bound[n] for n in names))

    checked.__jrl_checked__ = True
    return checked


@dataclasses.dataclass(frozen=True)
class Environment:
    """Base class. Subclasses are frozen dataclasses of *static* settings that implement
    ``reset_env``, ``step_env``, the two spaces and the ``default_params`` property; ``reset`` and
    ``step`` (with auto-reset) come from here.

    Environments with ``Discrete`` actions also have ``num_actions`` (an int).

    Attributes:
        env_id: the id the environment was made with (``jrl.make`` sets it; ``""`` when built
            directly). Keyword-only, shown in ``repr`` and error messages; it does not take part in
            equality, so environments that differ only in their id share compiled functions.

    An environment that draws itself also overrides ``render_modes``, ``render_fps`` and ``render``
    (and ``render_text`` for Gymnasium's ``"ansi"`` text); the others say so by empty ``render_modes``.
    A gridworld also overrides ``grid_layout`` (its map, for plots of its values).

    ``reset``, ``reset_env``, ``step`` and ``step_env`` (here and in every subclass) check their
    arguments while tracing: a PRNG key where the key belongs, and an action of the action
    space's shape and dtype (integer for ``Discrete``); a concrete action outside a ``Discrete``
    or ``Tokens`` space is refused too (under ``jit`` its value is unknown, so that check cannot
    run). A ``Box`` action's bounds are not enforced: its environment clips it, as Gymnasium's do
    (a concrete NaN is refused).
    """

    env_id: str = dataclasses.field(default="", kw_only=True, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SIGNATURES:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__jrl_checked__", False):
                setattr(cls, name, _checked(method))

    @property
    def default_params(self) -> Any:  # pragma: no cover - abstract
        """The params pytree of this environment's default settings (a property, as in gymnax)."""
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:  # pragma: no cover
        raise NotImplementedError

    def step_env(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:  # pragma: no cover
        raise NotImplementedError

    def observation_space(self, params: Any) -> Space:  # pragma: no cover - abstract
        raise NotImplementedError

    def action_space(self, params: Any) -> Space:  # pragma: no cover - abstract
        raise NotImplementedError

    @_checked
    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """Start an episode. Returns ``(obs, state)``."""
        return self.reset_env(key, params)

    @_checked
    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:
        """One transition with same-step auto-reset.

        Returns ``(obs, state, reward, terminated, truncated, info)``; ``reward`` float32,
        ``terminated``/``truncated`` bool scalars, ``info["final_observation"]`` the observation
        the transition led to (before any reset).
        """
        key_step, key_reset = jax.random.split(key)
        obs, next_state, reward, terminated, truncated, info = self.step_env(key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        obs_out, state_out = auto_reset(done, (obs, next_state), self.reset_where(key_reset, params, done))
        return obs_out, state_out, reward, terminated, truncated, {**info, "final_observation": obs}

    def reset_where(self, key: jax.Array, params: Any, done: jax.Array) -> tuple[jax.Array, Any]:
        """The reset ``step`` keeps where ``done`` (bool scalar) and discards elsewhere.

        ``reset_env(key, params)`` here. An environment whose reset is costly may override it to
        skip the work where ``done`` is False, returning anything of the same shape there (under
        ``vmap`` every environment computes its reset on every step).
        """
        del done
        return self.reset_env(key, params)

    # Batched stepping: N environments, one key for the whole batch per call. An environment with
    # the uniform-driven hooks (``uniform_shapes`` set) has every random number of a step drawn for
    # the whole batch in one call (one PRNG hash per step instead of one per environment, which
    # dominates a vmapped classic-control step); any other one gets its key split per environment.

    #: Shapes of the uniforms (U[0, 1), float32) that one ``step_env`` and one ``reset_env`` use,
    #: ``(step_shape, reset_shape)``, for an environment that implements ``step_env_from_uniform``
    #: and ``reset_from_uniform``; ``None`` (here): it draws from its keys, and ``step_batch``
    #: splits the key.
    uniform_shapes: ClassVar[tuple[tuple[int, ...], tuple[int, ...]] | None] = None

    def reset_from_uniform(self, u: jax.Array, params: Any) -> tuple[jax.Array, Any]:  # pragma: no cover
        """``reset_env`` driven by ``u`` (float32 ``uniform_shapes[1]``, U[0, 1)) instead of a key."""
        raise NotImplementedError(f"{type(self).__name__} has no uniform-driven reset (uniform_shapes is None)")

    def step_env_from_uniform(
        self, u: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:  # pragma: no cover
        """``step_env`` driven by ``u`` (float32 ``uniform_shapes[0]``, U[0, 1)) instead of a key."""
        raise NotImplementedError(f"{type(self).__name__} has no uniform-driven step (uniform_shapes is None)")

    def step_from_uniforms(
        self, u_step: jax.Array, u_reset: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:
        """``step`` (same-step auto-reset, ``info["final_observation"]``) driven by the uniforms
        ``u_step`` (shape ``uniform_shapes[0]``) and ``u_reset`` (``uniform_shapes[1]``) instead of
        a key. ``step(key, ...)`` is this with the uniforms drawn from ``key``: for the same
        uniforms, the same transition, bit for bit."""
        obs, next_state, reward, terminated, truncated, info = self.step_env_from_uniform(u_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        obs_out, state_out = auto_reset(done, (obs, next_state), self.reset_from_uniform(u_reset, params))
        return obs_out, state_out, reward, terminated, truncated, {**info, "final_observation": obs}

    def batch_uniforms(self, key: jax.Array, num_envs: int) -> tuple[jax.Array, jax.Array]:
        """The uniforms ``step_batch(key, ...)`` uses for ``num_envs`` environments, drawn in one
        call: ``(u_step [N, *uniform_shapes[0]], u_reset [N, *uniform_shapes[1]])``, float32."""
        if self.uniform_shapes is None:
            raise ValueError(f"{self._name()} has no uniform-driven hooks (uniform_shapes is None)")
        step_shape, reset_shape = self.uniform_shapes
        a, b = math.prod(step_shape), math.prod(reset_shape)
        u = jax.random.uniform(key, (num_envs, a + b), jnp.float32)
        return u[:, :a].reshape((num_envs, *step_shape)), u[:, a:].reshape((num_envs, *reset_shape))

    def reset_batch(self, key: jax.Array, num_envs: int, params: Any) -> tuple[jax.Array, Any]:
        """Start ``num_envs`` episodes from one key: ``(obs [N, ...], states)`` (leaves ``[N, ...]``),
        params shared. With the uniform-driven hooks every start is drawn in one call (the reset
        part of ``batch_uniforms``); otherwise ``vmap(reset)`` over ``jax.random.split(key, N)``.
        Not the draws of ``vmap(reset)`` over split keys for an environment with the hooks."""
        _check_batch_key(self._name(), "reset_batch", key)
        n = _check_num_envs(self._name(), num_envs)
        return _batched_functions(self)["reset"](key, params, n)

    def step_batch(
        self, key: jax.Array, states: Any, actions: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:
        """``N`` transitions with same-step auto-reset from ONE key for the whole batch.

        ``states``: leaves ``[N, ...]``; ``actions``: ``[N, *action_shape]``; ``params`` shared (not
        batched). Returns what ``jax.vmap(env.step)`` returns, with the same shapes and meaning:
        ``(obs [N, ...], states, reward float32 [N], terminated bool [N], truncated bool [N], info)``
        with ``info["final_observation"] [N, ...]``. With the uniform-driven hooks
        (``uniform_shapes``), row ``i`` of ``batch_uniforms(key, N)`` drives environment ``i``
        through ``step_from_uniforms``; otherwise environment ``i`` is ``step(keys[i], ...)`` with
        ``keys = jax.random.split(key, N)``. The draws are not those of ``vmap(step)`` over split
        keys (other random numbers, the same distribution); for the same uniforms the transitions
        are the per-environment ones bit for bit. Compiled once per (equal) environment and input
        shapes; inside your own ``jit`` it is inlined. Bad input (a batch of keys, batch sizes that
        differ, actions of the wrong shape or dtype) raises before any tracing.
        """
        name = self._name()
        _check_batch_key(name, "step_batch", key)
        n = _check_batch(name, states, actions)
        space = self.action_space(params)
        shape = tuple(jnp.shape(actions))
        if shape[1:] != space.shape:
            raise ValueError(
                f"{name}.step_batch: actions must have shape (N, *{space.shape}) = ({n}, *{space.shape}) "
                f"({space!r}), got shape {shape}"
            )
        if isinstance(space, Discrete):
            if not jnp.issubdtype(jnp.result_type(actions), jnp.integer):
                raise TypeError(
                    f"{name}.step_batch: actions of {space!r} must be integers, got dtype {jnp.result_type(actions)}"
                )
            if is_concrete(actions):
                a = np.asarray(actions)
                if a.size and (a.min() < 0 or a.max() >= space.n):
                    raise ValueError(
                        f"{name}.step_batch: actions must be in 0..{space.n - 1}, got {a.min()}..{a.max()}"
                    )
        return _batched_functions(self)["step"](key, states, actions, params)

    def _name(self) -> str:
        return self.env_id or type(self).__name__

    # Pictures (host side, NumPy): an environment that renders overrides these. The Gymnasium
    # wrappers, ``jrl eval --video`` and anyone else ask ``render_modes`` instead of testing ids.

    @property
    def render_modes(self) -> tuple[str, ...]:
        """What this environment draws of a state: ``"rgb_array"`` (``render``, an image) and
        ``"ansi"`` (``render_text``, Gymnasium's text picture); empty here: it does not render."""
        return ()

    @property
    def render_fps(self) -> int:
        """Frames per second at which its pictures play (Gymnasium's ``metadata["render_fps"]``);
        0 for an environment that does not render."""
        return 0

    def render(self, state: Any, params: Any) -> np.ndarray:
        """``uint8 [H, W, 3]``: a picture of one (unbatched) ``state`` under ``params``, drawn on
        the host with NumPy (device arrays are fetched). Only where ``"rgb_array"`` is in
        ``render_modes``; raises ``ValueError`` here."""
        raise ValueError(self._no_picture("rgb_array", "render"))

    def render_text(self, state: Any, params: Any, last_action: int | None = None) -> str:
        """Gymnasium's ``"ansi"`` text of one ``state`` (``last_action``: the action that led to
        it, shown by the environments whose Gymnasium text shows it; ``None`` after a reset).
        Only where ``"ansi"`` is in ``render_modes``; raises ``ValueError`` here."""
        raise ValueError(self._no_picture("ansi", "render_text"))

    def grid_layout(self, params: Any) -> GridLayout | None:
        """The map of a gridworld whose states are its cells (plots draw its values and greedy
        actions over it); ``None`` here: not a gridworld."""
        del params
        return None

    def _no_picture(self, mode: str, method: str) -> str:
        name = self.env_id or type(self).__name__
        return (
            f"{name} does not draw {mode!r} pictures ({method}): its render_modes are {self.render_modes}. "
            "env.render_modes says what an environment draws"
        )

    def _check_action(self, action: Any, params: Any) -> None:
        """Refuse an action of the wrong shape or dtype (also while tracing), and a concrete one
        outside a ``Discrete``/``Tokens`` space or a NaN in a ``Box`` (host side: under ``jit`` the
        value is unknown)."""
        space = self.action_space(params)
        shape = tuple(jnp.shape(action))
        name = self.env_id or type(self).__name__
        if shape != space.shape:
            batch = " (for a batch of environments, jax.vmap the step)" if len(shape) > len(space.shape) else ""
            raise ValueError(f"{name}: action must have shape {space.shape} ({space!r}), got shape {shape}{batch}")
        if isinstance(space, Discrete) and not jnp.issubdtype(jnp.result_type(action), jnp.integer):
            raise TypeError(
                f"{name}: actions of {space!r} must be integers, got dtype {jnp.result_type(action)} ({action!r})"
            )
        if not is_concrete(action):
            return
        if isinstance(space, Box):
            # A real action beyond a Box's bounds is the environment's to handle: Gymnasium's clip
            # it inside step (Pendulum-v1, MountainCarContinuous-v0), and so do jrl's, eagerly and
            # under jit alike. Only a NaN, which no clip can place, is refused.
            if np.any(np.isnan(np.asarray(action, np.float32))):
                raise ValueError(f"{name}: action={np.asarray(action)} holds NaN ({space!r})")
            return
        space.check(action, "action")


def _check_batch_key(name: str, method: str, key: Any) -> None:
    """One key for the whole batch: a batch of keys is refused with a message that says so."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if (typed and shape != ()) or (not typed and dtype is not None and shape is not None and len(shape) > 1):
        raise ValueError(
            f"{name}.{method} takes ONE key for the whole batch (it draws every environment's random "
            f"numbers from it), got a batch of keys of shape {shape}; for one key per environment, "
            "jax.vmap(env.step) over split keys"
        )
    check_key("key", key)


def _check_num_envs(name: str, num_envs: Any) -> int:
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
        raise TypeError(f"{name}.reset_batch: num_envs must be an int, got {num_envs!r}")
    if num_envs < 1:
        raise ValueError(f"{name}.reset_batch: num_envs must be >= 1, got {num_envs}")
    return int(num_envs)


def _check_batch(name: str, states: Any, actions: Any) -> int:
    """The batch size ``N`` that every state leaf and the actions share (their leading axis)."""
    sizes = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(states):
        shape = jnp.shape(leaf)
        sizes[f"states{jax.tree_util.keystr(path)}"] = shape[0] if shape else None
    shape = jnp.shape(actions)
    sizes["actions"] = shape[0] if shape else None
    if None in sizes.values() or len(set(sizes.values())) != 1:
        shown = ", ".join(f"{k}: {'no batch axis' if v is None else v}" for k, v in sizes.items())
        raise ValueError(
            f"{name}.step_batch: states (every leaf) and actions must share one leading batch axis N, got {shown}"
        )
    return sizes["actions"]


def _step_batch(env: Environment, key: jax.Array, states: Any, actions: jax.Array, params: Any) -> tuple:
    n = jnp.shape(actions)[0]
    if env.uniform_shapes is None:
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(key, n), states, actions, params)
    u_step, u_reset = env.batch_uniforms(key, n)
    return jax.vmap(env.step_from_uniforms, in_axes=(0, 0, 0, 0, None))(u_step, u_reset, states, actions, params)


def _reset_batch(env: Environment, key: jax.Array, params: Any, num_envs: int) -> tuple[jax.Array, Any]:
    if env.uniform_shapes is None:
        return jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)
    _, u_reset = env.batch_uniforms(key, num_envs)
    return jax.vmap(env.reset_from_uniform, in_axes=(0, None))(u_reset, params)


@functools.cache
def _batched_functions(env: Environment) -> dict[str, Callable]:
    """Jitted ``step_batch``/``reset_batch`` bodies, one set per (equal) environment: params are
    arguments, so environments that differ only in params or id share the compiled code."""
    return {
        "step": jax.jit(functools.partial(_step_batch, env)),
        "reset": jax.jit(functools.partial(_reset_batch, env), static_argnums=(2,)),
    }
