"""``hf:<directory>``: a Hugging Face transformers vision model (RAD-DINO, Phikon...) from a local folder.

The folder is one written by ``save_pretrained`` or ``hf download <repo> --local-dir <folder>``
(``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, ``preprocessor_config.json``). A repository
id (``hf:microsoft/rad-dino``) that is not a folder is looked up in the local Hugging Face cache. Nothing is
downloaded: transformers runs with ``local_files_only``.

Loading is strict through transformers' own loading report: a missing, unexpected or mis-shaped key is an
error. The pooler (``ViTModel``'s dense + tanh over the class token) is not used: features are the class token
of the last hidden state, after the final layer norm, as the RAD-DINO (``pooler_output`` of ``Dinov2Model``
is that token) and Phikon (``last_hidden_state[:, 0]``) model cards do. Missing pooler weights are therefore
no error, and the pooler is dropped. Input size, mean and std come from the image processor's config.
"""

from __future__ import annotations

import contextlib
import inspect
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medssl.errors import ConfigError, MedsslError, WeightsUnavailableError
from medssl.models import hub
from medssl.models.encoder import Encoder
from medssl.models.inputs import IMAGENET_MEAN, IMAGENET_STD, InputConventions
from medssl.models.weights import describe_misfit, memory_problem, parameter_count

PREFIX = "hf:"
INTERPOLATING = ("dinov2", "dinov2_with_registers", "dinov3_vit")
"""Model types whose position embeddings are always interpolated to the input size."""


class HFBackbone(nn.Module):
    """A transformers vision model returning the class token of its last hidden state."""

    def __init__(self, model: nn.Module, interpolate: bool) -> None:
        super().__init__()
        self.model = model
        self.interpolate = interpolate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        options = {"interpolate_pos_encoding": True} if self.interpolate else {}
        return self.model(pixel_values=x, **options).last_hidden_state[:, 0]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers without its progress bars and load report: medssl reports what went wrong itself."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()


def _is_repo_id(body: str) -> bool:
    return body.count("/") == 1 and not body.startswith((".", "/", "~"))


def model_directory(text: str) -> Path:
    """The local folder of an ``hf:`` spec: the folder itself, or a repository's snapshot in the cache."""
    body = text.removeprefix(PREFIX)
    if not body:
        raise ConfigError(f"'{text}': name a model folder, e.g. hf:models/rad-dino")
    path = Path(body).expanduser()
    if path.is_dir():
        return path
    if _is_repo_id(body):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(body, local_files_only=True, cache_dir=hub.hub_cache()))
        except Exception:  # not in the cache
            hint = hub.fetch_hint(body)
            raise WeightsUnavailableError(
                f"{text}: no folder {path} and no copy of {body} in the Hugging Face cache; {hint}; or run "
                f"`hf download {body} --local-dir <folder>` and pass hf:<folder>"
            ) from None
    raise WeightsUnavailableError(
        f"{text}: model folder {path} not found; on a machine with internet run "
        "`hf download <org>/<name> --local-dir <folder>` (e.g. microsoft/rad-dino), copy the folder here and "
        "pass hf:<folder>"
    )


def _config(directory: Path, text: str) -> Any:
    from transformers import AutoConfig

    if not (directory / "config.json").is_file():
        raise ConfigError(f"{text}: {directory} is not a Hugging Face model folder (no config.json)")
    try:
        with _quiet():
            return AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as error:
        raise ConfigError(f"{text}: {directory / 'config.json'} cannot be read ({error})") from None


def _meta_parameters(config: Any) -> int:
    from transformers import AutoModel

    with _quiet(), torch.device("meta"):
        return parameter_count(AutoModel.from_config(config))


def _load_error(text: str, directory: Path, error: Exception) -> MedsslError:
    """One line for what transformers raised while reading the weights."""
    name = error.__class__.__name__
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
        return ConfigError(
            f"{text}: refused: the weights in {directory} hold pickled Python objects, which can run code when "
            "loaded; medssl reads weights only. Convert them to model.safetensors"
        )
    if isinstance(error, OSError) and "no file named" in str(error):
        return ConfigError(f"{text}: {directory} holds no weights (model.safetensors or pytorch_model.bin)")
    return ConfigError(
        f"{text}: the weights in {directory} are not a checkpoint transformers can read ({name})"
    )


def _strict(info: dict[str, Any], text: str) -> None:
    """A ConfigError naming the keys transformers did not load, except the unused pooler's."""
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("pooler."))
    problem = describe_misfit(missing, sorted(info["unexpected_keys"]), sorted(info["mismatched_keys"]))
    if problem:
        raise ConfigError(
            f"{text}: the weights do not fit the model its config.json describes ({problem}); they are for "
            "another architecture or incomplete"
        )


def _load(directory: Path, text: str) -> nn.Module:
    from transformers import AutoModel

    try:
        with _quiet():
            model, info = AutoModel.from_pretrained(
                directory, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True
            )
    except Exception as error:
        raise _load_error(text, directory, error) from None
    _strict(info, text)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused: features are the class token
    return model


def _side(size: Any) -> int | None:
    """The square side of a processor's size entry (height/width or shortest edge)."""
    if size is None:
        return None
    side = getattr(size, "height", None) or getattr(size, "shortest_edge", None)
    if isinstance(size, dict):
        side = size.get("height") or size.get("shortest_edge")
    return int(side) if side else None


def _inputs(directory: Path, config: Any, interpolate: bool) -> tuple[InputConventions, str]:
    """The input conventions from the image processor's config (ImageNet's mean and std where there is none)."""
    from transformers import AutoImageProcessor

    try:
        with _quiet():
            processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True)
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
        crop = getattr(processor, "do_center_crop", False) and _side(getattr(processor, "crop_size", None))
        trained = crop or _side(getattr(processor, "size", None))
        source = "preprocessor_config.json"
    except Exception:  # no image processor saved with the model
        mean, std, trained = IMAGENET_MEAN, IMAGENET_STD, None
        source = "ImageNet's (no preprocessor_config.json)"
    patch = config.patch_size if isinstance(config.patch_size, int) else config.patch_size[0]
    fixed = None if interpolate else int(config.image_size)
    channels = int(getattr(config, "num_channels", 3))
    return InputConventions(mean, std, channels, int(patch), fixed, trained or int(config.image_size)), source


def _title(directory: Path, text: str) -> str:
    """The model's name: its folder, or the repository of a cache snapshot (``models--org--name``)."""
    cached = next((p.name for p in directory.parents if p.name.startswith("models--")), None)
    return cached.rsplit("--", 1)[-1] if cached else directory.resolve().name or text


def hf_encoder(text: str) -> Encoder:
    """The frozen encoder of an ``hf:`` spec, in eval mode."""
    from medssl.models.specs import spec_id

    directory = model_directory(text)
    config = _config(directory, text)
    problem = memory_problem(_meta_parameters(config), text)
    if problem:
        raise ConfigError(problem)
    model = _load(directory, text)
    if not hasattr(model, "embeddings") or getattr(config, "patch_size", None) is None:
        raise ConfigError(
            f"{text}: {type(model).__name__} is not a ViT-style image model; hf: takes models such as "
            "Dinov2Model (RAD-DINO) or ViTModel (Phikon)"
        )
    interpolate = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
    inputs, normalisation = _inputs(directory, config, interpolate or config.model_type in INTERPOLATING)
    meta = {
        "method": "foundation",
        "init": "hf",
        "kind": "foundation",
        "kind_rule": "hf: models are classed as foundation models",
        "title": _title(directory, text),
        "source": text,
        "encoder_id": spec_id(text),
        "model_type": config.model_type,
        "weights": str(directory),
        "features": "cls token (last hidden state, after the final norm)",
        "normalisation_from": normalisation,
        "parameters": parameter_count(model),
    }
    backbone = HFBackbone(model, interpolate)
    return Encoder(backbone, PREFIX + str(directory), meta, inputs, int(config.hidden_size)).eval()


def hf_problems(text: str, sizes: list[int]) -> list[str]:
    """Everything that would stop ``text`` from loading or taking ``sizes`` px images, without raising."""
    try:
        encoder = hf_encoder(text)
    except MedsslError as error:
        return [str(error)]
    return [f"{text} {p}" for p in dict.fromkeys(filter(None, map(encoder.inputs.size_problem, sizes)))]
