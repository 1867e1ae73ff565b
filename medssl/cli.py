"""The ``medssl`` command line: a thin typer layer over the library API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medssl.errors import ConfigError, Interrupted, MedsslError

if TYPE_CHECKING:
    from medssl.data.dataset import DataConfig
    from medssl.study.config import StudyConfig

app = typer.Typer(
    help="In-domain self-supervised pre-training vs ImageNet transfer for small medical image datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Look at a dataset before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataPath = Annotated[
    str | None,
    typer.Argument(
        help="Dataset folder, .npz, .csv manifest, MedMNIST name or 'synthetic' (default: --config's path)."
    ),
]
LayoutOpt = Annotated[
    str | None, typer.Option("--layout", help="Folder layout; 'auto' detects it (default: auto).")
]
SizeOpt = Annotated[int | None, typer.Option(help="Working resolution in pixels (default: 64).")]
SkipBad = Annotated[bool, typer.Option("--skip-bad-images", help="Log and skip unreadable images.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key: --set epochs=50.")]
DataConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file of data settings (path, layout, image_size...)."),
]
DataSetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a data setting: --set split_seed=1.")
]


def _given(**options: object) -> dict[str, object]:
    """Command-line options the user actually gave (not None), for layering over a YAML config."""
    return {key: value for key, value in options.items() if value is not None}


def _data_config(
    config: Path | None, set_: list[str] | None, path: str | None, **options: object
) -> DataConfig:
    """The ``DataConfig`` of ``--config``/``--set`` with the given options over it; a path is required."""
    from medssl.config import layered_config
    from medssl.data.dataset import DataConfig

    settings = layered_config(DataConfig, config, set_, {"path": path, **options})
    if "path" not in settings.model_fields_set:
        raise ConfigError("the dataset: missing; pass its path (or 'synthetic'), or set path in --config")
    return settings


@data_app.command("inspect")
def data_inspect(
    path: DataPath = None,
    config: DataConfigOpt = None,
    set_: DataSetOpt = None,
    layout: LayoutOpt = None,
    image_size: Annotated[
        int | None, typer.Option(help="Working resolution for the sample grid (default: 64).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the sample grid PNG, or a folder for it (default: ./<dataset>-samples.png)."
        ),
    ] = None,
    group_pattern: Annotated[
        str | None,
        typer.Option(
            help="Regex on image paths whose first capture group is the patient/slide (default: none)."
        ),
    ] = None,
    group_kind: Annotated[
        str | None, typer.Option(help="What groups are: patient, slide, study, site (default: the layout's).")
    ] = None,
    folds: Annotated[
        int | None, typer.Option(help="Cross-validation folds to check the groups against (default: 5).")
    ] = None,
) -> None:
    """Detected layout, classes, counts per split, image sizes, groups, problems, and a sample grid.

    Options given here override the same keys of --config and --set.
    """
    from medssl.data.inspect import inspect_dataset

    options = {"layout": layout, "image_size": image_size, "group_pattern": group_pattern}
    settings = _data_config(config, set_, path, **options, group_kind=group_kind, folds=folds)
    groups = {"group_pattern": settings.group_pattern, "group_kind": settings.group_kind}
    report = inspect_dataset(
        settings.path,
        settings.layout,
        settings.image_size,
        out,
        folds=settings.folds or 5,
        intensity=settings.intensity,
        **groups,
    )
    typer.echo(report.to_text())


PREVIEW_NAME = "augment_preview.png"


@app.command("augment-preview")
def augment_preview_command(
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="Dataset folder, .npz, .csv, MedMNIST or 'synthetic' (default: --config's path)."
        ),
    ] = None,
    config: DataConfigOpt = None,
    set_: DataSetOpt = None,
    layout: LayoutOpt = None,
    preset: Annotated[
        str, typer.Option(help="xray, histology, generic, all, or auto (from the dataset's modality).")
    ] = "auto",
    image_size: SizeOpt = None,
    out: Annotated[
        Path, typer.Option(help="Where to write the preview PNG (a folder: FOLDER/augment_preview.png).")
    ] = Path(PREVIEW_NAME),
    seed: Annotated[int, typer.Option(help="Picks the images and the random views.")] = 0,
    method: Annotated[
        str | None,
        typer.Option(
            help="Show the views this method trains on: swav, dino (global and local crops) (default: two views)."
        ),
    ] = None,
) -> None:
    """A PNG grid of training images next to their augmented views, to check a preset before pre-training.

    Options given here override the same keys of --config and --set.
    """
    from medssl.common.augment import PRESETS, detect_preset
    from medssl.data.dataset import prepare_data
    from medssl.methods import method_class
    from medssl.rundir.paths import picture_path
    from medssl.train.preview import augment_preview

    choices = (*PRESETS, "all", "auto")
    if preset not in choices:
        raise ConfigError(f"--preset {preset!r} is not known; use one of {', '.join(choices)}")
    plan = method_class(method).view_plan if method else None
    settings = _data_config(config, set_, data, layout=layout, image_size=image_size)
    out = picture_path(out, settings.path, PREVIEW_NAME)
    prepared = prepare_data(settings)
    images, _ = prepared.part("train")
    if preset == "auto":
        presets = [detect_preset(prepared.table.modality, prepared.channels)]
    else:
        presets = list(PRESETS) if preset == "all" else [preset]
    path = augment_preview(images, presets, out, seed=seed, plan=plan)
    views = f" ({method}'s views)" if method else ""
    typer.echo(f"{', '.join(presets)} augmentation preview{views} of {prepared.name} written to {path}")


RestartOpt = Annotated[
    bool,
    typer.Option(
        help="Start over in --out: an earlier run there is first renamed to OUT.previous-<time>, never deleted."
    ),
]


def _restart(out: Path, restart: bool) -> None:
    """With ``--restart``, move an earlier run in ``out`` aside (nothing is deleted)."""
    if not restart:
        return
    from medssl.rundir.paths import check_out, move_aside

    moved = move_aside(check_out(out))
    if moved is not None:
        typer.echo(f"the earlier run in {out} was moved to {moved}")


@app.command()
def pretrain(
    config: ConfigOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="simclr, dclw, simsiam, vicreg, byol, barlowtwins, mocov2, swav, dino, mae (ViT backbones only) "
            "(default: simclr)."
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Dataset path, MedMNIST name or 'synthetic' (default: data.path of --config; required)."
        ),
    ] = None,
    layout: Annotated[
        str | None, typer.Option(help="Folder layout ('auto' detects it) (default: auto).")
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="resnet18, resnet50, efficientnet_lite0, vit_tiny, vit_small (8 px patches; vit_tiny_p4, "
            "vit_small_p4: 4 px) or timm:<model name> (default: resnet18)."
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="random; imagenet for continued pre-training; pretrained: the weights a timm:<name> backbone "
            "names (e.g. DINOv2's) (default: random)."
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(help="default, or paper (the study's: SGD lr 0.01, batch 64) (default: default)."),
    ] = None,
    augment: Annotated[
        str | None, typer.Option(help="auto, xray, histology or generic (default: auto).")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Working resolution in pixels (default: 64).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Pre-training epochs (default: 20).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per step (default: the recipe's, 128 (paper: 64)).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the recipe's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, batches and views (default: 0).")] = None,
    devices: Annotated[
        int | None, typer.Option(help="Number of GPUs (or CPU processes): >1 uses DDP (default: 1).")
    ] = None,
    accelerator: Annotated[str | None, typer.Option(help="auto, cpu or gpu (default: auto).")] = None,
    knn_k: Annotated[
        int | None, typer.Option(help="k of the validation kNN monitor (study: 200) (default: 200).")
    ] = None,
    skip_bad_images: SkipBad = False,
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/pretrain"),
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint (same settings only).")
    ] = False,
    restart: RestartOpt = False,
    set_: SetOpt = None,
) -> None:
    """Self-supervised pre-training on your images; writes OUT/encoder.pt, encoder.json and history.csv.

    Options given here override the same keys of --config and --set.
    """
    from medssl.config import layered_config
    from medssl.train.api import check_devices
    from medssl.train.api import pretrain as run_pretrain
    from medssl.train.config import PretrainConfig

    top = {
        "method": method,
        "backbone": backbone,
        "init": init,
        "recipe": recipe,
        "augment": augment,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "devices": devices,
        "accelerator": accelerator,
        "knn_k": knn_k,
    }
    data_options = {"path": data, "layout": layout, "image_size": image_size}
    data_options["skip_bad_images"] = True if skip_bad_images else None
    options = {**top, "data": data_options}
    settings = layered_config(PretrainConfig, config, set_, options, {"data.path": "--data"})
    if "path" not in settings.data.model_fields_set:
        raise ConfigError(
            "--data: missing; pass a dataset path, a MedMNIST name, or --data synthetic for generated images"
        )
    if resume and restart:
        raise ConfigError("--resume and --restart: pass one of them")
    check_devices(settings)  # before --restart moves anything
    _restart(out, restart)
    run_dir = run_pretrain(settings, out, resume=resume)
    typer.echo(f"encoder written to {run_dir}/encoder.pt (history: {run_dir}/history.csv)")


@app.command()
def benchmark(
    config: Annotated[Path | None, typer.Argument(help="Study YAML (default: the embedded demo).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory; rerun to continue an interrupted study.")] = Path(
        "runs/benchmark"
    ),
    restart: RestartOpt = False,
    set_: SetOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(help="List the cells, their dependencies and which are done in --out; run nothing."),
    ] = False,
    launcher: Annotated[
        str | None,
        typer.Option(
            help="sequential, local (--workers cells at once) or slurm (default: the study's launcher)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="local: cells at once (default: one per GPU, else one per 4 cores).")
    ] = None,
) -> None:
    """Run the whole study grid (resumable), then write OUT/report.md and OUT/report.html.

    A rerun into the same --out continues it; with other settings it is refused, naming them.
    """
    from medssl.study import load_study, run_study

    overrides = [f"{key}={value}" for key, value in _given(launcher=launcher, workers=workers).items()]
    study = load_study(config, [*(set_ or []), *overrides])
    if dry_run:
        _dry_run(study, out, restart)
        return
    if study.launcher == "sequential":
        run_study(study, out, restart=restart, say=typer.echo)
    else:
        from medssl.study.launch import launch_study

        jobs = launch_study(study, out, restart=restart, say=typer.echo)
        if study.launcher == "slurm":
            ids = ", ".join(sorted({job.job_id.split("_")[0] for job in jobs.values()}))
            typer.echo(f"{len(jobs)} SLURM jobs submitted ({ids}); follow them with `medssl status {out}`, then "
                       f"write the report with `medssl report {out}`")  # fmt: skip
            return
    _warn_run(out)
    typer.echo(f"results: {out / 'results.csv'}\nreport:  {out / 'report.html'}")


def _dry_run(study: StudyConfig, out: Path, restart: bool) -> None:
    """The cells of ``study`` and which are done in ``out`` (with ``restart``: what a restart would run), after
    the refusal a real run would give."""
    from medssl.study.cells import cell_statuses, status_lines
    from medssl.study.grid import StudyRunner

    runner = StudyRunner(study, out, restart=restart)
    runner.check()
    runner.prepare_datasets(only_split=True)  # data changed since the run's split: refused as a run would be
    if restart and out.is_dir():
        typer.echo(
            f"--restart: the earlier run in {out} would be moved to {out}.previous-<time>; every cell starts anew"
        )
    typer.echo("\n".join(status_lines(cell_statuses(study, out, fresh=restart), needs=True)))
    if study.launcher == "slurm":
        from medssl.study.launch import slurm_plan

        typer.echo(slurm_plan(study, out, fresh=restart))


def _warn_run(out: Path) -> None:
    """Repeat the report's warnings on stderr: what is wrong with results.csv or settings.json, and the
    leakage of every ``split: random`` dataset of the run."""
    from medssl.report.rundir import RunDir
    from medssl.report.sections import leakage_warning

    run = RunDir.open(out)
    warnings = [*run.problems, *(leakage_warning(run.split_summary(name), name) for name in run.datasets())]
    for warning in filter(None, warnings):
        typer.secho(f"warning: {warning}", fg="yellow", err=True)


_PYTHON_FORMAT_WARNING = None


def _format_warning(message, category, filename, lineno, line=None) -> str:  # type: ignore[no-untyped-def]
    """medssl's own warnings as one ``warning: ...`` line; other libraries' in Python's format.

    Replaces ``warnings.formatwarning`` (not ``showwarning``), so that code recording warnings (a notebook,
    pytest) still receives them."""
    if "medssl" in Path(filename).parts:  # coloured on a terminal only, as typer.secho does
        text = f"warning: {message}"
        return (typer.style(text, fg="yellow") if sys.stderr.isatty() else text) + "\n"
    return _PYTHON_FORMAT_WARNING(message, category, filename, lineno, line)  # type: ignore[misc]


def _quiet_library_warnings() -> None:
    """Hide warnings from inside Lightning and lightly that users cannot act on; print medssl's own
    warnings (e.g. a random split's leakage) as one line each."""
    import warnings

    global _PYTHON_FORMAT_WARNING
    if _PYTHON_FORMAT_WARNING is None:
        _PYTHON_FORMAT_WARNING = warnings.formatwarning
        warnings.formatwarning = _format_warning
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*could not find the monitored key.*")
    warnings.filterwarnings("ignore", message=r"To copy construct from a tensor.*")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    _quiet_library_warnings()
    try:
        app()
    except Interrupted as error:  # before MedsslError, its base class
        typer.secho(f"stopped: {error}", fg="yellow", err=True)
        sys.exit(130)
    except MedsslError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)


# --- evaluate / compare (medssl.evaluate) ----------------------------------------------------------------


def _split_option(text: str, cast: type, option: str, example: str) -> list:
    """``"0.01,0.1,1.0"`` → ``[0.01, 0.1, 1.0]``; a ConfigError naming ``option`` otherwise."""
    try:
        values = [cast(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        from medssl.errors import ConfigError

        raise ConfigError(f"{option} {text!r}: give a comma-separated list, e.g. {option} {example}")
    return values


def _device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device!r}: choose auto, cpu or cuda (cuda:N for one GPU)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _image_size(given: int | None, encoder_meta: dict) -> int:
    """--image-size, else the encoder's pre-training size, else 64; a warning when they differ."""
    trained = encoder_meta.get("image_size")
    if given is None:
        return int(trained) if isinstance(trained, int) else 64
    if isinstance(trained, int) and trained != given:
        typer.secho(
            f"warning: the encoder was pre-trained at {trained} px; evaluating at --image-size {given} px",
            fg="yellow",
            err=True,
        )
    return given


@app.command("evaluate")
def evaluate_command(
    encoder: Annotated[
        str,
        typer.Option(
            help="Pre-training run dir, imagenet:<backbone>, random:<backbone>, timm:<model name>[@<weights "
            "file>] or hf:<model folder>."
        ),
    ],
    data: Annotated[str, typer.Option(help="Dataset folder, .npz, .csv, MedMNIST name or 'synthetic'.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="YAML file of evaluation settings (protocols, k, n_bootstrap...)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override an evaluation setting: --set n_bootstrap=2000."),
    ] = None,
    layout: LayoutOpt = None,
    protocol: Annotated[
        str | None,
        typer.Option(help="Comma-separated: knn, knn_weighted, linear, finetune (default: knn,linear)."),
    ] = None,
    label_fractions: Annotated[
        str | None, typer.Option(help="Shares of the labels to use, e.g. 0.01,0.1,1.0 (default: 1.0).")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Number of label-subset seeds (0..N-1) (default: 1).")
    ] = None,
    k: Annotated[int | None, typer.Option(help="Neighbours of the kNN protocols (default: 200).")] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Working resolution in pixels (default: the encoder's pre-training size, else 64)."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Output directory (results.csv, metrics.json, split.csv).")
    ] = Path("runs/eval"),
    replace: Annotated[
        bool, typer.Option(help="Evaluate cells already in OUT/results.csv again and replace their rows.")
    ] = False,
    skip_bad_images: SkipBad = False,
    class_weight: Annotated[
        str | None,
        typer.Option(help="'balanced' reweights classes in the probe and fine-tuning (default: none)."),
    ] = None,
    finetune_epochs: Annotated[
        int | None,
        typer.Option(
            help="Fine-tuning passes over the labelled images, at least finetune_min_steps optimiser steps "
            "(--set finetune_min_steps=N); also its number of validations (default: 30)."
        ),
    ] = None,
    bootstrap: Annotated[
        int | None, typer.Option(help="Bootstrap resamples for the 95% CIs (default: 1000).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Evaluate an encoder (kNN, linear probe, fine-tuning) with 95% CIs; writes OUT/results.csv.

    Options given here override the same keys of --config and --set. Cells already in OUT/results.csv are
    skipped (same settings) or refused (other settings) unless --replace.
    """
    from medssl.config import layered_config
    from medssl.data.dataset import prepare_data
    from medssl.evaluate.api import evaluate_encoder
    from medssl.evaluate.config import EvaluationConfig
    from medssl.models.encoder import encoder_from_spec
    from medssl.rundir.paths import check_apart, check_out, check_writable
    from medssl.rundir.settings import data_settings

    options = {
        "protocols": None if protocol is None else _split_option(protocol, str, "--protocol", "knn,linear"),
        "label_fractions": None
        if label_fractions is None
        else _split_option(label_fractions, float, "--label-fractions", "0.01,0.1,1.0"),
        "seeds": seeds,
        "k": k,
        "class_weight": class_weight,
        "finetune_epochs": finetune_epochs,
        "n_bootstrap": bootstrap,
    }
    flags = {"protocols": "--protocol", "n_bootstrap": "--bootstrap"}
    settings = layered_config(EvaluationConfig, config, set_, options, flags)
    torch_device = _device(device)
    check_writable(check_out(out))
    check_apart(data, out)
    model = encoder_from_spec(encoder)
    size = _image_size(image_size, model.meta)
    model.check_image_size(size)
    skip = True if skip_bad_images else None
    data_config = _data_config(None, None, data, layout=layout, image_size=size, skip_bad_images=skip)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(data_config, run_dir=out)
    typer.echo(f"evaluating {encoder} on {prepared.name} ({len(prepared.split['test'])} test images)")
    rows = evaluate_encoder(
        model,
        prepared,
        out,
        settings,
        device=torch_device,
        progress=_show_row,
        data_settings=data_settings(data_config.model_dump(mode="json")),
        replace=replace,
    )
    skipped = len(settings.cells()) - len(rows)
    if skipped:
        typer.echo(
            f"{skipped} cell(s) already in {out / 'results.csv'} with the same settings were skipped "
            "(--replace evaluates them again)"
        )
    _print_summary(rows)
    if rows:
        typer.echo(f"\nresults appended to {out / 'results.csv'} (mean ± sd over {settings.seeds} seed(s))")


def _show_row(row: dict) -> None:
    """One finished evaluation cell, as it is done."""
    head = f"  {row['protocol']:<12} f={row['label_fraction']:<5g} seed={row['seed']}: "
    if row.get("not_applicable"):
        typer.echo(f"{head}not applicable ({row['not_applicable']})")
        return
    typer.echo(
        f"{head}accuracy {row['accuracy']:.3f}, AUROC {row['auroc']:.3f}"
        + ("  [COLLAPSED OR AT THE FLOOR]" if row["collapsed"] else "")
    )


def _print_summary(rows: list[dict]) -> None:
    """The mean ± sd table of ``rows`` over seeds, and how many cells collapsed."""
    from medssl.evaluate.metrics import format_mean_sd, summarise_seeds

    typer.echo(
        f"\n{'method':<11} {'protocol':<12} {'labels':>6}  {'accuracy':<15} {'bal. accuracy':<15} AUROC"
    )
    for s in summarise_seeds(rows, by=("method", "protocol", "label_fraction")):
        cells = [
            format_mean_sd(s[f"{m}_mean"], s[f"{m}_sd"]) for m in ("accuracy", "balanced_accuracy", "auroc")
        ]
        typer.echo(
            f"{s['method']:<11} {s['protocol']:<12} {s['label_fraction']:>6g}  {cells[0]:<15} {cells[1]:<15} {cells[2]}"
        )
    collapsed = sum(bool(r["collapsed"]) for r in rows)
    if collapsed:
        typer.secho(
            f"{collapsed} cell(s) predict one class for ≥95% of the test images (collapsed) or score no "
            "better than chance in balanced accuracy (at the floor)",
            fg="yellow",
        )
    not_applicable = [r for r in rows if r.get("not_applicable")]
    if not_applicable:
        typer.secho(
            f"{len(not_applicable)} kNN cell(s) not applicable ({not_applicable[0]['not_applicable']}): "
            "a k below the labelled images (--set k=N) runs them",
            fg="yellow",
        )


def _predictions_label(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "predictions" else path.stem


@app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Predictions .npz of model A, or an evaluation directory.")],
    b: Annotated[Path, typer.Argument(help="Predictions .npz of model B, or an evaluation directory.")],
    protocol: Annotated[
        str | None,
        typer.Option(
            help="With directories: knn, linear, finetune... (default: none; needed with directories)."
        ),
    ] = None,
    fraction: Annotated[
        float | None,
        typer.Option(help="With directories: the label fraction (default: none; needed with directories)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="With directories: the seed (default: none; needed with directories).")
    ] = None,
    metric: Annotated[str, typer.Option(help="Comma-separated metrics to compare.")] = "accuracy,auroc",
    resamples: Annotated[int, typer.Option(help="Paired bootstrap resamples.")] = 2000,
) -> None:
    """Is A better than B on the same test images? Paired-bootstrap difference, 95% CI and p-value."""
    from medssl.evaluate.compare import compare_predictions, resolve_predictions
    from medssl.evaluate.metrics import METRICS

    metrics = _split_option(metric, str, "--metric", "accuracy,auroc")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"--metric {','.join(unknown)}: choose from {', '.join(METRICS)}")
    path_a = resolve_predictions(a, protocol, fraction, seed)
    path_b = resolve_predictions(b, protocol, fraction, seed)
    name_a, name_b = _predictions_label(path_a), _predictions_label(path_b)
    if name_a == name_b:
        name_a, name_b = f"A ({name_a})", f"B ({name_b})"
    typer.echo(f"A = {path_a}\nB = {path_b}")
    for comparison in compare_predictions(path_a, path_b, tuple(metrics), n_resamples=resamples):
        typer.echo(comparison.sentence(name_a, name_b))


@app.command("status")
def status_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `medssl benchmark --out DIR`.")],
) -> None:
    """The cells of a study run: done, running, failed (with the log path) or pending."""
    from medssl.study.cells import cell_statuses, run_study_config, status_lines

    typer.echo("\n".join(status_lines(cell_statuses(run_study_config(run_dir), run_dir))))


# --- report (medssl.report) ------------------------------------------------------------------------------


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `medssl benchmark --out DIR`.")],
) -> None:
    """Write DIR/report.md and a self-contained DIR/report.html: study table, verdict and figures."""
    from medssl.report import write_report

    md_path, html_path = write_report(run_dir)
    _warn_run(run_dir)
    typer.echo(f"report:   {html_path}\nmarkdown: {md_path}")


if __name__ == "__main__":
    main()
