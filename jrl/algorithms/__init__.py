"""Training algorithms: each a readable ``make_train(config, env, env_params) -> train``."""

from jrl.algorithms import dqn, q_learning

__all__ = ["dqn", "q_learning"]
