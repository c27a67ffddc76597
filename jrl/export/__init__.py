"""Export trained policies out of JAX: ``export_numpy`` turns a trained network (any algorithm whose
module offers ``describe_network``: DQN, PQN, PPO) into a ``NumpyQPolicy`` that runs with NumPy
alone (``jrl/export/numpy_policy.py`` imports nothing else)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jrl.export.numpy_policy import BOX_ACTION_VERSION, FORMAT, FORMAT_VERSION, LAYER_NORM_VERSION, NumpyQPolicy

__all__ = ["NumpyQPolicy", "export_numpy"]


def export_numpy(config: Any, env: Any, env_params: Any, result: Any) -> NumpyQPolicy:
    """The greedy policy of a trained ``result`` (one seed) as a ``NumpyQPolicy``.

    The algorithm is the registered one whose config class ``config`` is; its network describes
    itself (``AlgorithmSpec.describe_network``, e.g. ``jrl.algorithms.dqn.describe_network``).
    ``policy(obs [B, ...])`` takes the same actions as the algorithm's ``greedy_policy(config, env,
    env_params, result)`` (up to float rounding between NumPy's and XLA's matrix products):
    ``int64 [B]`` for discrete actions, ``float32 [B, *action_shape]`` for a continuous action (PPO
    on ``Box`` actions: the Gaussian's mean clipped to the bounds, a version-3 file);
    ``policy.save(path)`` writes it as ``.npz``.
    """
    from jrl import algorithms

    algo = algorithms.for_config(config)
    if algo is None or not algo.exportable:
        owner = f"{algo.name} ({type(config).__name__})" if algo else type(config).__name__
        raise TypeError(
            f"export_numpy exports networks that describe themselves (an algorithm module with "
            f"describe_network, such as dqn's DQNConfig); {owner} has none"
        )
    description = algo.describe_network(config, env, env_params, result)
    layers = description.body + description.head
    if np.ndim(layers[0].bias) != 1:
        raise ValueError("export_numpy takes one seed's result; index a vmapped result first (result[i])")
    arrays: dict[str, np.ndarray] = {}
    convs = [layer for layer in description.body if layer.kind == "conv3x3"]
    denses = [layer for layer in description.body if layer.kind == "dense"]
    if description.body != tuple(convs + denses) or any(layer.kind != "dense" for layer in description.head):
        raise ValueError(
            f"{FORMAT} runs 3x3 convolutions, then dense layers, then a dense head; this network's layers are "
            f"{[layer.kind for layer in layers]}"
        )
    labels = ("advantage", "value") if description.dueling else ("head",)
    names = [f"conv{i}" for i in range(len(convs))] + [f"dense{i}" for i in range(len(denses))] + list(labels)
    for name, layer in zip(names, layers, strict=True):
        arrays[f"{name}/kernel"], arrays[f"{name}/bias"] = layer.kernel, layer.bias
    if description.norms:  # a LayerNorm after each body layer (PQN): a v2 file, which v1 readers refuse
        for name, norm in zip(names[: len(description.body)], description.norms, strict=True):
            arrays[f"{name}/norm_scale"], arrays[f"{name}/norm_bias"] = norm.kernel, norm.bias
    if description.input_scale is not None:
        arrays["scale/low"], arrays["scale/span"] = (np.asarray(v, np.float32) for v in description.input_scale)
    if description.action_bounds is not None:  # a continuous action: v3, which older readers refuse
        arrays["action/low"], arrays["action/high"] = (np.asarray(v, np.float32) for v in description.action_bounds)
    version = LAYER_NORM_VERSION if description.norms or description.activation != "relu" else FORMAT_VERSION
    spec = {
        "format": FORMAT,
        "version": BOX_ACTION_VERSION if description.action_bounds is not None else version,
        "kind": description.family,
        "dueling": description.dueling,
        "one_hot": description.one_hot,
        "num_convs": len(convs),
        "num_hidden": len(denses),
        "num_actions": description.num_actions,
        "obs_shape": list(description.obs_shape),
    }
    if description.norms:
        spec["layer_norm"] = True
    if description.activation != "relu":  # PPO's tanh actor: v2 as well (a v1 reader would run ReLU)
        spec["activation"] = description.activation
    if description.action_bounds is not None:
        spec["action_shape"] = list(description.action_shape)
    return NumpyQPolicy(spec, {name: np.asarray(a) for name, a in arrays.items()})
