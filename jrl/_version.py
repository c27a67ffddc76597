"""jrl's version, on the bottom floor so that every layer can read it without importing the ``jrl``
package's public face (records and checkpoints store it). ``pyproject.toml`` states the same
number; ``tests/test_architecture.py`` checks that they agree."""

__version__ = "0.1.0"
