"""A writer killed between writing its temporary file and renaming it over the real one."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest


@pytest.fixture
def killed_before_rename(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make the next atomic write stop (as on Ctrl+C) once its temporary file is complete."""

    def arm() -> None:
        def interrupt(src: object, dst: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(os, "replace", interrupt)

    return arm
