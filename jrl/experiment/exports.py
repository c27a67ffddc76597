"""A run directory's greedy policy exported (``jrl export``): the run's latest checkpoint read
here, the formats and quantization in ``jrl.export`` (the floor below). int8 is calibrated on
states the float policy visits in the environment (``calibration_states``), where there is one.
A text learner's run, a language model's directory (``jrl pretrain``) or a text export file
becomes a ``jrl.export.TextExport`` (``text_source``) and goes through the same formats."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl.algorithms.rollout import collect, reset_envs
from jrl.envs import make
from jrl.experiment.runner import load_run
from jrl.export import (
    FORMATS,
    NumpyQPolicy,
    TextExport,
    export_numpy,
    export_policy,
    export_text,
    load_policy,
    quantize,
)
from jrl.export.numpy_policy import forward, greedy

__all__ = [
    "CALIBRATION_ENVS",
    "CALIBRATION_SEED",
    "CALIBRATION_STEPS",
    "calibration_states",
    "export_hf",
    "export_run",
    "text_models",
    "text_source",
]

#: The calibration rollout of ``export_run``'s int8: ``CALIBRATION_ENVS`` episodes stepped
#: ``CALIBRATION_STEPS`` times from ``jax.random.key(CALIBRATION_SEED)``, 16,384 states. Many short
#: stretches of episodes rather than a few long ones: on the CartPole default (docs/deployment.md)
#: agreement over three keys was 99.16-99.62% with 8 x 512 states, 99.12-99.47% with 16 x 512,
#: 99.26-99.48% with 32 x 512 and 99.59-99.66% with 64 x 256.
CALIBRATION_ENVS = 64
CALIBRATION_STEPS = 256
CALIBRATION_SEED = 0


def calibration_states(
    policy: NumpyQPolicy,
    env: Any,
    env_params: Any,
    *,
    key: jax.Array | None = None,
    num_envs: int = CALIBRATION_ENVS,
    num_steps: int = CALIBRATION_STEPS,
) -> np.ndarray:
    """The observations ``[num_steps * num_envs, *obs_shape]`` (step-major) that ``policy``'s greedy
    actions meet in ``num_envs`` parallel episodes of ``env`` (``jrl.algorithms.rollout``: reset
    with ``key``, default ``jax.random.key(CALIBRATION_SEED)``, auto-reset as episodes end), for
    ``quantize(policy, "int8", calibration=...)``. Deterministic: the same policy, environment and
    key give the same states. ``ValueError`` if the policy's observations are not the environment's."""
    expected = tuple(env.observation_space(env_params).shape)
    if tuple(policy.spec["obs_shape"]) != expected:
        raise ValueError(
            f"the policy takes observations of shape {tuple(policy.spec['obs_shape'])}; the environment's are {expected}"
        )
    key = jax.random.key(CALIBRATION_SEED) if key is None else key
    arrays = {name: jnp.asarray(a) for name, a in policy.arrays.items()}
    text = json.dumps(policy.spec, sort_keys=True)
    obs = np.asarray(_rollout(key, arrays, env_params, env, text, num_envs, num_steps))
    return obs.reshape(num_steps * num_envs, *obs.shape[2:])


@functools.partial(jax.jit, static_argnames=("env", "spec", "num_envs", "num_steps"))
def _rollout(key: jax.Array, arrays: dict, env_params: Any, env: Any, spec: str, num_envs: int, num_steps: int):
    """``calibration_states``'s rollout, compiled once per environment, network and size (the spec
    as JSON text, hashable): observations ``[num_steps, num_envs, *obs_shape]``."""
    spec_dict = json.loads(spec)

    def act(k: jax.Array, obs: jax.Array, t: jax.Array) -> tuple[jax.Array, tuple]:
        del k, t  # greedy actions draw nothing
        return greedy(spec_dict, arrays, forward(spec_dict, arrays, obs, jnp), jnp), ()

    reset_key, rollout_key = jax.random.split(key)
    envs = reset_envs(reset_key, env, env_params, num_envs)
    return collect(rollout_key, env, env_params, envs, act, num_steps)[1].obs


def text_models(source: str | Path, seed_index: int = 0) -> tuple[Any, Any, float, str, Path] | None:
    """``(language model, Q-model or None, beta, file stem, default folder)`` when the directory
    ``source`` holds a text model: a language model's directory (``jrl pretrain``'s,
    ``jrl.text.save_model``'s, a Hugging Face GPT-2 directory: the model alone) or a run of a text
    learner (seed ``seed_index``'s ``decoding_models``: ``text_q_learning``'s pretrained model,
    Q-model and beta; ``grpo``'s tuned model); ``None`` for anything else (a file, a policy's run)."""
    from jrl.text.model import CONFIG_FILE, WEIGHTS_FILE, load_model

    source = Path(source)
    if source.is_file():
        return None
    if (source / WEIGHTS_FILE).is_file() and (source / CONFIG_FILE).is_file():
        return load_model(source), None, 0.0, "model", source / "export"
    run = load_run(source)
    if not run.spec.algorithm.decodes_text:
        return None
    if not 0 <= seed_index < len(run.spec.seeds):
        raise ValueError(f"the run has seeds {list(run.spec.seeds)}: --seed takes one of them")
    state, _ = run.load_checkpoint()
    result = run.algorithm.result(run.seed_state(state, seed_index), {})
    model, q_model, beta = run.spec.algorithm.decoding_models(run.config, result)
    return model, q_model, beta, f"text-seed{run.spec.seeds[seed_index]}", source / "export"


def text_source(source: str | Path, seed_index: int = 0) -> tuple[TextExport, str, Path] | None:
    """``(text model, file stem, default folder)`` when ``source`` holds a text model: one of
    ``text_models``' directories, or a text export file; ``None`` for anything else (a policy's
    run or file)."""
    source = Path(source)
    if source.is_file():
        loaded = load_policy(source) if source.suffix in (".npz", ".safetensors") else None
        return (loaded, source.stem, source.parent) if isinstance(loaded, TextExport) else None
    models = text_models(source, seed_index)
    if models is None:
        return None
    model, q_model, beta, stem, folder = models
    return export_text(model, q_model, beta), stem, folder


def export_hf(source: str | Path, out: str | Path | None = None, *, seed_index: int = 0) -> Path:
    """``jrl export --format hf``: the language model of a text run or model directory
    (``text_models``) written as a Hugging Face GPT-2 directory (``jrl.text.save_model(...,
    format="hf")``) that ``transformers`` loads, to ``out`` (default ``FOLDER/<stem>-hf``). Only a
    model that decodes alone, in GPT-2's form and with its Hugging Face tokenizer, fits: a grpo run
    tuned from a Hugging Face model, or such a model's directory. ``ValueError`` otherwise, saying why."""
    from jrl.text.model import save_model

    source = Path(source)
    models = text_models(source, seed_index)
    if models is None:
        what = "a file" if source.is_file() else "not a text run or a language model's directory"
        raise ValueError(
            f"{source}: --format hf writes a language model's directory from a text run or a model directory; "
            f"this is {what}"
        )
    model, q_model, _, stem, folder = models
    if q_model is not None:
        raise ValueError(
            f"{source} decodes with logits + beta * Q (a Q-head beside the language model), which a GPT-2 "
            "directory cannot hold: export it as safetensors, stablehlo, onnx or tf (they keep the Q-head)"
        )
    path = Path(out) if out is not None else folder / f"{stem}-hf"
    return save_model(path, model, format="hf")


def export_run(
    run_dir: str | Path,
    format: str,
    out: str | Path | None = None,
    *,
    seed_index: int = 0,
    weights: str | None = None,
    env_id: str | None = None,
) -> Path:
    """Export the greedy policy of seed ``seed_index`` of a run directory's latest checkpoint (or
    of an exported ``.npz`` / ``.safetensors`` policy; or a text model, ``text_source``: to
    ``RUN_DIR/export/text-seed<S>``, ``MODEL_DIR/export/model``) in ``format``, quantized to ``weights``
    (``"int8"``, ``"float16"``) if given; ``format="hf"``: a text model as a Hugging Face directory
    (``export_hf``). ``out`` defaults to ``RUN_DIR/export/policy-seed<S>[-int8]``
    with the format's suffix (beside the file, for a policy file). Returns the path written.

    int8 is calibrated (``jrl.export.quantize``, GPTQ) on ``calibration_states`` of the float
    policy in the run's environment; a policy file has none, and is calibrated in ``env_id``'s
    (a ``jrl.make`` id) if given, else rounded to nearest (uncalibrated). ``env_id`` is for a policy
    file and int8 only (``ValueError`` otherwise: a run knows its environment)."""
    if format == "hf":
        if weights is not None or env_id is not None:
            raise ValueError(
                "--format hf writes the float32 weights transformers reads: no --int8, --float16, --bfloat16, --env"
            )
        return export_hf(run_dir, out, seed_index=seed_index)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted([*FORMATS, 'hf'])}, got {format!r}")
    source = Path(run_dir)
    if env_id is not None and (not source.is_file() or weights != "int8"):
        raise ValueError("env_id is the calibration environment of a policy file's int8 export")
    text = text_source(source, seed_index)
    if text is not None:
        if env_id is not None:
            raise ValueError("env_id calibrates a policy's int8; a text model's int8 is not calibrated")
        model, stem, folder = text
        if weights is not None:
            model, stem = quantize(model, weights), f"{stem}-{weights}"
        path = Path(out) if out is not None else folder / f"{stem}{FORMATS[format]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return export_policy(model, format, path)
    if source.is_file():
        policy, stem, folder = NumpyQPolicy.load(source), source.stem, source.parent
        env = None
        if env_id is not None:
            env = make(env_id)
    else:
        run = load_run(source)
        if not 0 <= seed_index < len(run.spec.seeds):
            raise ValueError(f"the run has seeds {list(run.spec.seeds)}: --seed takes one of them")
        state, _ = run.load_checkpoint()
        result = run.algorithm.result(run.seed_state(state, seed_index), {})
        policy = export_numpy(run.config, run.env, run.env_params, result)
        stem, folder = f"policy-seed{run.spec.seeds[seed_index]}", source / "export"
        env = (run.env, run.env_params)
    if weights is not None:
        calibration = calibration_states(policy, *env) if weights == "int8" and env is not None else None
        policy = quantize(policy, weights, calibration=calibration)
        stem = f"{stem}-{weights}"
    path = Path(out) if out is not None else folder / f"{stem}{FORMATS[format]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return export_policy(policy, format, path)
