"""The package version, in a module of its own so that low layers (``disk``) need not import the package."""

__version__ = "0.1.0"
