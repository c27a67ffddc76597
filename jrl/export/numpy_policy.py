"""A greedy policy that runs with NumPy alone (no JAX, no jrl: this file imports only NumPy and the
standard library, so it can be copied next to any program that has NumPy).

``NumpyQPolicy.load("policy.npz")`` reads what ``jrl.export.export_numpy`` wrote (NumPy's ``.npz``,
read with ``allow_pickle=False``: arrays and one JSON string, nothing executed; a file whose spec or
arrays do not describe a complete network is refused with a ``ValueError`` naming what is wrong).
``policy.q_values(obs)`` maps a batch of observations ``[B, *obs_shape]`` (or ``[B]`` indices for
a ``Discrete`` observation space) to the network's outputs ``float32 [B, A]``; ``policy(obs)`` to
greedy actions: ``int64 [B]``, the argmax of the outputs, or for a continuous action (a version-3
file, spec ``action_shape``) ``float32 [B, *action_shape]``, the outputs (the action's mean)
clipped elementwise to the action bounds. The forward pass is jrl's ``QNetwork``: optional one-hot
input or rescaling to ``[-1, 1]``, 3x3 "SAME" convolutions with ReLU, ReLU dense layers (each
hidden layer optionally followed by a LayerNorm before its ReLU: PQN's network), then a plain or a
dueling head. PPO's actor is the same with tanh instead of ReLU (spec ``activation``) and logits
(Discrete actions) or the Gaussian policy's mean (Box actions) for Q-values.

File versions: 1, DQN's networks; 2, hidden layers with LayerNorms or tanh (which a version-1
reader would run without them, or with ReLU); 3, a continuous action (which an older reader would
take the argmax of); 4, quantized weights (spec ``weights``: ``"int8"``, every kernel stored as
int8 with a scale per output channel, ``{name}/kernel_scale``, the kernel being ``int8 * scale``;
or ``"float16"``, kernels stored as float16; in both, a layer's other arrays, its bias, scale and
LayerNorm parameters, are float16; or ``"bfloat16"``, every array of a layer stored as the ``uint16``
bits of its bfloat16 value, the top half of a float32: neither NumPy nor ``.npz`` has the type),
which an older reader would refuse or misread. A quantized
file with spec ``centered`` stores the layer that gives the argmax (``head``, or a dueling net's
``advantage``) as its mean over the actions (``{name}/kernel_mean`` ``[I]``, ``{name}/bias_mean``
``[1]``) plus each action's difference from it (``{name}/kernel``, ``{name}/bias``): the greedy
action depends on the differences alone, which are small, so they quantize finely. Each file has the lowest version that describes it, and this reader reads all four.

The file is ``.npz`` (``save``/``load``) or ``.safetensors`` (the same arrays, the spec in the
header's metadata; reading it needs the ``safetensors`` package). ``forward(spec, arrays, obs,
xp)`` is the forward pass written once for any array module with NumPy's interface: NumPy here,
``jax.numpy`` when jrl exports the same network to StableHLO or ONNX (``jrl.export``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FORMAT = "jrl-numpy-q-policy"
FORMAT_VERSION = 1
#: The version of a file whose hidden layers have LayerNorms (spec ``layer_norm``) or tanh
#: activations (spec ``activation``), which a reader of version 1 alone would run without them
#: (or with ReLU); networks without keep writing version 1.
LAYER_NORM_VERSION = 2
#: The version of a file whose outputs are a continuous action's mean (spec ``action_shape``,
#: arrays ``action/low`` and ``action/high``): the greedy action is the mean clipped to the bounds.
BOX_ACTION_VERSION = 3
#: The version of a file whose kernels are quantized (spec ``weights``: ``"int8"``, ``"float16"`` or
#: ``"bfloat16"``; a version-4 reader that predates bfloat16 refuses its spec).
QUANTIZED_VERSION = 4
WEIGHTS = ("int8", "float16", "bfloat16")
#: What holds a quantized file's layer arrays: ``(kernels, the layers' other arrays)`` per ``weights``.
STORED = {
    "int8": (np.dtype(np.int8), np.dtype(np.float16)),
    "float16": (np.dtype(np.float16), np.dtype(np.float16)),
    "bfloat16": (np.dtype(np.uint16), np.dtype(np.uint16)),
}
LAYER_NORM_EPSILON = 1e-6  # flax.linen.LayerNorm's default
ACTIVATIONS = ("relu", "tanh")


def patches3x3(x: np.ndarray, xp=np) -> np.ndarray:
    """``[B, H, W, C]`` -> ``[B, H, W, 9 * C]``: each position's zero-padded 3x3 neighbourhood
    (rows of the kernel reshaped to ``[9 * C, F]``, row-major over the 3x3 offsets, then channels)."""
    _, height, width, _ = x.shape
    padded = xp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return xp.concatenate([padded[:, di : di + height, dj : dj + width] for di in range(3) for dj in range(3)], axis=-1)


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, xp=np) -> np.ndarray:
    """``[B, H, W, C]`` -> ``[B, H, W, F]``: zero-padded 3x3 convolution as patches times a matrix."""
    return patches3x3(x, xp) @ kernel.reshape(9 * x.shape[-1], -1) + bias


def _layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, xp=np) -> np.ndarray:
    """Normalise over the last axis, then scale and shift (``flax.linen.LayerNorm``'s formula)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = xp.maximum(xp.square(x).mean(axis=-1, keepdims=True) - xp.square(mean), 0.0)
    return (x - mean) / xp.sqrt(var + np.float32(LAYER_NORM_EPSILON)) * scale + bias


LAYERS = ("conv", "dense", "head", "advantage", "value")


def _f32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32; ``uint16`` arrays are bfloat16 bits, a float32's top half (exact)."""
    if array.dtype == np.uint16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array if array.dtype == np.float32 else array.astype(np.float32)


def kernel(arrays: dict, name: str, xp=np) -> np.ndarray:
    """Layer ``name``'s kernel as float32: ``int8 * scale`` where it is quantized to int8 (spec
    ``weights = "int8"``), a cast of a float16 kernel, or the float32 kernel itself."""
    stored = arrays[f"{name}/kernel"]
    if f"{name}/kernel_scale" in arrays:
        value = stored.astype(np.float32) * _f32(arrays[f"{name}/kernel_scale"])
    else:
        value = _f32(stored)
    if f"{name}/kernel_mean" in arrays:  # a centered output layer: mean over the actions + differences
        value = value + _f32(arrays[f"{name}/kernel_mean"])[:, None]
    return value


def bias(arrays: dict, name: str) -> np.ndarray:
    """Layer ``name``'s bias as float32 (with its mean added back, in a centered output layer)."""
    value = _f32(arrays[f"{name}/bias"])
    if f"{name}/bias_mean" in arrays:
        value = value + _f32(arrays[f"{name}/bias_mean"])
    return value


def network_input(spec: dict, arrays: dict, obs: np.ndarray, xp=np) -> np.ndarray:
    """What the first layer reads, float32: observations ``[B, *obs_shape]`` as they are, one-hot
    ``[B, one_hot]`` for indices ``[B]``, or rescaled to ``[-1, 1]`` (arrays ``scale/low``, ``scale/span``)."""
    expected = tuple(spec["obs_shape"])
    if spec["one_hot"] is not None:
        x = (obs[:, None] == xp.arange(spec["one_hot"])[None, :]).astype(np.float32)
    else:
        x = obs.astype(np.float32)
    if "scale/low" in arrays:
        x = 2.0 * (x - arrays["scale/low"].reshape(expected)) / arrays["scale/span"].reshape(expected) - 1.0
    return x


def hidden_output(spec: dict, arrays: dict, name: str, y: np.ndarray, xp=np) -> np.ndarray:
    """Hidden layer ``name``'s output from its pre-activation ``y``: its LayerNorm (spec
    ``layer_norm``), then the activation (ReLU, or tanh for spec ``activation = "tanh"``)."""
    if spec.get("layer_norm", False):
        y = _layer_norm(y, _f32(arrays[f"{name}/norm_scale"]), _f32(arrays[f"{name}/norm_bias"]), xp)
    return xp.tanh(y) if spec.get("activation", "relu") == "tanh" else xp.maximum(y, 0.0)


def forward(spec: dict, arrays: dict, obs: np.ndarray, xp=np, conv3x3=None) -> np.ndarray:
    """The network's outputs ``float32 [B, A]`` for observations ``[B, *obs_shape]`` (checked by
    the caller), computed with the array module ``xp`` (``numpy``, or ``jax.numpy`` to trace the
    same pass for an export); kernels through ``kernel`` (dequantized where stored quantized).
    ``conv3x3(x, kernel, bias)``: the convolution to use (default: patches times a matrix, which
    any array module can run; an exporter passes its framework's own convolution)."""
    conv = conv3x3 or (lambda x, k, b: _conv3x3(x, k, b, xp))
    x = network_input(spec, arrays, obs, xp)
    for i in range(spec["num_convs"]):
        name = f"conv{i}"
        x = hidden_output(spec, arrays, name, conv(x, kernel(arrays, name, xp), bias(arrays, name)), xp)
    x = x.reshape(x.shape[0], -1)
    for i in range(spec["num_hidden"]):
        name = f"dense{i}"
        x = hidden_output(spec, arrays, name, x @ kernel(arrays, name, xp) + bias(arrays, name), xp)
    if not spec["dueling"]:
        return x @ kernel(arrays, "head", xp) + bias(arrays, "head")
    advantage = x @ kernel(arrays, "advantage", xp) + bias(arrays, "advantage")
    value = x @ kernel(arrays, "value", xp) + bias(arrays, "value")
    return value + advantage - advantage.mean(axis=-1, keepdims=True)


def greedy(spec: dict, arrays: dict, outputs: np.ndarray, xp=np) -> np.ndarray:
    """Greedy actions from ``forward``'s outputs ``[B, A]``: their argmax (int ``[B]``), or for a
    continuous action (spec ``action_shape``) the outputs clipped to the bounds, ``[B, *action_shape]``."""
    if "action_shape" not in spec:
        return xp.argmax(outputs, axis=-1)
    clipped = xp.clip(outputs, arrays["action/low"], arrays["action/high"])
    return clipped.reshape(outputs.shape[0], *spec["action_shape"])


def file_version(spec: dict) -> int:
    """The lowest version that describes a network of ``spec`` (module docstring)."""
    if "weights" in spec:
        return QUANTIZED_VERSION
    if "action_shape" in spec:
        return BOX_ACTION_VERSION
    if spec.get("layer_norm", False) or spec.get("activation", "relu") != "relu":
        return LAYER_NORM_VERSION
    return FORMAT_VERSION


def _is_int(x: object, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _check_spec(spec: object) -> None:
    """``ValueError`` unless ``spec`` is a dict of the keys a policy file has, each of its type."""
    if not isinstance(spec, dict):
        raise ValueError(f"the spec must be a JSON object, got {type(spec).__name__}")
    required = (
        "format",
        "version",
        "kind",
        "dueling",
        "one_hot",
        "num_convs",
        "num_hidden",
        "num_actions",
        "obs_shape",
    )
    missing = [key for key in required if key not in spec]
    optional = {"layer_norm", "activation", "action_shape", "weights", "centered"}
    unknown = sorted(set(spec) - set(required) - optional)
    if missing or unknown:
        raise ValueError(f"spec keys missing {missing} or unknown {unknown}")
    checks = {
        "kind": spec["kind"] in ("mlp", "cnn"),
        "dueling": isinstance(spec["dueling"], bool),
        "one_hot": spec["one_hot"] is None or _is_int(spec["one_hot"], 1),
        "num_convs": _is_int(spec["num_convs"], 0),
        "num_hidden": _is_int(spec["num_hidden"], 0),
        "num_actions": _is_int(spec["num_actions"], 1),
        "obs_shape": isinstance(spec["obs_shape"], list) and all(_is_int(d, 1) for d in spec["obs_shape"]),
        "layer_norm": isinstance(spec.get("layer_norm", False), bool),
        "activation": spec.get("activation", "tanh") in ACTIVATIONS[1:],  # written only when not relu
        "action_shape": isinstance(spec.get("action_shape", []), list)
        and all(_is_int(d, 1) for d in spec.get("action_shape", [])),
        "weights": spec.get("weights", "int8") in WEIGHTS,
        "centered": spec.get("centered", True) is True and ("weights" in spec or "centered" not in spec),
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"spec {', '.join(f'{key}={spec.get(key)!r}' for key in bad)} invalid")


def _expected_shapes(spec: dict, arrays: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Every array a network of ``spec`` has, with its shape (the layers' widths read from
    ``arrays``, each layer's input checked against the one before)."""
    obs_shape = tuple(spec["obs_shape"])
    shapes: dict[str, tuple[int, ...]] = {}
    if spec["one_hot"] is not None:
        if obs_shape or spec["num_convs"]:
            raise ValueError(f"one-hot inputs are single indices into an MLP, got obs_shape {list(obs_shape)}")
        width = spec["one_hot"]
    else:
        width = math.prod(obs_shape)
        if "scale/low" in arrays or "scale/span" in arrays:
            shapes["scale/low"] = shapes["scale/span"] = (width,)
    if spec["num_convs"] and len(obs_shape) != 3:
        raise ValueError(f"convolutions take [H, W, C] images, got obs_shape {list(obs_shape)}")

    def layer(name: str, kernel_in: tuple[int, ...], out: int | None = None) -> int:
        kernel = arrays.get(f"{name}/kernel")
        if kernel is None or kernel.ndim != len(kernel_in) + 1:
            raise ValueError(f"{name}/kernel missing or not {len(kernel_in) + 1}-D")
        out = kernel.shape[-1] if out is None else out
        shapes[f"{name}/kernel"], shapes[f"{name}/bias"] = (*kernel_in, out), (out,)
        if spec.get("weights") == "int8":
            shapes[f"{name}/kernel_scale"] = (out,)
        if spec.get("centered") and name == ("advantage" if spec["dueling"] else "head"):
            shapes[f"{name}/kernel_mean"], shapes[f"{name}/bias_mean"] = kernel_in, (1,)
        if spec.get("layer_norm") and not name.startswith(("head", "advantage", "value")):
            shapes[f"{name}/norm_scale"] = shapes[f"{name}/norm_bias"] = (out,)
        return out

    if spec["num_convs"]:
        channels = obs_shape[2]
        for i in range(spec["num_convs"]):
            channels = layer(f"conv{i}", (3, 3, channels))
        width = obs_shape[0] * obs_shape[1] * channels
    for i in range(spec["num_hidden"]):
        width = layer(f"dense{i}", (width,))
    if spec["dueling"]:
        layer("advantage", (width,), spec["num_actions"])
        layer("value", (width,), 1)
    else:
        layer("head", (width,), spec["num_actions"])
    if "action_shape" in spec:
        if math.prod(spec["action_shape"]) != spec["num_actions"]:
            raise ValueError(f"action_shape {spec['action_shape']} does not hold the {spec['num_actions']} outputs")
        shapes["action/low"] = shapes["action/high"] = (spec["num_actions"],)
    return shapes


def _check_arrays(spec: dict, arrays: dict[str, np.ndarray]) -> None:
    """``ValueError`` unless ``arrays`` hold every array of the network, each of its shape, real
    and finite (the action bounds may be infinite, never NaN, with ``low <= high``). Arrays the
    spec does not name are left unread (a spec without ``layer_norm`` runs without the norms)."""
    expected = _expected_shapes(spec, arrays)
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise ValueError(f"arrays missing: {missing}")
    quantized, others = STORED.get(spec.get("weights"), (None, None))

    def fits(name: str) -> bool:
        if quantized is not None and name.endswith("/kernel"):
            return arrays[name].dtype == quantized
        if quantized is not None and name.startswith(LAYERS):
            return arrays[name].dtype == others
        return np.issubdtype(arrays[name].dtype, np.floating)

    wrong_type = [f"{name} ({arrays[name].dtype})" for name in expected if not fits(name)]
    if wrong_type:
        if quantized is not None:
            rule = f"kernels {quantized.name} (weights={spec['weights']!r}), the layers' other arrays {others.name}"
        else:
            rule = "every array of a float dtype"
        raise ValueError(f"arrays of the wrong dtype: {', '.join(wrong_type)} ({rule})")
    wrong = [
        f"{name} {arrays[name].shape} (expected {shape})"
        for name, shape in expected.items()
        if arrays[name].shape != shape
    ]
    if wrong:
        raise ValueError(f"array shapes {', '.join(wrong)}")
    weights = [
        name
        for name in expected
        if not name.startswith("action/")
        and (np.issubdtype(arrays[name].dtype, np.floating) or arrays[name].dtype == np.uint16)
        and not np.isfinite(_f32(arrays[name])).all()
    ]
    if weights:
        raise ValueError(f"non-finite values in {weights}")
    if "action/low" in expected and not (arrays["action/low"] <= arrays["action/high"]).all():  # NaN fails too
        raise ValueError(f"action bounds need low <= high, got {arrays['action/low']} and {arrays['action/high']}")


def read_spec_and_arrays(path: str | Path, what: str) -> tuple[object, dict[str, np.ndarray]]:
    """``(spec, arrays)`` of an export file: ``.safetensors`` (the JSON spec in the header's metadata;
    reading it needs the ``safetensors`` package) or ``.npz`` (a ``spec`` entry beside the arrays,
    read with ``allow_pickle=False``). ``ValueError`` saying the file is not ``what`` when it has no
    spec or is no safetensors file; the spec is parsed JSON, not yet checked."""
    if str(path).endswith(".safetensors"):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                metadata = f.metadata() or {}
                arrays = {name: f.get_tensor(name) for name in f.keys()}
        except SafetensorError as err:
            raise ValueError(f"not a safetensors file ({err})") from None
        if "spec" not in metadata:
            raise ValueError(f"not {what} (no 'spec' in the safetensors metadata)")
        return json.loads(metadata["spec"]), arrays
    with np.load(path, allow_pickle=False) as data:
        if "spec" not in data.files:
            raise ValueError(f"not {what} (no 'spec' entry)")
        return json.loads(str(data["spec"])), {name: data[name] for name in data.files if name != "spec"}


class NumpyQPolicy:
    """Greedy actions of an exported network (see the module docstring).

    Attributes:
        spec: the network's description (``format``, ``version``, ``kind``, ``dueling``,
            ``one_hot``, ``num_convs``, ``num_hidden``, ``num_actions``, ``obs_shape``; optionally
            ``layer_norm``, ``activation``, and ``action_shape`` for a continuous action).
        arrays: the parameters by name (``conv{i}/kernel``, ``dense{i}/bias``, ``head/kernel``,
            ``advantage/kernel``, ``value/bias``, ``scale/low``, ``action/low``, ...), float32.
        continuous: whether the outputs are a continuous action's mean (clipped by ``__call__``)
            rather than Q-values or logits (argmax).

    Raises:
        ValueError: the spec is not this format's at the version its contents need, or the
            arrays are not the network's (a name missing, a shape that does not chain, a non-finite
            weight, action bounds with ``low > high``). Arrays the spec does not name are ignored.
    """

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray]) -> None:
        if not isinstance(spec, dict):
            raise ValueError(f"not a {FORMAT} policy: the spec is a {type(spec).__name__}, not a JSON object")
        version = file_version(spec)
        if spec.get("format") != FORMAT or spec.get("version") != version:
            raise ValueError(f"not a {FORMAT} v{version} policy: {spec.get('format')!r} v{spec.get('version')!r}")
        arrays = {name: np.asarray(a) for name, a in arrays.items()}
        try:
            _check_spec(spec)
            _check_arrays(spec, arrays)
        except ValueError as err:
            raise ValueError(f"malformed {FORMAT} v{version} policy: {err}") from None
        self.spec = spec
        quantized = "weights" in spec  # the layers' arrays stay as stored (int8 or float16)
        self.arrays = {
            name: a if quantized and name.startswith(LAYERS) else a.astype(np.float32) for name, a in arrays.items()
        }
        self.continuous = "action_shape" in spec
        # The forward pass in NumPy reads float32 kernels, dequantized once here.
        self._float = dict(self.arrays)
        for name in self.arrays:
            if name.endswith("/kernel"):
                self._float[name] = kernel(self.arrays, name[: -len("/kernel")])
            elif name.startswith(LAYERS):
                self._float[name] = _f32(self.arrays[name])
        self._float = {n: a for n, a in self._float.items() if not n.endswith(("/kernel_scale", "/kernel_mean"))}

    @classmethod
    def load(cls, path: str | Path) -> NumpyQPolicy:
        """Read a policy ``save`` wrote: ``.npz`` (read with ``allow_pickle=False``) or
        ``.safetensors`` (the ``safetensors`` package); ``ValueError`` naming ``path`` and the fault
        for anything else (no spec, a spec that is not JSON, a malformed network)."""
        try:
            return cls(*read_spec_and_arrays(path, "an exported jrl policy"))
        except ValueError as err:  # json.JSONDecodeError and NumPy's refusal of pickled objects included
            raise ValueError(f"{path}: {err}") from None

    def save(self, path: str | Path) -> None:
        """Write the policy: ``.safetensors`` where ``path`` ends so (the spec in the metadata),
        else ``.npz`` (the arrays and the JSON spec)."""
        text = json.dumps(self.spec, sort_keys=True)
        if str(path).endswith(".safetensors"):
            from safetensors.numpy import save_file

            save_file({name: np.ascontiguousarray(a) for name, a in self.arrays.items()}, str(path), {"spec": text})
            return
        np.savez(path, spec=np.array(text), **self.arrays)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The network's outputs ``float32 [B, A]`` for a batch of observations: Q-values (DQN,
        PQN), logits (PPO, Discrete actions), or the unclipped mean of a continuous action (PPO,
        Box actions: ``A = D``, the action's elements)."""
        spec = self.spec
        obs = np.asarray(obs)
        expected = tuple(spec["obs_shape"])
        if obs.shape[1:] != expected:
            raise ValueError(f"observations must have shape [B, {', '.join(map(str, expected))}], got {obs.shape}")
        if spec["one_hot"] is not None and (
            not np.issubdtype(obs.dtype, np.integer) or obs.min(initial=0) < 0 or obs.max(initial=0) >= spec["one_hot"]
        ):
            raise ValueError(f"observations must be integers in [0, {spec['one_hot']}), got {obs!r:.80}")
        return forward(spec, self._float, obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions of a batch of observations ``[B, *obs_shape]``: ``int64 [B]``, the
        argmax of ``q_values`` (the lowest index among equal values, as ``argmax``); or for a
        continuous action ``float32 [B, *action_shape]``, the mean clipped elementwise to
        ``[action/low, action/high]`` (``[B, D]`` for a vector action of ``D`` elements)."""
        return greedy(self.spec, self._float, self.q_values(obs))

    @property
    def nbytes(self) -> int:
        """Bytes of the stored arrays (quantized kernels as stored)."""
        return sum(a.nbytes for a in self.arrays.values())
