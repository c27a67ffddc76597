"""Export trained policies out of JAX.

``export_numpy`` turns a trained network (any algorithm whose module offers ``describe_network``:
DQN, PQN, PPO) into a ``NumpyQPolicy``, which runs with NumPy alone (``jrl/export/numpy_policy.py``
imports nothing else) and is the source of every format: ``quantize`` (int8, float16),
``export_policy(policy, format, path)`` for ``numpy`` (``.npz``), ``safetensors``, ``stablehlo``
(``jax.export``), ``onnx`` (``jax2onnx``, the ``onnx`` extra) and ``tf`` (a TensorFlow SavedModel
directory through ``jax2tf``, the ``tf`` extra) (a run directory's:
``jrl.experiment.export_run``, ``jrl export``), and ``load_policy`` / ``jax_policy`` to read an export back and
evaluate it like any jrl policy (``jrl eval FILE``). See docs/deployment.md.

Text models go the same ways: ``export_text(model, q_model, beta)`` (``jrl.export.text``) bundles a
language model, and optionally text Q-learning's Q-head, into a ``TextExport`` that ``quantize``
and ``export_policy`` take as they take a policy (its StableHLO and ONNX programs and its
SavedModel decode text; the SavedModel's ``generate`` takes and returns strings), and that
``load_policy`` reads back; ``jrl generate FILE`` decodes with one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jrl.export.numpy_policy import BOX_ACTION_VERSION, FORMAT, FORMAT_VERSION, LAYER_NORM_VERSION, NumpyQPolicy
from jrl.export.quantize import quantize as quantize_policy
from jrl.export.text import FORMAT as TEXT_FORMAT
from jrl.export.text import TextExport, export_text

__all__ = [
    "FORMATS",
    "NumpyQPolicy",
    "TextExport",
    "export_numpy",
    "export_policy",
    "export_text",
    "jax_policy",
    "load_policy",
    "quantize",
]

#: The formats ``export_policy`` writes, with the file suffix each gets.
FORMATS = {
    "numpy": ".npz",
    "safetensors": ".safetensors",
    "stablehlo": ".stablehlo",
    "onnx": ".onnx",
    "tf": ".savedmodel",
}


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


def quantize(model: NumpyQPolicy | TextExport, weights: str = "int8", calibration: Any = None) -> Any:
    """``model`` with quantized weights: a policy through ``jrl.export.quantize.quantize`` (int8
    calibrated on ``calibration`` observations if given), a text model through
    ``TextExport.quantized`` (absmax int8, or float16; no calibration)."""
    if isinstance(model, TextExport):
        if calibration is not None:
            raise ValueError("a text model's int8 is not calibrated: calibration is for policies")
        return model.quantized(weights)
    return quantize_policy(model, weights, calibration=calibration)


def export_policy(policy: NumpyQPolicy | TextExport, format: str, path: str | Path) -> Path:
    """Write ``policy`` (or a text model) at ``path`` in ``format`` (a key of ``FORMATS``);
    ``ValueError`` otherwise."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    if format in ("numpy", "safetensors"):
        if path.suffix != FORMATS[format]:
            raise ValueError(f"a {format} export is written to a {FORMATS[format]} file, got {str(path)!r}")
        policy.save(path)
        return path
    if format == "stablehlo":
        from jrl.export.stablehlo import export_stablehlo

        return export_stablehlo(policy, path)
    if format == "tf":  # a SavedModel directory
        from jrl.export.tensorflow import export_tf

        return export_tf(policy, path)
    from jrl.export.onnx_model import export_onnx

    return export_onnx(policy, path)


def _file_format(path: Path) -> Any:
    """The ``format`` an ``.npz`` or ``.safetensors`` export's spec claims (``None`` when it cannot
    be read: the loader then names the fault)."""
    import json

    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as f:
                return json.loads((f.metadata() or {})["spec"]).get("format")
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["spec"])).get("format")
    except Exception:  # anything unreadable: the format's own loader says what is wrong
        return None


def load_policy(path: str | Path) -> Any:
    """An export read back: a ``NumpyQPolicy`` (``.npz``, ``.safetensors``) or a
    ``stablehlo.StableHLOPolicy`` (``.stablehlo``) or a ``tensorflow.TFPolicy`` (a ``.savedmodel``
    directory, run by TensorFlow); each has ``q_values(obs)``, ``policy(obs)`` and ``spec``. A text
    model's export comes back as a ``TextExport``, ``stablehlo.StableHLOText`` or
    ``tensorflow.TFText``. ``ValueError`` for anything else (an ONNX model runs in ONNX Runtime)."""
    path = Path(path)
    if path.suffix in (".npz", ".safetensors"):
        if _file_format(path) == TEXT_FORMAT:
            return TextExport.load(path)
        return NumpyQPolicy.load(path)
    if path.suffix == ".stablehlo":
        from jrl.export.stablehlo import load_stablehlo

        return load_stablehlo(path)
    if path.suffix == ".savedmodel":
        from jrl.export.tensorflow import load_tf

        return load_tf(path)
    raise ValueError(
        f"{path}: jrl reads exported policies from .npz, .safetensors and .stablehlo files and .savedmodel "
        "directories; an .onnx model runs in ONNX Runtime (docs/deployment.md)"
    )


def jax_policy(loaded: Any) -> tuple[Any, Any]:
    """``(policy, policy_params)`` for ``jrl.evaluate`` and ``evaluate_in_gymnasium`` from
    ``load_policy``'s result: ``policy(params, obs, key)`` runs the export itself (its stored,
    possibly quantized, arrays through ``numpy_policy.forward`` in ``jax.numpy``, or the
    StableHLO program) on one observation."""
    import jax.numpy as jnp

    from jrl.export.numpy_policy import forward, greedy

    spec = loaded.spec
    if isinstance(loaded, NumpyQPolicy):

        def policy(params: Any, obs: Any, key: Any) -> Any:
            del key
            outputs = forward(spec, params, jnp.asarray(obs)[None], jnp)
            return greedy(spec, params, outputs, jnp)[0]

        return policy, {name: jnp.asarray(a) for name, a in loaded.arrays.items()}

    import jax

    from jrl.export.stablehlo import StableHLOPolicy, input_dtype

    if not isinstance(loaded, StableHLOPolicy):  # a TensorFlow SavedModel runs in TensorFlow
        raise TypeError(f"jax_policy runs NumPy and StableHLO exports in JAX, not a {type(loaded).__name__}")

    # The program takes a batch of any size but has no vmap rule of its own: a vmapped call (as
    # jrl.evaluate makes) runs it once on the whole batch.
    @jax.custom_batching.custom_vmap
    def act(obs: Any) -> Any:
        return loaded.exported.call(jnp.asarray(obs, input_dtype(spec))[None])[1][0]

    @act.def_vmap
    def _act_batched(axis_size: int, in_batched: list, obs: Any) -> tuple:
        (batched,) = in_batched
        obs = obs if batched else jnp.broadcast_to(obs, (axis_size, *jnp.shape(obs)))
        return loaded.exported.call(jnp.asarray(obs, input_dtype(spec)))[1], True

    def run_program(params: Any, obs: Any, key: Any) -> Any:
        del params, key
        return act(obs)

    return run_program, None
