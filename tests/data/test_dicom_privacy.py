"""No patient identifier leaves the machine: fake names, ids, dates and UIDs are planted in DICOM headers,
every command runs on them, and every file of the run directories and of the pixel cache (as bytes), every
printed line, warning and log record is searched for them, and for hashes of the ids."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from dicomgen import PHI, dataset, make_dicom_folder, patient_id, study_uid, write

from medssl.cli import main

PATIENTS = [*range(8), *range(100, 108), 98, 99]
"""The fake patients ``export`` plants (``make_dicom_folder`` numbers them 100 × class + image // 3)."""


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine a second one mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def secrets() -> list[bytes]:
    """Every planted value, its name parts, and common hashes of the patient ids (none may appear)."""
    values = [*PHI.values(), *map(patient_id, PATIENTS), *map(study_uid, PATIENTS)]
    parts = [part for value in PHI.values() for part in re.split(r"[\^ ]", value) if len(part) > 3]
    hashes = [
        getattr(hashlib, name)(patient_id(n).encode()).hexdigest()[:16]
        for n in PATIENTS
        for name in ("md5", "sha1", "sha256", "blake2b")
    ]
    return [text.encode() for text in (*values, *parts, *hashes)]


def cli(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``medssl ARGS`` in-process; everything it printed (stdout and stderr, at the file descriptors)."""
    monkeypatch.setattr(sys, "argv", ["medssl", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out, err = capfd.readouterr()
    assert stop.value.code in (0, None), out + err
    return out + err


def export(root: Path) -> Path:
    """A DICOM export with both photometric interpretations, a blank image and a truncated file."""
    make_dicom_folder(
        root, {"NORMAL": 24, "PNEUMONIA": 24}, per_patient=3, photometrics=("MONOCHROME1", "MONOCHROME2")
    )
    write(
        root / "NORMAL" / "IMG09998.dcm",
        dataset(np.full((24, 24), 700, np.uint16), "MONOCHROME2", 12, patient=99),
    )
    whole = write(
        root / "NORMAL" / "IMG09999.dcm", dataset(np.zeros((24, 24), np.uint8), patient=98)
    ).read_bytes()
    (root / "NORMAL" / "IMG09999.dcm").write_bytes(whole[: len(whole) - 300])
    return root


@pytest.mark.slow
def test_no_identifier_from_a_header_reaches_any_output(
    tmp_path: Path, capfd, caplog, monkeypatch, recwarn, one_torch_thread
) -> None:
    data = export(tmp_path / "export")
    monkeypatch.setenv("MEDSSL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    common = ["--image-size", "32", "--skip-bad-images"]
    printed = cli(capfd, monkeypatch, "data", "inspect", str(data), "--out", str(out / "samples.png"))
    printed += cli(
        capfd, monkeypatch, "pretrain", "--method", "simclr", "--data", str(data), *common, "--epochs", "1",
        "--batch-size", "16", "--accelerator", "cpu", "--set", "max_steps_per_epoch=2",
        "--set", "progress_bar=false", "--out", str(out / "pretrain"),
    )  # fmt: skip
    printed += cli(
        capfd, monkeypatch, "evaluate", "--encoder", str(out / "pretrain"), "--data", str(data), *common,
        "--protocol", "knn,linear", "--k", "3", "--bootstrap", "100", "--device", "cpu", "--out", str(out / "eval"),
    )  # fmt: skip
    study = {
        "datasets": {"xr": {"path": str(data), "image_size": 32, "skip_bad_images": True}},
        "methods": ["simclr"],
        "pretrain": {
            "epochs": 1,
            "batch_size": 16,
            "max_steps_per_epoch": 2,
            "accelerator": "cpu",
            "knn_k": 5,
        },
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn", "linear"], "label_fractions": [1.0], "k": 3, "n_bootstrap": 100},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    printed += cli(capfd, monkeypatch, "benchmark", str(tmp_path / "study.yaml"), "--out", str(out / "study"))
    printed += cli(capfd, monkeypatch, "report", str(out / "study"))
    printed += cli(capfd, monkeypatch, "status", str(out / "study"))
    printed += "\n".join(str(w.message) for w in recwarn) + caplog.text  # warnings and log records

    assert "skipped 1 unreadable" in printed and "IMG09998.dcm" in printed  # the truncated and blank files
    report = (out / "study" / "report.md").read_text()
    assert "t-SNE maps by patient" in report  # the by-group legend was drawn
    split = (out / "study" / "xr" / "split.csv").read_text().splitlines()
    assert split[0].startswith("ref,label,class,patient,")
    assert all(re.fullmatch(r"patient-\d{4}", line.split(",")[3]) for line in split[1:])

    files = [path for folder in (out, tmp_path / "cache") for path in folder.rglob("*") if path.is_file()]
    assert len(files) > 20  # the run directories and the pixel cache (its metadata holds the pseudonyms)
    planted = re.compile(b"|".join(re.escape(secret) for secret in secrets()))
    leaks = [
        (str(path.relative_to(out)), found) for path in files for found in planted.findall(path.read_bytes())
    ]
    leaks += [("printed", found) for found in planted.findall(printed.encode())]
    assert not leaks, leaks
