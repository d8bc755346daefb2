"""The package version, in a module of its own so that any layer can read it without
importing the `harness` package's front door (harness/__init__.py, the Python API)."""

__version__ = "0.1.0"
