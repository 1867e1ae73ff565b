"""One torch thread for the in-process runs (on a shared 2-core machine a second thread mostly spins), and the
small image folder the command-line cases read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ..data.datagen import make_folder


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tissue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two classes of 12 RGB 32-px PNG images, with a private pixel cache."""
    monkeypatch.setenv("MEDSSL_CACHE", str(tmp_path / "cache"))
    return make_folder(tmp_path / "tissue", {"a": 12, "b": 12}, size=32, channels=3)
