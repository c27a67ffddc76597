"""Learning curves of jrl's DQN defaults: ``experiments/learning_curves.py --algo dqn`` (same flags,
same outputs: ``experiments/results/dqn_learning_curves.csv``, ``dqn_final_returns.csv`` and
``dqn_learning_curves.png``; see that file).

    python experiments/dqn_learning_curves.py                               # every env, seeds 0..4
    python experiments/dqn_learning_curves.py --envs CartPole-v1 --seeds 3  # a subset
    python experiments/dqn_learning_curves.py --quick --envs CartPole-v1    # smoke test, about a minute
"""

from __future__ import annotations

import sys

from learning_curves import main  # this file's directory is on sys.path when it runs as a script

if __name__ == "__main__":
    main(["--algo", "dqn", *sys.argv[1:]])
