"""A run directory's greedy policy exported (``jrl export``): the run's latest checkpoint read
here, the formats and quantization in ``jrl.export`` (the floor below)."""

from __future__ import annotations

from pathlib import Path

from jrl.experiment.runner import load_run
from jrl.export import FORMATS, NumpyQPolicy, export_numpy, export_policy, quantize

__all__ = ["export_run"]


def export_run(
    run_dir: str | Path,
    format: str,
    out: str | Path | None = None,
    *,
    seed_index: int = 0,
    weights: str | None = None,
) -> Path:
    """Export the greedy policy of seed ``seed_index`` of a run directory's latest checkpoint (or
    of an exported ``.npz`` / ``.safetensors`` policy) in ``format``, quantized to ``weights``
    (``"int8"``, ``"float16"``) if given. ``out`` defaults to ``RUN_DIR/export/policy-seed<S>[-int8]``
    with the format's suffix (beside the file, for a policy file). Returns the path written."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    source = Path(run_dir)
    if source.is_file():
        policy, stem, folder = NumpyQPolicy.load(source), source.stem, source.parent
    else:
        run = load_run(source)
        if not 0 <= seed_index < len(run.spec.seeds):
            raise ValueError(f"the run has seeds {list(run.spec.seeds)}: --seed takes one of them")
        state, _ = run.load_checkpoint()
        result = run.algorithm.result(run.seed_state(state, seed_index), {})
        policy = export_numpy(run.config, run.env, run.env_params, result)
        stem, folder = f"policy-seed{run.spec.seeds[seed_index]}", source / "export"
    if weights is not None:
        policy = quantize(policy, weights)
        stem = f"{stem}-{weights}"
    path = Path(out) if out is not None else folder / f"{stem}{FORMATS[format]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return export_policy(policy, format, path)
