"""``jrl.make`` and the registry of environment ids (Gymnasium's ids and keyword arguments)."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from jrl._extras import import_registering_module, install_hint
from jrl._validation import check_int
from jrl.envs.acrobot import acrobot_factory
from jrl.envs.arithmetic import arithmetic_factory
from jrl.envs.cartpole import cartpole_factory
from jrl.envs.cliff_walking import cliff_walking_model, cliff_walking_picture
from jrl.envs.core import NO_TIME_LIMIT, Environment
from jrl.envs.frozen_lake import frozen_lake_model, frozen_lake_picture
from jrl.envs.graph_walk_text import graph_walk_text_factory
from jrl.envs.maximization_bias import maximization_bias_factory
from jrl.envs.mountain_car import mountain_car_factory
from jrl.envs.mountain_car_continuous import mountain_car_continuous_factory
from jrl.envs.pendulum import pendulum_factory
from jrl.envs.probes import probe_factory
from jrl.envs.random_lake import random_lake_factory
from jrl.envs.random_mdp import random_mdp_model
from jrl.envs.tabular import TabularEnv, TabularParams, TabularPicture, make_tabular
from jrl.envs.tasks import tasks_factory
from jrl.envs.taxi import taxi_model, taxi_picture
from jrl.envs.word_gen import word_gen_factory

__all__ = [
    "EnvSpec",
    "is_registered",
    "make",
    "namespace_envs",
    "namespaces",
    "register",
    "registered_envs",
    "resolve_env_paths",
    "spec",
    "temporary_registry",
    "unregister",
]

# Gymnasium's id grammar: an optional "namespace/", a name, an optional "-v<version>".
_ID_PATTERN = re.compile(r"^(?:[\w:.-]+/)?[\w:.-]+?(?:-v\d+)?$")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build one id.

    Attributes:
        env_id: the id (Gymnasium's where Gymnasium has the environment).
        factory: ``factory(env_id, max_steps_in_episode, **kwargs) -> (env, params)``, where
            ``max_steps_in_episode`` is an int, or ``None`` to keep the params' own time limit.
        kwargs: keyword arguments fixed by this id (e.g. ``map_name="8x8"``).
        max_episode_steps: the default time limit, as ``gymnasium.make`` gives it
            (``NO_TIME_LIMIT`` for none; ``None``: the factory's own params decide).
        keywords: the keyword arguments the factory accepts (``None``: any).
        path_keywords: the keywords that name files the environment reads (``Tasks-v0``'s
            ``path``): a run makes them absolute (``resolve_env_paths``), so ``jrl resume`` and
            ``jrl eval`` find them from any working directory.
    """

    env_id: str
    factory: Callable[..., tuple[Environment, Any]]
    kwargs: dict
    max_episode_steps: int | None
    keywords: tuple[str, ...] | None
    path_keywords: tuple[str, ...] = ()


def tabular_factory(
    model_fn: Callable[..., Any], picture_fn: Callable[..., TabularPicture] | None = None
) -> Callable[..., tuple[TabularEnv, TabularParams]]:
    """A factory for a tabular environment from a function that builds its ``TabularMDP`` and,
    for a gridworld, one that builds its picture (its layout) from the same keyword arguments."""

    def factory(env_id: str, max_steps_in_episode: int, **kwargs: Any) -> tuple[TabularEnv, TabularParams]:
        mdp = model_fn(**kwargs)  # validates the keyword arguments first
        picture = None if picture_fn is None else picture_fn(**kwargs)
        return make_tabular(mdp, max_steps_in_episode, env_id, picture=picture)

    return factory


def _keywords(fn: Callable[..., Any], skip: int) -> tuple[str, ...] | None:
    """The keyword arguments ``fn`` takes after its first ``skip`` parameters (``None``: ``**kwargs``)."""
    parameters = list(inspect.signature(fn).parameters.values())[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


_REGISTRY: dict[str, EnvSpec] = {}

#: Namespaces of other libraries' environments, as ``namespace: (module, register_all, list_all,
#: package, extra)``: the first ``make("gymnax/...")`` calls the module's ``register_all``, which
#: registers every id of the namespace, and ``namespace_envs`` its ``list_all``, which lists them
#: (without the package, both name the extra that installs it).
_NAMESPACE_MODULES = {
    "gymnax": ("jrl.wrappers.gymnax", "register_gymnax_envs", "gymnax_env_ids", "gymnax", "interop"),
}


def _add(spec: EnvSpec) -> None:
    if spec.env_id in _REGISTRY:
        raise ValueError(f"environment id {spec.env_id!r} is already registered")
    _REGISTRY[spec.env_id] = spec


for _env_id, _model, _picture, _kwargs, _limit in (
    ("FrozenLake-v1", frozen_lake_model, frozen_lake_picture, {"map_name": "4x4"}, 100),
    ("FrozenLake8x8-v1", frozen_lake_model, frozen_lake_picture, {"map_name": "8x8"}, 200),
    ("CliffWalking-v1", cliff_walking_model, cliff_walking_picture, {}, NO_TIME_LIMIT),
    ("CliffWalkingSlippery-v1", cliff_walking_model, cliff_walking_picture, {"is_slippery": True}, NO_TIME_LIMIT),
    ("Taxi-v4", taxi_model, taxi_picture, {}, 200),
    ("RandomMDP-v0", random_mdp_model, None, {}, 100),
):
    _add(EnvSpec(_env_id, tabular_factory(_model, _picture), _kwargs, _limit, _keywords(_model, 0)))
for _env_id, _factory, _limit in (
    ("MaximizationBias-v0", maximization_bias_factory, NO_TIME_LIMIT),  # episodes last 1 or 2 steps
    ("Probe-OneStep-v0", probe_factory("OneStep"), NO_TIME_LIMIT),
    ("Probe-TwoStep-v0", probe_factory("TwoStep"), NO_TIME_LIMIT),
    ("Probe-ActionReward-v0", probe_factory("ActionReward"), NO_TIME_LIMIT),
    ("Probe-Truncation-v0", probe_factory("Truncation"), 1),
    ("CartPole-v1", cartpole_factory, 500),
    ("Acrobot-v1", acrobot_factory, 500),
    ("MountainCar-v0", mountain_car_factory, 200),
    # Continuous actions (Box (1,), float32; the environments clip the action as Gymnasium does).
    ("Pendulum-v1", pendulum_factory, 200),
    ("MountainCarContinuous-v0", mountain_car_continuous_factory, 999),
    ("RandomLake-v0", random_lake_factory, 256),  # 4 * 8 * 8, whatever size (random_lake.py)
    # Text generation (jrl.envs.tokens): the limit is the most tokens an episode can write.
    ("GraphWalkText-v0", graph_walk_text_factory, 9),
    ("WordGen-v0", word_gen_factory, 8),
    ("Arithmetic-v0", arithmetic_factory, 15),  # 4-digit problems' most tokens, 4 * digits - 1
):
    _add(EnvSpec(_env_id, _factory, {}, _limit, _keywords(_factory, 2)))
# A JSONL file's tasks: every episode ends within its answer budget, so no time limit is needed.
_add(EnvSpec("Tasks-v0", tasks_factory, {}, NO_TIME_LIMIT, _keywords(tasks_factory, 2), ("path", "tokenizer")))


def register(env_id: str, factory: Callable[..., Any], *, max_episode_steps: int | None = None, **kwargs: Any) -> None:
    """Register your own environment under ``env_id``, so ``jrl.make(env_id, **overrides)`` builds it.

    Args:
        env_id: Gymnasium's id form, ``[namespace/]Name[-vN]`` (e.g. ``"my/GridWorld-v0"``); ids
            are unique, built-in ones included.
        factory: called as ``factory(**kwargs)``; returns an ``Environment`` (its
            ``default_params`` are used) or an ``(env, params)`` pair. An ``Environment``
            subclass itself is a factory (its dataclass fields are the keywords).
        max_episode_steps: the time limit ``jrl.make`` sets in the params, as Gymnasium's
            ``register`` (``NO_TIME_LIMIT`` for none); ``None`` keeps the params' own
            ``max_steps_in_episode``. ``jrl.make(env_id, max_episode_steps=...)`` overrides it.
        **kwargs: default keyword arguments for the factory; ``jrl.make``'s keywords override them.

    Raises:
        ValueError: a malformed or already registered id, or a bad ``max_episode_steps``.
        TypeError: ``factory`` is not callable, or a default keyword it does not accept.
    """
    if not isinstance(env_id, str) or not _ID_PATTERN.match(env_id):
        raise ValueError(
            f"env_id must be a string of Gymnasium's form '[namespace/]Name[-vN]' (letters, digits, "
            f"'_', '-', '.', ':'), got {env_id!r}"
        )
    if env_id in _REGISTRY:
        raise ValueError(f"environment id {env_id!r} is already registered; choose another id or version")
    if not callable(factory):
        raise TypeError(f"factory must be callable (a function or an Environment class), got {factory!r}")
    if max_episode_steps is not None:
        check_int("max_episode_steps", max_episode_steps, 1, NO_TIME_LIMIT)
    keywords = _keywords(factory, 0)
    if keywords is not None:
        unknown = sorted(set(kwargs) - set(keywords))
        if unknown:
            raise TypeError(
                f"{env_id}: factory {factory!r} does not accept keyword(s) {unknown}; it takes {list(keywords)}"
            )

    def adapter(env_id: str, max_steps_in_episode: int | None, **kw: Any) -> tuple[Environment, Any]:
        built = factory(**kw)
        if isinstance(built, Environment):
            env, params = built, built.default_params
        elif isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], Environment):
            env, params = built
        else:
            raise TypeError(
                f"{env_id}: the registered factory must return a jrl Environment or an (env, params) pair, "
                f"got {type(built).__name__}"
            )
        if not hasattr(params, "max_steps_in_episode") or not hasattr(params, "replace"):
            raise TypeError(
                f"{env_id}: params must be a flax.struct.dataclass with a max_steps_in_episode field, "
                f"got {type(params).__name__}"
            )
        if max_steps_in_episode is not None:
            params = params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))
        return env, params

    _add(EnvSpec(env_id, adapter, dict(kwargs), max_episode_steps, keywords))


def resolve_env_paths(env_id: str, env_kwargs: dict, base: str | os.PathLike) -> dict:
    """``env_kwargs`` with the values of ``env_id``'s path keywords (``EnvSpec.path_keywords``)
    made absolute against ``base`` (a run's working directory); other keywords, and ids not
    registered (yet), are left as they are."""
    found = _REGISTRY.get(env_id)
    names = () if found is None else found.path_keywords
    return {
        name: os.path.abspath(Path(base, value)) if name in names and isinstance(value, (str, os.PathLike)) else value
        for name, value in env_kwargs.items()
    }


def registered_envs() -> list[str]:
    """Every id ``jrl.make`` accepts, sorted (another library's ids once registered: ``namespace_envs``)."""
    return sorted(_REGISTRY)


def is_registered(env_id: str) -> bool:
    """Whether ``jrl.make(env_id)`` finds ``env_id`` registered now (another library's ids count
    once their first ``make`` registered them; ``"module:id"`` forms are not resolved)."""
    return env_id in _REGISTRY


def spec(env_id: str) -> EnvSpec:
    """The ``EnvSpec`` ``jrl.make(env_id)`` builds from (as ``gymnasium.spec``), e.g. its
    registered time limit ``spec(env_id).max_episode_steps``.

    Raises:
        ValueError: ``env_id`` is not registered (the message lists the registered ids).
    """
    if env_id not in _REGISTRY:
        raise ValueError(f"unknown environment id {env_id!r}; registered ids: {registered_envs()}")
    return _REGISTRY[env_id]


def unregister(env_id: str) -> None:
    """Forget ``env_id`` (an id you registered, typically), so it can be registered again.

    Raises:
        ValueError: ``env_id`` is not registered.
    """
    if env_id not in _REGISTRY:
        raise ValueError(f"cannot unregister {env_id!r}: it is not registered")
    del _REGISTRY[env_id]


@contextlib.contextmanager
def temporary_registry() -> Iterator[None]:
    """A block whose registrations are undone when it ends (however it ends): ids registered in
    it (``register``, another library's ids on first ``make``) are forgotten, ids unregistered in
    it come back. For tests and scripts that register throwaway ids::

        with jrl.envs.registry.temporary_registry():
            jrl.register("my/Corridor-v0", Corridor)
            ...
    """
    saved = dict(_REGISTRY)
    try:
        yield
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(saved)


def namespaces() -> list[str]:
    """Other libraries' namespaces, whose ids ``jrl.make`` registers on first use: ``["gymnax"]``."""
    return sorted(_NAMESPACE_MODULES)


def namespace_envs(namespace: str) -> list[str]:
    """The ids of another library's namespace, sorted (``namespace_envs("gymnax")``: every
    ``gymnax/<id>``), read from the library without registering or building any (building one
    may be slow or, for a few, download data); ``jrl.make`` accepts each.

    Raises:
        ValueError: ``namespace`` is not one of ``namespaces()``.
        ImportError: its library is not installed (the message names the extra that installs it).
    """
    if namespace not in _NAMESPACE_MODULES:
        raise ValueError(f"namespace must be one of {namespaces()}, got {namespace!r}")
    module, _, list_all, _, _ = _NAMESPACE_MODULES[namespace]
    _check_namespace_package(namespace, f"listing the {namespace}/ ids")
    return sorted(getattr(importlib.import_module(module), list_all)())


def _register_namespace(namespace: str, what: str) -> None:
    """Register every id of ``namespace`` (again: a no-op); ``what`` starts the ImportError's message."""
    _check_namespace_package(namespace, what)
    module, register_all, _, _, _ = _NAMESPACE_MODULES[namespace]
    getattr(importlib.import_module(module), register_all)()


def _check_namespace_package(namespace: str, what: str) -> None:
    """``ImportError`` naming the extra that installs ``namespace``'s library, if it is missing."""
    _, _, _, package, extra = _NAMESPACE_MODULES[namespace]
    if importlib.util.find_spec(package) is None:
        raise ImportError(
            f"{what} needs {package}, which jrl installs only as its '{extra}' extra ({install_hint(extra)})"
        )


def _import_module_of(env_id: str) -> str:
    """Gymnasium's ``"module:id"`` (``"my_envs:my/Corridor-v0"``): import ``module``, which
    registers the id (``jrl.register``), and return the id. Ids without a module part, and
    registered ids (which may hold a ``:``), are returned as they are."""
    if ":" not in env_id or env_id in _REGISTRY:
        return env_id
    module, bare = import_registering_module(env_id, ImportError)
    if bare not in _REGISTRY:
        raise ValueError(
            f"{env_id!r}: the module {module!r} was imported, but it registers no environment {bare!r}; "
            f"registered ids: {registered_envs()}"
        )
    return bare


def make(env_id: str, **kwargs: Any) -> tuple[Environment, Any]:
    """Build an environment and its default params: ``env, env_params = jrl.make(id, **kwargs)``.

    Keyword arguments are Gymnasium's for the same id, plus ``max_episode_steps`` (as in
    ``gymnasium.make``: overrides the registered time limit; ``None`` keeps it, ``-1`` removes it,
    giving ``NO_TIME_LIMIT``). ``render_mode`` is accepted only as ``None``: drawing is a host-side
    call, ``env.render(state, params)``, or Gymnasium's ``render_mode`` through ``jrl.wrappers``.
    The environment's ``env_id`` is ``env_id``.

    Another library's ids (``gymnax/<id>``, the ``interop`` extra) are registered on their first use.
    As in Gymnasium, ``"module:id"`` imports ``module`` first (a module of yours that calls
    ``jrl.register``), then builds ``id``; the environment's ``env_id`` is ``id``, and a run
    records ``"module:id"``, so that another process (``jrl resume``, ``jrl eval``) imports it too.

    Raises:
        ValueError: unknown id (the message lists the registered ids and the closest match), or a
            keyword value that is not allowed.
        TypeError: a keyword the environment does not take, or a value of the wrong type.
        ImportError: a ``gymnax/`` id without gymnax installed (the message names the extra), or
            a ``module:id`` whose module is not found.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, got {type(env_id).__name__} {env_id!r}")
    env_id = _import_module_of(env_id)
    namespace = env_id.split("/")[0] if "/" in env_id else None
    if env_id not in _REGISTRY and namespace in _NAMESPACE_MODULES:
        # Another library's ids: registered on first use, so importing jrl never imports gymnax.
        _register_namespace(namespace, f"{env_id!r} is a {_NAMESPACE_MODULES[namespace][3]} environment: it")
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown environment id {env_id!r}.{hint} Registered ids: {registered_envs()}")
    spec = _REGISTRY[env_id]
    kwargs = dict(kwargs)
    # gymnasium.make's rules: None keeps the registered limit, -1 removes it.
    max_steps = kwargs.pop("max_episode_steps", None)
    if max_steps is None:
        max_steps = spec.max_episode_steps
    elif max_steps == -1 and not isinstance(max_steps, bool):
        max_steps = NO_TIME_LIMIT
    if kwargs.pop("render_mode", None) is not None:
        raise ValueError(
            f"{env_id}: render_mode must be None: jrl environments are pure functions, and drawing is a "
            "host-side call on a state: env.render(state, env_params) (env.render_modes says what it draws), "
            f"or gymnasium.make('jrl/{env_id.replace('/', '.')}', render_mode=...) for Gymnasium's render modes"
        )
    if spec.keywords is not None:
        unknown = sorted(set(kwargs) - set(spec.keywords))
        if unknown:
            raise TypeError(
                f"{env_id} got unexpected keyword argument(s) {unknown}; it accepts "
                f"{sorted(set(spec.keywords) | {'max_episode_steps', 'render_mode'})}"
            )
    if max_steps is not None:
        check_int("max_episode_steps", max_steps, 1, NO_TIME_LIMIT)
    env, params = spec.factory(env_id, max_steps, **{**spec.kwargs, **kwargs})
    if env.env_id != env_id:
        env = dataclasses.replace(env, env_id=env_id)
    return env, params
