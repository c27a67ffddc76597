"""The distribution's name and the install hint that error messages give for an optional extra;
importing a user's module named in ``"module:id"`` (``--env``) or ``"module:name"`` (``--algo``).

The import name is ``jrl``; the distribution on PyPI is ``jrl-jax`` (PyPI's ``jrl`` is an unrelated
robotics library), so a hint must never say ``pip install jrl``.
"""

from __future__ import annotations

import importlib

__all__ = ["DISTRIBUTION", "import_registering_module", "install_hint"]

#: The name ``pip install`` takes (``pyproject.toml``'s ``[project] name``).
DISTRIBUTION = "jrl-jax"


def install_hint(extra: str) -> str:
    """How to install ``extra``: ``pip install 'jrl-jax[EXTRA]'`` (from a checkout: ``pip install -e '.[EXTRA]'``)."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e '.[{extra}]')"


def import_registering_module(qualified: str, error: type[Exception]) -> tuple[str, str]:
    """Import ``module`` of ``"module:name"`` (a user's module that registers ``name`` when
    imported) and return ``(module, name)``; the caller checks that ``name`` is now registered.

    A module that is not found raises ``error`` saying where it must be; a module that exists
    but fails inside its own import lets that error through (its traceback says where).
    """
    module, _, name = qualified.partition(":")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and module.startswith(err.name):  # the module itself (or its package) is missing
            raise error(
                f"{qualified!r}: cannot import the module {module!r} that registers {name!r} ({err}); it must be "
                "importable: on PYTHONPATH, installed, or (for the jrl command) in the working directory"
            ) from err
        raise
    return module, name
