"""Exceptions by kind. Every user-facing error names the bad value and the fix.

This module imports nothing internal, so every layer may raise these.
"""

from __future__ import annotations


class MMFeaturesError(Exception):
    """Base class of every error mmfeatures raises on purpose."""


class UnknownModelError(MMFeaturesError, KeyError):
    """A model name that no registry entry resolves."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(MMFeaturesError, OSError):
    """A known model whose weights are neither local, cached nor reachable."""


class MissingDependencyError(MMFeaturesError, ImportError):
    """An optional package is missing; the message names the pip extra."""


class CorruptFileError(MMFeaturesError, ValueError):
    """A file on disk that is truncated or not of the expected format."""


class SiteError(MMFeaturesError, KeyError):
    """A hook site that the model does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InputError(MMFeaturesError, ValueError):
    """A bad input item (empty text, unreadable image, ...), named by index."""


def require(module: str, extra: str, what: str):
    """Import an optional module or raise an error that names the pip extra to add.

    >>> np = require("numpy", "core", "arrays")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{what} needs the optional package {module!r}, which is not installed; "
            f"install it with: pip install 'mmfeatures[{extra}]'"
        ) from e


class OutputError(MMFeaturesError, OSError):
    """An output folder that cannot be created or written."""


class ArtifactConflictError(MMFeaturesError, FileExistsError):
    """A folder that holds a different artifact (another key) than the one asked for; the message names both."""
