"""The distribution's name and the install hint that error messages give for an optional extra.

The import name is ``jrl``; the distribution on PyPI is ``jrl-jax`` (PyPI's ``jrl`` is an unrelated
robotics library), so a hint must never say ``pip install jrl``.
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_hint"]

#: The name ``pip install`` takes (``pyproject.toml``'s ``[project] name``).
DISTRIBUTION = "jrl-jax"


def install_hint(extra: str) -> str:
    """How to install ``extra``: ``pip install 'jrl-jax[EXTRA]'`` (from a checkout: ``pip install -e '.[EXTRA]'``)."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
