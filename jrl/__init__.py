"""jrl: a JAX-accelerated, vectorized reinforcement-learning engine.

Pure-functional environments (``jrl.make``), exact tabular models and planning
(``jrl.planning``), compiled training loops (``jrl.algorithms``) and parallel evaluation
(``jrl.evaluate``), hyperparameter sweeps in one compiled call per group (``jrl.sweep``), and
language generation as reinforcement learning (``jrl.text``).
"""

from jrl import algorithms, envs, planning, spaces, text  # text registers text_q_learning with algorithms
from jrl.envs import NO_TIME_LIMIT, Environment, TabularMDP, make, make_tabular, register, registered_envs
from jrl.evaluate import UNLIMITED_EPISODE_CAP, EpisodeStats, evaluate, evaluate_episodes
from jrl.experiment.sweeps import sweep
from jrl.spaces import Box, Discrete, Tokens

__version__ = "0.1.0"

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
    "planning",
    "register",
    "registered_envs",
    "spaces",
    "sweep",
    "text",
]
