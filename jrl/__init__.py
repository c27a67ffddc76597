"""jrl: a JAX-accelerated, vectorized reinforcement-learning engine.

Pure-functional environments (``jrl.make``), exact tabular models and planning
(``jrl.planning``), compiled training loops (``jrl.algorithms``) and parallel evaluation
(``jrl.evaluate``), hyperparameter sweeps in one compiled call per group (``jrl.sweep``) and adaptive search with
Optuna in one call per batch of trials (``jrl.optuna_search``), and
language generation as reinforcement learning (``jrl.text``).
"""

from importlib import import_module as _import_module
from typing import Any as _Any

from jrl import algorithms, envs, planning, spaces, text  # text registers text_q_learning with algorithms
from jrl._version import __version__ as __version__
from jrl.envs import (
    NO_TIME_LIMIT,
    Environment,
    TabularMDP,
    make,
    make_tabular,
    register,
    registered_envs,
)
from jrl.evaluate import UNLIMITED_EPISODE_CAP, EpisodeStats, evaluate, evaluate_episodes
from jrl.spaces import Box, Discrete, Tokens

#: Names of the experiment floor, which sits above this package's other imports: loaded on first
#: use (PEP 562), so ``import jrl`` neither pays for them nor makes a lower floor import an upper one.
_LAZY = {"sweep": "jrl.experiment", "optuna_search": "jrl.experiment"}


def __getattr__(name: str) -> _Any:
    """``jrl.sweep`` and ``jrl.optuna_search``, imported on first use (then cached in this module)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'jrl' has no attribute {name!r}")
    value = getattr(_import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _register_in_gymnasium() -> None:
    """With Gymnasium installed, make ``gymnasium.make("jrl/<id>")`` work after ``import jrl``
    (string entry points: ``jrl.wrappers`` is imported only when Gymnasium builds one)."""
    import importlib.util

    from jrl.envs.gymnasium_ids import register_in_gymnasium

    if importlib.util.find_spec("gymnasium") is None:
        return
    try:
        register_in_gymnasium()
    except ImportError:  # a broken Gymnasium install: jrl itself does not need it
        pass


_register_in_gymnasium()

__all__ = [
    "NO_TIME_LIMIT",
    "UNLIMITED_EPISODE_CAP",
    "Box",
    "Discrete",
    "Environment",
    "EpisodeStats",
    "TabularMDP",
    "Tokens",
    "algorithms",
    "envs",
    "evaluate",
    "evaluate_episodes",
    "make",
    "make_tabular",
    "optuna_search",
    "planning",
    "register",
    "registered_envs",
    "spaces",
    "sweep",
    "text",
]
