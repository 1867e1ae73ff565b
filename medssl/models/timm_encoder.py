"""``timm:<model name>`` and ``timm:<model name>@<file>``: any timm model, as a frozen encoder or an SSL backbone.

Weights come from the local Hugging Face cache (or torch hub's, for timm names that point at a URL), from a
download where the machine is online and ``HF_HUB_OFFLINE`` is not set, or from a local ``.safetensors``,
``.pth`` or ``.bin`` file. They load strictly (``medssl.models.weights``). The input conventions (size, mean
and std, patch, channels) are timm's for the name (``resolve_model_data_config``); features are the model's
own pooling with the classifier removed (the class token for ViTs, the global average for CNNs).

Which group of the study a name belongs to is read from its pretrained tag (``weights_kind``).
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medssl.errors import ConfigError, MedsslError, WeightsUnavailableError
from medssl.models import hub
from medssl.models.backbones import TIMM_PREFIX, BackboneSpec, Init
from medssl.models.encoder import Encoder
from medssl.models.inputs import InputConventions
from medssl.models.weights import load_strict, memory_problem, misfit, parameter_count, read_weights

HUB_FILES = ["model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"]
IMAGENET_DATA = re.compile(r"in\d+(ft\d+)?k")
"""A tag token naming ImageNet data: in1k, in12k, in21k, in22k, in22ft1k."""
FOUNDATION_DATA = (
    *("lvd", "laion", "openai", "dfn", "webli", "metaclip", "datacomp", "merged", "commonpool", "ig1b"),
    *("ig3b", "swsl", "ssl", "jft", "m38m", "cc12m", "yfcc", "sa1b", "wit", "sat"),
)
"""Beginnings of tag tokens that name web-scale or curated corpora beyond ImageNet (LVD-142M, LAION...)."""
IMAGENET_SSL_TAGS = ("dino", "mae", "mocov3")
"""Tags of self-supervised weights trained on ImageNet-1k images (no other data)."""
VIT_NAME = re.compile(r"vit_(tiny|small|base|large|huge|giant|gigantic)_patch(\d+)_?(.*)")
VIT_SIZES = {
    "tiny": "Ti",
    "small": "S",
    "base": "B",
    "large": "L",
    "huge": "H",
    "giant": "g",
    "gigantic": "G",
}
VIT_FAMILIES = (("dinov2", "DINOv2"), ("dinov3", "DINOv3"), ("siglip", "SigLIP"), ("clip", "CLIP"))


def weights_kind(tag: str) -> tuple[str, str]:
    """(kind, why): ``imagenet`` where the tag names ImageNet data only (``a1_in1k``,
    ``augreg_in21k_ft_in1k``) or ImageNet self-supervision (``dino``, ``mae``); ``foundation`` where it names
    a larger corpus (``lvd142m``, ``laion2b_ft_in1k``), or no data medssl knows."""
    tokens = tag.lower().split("_") if tag else []
    corpus = next((t for t in tokens if t.startswith(FOUNDATION_DATA)), None)
    if corpus:
        return "foundation", f"its tag '{tag}' names the corpus '{corpus}'"
    if any(IMAGENET_DATA.fullmatch(t) for t in tokens) or tag in IMAGENET_SSL_TAGS:
        return "imagenet", f"its tag '{tag}' names ImageNet data only"
    if not tag:
        return "foundation", "it has no pretrained tag naming its data"
    return "foundation", f"its tag '{tag}' names no ImageNet data"


@dataclass(frozen=True)
class TimmSpec:
    """A parsed ``timm:`` spec: the model name (with its pretrained tag) and an optional weights file."""

    text: str
    architecture: str
    tag: str
    file: Path | None
    cfg: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture

    @property
    def kind(self) -> tuple[str, str]:
        return weights_kind(self.tag)

    @property
    def title(self) -> str:
        """A reader's name: ``DINOv2 ViT-S/14``; the tag is kept where the architecture has several."""
        import timm

        tags = timm.list_pretrained(f"{self.architecture}.*")
        tag = f" {self.tag}" if self.tag and len(tags) > 1 else ""
        match = VIT_NAME.fullmatch(self.architecture)
        if not match:
            return f"{self.architecture}{tag}"
        size, patch, rest = match.groups()
        family = next((f"{name} " for key, name in VIT_FAMILIES if key in rest), "")
        registers = re.search(r"reg(\d+)", rest)
        extra = f" reg{registers.group(1)}" if registers else ""
        return f"{family}ViT-{VIT_SIZES[size]}/{patch}{extra}{tag}"


def _close_names(name: str) -> str:
    import timm

    names = [*timm.list_models(pretrained=True), *timm.list_models()]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    return f"; closest names: {', '.join(close)}" if close else "; see timm.list_models()"


def parse_timm(text: str) -> TimmSpec:
    """``timm:<name>[@<file>]`` checked against timm's registry; an unknown name lists the closest ones."""
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    body = text.removeprefix(TIMM_PREFIX)
    name, _, file = body.partition("@")
    if not name:
        raise ConfigError(f"'{text}': name a timm model, e.g. timm:vit_small_patch14_dinov2.lvd142m")
    architecture, tag = split_model_name_tag(name)
    if not timm.is_model(architecture):
        raise ConfigError(f"{text}: timm has no model '{architecture}'{_close_names(name)}")
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # an invalid tag
        cfg = None
    if tag and cfg is None:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{architecture}.*")]
        raise ConfigError(
            f"{text}: timm has no weights '{tag}' for {architecture}; its tags: {', '.join(tags) or 'none'}"
        )
    cfg_dict = cfg.to_dict() if cfg is not None else {}
    if not tag and not file:  # the cache holds the default tag's weights
        tag = cfg_dict.get("tag") or ""
    return TimmSpec(text, architecture, tag, Path(file).expanduser() if file else None, cfg_dict)


def create_model(name: str) -> nn.Module:
    """The timm model ``name`` with random weights and no classifier; ViTs take any multiple of their patch."""
    import timm

    try:
        return timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
    except TypeError:  # not a ViT-like model: its input size is not fixed anyway
        return timm.create_model(name, pretrained=False, num_classes=0)


@functools.lru_cache(maxsize=32)
def _meta_model(name: str) -> nn.Module:
    """The model on the meta device: parameter count, feature width and input conventions, no memory."""
    with torch.device("meta"):
        return create_model(name)


def model_inputs(model: nn.Module) -> InputConventions:
    """The model's input conventions from timm's data config and its patch embedding."""
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    embed = getattr(model, "patch_embed", None)
    patch = int(embed.patch_size[0]) if embed is not None else 1
    dynamic = bool(getattr(model, "dynamic_img_size", False))
    fixed = int(embed.img_size[0]) if embed is not None and not dynamic and embed.strict_img_size else None
    size = config["input_size"]
    return InputConventions(
        tuple(config["mean"]), tuple(config["std"]), int(size[0]), patch, fixed, int(size[-1])
    )


def pooling(model: nn.Module) -> str:
    """What the features are: the class token, or an average over the patch tokens or the feature map."""
    pool = getattr(model, "global_pool", None)
    kind = pool if isinstance(pool, str) else getattr(pool, "pool_type", None)
    tokens = getattr(model, "patch_embed", None) is not None
    names = {"token": "cls token", "avg": "mean of the patch tokens" if tokens else "global average pool"}
    return names.get(str(kind), f"{kind} pool")


def find_weights(spec: TimmSpec) -> Path:
    """The weights file of ``spec``: the given file, the cache, or a download; else how to fetch them."""
    if spec.file is not None:
        if not spec.file.is_file():
            raise WeightsUnavailableError(f"{spec.text}: weights file {spec.file} not found")
        return spec.file
    if not spec.cfg:
        raise WeightsUnavailableError(
            f"{spec.text}: timm has no pretrained weights for {spec.name}; pass a weights file as "
            f"timm:{spec.name}@<file>, or name a tag of it (timm.list_pretrained('{spec.architecture}.*'))"
        )
    repo = spec.cfg.get("hf_hub_id")
    if repo:
        files = [spec.cfg.get("hf_hub_filename") or HUB_FILES[0], *HUB_FILES]
        found = hub.cached_file(repo, files) or hub.download(repo, files)
        if found:
            return found
        raise WeightsUnavailableError(
            f"{spec.text}: no local weights for {spec.name}; {hub.fetch_hint(repo, 'model.safetensors')}; or "
            f"pass a local file as timm:{spec.name}@<file>"
        )
    return _torch_hub_weights(spec)


def _torch_hub_weights(spec: TimmSpec) -> Path:
    url = spec.cfg.get("url") or ""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / url.rsplit("/", 1)[-1]
    if url and path.is_file():
        return path
    raise WeightsUnavailableError(
        f"{spec.text}: no local weights for {spec.name}; download {url or 'its weights'} on a machine with "
        f"internet and put the file at {path}, or pass it as timm:{spec.name}@<file>"
    )


def _converted(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` in timm's layout: original-format checkpoints (e.g. DINOv2's own release) go through the
    architecture's ``checkpoint_filter_fn``, unless it would resample a tensor to another shape."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    convert = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if convert is None or not misfit(expected, state):
        return state
    try:
        out = convert(dict(state), model)
    except Exception:  # not a layout it knows: the strict check names what does not fit
        return state
    return state if _resampled(state, out) else out


def _resampled(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    """Whether a conversion changed a tensor's shape beyond splitting the class position off the position
    embeddings (DINOv2 with registers): a patch kernel or position grid resampled to fit another model."""
    for key, value in after.items():
        old = before.get(key)
        if old is None or old.shape == value.shape:
            continue
        split = key.endswith("pos_embed") and old.dim() == value.dim() == 3 and old.shape[2] == value.shape[2]
        if not (split and old.shape[1] - value.shape[1] == 1):  # grids of n² and n² - 1 positions: impossible
            return True
    return False


def _without_classifier(state: dict[str, torch.Tensor], spec: TimmSpec, model: nn.Module) -> dict:
    """``state`` without the pretrained classifier the model was built without (``num_classes=0``)."""
    heads = spec.cfg.get("classifier") or ("head", "fc")
    heads = (heads,) if isinstance(heads, str) else heads
    keys = set(model.state_dict())
    drop = {f"{h}.{p}" for h in heads for p in ("weight", "bias")} - keys
    return {k: v for k, v in state.items() if k not in drop}


def load_weights(model: nn.Module, spec: TimmSpec, path: Path) -> None:
    """Read ``path`` (weights only) and load it strictly into ``model``."""
    state = _without_classifier(_converted(read_weights(path), model), spec, model)
    load_strict(model, state, str(path), f"timm:{spec.name}")


def _check_memory(spec: TimmSpec) -> None:
    problem = memory_problem(parameter_count(_meta_model(spec.name)), spec.text)
    if problem:
        raise ConfigError(problem)


def pretrained_model(spec: TimmSpec) -> tuple[nn.Module, Path]:
    """The model of ``spec`` with its weights, after the memory estimate; the weights file it came from."""
    _check_memory(spec)
    path = find_weights(spec)
    model = create_model(spec.name)
    load_weights(model, spec, path)
    return model, path


def timm_backbone(name: str, init: Init) -> nn.Module:
    """An SSL backbone ``timm:<name>``: random weights, or those the name stands for (``pretrained``, or
    ``imagenet`` where they are ImageNet weights)."""
    spec = parse_timm(name)
    if init == "random":
        return create_model(spec.name)
    kind, why = spec.kind
    if init == "imagenet" and kind != "imagenet":
        raise ConfigError(
            f"{name}: init imagenet, but these are not ImageNet weights ({why}); use init pretrained to start "
            "from them"
        )
    return pretrained_model(spec)[0]


@functools.lru_cache(maxsize=32)
def timm_backbone_spec(name: str) -> BackboneSpec:
    """The ``BackboneSpec`` of a ``timm:<name>`` backbone (feature width and inputs from a meta build)."""
    spec = parse_timm(name)
    model = _meta_model(spec.name)
    inputs = model_inputs(model)
    return BackboneSpec(
        lambda imagenet: timm_backbone(name, "imagenet" if imagenet else "random"),
        int(model.num_features),
        inputs.mean,
        inputs.std,
        inputs.patch,
        inputs,
    )


def timm_meta(spec: TimmSpec, model: nn.Module, path: Path) -> dict[str, Any]:
    """What ``encoder.json`` and the results rows say about a frozen timm encoder."""
    from medssl.models.specs import spec_id

    kind, why = spec.kind
    return {
        "method": kind,
        "init": "timm",
        "kind": kind,
        "kind_rule": why,
        "title": spec.title,
        "source": spec.text,
        "encoder_id": spec_id(spec.text),
        "timm_name": spec.name,
        "weights": str(path),
        "features": pooling(model),
        "parameters": parameter_count(model),
        "license": spec.cfg.get("license"),
    }


def timm_encoder(text: str) -> Encoder:
    """The frozen encoder of a ``timm:`` spec, in eval mode."""
    spec = parse_timm(text)
    model, path = pretrained_model(spec)
    name = TIMM_PREFIX + spec.name
    inputs = model_inputs(model)
    return Encoder(model, name, timm_meta(spec, model, path), inputs, int(model.num_features)).eval()


def timm_problems(text: str, sizes: list[int]) -> list[str]:
    """Everything that would stop ``text`` from loading or taking ``sizes`` px images, without raising:
    an unknown name, too little memory, missing or misfit weights, an image size it cannot take."""
    try:
        spec = parse_timm(text)
    except MedsslError as error:
        return [str(error)]
    inputs = model_inputs(_meta_model(spec.name))
    problems = [f"{text} {p}" for p in dict.fromkeys(filter(None, map(inputs.size_problem, sizes)))]
    try:
        pretrained_model(spec)
    except MedsslError as error:
        problems.insert(0, str(error))
    return problems
