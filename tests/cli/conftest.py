"""The evaluation run that the ``evaluate`` and ``compare`` tests share, and one torch thread per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medssl.cli import app
from medssl.data.sources.synthetic import CLASS_NAMES, render

from ..reliability.conftest import one_torch_thread, tissue  # noqa: F401 (fixtures)


def write_image_folder(root: Path, per_class: int = 30) -> Path:
    """``root/<class>/<n>.png``: three classes of synthetic tissue images as real PNG files."""
    for label, name in enumerate(CLASS_NAMES[:3]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(render(label * per_class + i, label, 32, seed=0)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory: pytest.TempPathFactory):
    """Two encoders evaluated by the CLI into one directory (a folder of 90 PNG images at 32 px)."""
    out = tmp_path_factory.mktemp("eval")
    data = write_image_folder(tmp_path_factory.mktemp("tissue") / "tissue")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDSSL_CACHE", str(out / "cache"))
        outputs = []
        for encoder in ("random:resnet18", "imagenet:efficientnet_lite0"):
            args = ["evaluate", "--encoder", encoder, "--data", str(data), "--image-size", "32"]
            args += ["--protocol", "knn,linear", "--k", "10", "--bootstrap", "100", "--out", str(out)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
    return out, outputs
