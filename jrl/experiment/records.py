"""The files of a run directory, apart from checkpoints.

- ``config.toml``: the resolved ``RunSpec`` (every config field), enough to re-run it.
- ``metadata.json``: how and where it ran: command line, seeds, versions of jrl, jax, jaxlib, flax,
  optax, numpy and Python, the processor, JAX backend and devices, the git commit and dirty flag
  when jrl runs from a checkout, runner settings, and one entry per session (start, end, compile
  and run seconds). Everything time-dependent lives here, never in the results.
- ``metrics.jsonl``: one JSON object per logging interval per seed: ``{"seed", "log", <metrics>}``
  (``log`` counts from 0; NaN is written as ``null``).
- ``inputs/``: a copy of each file or directory the config names (``pretrained``: the language
  model a text run starts from); ``config.toml`` names the copy, relative to the run directory,
  and ``metadata.json`` the original and its sha256.
- ``summary.json``: per seed the last interval's metrics, a final greedy evaluation and whether
  every interval was finite; their mean over seeds. Deterministic: a resumed run writes the
  same bytes as an uninterrupted one.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from jrl._version import __version__

__all__ = ["append_metrics", "environment_metadata", "read_metrics", "truncate_metrics", "write_json"]

CONFIG = "config.toml"
METADATA = "metadata.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
#: Copies of the files a run reads (its config's path fields: ``inputs/pretrained``).
INPUTS = "inputs"


def _plain(value: Any) -> Any:
    """A JSON value for a metric: Python int, bool or float, NaN and infinities as ``null``."""
    value = np.asarray(value).item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_toml(path: Path) -> Any:
    return tomllib.loads(path.read_text())


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def metric_records(seeds: Iterable[int], first_log: int, metrics: dict) -> list[dict]:
    """Records of one chunk: ``metrics`` has leaves ``[num_seeds, num_logs]``."""
    names = sorted(metrics)
    arrays = {name: np.asarray(metrics[name]) for name in names}
    records = []
    for i, seed in enumerate(seeds):
        for j in range(arrays[names[0]].shape[1]):
            records.append({"seed": int(seed), "log": first_log + j, **{n: _plain(arrays[n][i, j]) for n in names}})
    return records


def append_metrics(path: Path, records: list[dict]) -> None:
    """Append records to ``metrics.jsonl`` (whole lines; the checkpoint that covers them fsyncs
    the file before it is written, see ``checkpoint.save``)."""
    with path.open("a") as f:
        f.write("".join(json.dumps(record) + "\n" for record in records))


def read_metrics(path: Path) -> list[dict]:
    """Every complete record of ``metrics.jsonl`` (a partial last line, from a crash, is dropped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_metrics(path: Path, num_logs: int) -> None:
    """Keep the records of logs ``< num_logs`` (those a checkpoint at ``num_logs`` covers)."""
    kept = [r for r in read_metrics(path) if r["log"] < num_logs]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        for record in kept:
            f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _version(package: str) -> str | None:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def _git(source: Path) -> dict | None:
    """Commit and dirty flag of the checkout jrl runs from (``None`` when it is not one)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def _processor() -> str:
    """The CPU's model name: results are bit-identical only on the same kind of processor (XLA
    generates code for the instruction set it finds), so a run records which it had."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_metadata() -> dict:
    """Versions, platform, JAX backend and devices, and the git state of jrl's checkout."""
    import jax

    return {
        "versions": {
            "jrl": __version__,
            **{name: _version(name) for name in ("jax", "jaxlib", "flax", "optax", "numpy")},
            "python": platform.python_version(),
        },
        "platform": platform.platform(),
        "processor": _processor(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "git": _git(Path(__file__).resolve().parents[2]),  # jrl/experiment/records.py -> the checkout
    }


def tree_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a directory tree: every file's relative path and content, in
    sorted order (so a copy elsewhere has the same digest, and any change of name or byte
    changes it). ``FileNotFoundError`` if ``path`` does not exist."""
    import hashlib

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" if file != path else b"")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def copy_input(source: str | Path, target: Path) -> None:
    """Copy a file or a directory tree (files only: links are followed) to ``target``, whose
    parent exists."""
    import shutil

    source = Path(source)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else []
