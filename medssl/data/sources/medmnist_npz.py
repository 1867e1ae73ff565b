"""MedMNIST ``.npz`` files, given as a path or by name (``pneumoniamnist``, ``breastmnist@64``…).

Files hold ``{train,val,test}_images`` (N,H,W) grayscale or (N,H,W,3) RGB uint8 and ``*_labels`` (N,1);
the official splits are kept. Names are looked up in ``$MEDMNIST_ROOT`` or ``~/.medmnist``; a missing
file is fetched with medmnist's own download, and when that fails (offline) the error says where to put it.
Pixels are read from the file on first use and kept in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np

from medssl.data.sources import Source, register
from medssl.data.types import SPLITS, ImageRecord, ImageTable
from medssl.errors import DataError

NAME = re.compile(r"^([a-z]+mnist(?:3d)?)(?:[@_](\d+))?$")
MODALITY = {"pneumoniamnist": "xray", "chestmnist": "xray", "pathmnist": "histology"}
HASH_LIMIT = 512 * 2**20
"""Files up to this size are identified by content hash, larger ones by path, size and time."""


def _info() -> dict:
    from medmnist.info import INFO

    return INFO


def _parse_name(text: str) -> tuple[str, int] | None:
    """``("pneumoniamnist", 64)`` for ``pneumoniamnist@64``/``pneumoniamnist_64.npz``, if a known set."""
    match = NAME.match(text.lower().removesuffix(".npz"))
    if not match or match.group(1) not in _info():
        return None
    return match.group(1), int(match.group(2) or 28)


def medmnist_root() -> Path:
    """``$MEDMNIST_ROOT`` or medmnist's default ``~/.medmnist``."""
    return Path(os.environ.get("MEDMNIST_ROOT") or Path.home() / ".medmnist").expanduser()


def _is_bare_name(path: Path) -> bool:
    return len(path.parts) == 1 and not path.exists() and NAME.match(path.name.lower()) is not None


def detect(path: Path) -> bool:
    if path.suffix.lower() == ".npz":
        return path.is_file()
    return _is_bare_name(path) and _parse_name(path.name) is not None


def _download(flag: str, size: int, root: Path) -> None:
    """medmnist's own download into ``root`` (raises when offline)."""
    import medmnist

    root.mkdir(parents=True, exist_ok=True)
    dataset_class = getattr(medmnist, _info()[flag]["python_class"])
    dataset_class(split="train", download=True, root=str(root), size=size)


def resolve_name(text: str) -> Path:
    """The ``.npz`` file of a MedMNIST set name, downloaded with medmnist when missing."""
    parsed = _parse_name(text)
    if parsed is None:
        known = ", ".join(k for k in _info() if not k.endswith("3d"))
        raise DataError(f"'{text}': not a MedMNIST set name; use one of {known} (optionally @64, @128, @224)")
    flag, size = parsed
    if flag.endswith("3d"):
        raise DataError(f"'{text}': MedMNIST 3D volumes are not supported; use a 2D set")
    suffix = "" if size == 28 else f"_{size}"
    info = _info()[flag]
    if f"url{suffix}" not in info:
        raise DataError(f"'{text}': MedMNIST has no {size} px version; use 28, 64, 128 or 224")
    root = medmnist_root()
    path = root / f"{flag}{suffix}.npz"
    if not path.exists():
        try:
            _download(flag, size, root)
        except Exception as error:  # medmnist raises a bare RuntimeError, torchvision anything
            raise DataError(
                f"{path}: MedMNIST file missing and the download failed ({str(error).strip().splitlines()[0]}); "
                f"download {info[f'url{suffix}']} and save it as {path} (or set MEDMNIST_ROOT)"
            ) from None
    return path


def _identity(path: Path) -> str:
    stat = path.stat()
    if stat.st_size <= HASH_LIMIT:
        digest = hashlib.blake2b(digest_size=16)
        with path.open("rb") as handle:
            while chunk := handle.read(2**22):
                digest.update(chunk)
        return f"medmnist-npz:{digest.hexdigest()}"
    return f"medmnist-npz:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _class_names(path: Path, n_classes: int) -> list[str]:
    parsed = _parse_name(path.name)
    labels = _info()[parsed[0]]["label"] if parsed else {}
    if len(labels) == n_classes:
        return [labels[str(i)] for i in range(n_classes)]
    return [str(i) for i in range(n_classes)]


class _Pixels:
    """The images of every split, loaded from the npz on first use (thread-safe) and concatenated."""

    def __init__(self, path: Path, splits: list[str]) -> None:
        self.path, self.splits = path, splits
        self.images: np.ndarray | None = None
        self.lock = threading.Lock()

    def __call__(self, record: ImageRecord) -> np.ndarray:
        if self.images is None:
            with self.lock:
                if self.images is None:
                    with np.load(self.path) as npz:
                        self.images = np.concatenate([npz[f"{s}_images"] for s in self.splits])
        return np.asarray(self.images[int(record.ref[1:])])


def _labels(npz: np.lib.npyio.NpzFile, path: Path, split: str) -> np.ndarray:
    labels, images = npz[f"{split}_labels"], npz[f"{split}_images"]
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise DataError(
            f"{path}: {split}_labels has {labels.shape[1]} columns (multi-label); one label per image needed"
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3) or images.dtype != np.uint8:
        raise DataError(
            f"{path}: {split}_images has shape {images.shape} {images.dtype}; expected uint8 (N,H,W) or (N,H,W,3)"
        )
    if len(labels) != len(images):
        raise DataError(f"{path}: {len(images)} {split}_images but {len(labels)} {split}_labels")
    return labels.reshape(-1).astype(np.int64)


def load(path: Path) -> ImageTable:
    if not path.exists() and _is_bare_name(path):
        path = resolve_name(path.name)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; give a MedMNIST .npz file or a set name such as pneumoniamnist"
        )
    try:
        with np.load(path) as npz:
            splits = [s for s in SPLITS if f"{s}_images" in npz.files and f"{s}_labels" in npz.files]
            if not splits:
                raise DataError(f"{path}: no train_images/train_labels arrays; not a MedMNIST file")
            labels = {s: _labels(npz, path, s) for s in splits}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read as .npz ({error}); re-download the file") from None
    if any(len(v) and v.min() < 0 for v in labels.values()):
        raise DataError(f"{path}: negative labels; MedMNIST labels are 0..K-1")
    n_classes = int(max(v.max() for v in labels.values() if len(v)) + 1)
    records = [
        ImageRecord(f"#{i}", int(label), None, split)
        for i, (split, label) in enumerate((s, y) for s in splits for y in labels[s])
    ]
    parsed = _parse_name(path.name)
    return ImageTable(
        layout="medmnist",
        root=path,
        classes=_class_names(path, n_classes),
        records=records,
        reader=_Pixels(path, splits),
        modality=MODALITY.get(parsed[0], "generic") if parsed else "generic",
        identity=_identity(path),
    )


register(
    Source(
        name="medmnist",
        detect=detect,
        load=load,
        description="MedMNIST .npz file or set name (pneumoniamnist, breastmnist@64, ...)",
    )
)
