"""The file names of a language-model directory and the error for one that cannot be loaded: shared
by jrl's own format (``jrl.text.model``) and Hugging Face's (``jrl.text.hf``)."""

from __future__ import annotations

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "ModelFileError"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class ModelFileError(ValueError):
    """A model directory that cannot be loaded: missing files, a bad config, or weights that do not
    fit it."""
