"""jrl: a JAX-accelerated, vectorized reinforcement-learning engine.

Pure-functional environments (``jrl.make``), exact tabular models and planning
(``jrl.planning``), compiled training loops (``jrl.algorithms``) and parallel evaluation
(``jrl.evaluate``), hyperparameter sweeps in one compiled call per group (``jrl.sweep``) and adaptive search with
Optuna in one call per batch of trials (``jrl.optuna_search``), and
language generation as reinforcement learning (``jrl.text``).
"""

from jrl import algorithms, envs, planning, spaces, text  # text registers text_q_learning with algorithms
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
from jrl.experiment.search import optuna_search
from jrl.experiment.sweeps import sweep
from jrl.spaces import Box, Discrete, Tokens

__version__ = "0.1.0"


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
