"""jrl's ids in Gymnasium's registry, as ``jrl/<id>``.

``import jrl`` calls ``register_in_gymnasium`` when Gymnasium is installed, so
``gymnasium.make("jrl/FrozenLake-v1")`` and ``gymnasium.make_vec("jrl/CartPole-v1", num_envs=1024)``
work after ``import jrl`` alone. The registrations name their entry points as strings
(``jrl.wrappers.gymnasium:...``), which Gymnasium imports only when it builds one: registering
imports Gymnasium, never ``jrl.wrappers``. (Gymnasium 1.x has no plugin entry points; 0.x loaded
the ``gymnasium.envs`` entry-point group, 1.0 removed it.)
"""

from __future__ import annotations

from jrl.envs import registry
from jrl.envs.core import NO_TIME_LIMIT

__all__ = ["gymnasium_id", "gymnasium_time_limit", "register_in_gymnasium"]

#: The module whose functions build the registered environments.
ENTRY_MODULE = "jrl.wrappers.gymnasium"


def gymnasium_id(jrl_id: str) -> str:
    """``jrl/<id>``; an id with its own namespace ``ns/Name-vN`` becomes ``jrl/ns.Name-vN`` (a
    Gymnasium id has at most one namespace)."""
    return "jrl/" + jrl_id.replace("/", ".")


def gymnasium_time_limit(jrl_id: str) -> int | None:
    """The registered time limit for Gymnasium's ``TimeLimit`` (``None``: none, or the params')."""
    limit = registry._REGISTRY[jrl_id].max_episode_steps
    return None if limit in (None, NO_TIME_LIMIT) else limit


def register_in_gymnasium() -> list[str]:
    """Register every jrl id (``jrl.registered_envs()``) not yet in Gymnasium's registry, with the
    jrl time limit as ``max_episode_steps``; returns the Gymnasium ids of every jrl environment.

    Raises:
        ImportError: Gymnasium is not installed.
    """
    import gymnasium

    ids = []
    for jrl_id in registry.registered_envs():
        gym_id = gymnasium_id(jrl_id)
        if gym_id not in gymnasium.registry:
            gymnasium.register(
                gym_id,
                entry_point=f"{ENTRY_MODULE}:_make_single",
                vector_entry_point=f"{ENTRY_MODULE}:_make_vector",
                max_episode_steps=gymnasium_time_limit(jrl_id),
                kwargs={"jrl_id": jrl_id},
            )
        ids.append(gym_id)
    return ids
