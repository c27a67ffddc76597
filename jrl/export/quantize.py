"""Post-training quantization of an exported policy's weights: int8 per output channel, float16 or bfloat16.

``quantize(policy, "int8")`` stores every kernel (dense ``[I, O]``, 3x3 convolution ``[3, 3, C, F]``)
as int8 with one float16 scale per output channel, the channel's largest absolute weight over 127
(absmax, symmetric): ``kernel ~ int8 * scale``. A layer's other arrays (bias, the scales, LayerNorm
parameters) are stored as float16; the input scaling and action bounds stay float32, and every
activation is computed in float32 (weight-only quantization: the forward pass dequantizes each
kernel before its product). ``quantize(policy, "float16")`` stores the layers' arrays as float16,
``"bfloat16"`` as bfloat16 (float32's range, 8 bits of precision; rounded to nearest even), whose
``uint16`` bits the file holds.

The layer whose outputs are argmaxed (Q-values, logits: ``head``, or a dueling network's
``advantage``) is first split into its mean over the actions and each action's difference from it
(spec ``centered``): Q-values share a large common part (around 130 for a CartPole policy, whose
actions differ by 0.1), and quantizing each action's column on its own would bury the difference
under the common part's rounding. The differences alone decide the greedy action, and being
small, they quantize finely; the mean is stored as float16 (its error moves every action alike).
A continuous action's mean (PPO on ``Box`` actions) is quantized as it is.

Two ways to pick the int8 values:

- **Round to nearest** (no ``calibration``): each weight within half a step (``scale / 2``) of its
  float value. Needs nothing but the weights; small errors in every weight add up, and a Q-value
  gap smaller than that sum (CartPole's best two actions are 0.017 apart at the 10th percentile
  of the states its policy visits) flips the greedy action.
- **Calibrated** (``calibration=obs``, observations ``[N, *obs_shape]`` the float policy visits):
  GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for
  Generative Pre-trained Transformers", arXiv:2210.17323) applied layer by layer from the input, each
  layer fitted to what the *float* network computes there, from what the *quantized* layers before it
  hand on (so errors do not compound). For a layer with inputs ``X`` (the quantized network's
  activations on the calibration states, ``[N, I]``, centered on their mean; a convolution's 3x3
  patches) and targets ``Y`` (the float layer's outputs on the float network's activations,
  centered):

  1. *refit*: ``W = argmin |X W - Y|^2 + mu |W - W_float|^2`` (``(H + mu I) W = X^T Y + mu
     W_float``, ``H = X^T X``, ``mu = REFIT_DAMP * mean(diag H)``, small): the float weights
     corrected for the error of the layers below, pinned to the float weights where the states say
     nothing (an input that is always zero);
  2. *GPTQ*: the scales from the refit weights' absmax; then input rows one at a time, in the
     order of decreasing ``diag H`` (GPTQ's "act order"): round the row, and spread its rounding
     error over the rows not rounded yet through the inverse Hessian ``(H + lam I)^-1`` (``lam =
     DAMP * mean(diag H)``, the paper's 1% damping; its Cholesky factor, as the paper's
     Algorithm 1), so that ``X W_int8`` stays near ``X W``; values are clipped to [-127, 127];
  3. *bias correction*: the float16 bias ``mean(Y) - mean(X) W_int8``, so the layer's mean output
     on the calibration states is the float layer's.

  A centered layer's differences are quantized so; its mean over the actions (float16) is refitted
  as in 1. The result is stored exactly as round-to-nearest's (same arrays, dtypes, spec, file
  version 4): a reader cannot tell, and needs nothing new. No weight is then promised to be within
  half a step of its float value (GPTQ moves weights to cancel other weights' errors); what is
  promised is agreement on states like the calibration states. Deterministic (NumPy float64
  arithmetic, no random draw): the same policy and states give the same bytes (on one machine:
  another BLAS may sum in another order).

Written here in NumPy on jrl's neutral network description rather than through a JAX quantization
library (qwix, AQT): those rewrite a Flax model's products for quantized training or serving inside
JAX, while an export needs the int8 arrays themselves, the same for every format (NumPy,
safetensors, StableHLO, ONNX), and nothing that must be imported where the policy runs.
"""

from __future__ import annotations

import numpy as np

from jrl.export.numpy_policy import (
    LAYERS,
    QUANTIZED_VERSION,
    WEIGHTS,
    NumpyQPolicy,
    bias,
    hidden_output,
    kernel,
    network_input,
    patches3x3,
)

__all__ = ["DAMP", "MIN_CALIBRATION", "REFIT_DAMP", "ROWS_PER_INPUT", "absmax_int8", "bfloat16_bits", "quantize"]

#: The fewest calibration observations ``quantize`` takes: each layer's refit is a least-squares fit
#: of up to a few hundred weights per output from them.
MIN_CALIBRATION = 256
#: The fewest rows of a layer's least-squares refit per input (a dense layer: a row per observation;
#: a convolution: one per observation and position). Near one row per input the refit fits the
#: calibration states exactly and generalises worst (the "interpolation peak": on a CNN whose
#: dense layer has 512 inputs, 512 states gave 2.3x rounding's error, 1,024 0.38x, 2,048 0.27x,
#: 4,096 0.25x).
ROWS_PER_INPUT = 4
#: GPTQ's damping, as a fraction of the mean diagonal of a layer's ``X^T X`` (the paper's 1%).
DAMP = 0.01
#: The refit's pull towards the float weights, in the same unit: small, so that the refit follows
#: the states (at 1% it kept too much of the float weights, which the quantized layers below no
#: longer fit: CartPole's agreement fell to 98.9-99.1%), but enough to pin weights the states do
#: not determine (an input that is always zero).
REFIT_DAMP = 1e-4
#: States whose rows are formed at a time: a convolution's patches are 9x its input.
CHUNK = 1024


def quantize(policy: NumpyQPolicy, weights: str = "int8", *, calibration: np.ndarray | None = None) -> NumpyQPolicy:
    """``policy`` with its kernels quantized (module docstring): a version-4 policy whose spec
    says ``weights``.

    Args:
        policy: a float32 policy (``export_numpy``, or one read back from a float file).
        weights: ``"int8"``, ``"float16"`` or ``"bfloat16"`` (a cast: every array of a layer
            rounded to nearest even, stored as its bits).
        calibration: observations ``[N, *obs_shape]`` (int indices ``[N]`` for a one-hot input),
            states the float policy visits: int8 is then calibrated on them (GPTQ with a refit and
            bias correction); ``None``: round to nearest. ``N >= MIN_CALIBRATION``, and at least
            ``ROWS_PER_INPUT`` rows per input of every layer (a convolution has a row per position).

    Raises:
        ValueError: an unknown ``weights``, a policy quantized already, ``calibration`` with
            float16, or calibration observations of the wrong shape, too few (for
            ``MIN_CALIBRATION`` or for the widest layer), not finite, or indices out of range.
        TypeError: calibration observations that are not numbers (or not integers, for one-hot).
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {list(WEIGHTS)}, got {weights!r}")
    if "weights" in policy.spec:
        raise ValueError(f"the policy's weights are quantized already ({policy.spec['weights']})")
    if calibration is not None:
        if weights != "int8":
            raise ValueError(f"calibration applies to int8 weights; weights={weights!r} is a cast")
        calibration = _checked_calibration(policy.spec, policy.arrays, calibration)
    arrays = dict(policy.arrays)
    centered = not policy.continuous and policy.spec["num_actions"] > 1
    if centered:
        out = _argmax_layer(policy.spec)
        out_kernel, out_bias = arrays[f"{out}/kernel"], arrays[f"{out}/bias"]
        arrays[f"{out}/kernel_mean"] = out_kernel.mean(axis=1)
        arrays[f"{out}/kernel"] = out_kernel - arrays[f"{out}/kernel_mean"][:, None]
        arrays[f"{out}/bias_mean"] = out_bias.mean(keepdims=True)
        arrays[f"{out}/bias"] = out_bias - arrays[f"{out}/bias_mean"]
    if calibration is not None:
        arrays = _calibrated(policy.spec, arrays, calibration)
    else:
        for name in [n for n in arrays if n.startswith(LAYERS)]:
            array = arrays[name].astype(np.float32)
            if weights == "bfloat16":
                arrays[name] = bfloat16_bits(array)
                continue
            if weights == "float16" or not name.endswith("/kernel"):
                arrays[name] = array.astype(np.float16)
                continue
            matrix, scale = absmax_int8(array.reshape(-1, array.shape[-1]), name)
            arrays[name], arrays[f"{name}_scale"] = matrix.reshape(array.shape), scale
    spec = {**policy.spec, "weights": weights, "version": QUANTIZED_VERSION, **({"centered": True} if centered else {})}
    return NumpyQPolicy(spec, arrays)


def bfloat16_bits(array: np.ndarray) -> np.ndarray:
    """float32 ``array`` rounded to bfloat16 (to nearest, ties to even), as its ``uint16`` bits:
    the float32's top half after adding half of the dropped half (plus the kept half's last bit)."""
    bits = np.ascontiguousarray(array, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def absmax_int8(kernel: np.ndarray, name: str = "the kernel") -> tuple[np.ndarray, np.ndarray]:
    """``(int8 [I, O], float16 scale [O])``: ``kernel`` ``[I, O]`` rounded to nearest on a grid of
    one step per column, its largest absolute weight over 127 (each weight within half a step of
    ``int8 * scale``); ``ValueError`` naming ``name`` beyond float16's range."""
    scale = _scale(name, kernel)
    return np.clip(np.rint(kernel / scale.astype(np.float32)), -127, 127).astype(np.int8), scale


def _argmax_layer(spec: dict) -> str:
    return "advantage" if spec["dueling"] else "head"


def _scale(name: str, kernel: np.ndarray) -> np.ndarray:
    """float16 ``[O]``: absmax / 127 of each column of ``kernel`` ``[I, O]``, as stored (so that int8 *
    stored scale is what the reader computes). Clamped into float16's range: a channel of weights
    all below 1e-5 keeps a usable step."""
    absmax = np.abs(kernel).max(axis=0)
    scale = np.clip(np.where(absmax > 0, absmax / 127.0, 1.0), 6e-8, None).astype(np.float16)
    if not np.isfinite(scale).all():
        raise ValueError(f"{name} has weights beyond float16's range ({absmax.max():.3g}): not quantizable")
    return scale


def _checked_calibration(spec: dict, arrays: dict, calibration: object) -> np.ndarray:
    """The calibration observations as an array, checked before any arithmetic (``quantize``)."""
    obs = np.asarray(calibration)
    expected = tuple(spec["obs_shape"])
    if obs.ndim != 1 + len(expected) or obs.shape[1:] != expected:
        dims = ", ".join(["N", *map(str, expected)])
        raise ValueError(f"calibration observations must have shape [{dims}], got {obs.shape}")
    if spec["one_hot"] is not None:
        if not np.issubdtype(obs.dtype, np.integer):
            raise TypeError(f"calibration observations must be integer indices (one-hot input), got {obs.dtype}")
        if obs.size and (obs.min() < 0 or obs.max() >= spec["one_hot"]):
            raise ValueError(f"calibration observations must be integers in [0, {spec['one_hot']})")
    elif not (np.issubdtype(obs.dtype, np.integer) or np.issubdtype(obs.dtype, np.floating)):
        raise TypeError(f"calibration observations must be real numbers, got dtype {obs.dtype}")
    elif not np.isfinite(obs).all():
        raise ValueError(f"calibration observations must be finite; {np.size(obs) - np.isfinite(obs).sum()} are not")
    if len(obs) < MIN_CALIBRATION:
        raise ValueError(f"calibration needs at least {MIN_CALIBRATION} observations, got {len(obs)}")
    positions = spec["obs_shape"][0] * spec["obs_shape"][1] if spec["num_convs"] else 1
    for name in [n[: -len("/kernel")] for n in arrays if n.endswith("/kernel")]:
        inputs = int(np.prod(arrays[f"{name}/kernel"].shape[:-1]))
        rows = len(obs) * (positions if name.startswith("conv") else 1)  # a convolution: a row per position
        if rows < ROWS_PER_INPUT * inputs:
            needed = -(-ROWS_PER_INPUT * inputs // (rows // len(obs)))
            raise ValueError(
                f"calibration needs at least {needed} observations for this network ({name} has {inputs} inputs, "
                f"and its refit {ROWS_PER_INPUT} rows per input), got {len(obs)}"
            )
    return obs


def _layer_rows(x: np.ndarray, conv: bool) -> np.ndarray:
    """A layer's inputs as float64 rows ``[N', I]``: a convolution's 3x3 patches (one row per
    position), or the activations flattened per state."""
    if conv:
        patches = patches3x3(x)
        return patches.reshape(-1, patches.shape[-1]).astype(np.float64)
    return x.reshape(x.shape[0], -1).astype(np.float64)


def _moments(x_quant: np.ndarray, x_float: np.ndarray, conv: bool, w: np.ndarray, b: np.ndarray) -> tuple:
    """``(mean X [I], mean Y [O], X^T X [I, I], X^T Y [I, O])`` over every row, centered, with ``X``
    the quantized network's inputs and ``Y = X_float w + b`` the float layer's outputs; summed over
    ``CHUNK`` states at a time (a convolution's patches are 9x its activations)."""
    count, sx, sy, sxx, sxy = 0, 0.0, 0.0, 0.0, 0.0
    for start in range(0, len(x_quant), CHUNK):
        rows = _layer_rows(x_quant[start : start + CHUNK], conv)
        target = _layer_rows(x_float[start : start + CHUNK], conv) @ w + b
        count += len(rows)
        sx, sy = sx + rows.sum(axis=0), sy + target.sum(axis=0)
        sxx, sxy = sxx + rows.T @ rows, sxy + rows.T @ target
    mean_x, mean_y = sx / count, sy / count
    return mean_x, mean_y, sxx - count * np.outer(mean_x, mean_x), sxy - count * np.outer(mean_x, mean_y)


def _refit(hessian: np.ndarray, xty: np.ndarray, w_float: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1 of the module docstring from the centered ``X^T X`` ``[I, I]`` and ``X^T Y`` ``[I, O]``:
    ``(W [I, O], H + lam I [I, I], diag H [I])``."""
    diagonal = np.diag(hessian).copy()
    mean = diagonal.mean() if diagonal.mean() > 0 else 1.0  # all inputs zero: the float weights
    eye = np.eye(len(hessian))
    lam = REFIT_DAMP * mean
    w = np.linalg.solve(hessian + lam * eye, xty + lam * w_float)
    return w, hessian + DAMP * mean * eye, diagonal


def _gptq(name: str, w: np.ndarray, damped: np.ndarray, diagonal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 of the module docstring: ``w`` ``[I, O]`` (float64) as ``(int8 [I, O], float16 scale [O])``."""
    scale = _scale(name, w)
    step = scale.astype(np.float64)
    # Act order: the inputs that carry most first, while many rows are left to absorb their error
    # (on CartPole's network, without it agreement fell from 99.2-99.7% to 95.6-98.8%).
    order = np.argsort(-diagonal, kind="stable")
    w = w[order]  # a copy: rows are updated below
    # U upper triangular with (H + lam I)^-1 = U^T U: row i of U, over U[i, i], spreads row i's
    # rounding error onto rows i+1.. so as to keep X W (GPTQ's Algorithm 1).
    inverse = np.linalg.inv(damped[np.ix_(order, order)])
    upper = np.linalg.cholesky((inverse + inverse.T) / 2).T
    q = np.zeros_like(w)
    for i in range(len(w)):
        q[i] = np.clip(np.rint(w[i] / step), -127, 127)
        error = (w[i] - q[i] * step) / upper[i, i]
        w[i + 1 :] -= np.outer(upper[i, i + 1 :], error)
    stored = np.empty_like(q)
    stored[order] = q
    return stored.astype(np.int8), scale


def _calibrated(spec: dict, arrays: dict, obs: np.ndarray) -> dict:
    """The int8 arrays (module docstring, "Calibrated"): layers in the order of the forward pass,
    the float network (``arrays``, its argmaxed layer split already) and the quantized one run side
    by side on ``obs`` (float32 activations, as the reader computes them)."""
    out = dict(arrays)
    for name in [n for n in arrays if n.startswith(LAYERS) and not n.endswith("/kernel")]:
        out[name] = arrays[name].astype(np.float16)  # biases are overwritten below
    x_float = x_quant = network_input(spec, arrays, obs)
    names = [f"conv{i}" for i in range(spec["num_convs"])] + [f"dense{i}" for i in range(spec["num_hidden"])]
    heads = ["advantage", "value"] if spec["dueling"] else ["head"]
    for name in names + heads:
        conv = name.startswith("conv")
        if not conv:  # dense layers read the activations flattened (the forward pass's reshape)
            x_float, x_quant = x_float.reshape(len(obs), -1), x_quant.reshape(len(obs), -1)
        shape = arrays[f"{name}/kernel"].shape
        w_float = arrays[f"{name}/kernel"].astype(np.float64).reshape(-1, shape[-1])
        b_float = arrays[f"{name}/bias"].astype(np.float64)
        centered = f"{name}/kernel_mean" in arrays
        if centered:  # the mean over the actions: one more output, refitted and kept float16
            w_float = np.concatenate([w_float, arrays[f"{name}/kernel_mean"].astype(np.float64)[:, None]], axis=1)
            b_float = np.concatenate([b_float, arrays[f"{name}/bias_mean"].astype(np.float64)])
        mean_x, mean_y, hessian, xty = _moments(x_quant, x_float, conv, w_float, b_float)
        w, damped, diagonal = _refit(hessian, xty, w_float)
        if centered:
            out[f"{name}/kernel_mean"] = w[:, -1].astype(np.float16)
            out[f"{name}/bias_mean"] = (mean_y[-1:] - mean_x @ w[:, -1:]).astype(np.float16)
            w, mean_y = w[:, :-1], mean_y[:-1]
        q, scale = _gptq(name, w, damped, diagonal)
        out[f"{name}/kernel"] = q.reshape(shape)
        out[f"{name}/kernel_scale"] = scale
        out[f"{name}/bias"] = (mean_y - mean_x @ (q * scale.astype(np.float64))).astype(np.float16)
        if name in heads:
            continue
        # The next layer's inputs, as each network computes them.
        x_float = hidden_output(spec, arrays, name, _linear(arrays, name, x_float, conv))
        x_quant = hidden_output(spec, out, name, _linear(out, name, x_quant, conv))
    return out


def _linear(arrays: dict, name: str, x: np.ndarray, conv: bool) -> np.ndarray:
    """Layer ``name``'s pre-activation ``float32`` on ``x`` (the reader's ``kernel`` and ``bias``)."""
    w, b = kernel(arrays, name), bias(arrays, name)
    if not conv:
        return x @ w + b
    chunks = [patches3x3(x[i : i + CHUNK]) @ w.reshape(-1, w.shape[-1]) + b for i in range(0, len(x), CHUNK)]
    return np.concatenate(chunks)
