"""Checkpoints of a whole training state: one ``.npy`` file per leaf and a JSON header.

A checkpoint is a directory ``ckpt-<log index, 8 digits>/`` holding ``header.json`` and
``leaves/<i>.npy``. Every leaf is written on its own (a replay buffer of hundreds of MB is never
one blob in memory) with NumPy's ``.npy`` format and read back with ``allow_pickle=False``: loading
a checkpoint parses JSON and arrays, and never executes anything from the files. The header
records the format and its version, the jrl version, the algorithm, the run spec's digest, the
log index, and each leaf's path, dtype, shape and sha256; it carries the sha256 of its own content.

Saves are atomic: everything is written (and fsynced) into a ``.tmp-...`` directory that is then
renamed into place, so a process killed at any moment leaves either the complete checkpoint or
no checkpoint, never half of one. ``save`` keeps the newest ``keep`` checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl._version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "checkpoints",
    "file_digest",
    "header_digest",
    "latest",
    "load",
    "save",
]

FORMAT = "jrl-checkpoint"
FORMAT_VERSION = 1
_PREFIX = "ckpt-"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, damaged, or from another run or format."""


def _is_key(x: Any) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key)


def file_digest(path: Path) -> str:
    """The sha256 (hex) of a file's bytes: what a checkpoint header records for each leaf file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_digest(header: dict) -> str:
    """The sha256 (hex) of a header's canonical JSON without its own ``header_sha256`` field."""
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints in ``directory``, oldest first (temporary directories ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def latest(directory: str | Path) -> Path | None:
    """The newest complete checkpoint in ``directory``, or ``None``."""
    found = checkpoints(directory)
    return found[-1] if found else None


def save(
    directory: str | Path,
    state: Any,
    *,
    log_index: int,
    meta: dict,
    keep: int = 3,
    sync_first: tuple[str | Path, ...] = (),
) -> Path:
    """Write ``state`` (a pytree of arrays) as ``directory/ckpt-<log_index>``, atomically, and
    delete all but the newest ``keep`` checkpoints. ``meta`` (JSON values: algorithm, spec digest,
    ...) goes into the header. ``sync_first``: files to fsync before the checkpoint appears (the
    run's metrics, so that a checkpoint never outlives the records it covers). Returns its path."""
    for path in sync_first:
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{_PREFIX}{log_index:08d}"
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "leaves").mkdir(parents=True)
    leaves = []
    for i, (path, leaf) in enumerate(jax.tree_util.tree_leaves_with_path(state)):
        impl = None
        if _is_key(leaf):
            impl = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        array = np.asarray(jax.device_get(leaf))
        file = tmp / "leaves" / f"{i:05d}.npy"
        with file.open("wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        leaves.append(
            {
                "path": jax.tree_util.keystr(path),
                "file": f"leaves/{file.name}",
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "key_impl": impl,
                "sha256": file_digest(file),
            }
        )
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jrl_version": __version__,
        "log_index": int(log_index),
        **meta,
        "leaves": leaves,
    }
    header["header_sha256"] = header_digest(header)
    with (tmp / "header.json").open("w") as f:
        json.dump(header, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp / "leaves")
    _fsync_dir(tmp)
    if final.exists():  # the same log index saved again (a resumed run): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(directory)
    for old in checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_header(path: str | Path) -> dict:
    """The validated header of the checkpoint at ``path`` (``CheckpointError`` if it is not one)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is not a jrl checkpoint (a directory with header.json and leaves/); "
            "jrl never loads pickle or other executable formats"
        )
    try:
        header = json.loads((path / "header.json").read_text())
    except FileNotFoundError as err:
        raise CheckpointError(f"{path} is not a jrl checkpoint: it has no header.json") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}/header.json is damaged: not valid JSON ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a jrl checkpoint: its header does not say format {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {header.get('format_version')!r}; this jrl reads version "
            f"{FORMAT_VERSION} only"
        )
    if header.get("header_sha256") != header_digest(header):
        raise CheckpointError(f"{path}/header.json is damaged: its checksum does not match its content")
    return header


def load(path: str | Path, like: Any, *, expect: dict) -> tuple[Any, dict]:
    """The state saved at ``path``, as a pytree shaped like ``like`` (arrays or
    ``jax.ShapeDtypeStruct``s: the state a fresh ``init`` would build), and its header.

    ``expect`` maps header fields to their required values (algorithm, spec digest): a
    checkpoint of another algorithm, config or seeds is refused. Every leaf must exist, match its
    sha256, and have the path, shape and dtype of ``like``'s leaf. Raises ``CheckpointError``
    saying what is wrong.
    """
    path = Path(path)
    header = read_header(path)
    for field, value in expect.items():
        if header.get(field) != value:
            raise CheckpointError(
                f"{path} belongs to another run: its {field} is {header.get(field)!r}, this run's is {value!r}"
            )
    expected, treedef = jax.tree_util.tree_flatten_with_path(like)
    saved = header["leaves"]
    if [entry["path"] for entry in saved] != [jax.tree_util.keystr(p) for p, _ in expected]:
        raise CheckpointError(f"{path} holds a different state structure than this run's algorithm builds")
    leaves = []
    for entry, (_, target) in zip(saved, expected, strict=True):
        file = path / entry["file"]
        if not file.is_file():
            raise CheckpointError(f"{path} is incomplete: {entry['file']} is missing")
        if file_digest(file) != entry["sha256"]:
            raise CheckpointError(f"{path} is damaged: {entry['file']} ({entry['path']}) does not match its checksum")
        try:
            array = np.load(file, allow_pickle=False)
        except ValueError as err:
            raise CheckpointError(f"{path}: {entry['file']} is not a plain array file ({err})") from err
        if entry["key_impl"] is not None:
            array = jax.random.wrap_key_data(array, impl=entry["key_impl"])
        # The file's own dtype: jnp.asarray would quietly turn a float64 or int64 leaf into 32 bits.
        if tuple(array.shape) != tuple(target.shape) or array.dtype != target.dtype:
            raise CheckpointError(
                f"{path}: {entry['path']} is {array.dtype}{list(array.shape)}, this run expects "
                f"{target.dtype}{list(target.shape)}"
            )
        leaves.append(jnp.asarray(array))
    return jax.tree_util.tree_unflatten(treedef, leaves), header
