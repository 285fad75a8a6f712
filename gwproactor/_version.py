"""The version of gwproactor: written here once (pyproject.toml and the package read it)."""

__version__ = "0.2.0"
