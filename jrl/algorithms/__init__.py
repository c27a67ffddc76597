"""Training algorithms: each a readable ``make_train(config, env, env_params) -> train``."""

from jrl.algorithms import q_learning

__all__ = ["q_learning"]
