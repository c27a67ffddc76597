"""Post-training quantization of an exported policy's weights: int8 per output channel, or float16.

``quantize(policy, "int8")`` stores every kernel (dense ``[I, O]``, 3x3 convolution ``[3, 3, C, F]``)
as int8 with one float32 scale per output channel, the channel's largest absolute weight over 127
(absmax, symmetric, round to nearest): ``kernel ~ int8 * scale``, each weight within half a step
(``scale / 2``) of its float value. A layer's other arrays (bias, the scales, LayerNorm
parameters) are stored as float16; the input scaling and action bounds stay float32, and every
activation is computed in float32 (weight-only quantization: the forward pass dequantizes each
kernel before its product). ``quantize(policy, "float16")`` stores the layers' arrays as float16.

The layer whose outputs are argmaxed (Q-values, logits: ``head``, or a dueling network's
``advantage``) is first split into its mean over the actions and each action's difference from it
(spec ``centered``): Q-values share a large common part (around 130 for a CartPole policy, whose
actions differ by 0.1), and quantizing each action's column on its own would bury the difference
under the common part's rounding. The differences alone decide the greedy action, and being
small, they quantize finely; the mean is stored as float16 (its error moves every action alike).
A continuous action's mean (PPO on ``Box`` actions) is quantized as it is.

Written here in a few lines of NumPy on jrl's neutral network description rather than through a
JAX quantization library (qwix, AQT): those rewrite a Flax model's products for quantized training
or serving inside JAX, while an export needs the int8 arrays themselves, the same for every format
(NumPy, safetensors, StableHLO, ONNX), and nothing that must be imported where the policy runs.
"""

from __future__ import annotations

import numpy as np

from jrl.export.numpy_policy import LAYERS, QUANTIZED_VERSION, WEIGHTS, NumpyQPolicy

__all__ = ["quantize"]


def quantize(policy: NumpyQPolicy, weights: str = "int8") -> NumpyQPolicy:
    """``policy`` with its kernels quantized (module docstring): a version-4 policy whose spec
    says ``weights``. Raises ``ValueError`` for an unknown ``weights`` or a policy quantized already."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {list(WEIGHTS)}, got {weights!r}")
    if "weights" in policy.spec:
        raise ValueError(f"the policy's weights are quantized already ({policy.spec['weights']})")
    arrays = dict(policy.arrays)
    centered = not policy.continuous and policy.spec["num_actions"] > 1
    if centered:
        out = "advantage" if policy.spec["dueling"] else "head"
        kernel, bias = arrays[f"{out}/kernel"], arrays[f"{out}/bias"]
        arrays[f"{out}/kernel_mean"] = kernel.mean(axis=1)
        arrays[f"{out}/kernel"] = kernel - arrays[f"{out}/kernel_mean"][:, None]
        arrays[f"{out}/bias_mean"] = bias.mean(keepdims=True)
        arrays[f"{out}/bias"] = bias - arrays[f"{out}/bias_mean"]
    for name in [n for n in arrays if n.startswith(LAYERS)]:
        array = arrays[name].astype(np.float32)
        if weights == "float16" or not name.endswith("/kernel"):
            arrays[name] = array.astype(np.float16)
            continue
        absmax = np.abs(array.reshape(-1, array.shape[-1])).max(axis=0)  # [out]
        # The scale as stored (float16), so that int8 * stored scale is the kernel to within half a step.
        # Clamped into float16's range: a channel of weights all below 1e-5 keeps a usable step.
        scale = np.clip(np.where(absmax > 0, absmax / 127.0, 1.0), 6e-8, None).astype(np.float16)
        if not np.isfinite(scale).all():
            raise ValueError(f"{name} has weights beyond float16's range ({absmax.max():.3g}): not quantizable")
        arrays[name] = np.clip(np.rint(array / scale.astype(np.float32)), -127, 127).astype(np.int8)
        arrays[f"{name}_scale"] = scale
    spec = {**policy.spec, "weights": weights, "version": QUANTIZED_VERSION, **({"centered": True} if centered else {})}
    return NumpyQPolicy(spec, arrays)
