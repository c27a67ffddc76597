"""Export trained policies out of JAX: ``export_numpy`` turns a DQN result into a ``NumpyQPolicy``
that runs with NumPy alone (``jrl/export/numpy_policy.py`` imports nothing else)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jrl.export.numpy_policy import FORMAT, FORMAT_VERSION, NumpyQPolicy

__all__ = ["NumpyQPolicy", "export_numpy"]


def export_numpy(config: Any, env: Any, env_params: Any, result: Any) -> NumpyQPolicy:
    """The greedy policy of a DQN ``result`` (``jrl.algorithms.dqn``, one seed) as a ``NumpyQPolicy``.

    ``policy(obs [B, ...])`` takes the same actions as ``dqn.greedy_policy(config, env, env_params,
    result)`` (up to float rounding between NumPy's and XLA's matrix products); ``policy.save(path)``
    writes it as ``.npz``.
    """
    from jrl.algorithms import dqn
    from jrl.spaces import Discrete

    if not isinstance(config, dqn.DQNConfig):
        raise TypeError(f"export_numpy exports DQN policies; config must be a DQNConfig, got {type(config).__name__}")
    network = dqn.q_network(config, env, env_params)
    params = result.params["params"]
    leading = np.shape(params[next(iter(params))]["bias"])
    if len(leading) != 1:
        raise ValueError("export_numpy takes one seed's result; index a vmapped result first (result[i])")
    arrays: dict[str, np.ndarray] = {}
    convs = [name for name in params if name.startswith("Conv3x3_")]
    denses = sorted((name for name in params if name.startswith("Dense_")), key=lambda n: int(n.split("_")[1]))
    for i, name in enumerate(sorted(convs, key=lambda n: int(n.split("_")[1]))):
        arrays[f"conv{i}/kernel"], arrays[f"conv{i}/bias"] = params[name]["kernel"], params[name]["bias"]
    hidden = len(config.hidden_sizes)
    for i, name in enumerate(denses[:hidden]):
        arrays[f"dense{i}/kernel"], arrays[f"dense{i}/bias"] = params[name]["kernel"], params[name]["bias"]
    heads = denses[hidden:]
    # QNetwork creates the dueling head's advantage layer first, then the value layer.
    for label, name in zip(("advantage", "value") if config.dueling else ("head",), heads, strict=True):
        arrays[f"{label}/kernel"], arrays[f"{label}/bias"] = params[name]["kernel"], params[name]["bias"]
    if network.input_scale is not None:
        arrays["scale/low"], arrays["scale/span"] = (np.asarray(v, np.float32) for v in network.input_scale)
    obs_space = env.observation_space(env_params)
    spec = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": config.network,
        "dueling": config.dueling,
        "one_hot": obs_space.n if isinstance(obs_space, Discrete) else None,
        "num_convs": len(convs),
        "num_hidden": hidden,
        "num_actions": network.num_actions,
        "obs_shape": list(obs_space.shape),
    }
    return NumpyQPolicy(spec, {name: np.asarray(a) for name, a in arrays.items()})
