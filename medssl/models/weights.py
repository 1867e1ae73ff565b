"""Reading weights files safely and strictly, and the memory a model needs before it is loaded.

A file is read without running pickled code (safetensors, or ``torch.load(weights_only=True)``); its tensors
must then fit the model exactly: a missing, unexpected or mis-shaped key is an error that names it, never a
layer left at random initialisation.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from medssl.errors import ConfigError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt")
NESTED_KEYS = ("state_dict", "model")
"""Where training checkpoints keep the weights (``{"state_dict": {...}, "epoch": 3}``)."""
LOAD_COPIES = 2
"""Copies of the weights in memory while loading: the file's tensors and the model's."""


def _is_pickle(path: Path) -> bool:
    """Whether the file starts as a pickle does (the PROTO opcode of protocol 2 and later)."""
    with path.open("rb") as handle:
        return handle.read(1) == b"\x80"


def _torch_file(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error) or _is_pickle(path):  # objects beyond tensors, or a bare pickle
            raise ConfigError(
                f"{path}: refused: it holds pickled Python objects, which can run code when loaded; medssl "
                "reads weights only. Save the tensors alone (torch.save(model.state_dict(), ...)) or as "
                ".safetensors"
            ) from None
        raise ConfigError(f"{path}: not a checkpoint (torch cannot read it as weights)") from None
    except Exception as error:  # zip, header or key errors of a file that is not torch's format
        raise ConfigError(
            f"{path}: not a checkpoint (torch cannot read it: {error.__class__.__name__})"
        ) from None


def _safetensors_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as error:
        raise ConfigError(f"{path}: not a safetensors checkpoint ({error})") from None


def _tensors(path: Path, loaded: object) -> dict[str, torch.Tensor]:
    """The flat name -> tensor mapping in ``loaded``, unwrapped from a training checkpoint."""
    while isinstance(loaded, dict):
        nested = next((key for key in NESTED_KEYS if isinstance(loaded.get(key), dict)), None)
        if nested is None:
            break
        loaded = loaded[nested]
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"{path}: not a checkpoint (it holds no named tensors)")
    others = [key for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if others:
        raise ConfigError(f"{path}: not a weights file ('{others[0]}' is not a tensor)")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors``, ``.pth``, ``.pt`` or ``.bin`` file, read without running any
    pickled code; a ConfigError naming the file when it is missing, not a checkpoint, or a pickle."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: weights file not found")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"{path}: not a weights file; expected one of {', '.join(WEIGHT_SUFFIXES)}")
    if path.suffix == ".safetensors":
        return _tensors(path, _safetensors_file(path))
    return _tensors(path, _torch_file(path))


def _first(keys: list[str]) -> str:
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return f"'{keys[0]}'{more}"


def describe_misfit(
    missing: list[str], unexpected: list[str], shaped: list[tuple[str, tuple, tuple]]
) -> str | None:
    """One clause per kind of misfit, naming the first key of each; ``shaped`` holds (key, file shape,
    model shape). None when all three are empty."""
    parts = []
    if missing:
        parts.append(f"missing key {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected key {_first(unexpected)}")
    if shaped:
        key, given, wanted = shaped[0]
        more = f" ({len(shaped) - 1} more keys differ in shape)" if len(shaped) > 1 else ""
        parts.append(f"key '{key}' is {tuple(given)} in the file but {tuple(wanted)} in the model{more}")
    return "; ".join(parts) or None


def misfit(expected: Mapping[str, torch.Size], given: Mapping[str, torch.Tensor]) -> str | None:
    """What keeps ``given`` from loading strictly into a model whose state has ``expected`` shapes: the
    missing, unexpected and mis-shaped keys, each named; None when every key and shape matches."""
    shaped = [
        (key, tuple(given[key].shape), tuple(shape))
        for key, shape in expected.items()
        if key in given and tuple(given[key].shape) != tuple(shape)
    ]
    missing = [key for key in expected if key not in given]
    return describe_misfit(missing, [key for key in given if key not in expected], shaped)


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, target: str) -> None:
    """Load ``state`` into ``model`` only when every key and shape fits; else one ConfigError naming them."""
    problem = misfit({k: v.shape for k, v in model.state_dict().items()}, state)
    if problem:
        raise ConfigError(
            f"{source}: these weights do not fit {target} ({problem}); they are for another architecture "
            "or incomplete"
        )
    model.load_state_dict(state, strict=True)


def available_memory() -> int:
    """Bytes of memory a new model can use: the kernel's MemAvailable, within this cgroup's limit."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = int(Path("/sys/fs/cgroup/memory.max").read_text())
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        available = min(available, limit - used)
    except (OSError, ValueError):  # no cgroup v2, or "max" (no limit)
        pass
    return available


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def memory_problem(parameters: int, who: str) -> str | None:
    """Why a model of ``parameters`` float32 weights cannot be loaded here, with the estimate; else None."""
    need = parameters * 4 * LOAD_COPIES
    free = available_memory()
    if need <= free:
        return None
    return (
        f"{who} has {parameters / 1e6:,.0f} M parameters and needs about {need / 2**30:.1f} GiB of memory to "
        f"load ({LOAD_COPIES} float32 copies while loading), but {free / 2**30:.1f} GiB are available; use a "
        "smaller model or a machine with more memory"
    )
