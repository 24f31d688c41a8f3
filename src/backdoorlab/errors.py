"""User-facing errors: each carries one line that names the problem."""

from __future__ import annotations


class BackdoorlabError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""


class ConfigError(BackdoorlabError):
    """An invalid configuration value, key or file."""


class DataError(BackdoorlabError):
    """A missing, truncated or malformed dataset file."""


class UnknownComponentError(ConfigError):
    """A name that no registry knows."""


class TrainingDivergedError(BackdoorlabError):
    """Training produced a non-finite loss or its accuracy collapsed to chance."""
