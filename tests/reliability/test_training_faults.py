"""Training faults: a full disk or Ctrl+C while a checkpoint or the encoder is written, SIGINT and SIGKILL in
the middle of an epoch. Nothing finished is lost, and ``--resume`` ends where an uninterrupted run ends.

A loss that becomes NaN is covered by tests/train/test_pretrain.py
(``test_nan_loss_stops_with_a_message_and_keeps_last_good_checkpoint``).
"""

from __future__ import annotations

import errno
import io
import os
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from medssl.errors import Interrupted, MedsslError, TrainingError
from medssl.models.encoder import ENCODER_META, ENCODER_WEIGHTS
from medssl.train.api import LAST, pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config
from .cli import WAIT, history, start, tiny_pretrain

REAL_SAVE = torch.save
REAL_REPLACE = os.replace


@pytest.fixture
def restore_sigint() -> Iterator[None]:
    """Lightning ignores SIGINT after a KeyboardInterrupt: give the test process its handler back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def tiny(cache: Path) -> PretrainConfig:
    return PretrainConfig(
        epochs=2, batch_size=16, max_steps_per_epoch=1, knn_k=10, progress_bar=False, accelerator="cpu",
        data=tiny_config(cache),
    )  # fmt: skip


def fail_on(name: str, nth: int, error: BaseException):
    """A ``torch.save`` that writes half of its ``nth`` save to a ``*name*`` file, then raises ``error``."""
    calls = []

    def save(obj, f, *args, **kwargs):
        target = getattr(f, "name", f)
        if name in str(target):
            calls.append(target)
            if len(calls) == nth:
                buffer = io.BytesIO()
                REAL_SAVE(obj, buffer)
                data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
                if hasattr(f, "write"):
                    f.write(data)
                else:
                    Path(f).write_bytes(data)
                raise error
        return REAL_SAVE(obj, f, *args, **kwargs)

    return save


def cut_short_on(name: str, nth: int):
    """A ``torch.save`` whose ``nth`` save to a ``*name*`` file really runs out of room.

    A file-size limit of 4 KiB (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored) makes the kernel refuse the
    write, as a full disk does, so torch fails the way it fails then: ``RuntimeError: unexpected pos``.
    """
    calls = []

    def save(obj, f, *args, **kwargs):
        if name in str(getattr(f, "name", f)):
            calls.append(f)
            if len(calls) == nth:
                with file_size_limit(4096):
                    return REAL_SAVE(obj, f, *args, **kwargs)
        return REAL_SAVE(obj, f, *args, **kwargs)

    return save


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def fail_replace(name: str, nth: int):
    """An ``os.replace`` that fails with a full disk on the ``nth`` rename onto a file called ``name``."""
    calls = []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            calls.append(dst)
            if len(calls) == nth:
                raise disk_full()
        return REAL_REPLACE(src, dst, *args, **kwargs)

    return replace


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


RESUME = r"free disk space, then rerun the same command \(`medssl pretrain` with --resume\)"
FAULTS = {  # each strikes while epoch 1 is being saved; epoch 0 is complete on disk
    "disk full on last.ckpt": (
        lambda patch: patch.setattr(torch, "save", cut_short_on(LAST, 2)),
        TrainingError,
        r"last\.ckpt: could not write the checkpoint \(the write stopped short; [0-9.]+ GiB free on that disk\); "
        rf"the previous one is intact — {RESUME}",
    ),
    "ctrl-c on last.ckpt": (
        lambda patch: patch.setattr(torch, "save", fail_on(LAST, 2, KeyboardInterrupt())),
        Interrupted,
        r"interrupted in epoch 1; the last completed epoch is saved in .*last\.ckpt; "
        r"rerun the same command with --resume",
    ),
    "disk full on history.csv": (
        lambda patch: patch.setattr(os, "replace", fail_replace("history.csv", 2)),
        TrainingError,
        r"history\.csv: could not write the training history \(.*No space left on device\); "
        rf"the last checkpoint is intact — {RESUME}",
    ),
}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_while_saving_keeps_the_previous_state_and_resumes(
    tmp_path: Path, pixel_cache: Path, tiny_data, monkeypatch: pytest.MonkeyPatch, restore_sigint, fault: str
) -> None:
    install, raised, message = FAULTS[fault]
    run = tmp_path / "run"
    install(monkeypatch)
    with pytest.raises(raised, match=message):
        pretrain(tiny(pixel_cache), run, data=tiny_data)
    monkeypatch.undo()
    assert leftovers(run) == [] and leftovers(run / "checkpoints") == []  # no half-written temporary file
    assert torch.load(run / "checkpoints" / LAST, weights_only=True)["epoch"] == 0  # the previous one, whole
    epoch0 = history(run)[0]
    assert epoch0["epoch"] == "0" and float(epoch0["loss"]) > 0
    assert not (run / ENCODER_META).exists()
    pretrain(tiny(pixel_cache), run, data=tiny_data, resume=True)
    assert [int(r["epoch"]) for r in history(run)] == [0, 1] and history(run)[0] == epoch0
    assert torch.load(run / "checkpoints" / LAST, weights_only=True)["epoch"] == 1
    assert (run / ENCODER_META).exists()


def test_disk_full_while_writing_the_encoder_then_resume_exports_it(
    tmp_path: Path, pixel_cache: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", cut_short_on(ENCODER_WEIGHTS, 1))
    with pytest.raises(
        MedsslError, match=r"encoder\.pt: could not write it \(the write stopped short; .* GiB free.*--resume"
    ):
        pretrain(tiny(pixel_cache), run, data=tiny_data)
    monkeypatch.undo()
    assert leftovers(run) == [] and not (run / ENCODER_WEIGHTS).exists() and not (run / ENCODER_META).exists()
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    final = torch.load(run / "checkpoints" / LAST, weights_only=True)
    assert final["epoch"] == 1
    pretrain(tiny(pixel_cache), run, data=tiny_data, resume=True)  # trains nothing more, exports the encoder
    assert history(run) == rows
    weights = torch.load(run / ENCODER_WEIGHTS, weights_only=True)
    prefix = "method.encoder.backbone."
    trained = {k[len(prefix) :]: v for k, v in final["state_dict"].items() if k.startswith(prefix)}
    assert trained.keys() == weights.keys() and all(torch.equal(weights[k], trained[k]) for k in weights)


# -- real signals to a real `medssl pretrain` process --------------------------------------------------------


@dataclass
class Stopped:
    """A run signalled mid-epoch, then resumed with the same command plus --resume."""

    out: Path
    code: int
    stderr: str
    checkpoint: dict
    rows: list[dict]
    exported: bool
    resume_code: int = -1
    resume_stderr: str = ""


def _interrupt_mid_epoch(runs: dict[signal.Signals, tuple[Path, object]]) -> None:
    """Signal each run as soon as its epoch-0 checkpoint exists, i.e. early in epoch 1 (they run side by side).

    At once rather than after a delay: a later epoch can take a fraction of epoch 0's time (bf16 on an AMX CPU),
    and a run that has already finished cannot be interrupted.
    """
    pending = dict(runs)
    while pending:  # no deadline: on a busy machine this waits (pytest-timeout bounds it)
        for sig, (out, process) in list(pending.items()):
            assert process.poll() is None, f"the {sig.name} run ended before it could be interrupted"
            if (out / "checkpoints" / LAST).exists():
                process.send_signal(sig)
                del pending[sig]
        time.sleep(0.01)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stopped | Path]:
    """An uninterrupted run, and the same run stopped by SIGINT / SIGKILL then resumed (side by side)."""
    root = tmp_path_factory.mktemp("signals")
    cache = root / "cache"
    whole = start(*tiny_pretrain(root / "whole", cache), cwd=root, stderr=root / "whole.err")
    runs = {
        sig: (
            root / sig.name,
            start(*tiny_pretrain(root / sig.name, cache), cwd=root, stderr=root / f"{sig.name}.err"),
        )
        for sig in (signal.SIGINT, signal.SIGKILL)
    }
    try:
        _interrupt_mid_epoch(runs)
        stopped = {}
        for sig, (out, process) in runs.items():
            code = process.wait(timeout=WAIT)
            state = torch.load(out / "checkpoints" / LAST, weights_only=True)
            err = (root / f"{sig.name}.err").read_text()
            stopped[sig.name] = Stopped(out, code, err, state, history(out), (out / ENCODER_META).exists())
        resumes = {
            name: start(
                *tiny_pretrain(s.out, cache, "--resume"), cwd=root, stderr=root / f"{name}.resume.err"
            )
            for name, s in stopped.items()
        }
        for name, process in resumes.items():
            stopped[name].resume_code = process.wait(timeout=WAIT)
            stopped[name].resume_stderr = (root / f"{name}.resume.err").read_text()
        assert whole.wait(timeout=WAIT) == 0, (root / "whole.err").read_text()
    finally:
        for process in [whole, *(p for _, p in runs.values())]:
            if process.poll() is None:
                process.kill()
                process.wait()
    return {**stopped, "whole": root / "whole"}


COLUMNS = ("epoch", "loss", "knn_accuracy", "embedding_std", "effective_rank", "lr")


def assert_same_as_uninterrupted(run: Path, whole: Path) -> None:
    assert [int(r["epoch"]) for r in history(run)] == [0, 1, 2]  # every epoch exactly once
    assert [[r[c] for c in COLUMNS] for r in history(run)] == [
        [r[c] for c in COLUMNS] for r in history(whole)
    ]
    a = torch.load(whole / ENCODER_WEIGHTS, weights_only=True)
    b = torch.load(run / ENCODER_WEIGHTS, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_epochs_kept(stopped: Stopped) -> None:
    """The rows of the epochs the checkpoint holds are still there after the resume, unchanged."""
    done = stopped.checkpoint["epoch"]
    assert 0 <= done < 2  # stopped before the last epoch
    assert all(
        torch.isfinite(v).all() for v in stopped.checkpoint["state_dict"].values() if v.is_floating_point()
    )
    kept = [r for r in stopped.rows if int(r["epoch"]) <= done]
    assert len(kept) == done + 1 and history(stopped.out)[: done + 1] == kept


def test_sigint_mid_epoch_stops_cleanly_and_resumes(interrupted: dict) -> None:
    stopped: Stopped = interrupted["SIGINT"]
    assert stopped.code == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    line = next(line for line in stopped.stderr.splitlines() if line.startswith("stopped: "))
    epoch = int(line.split("interrupted in epoch ")[1].split(";")[0])
    assert stopped.checkpoint["epoch"] in (epoch - 1, epoch)
    assert f"{stopped.out / 'checkpoints' / LAST}" in line and "--resume" in line
    assert not stopped.exported
    assert_epochs_kept(stopped)
    assert stopped.resume_code == 0, stopped.resume_stderr
    assert_same_as_uninterrupted(stopped.out, interrupted["whole"])


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(interrupted: dict) -> None:
    stopped: Stopped = interrupted["SIGKILL"]
    assert stopped.code == -signal.SIGKILL
    assert not stopped.exported
    assert_epochs_kept(stopped)
    assert stopped.resume_code == 0, stopped.resume_stderr
    assert "Traceback" not in stopped.resume_stderr
    assert_same_as_uninterrupted(stopped.out, interrupted["whole"])
