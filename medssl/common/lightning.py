"""Keep Lightning's start-up banners out of the user's console (warnings such as collapse stay visible)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")


@contextmanager
def quiet_lightning_logs(level: int = logging.WARNING) -> Iterator[None]:
    """Raise Lightning's loggers to ``level`` inside the block, then restore them."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.setLevel(previous)
