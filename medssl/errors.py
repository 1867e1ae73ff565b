"""User-facing errors: one line that names the file or setting and says how to fix it."""

from __future__ import annotations


class MedsslError(Exception):
    """An error caused by the user's input or environment, shown without a traceback."""


class DataError(MedsslError):
    """A problem with a dataset on disk (missing path, unknown layout, bad image...)."""


class ConfigError(MedsslError):
    """A configuration key or value that is not allowed."""


class WeightsUnavailableError(MedsslError):
    """Pretrained weights that cannot be found offline or downloaded."""


class TrainingError(MedsslError):
    """Training stopped for a reason the user can act on (NaN loss, collapse...)."""


class Interrupted(MedsslError):
    """The user stopped a run (Ctrl+C); the last completed epoch is saved."""
