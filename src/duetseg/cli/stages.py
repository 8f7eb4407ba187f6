"""Pipeline-stage commands: ``prepare``, ``train``, ``evaluate`` and ``evaluate-folder``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from duetseg.cli.app import AGAIN, app
from duetseg.cli_support import interruptible, parse_label_mapping
from duetseg.data.discovery import LAYOUTS
from duetseg.evaluation.overlap import NSD_TOLERANCE_MM

__all__ = ["evaluate", "evaluate_folder_cmd", "prepare", "train_cmd"]


@app.command()
@interruptible(AGAIN.format(what="cases"))
def prepare(
    input_path: Annotated[Path, typer.Argument(help="BraTS folder, nnU-Net raw dataset or CSV")],
    out: Annotated[Path, typer.Option("--out", "-o", help="cache folder")],
    modalities: Annotated[list[str] | None, typer.Option(help="e.g. --modalities t1ce t2")] = None,
    layout: Annotated[str, typer.Option(help=" | ".join(("auto", *LAYOUTS)))] = "auto",
    spacing: Annotated[tuple[float, float, float] | None, typer.Option(help="target mm")] = None,
    crop_margin: Annotated[int, typer.Option(help="voxels kept around the non-zero box")] = 0,
    norm: Annotated[list[str] | None, typer.Option(
        help="per-modality scheme, e.g. --norm ct=ct_window "
             "(default zscore_nonzero; minmax = the paper)")] = None,
    window: Annotated[tuple[float, float] | None, typer.Option(
        help="CT window level width for ct_window")] = None,
    label_mapping: Annotated[str, typer.Option(
        help="auto (BraTS: whole tumour, else identity) | whole_tumour | tumour_core | "
             "enhancing_tumour | identity | 1:1,2:1",
    )] = "auto",
    num_classes: Annotated[int, typer.Option(help="classes incl. background")] = 2,
    workers: Annotated[int, typer.Option(help="parallel processes")] = 2,
    register: Annotated[bool, typer.Option(
        help="rigidly register modalities on different grids (CT + MR) to the reference")] = False,
    reference: Annotated[str | None, typer.Option(
        help="registration reference modality (default: the first one not ct_window)")] = None,
) -> None:
    """Preprocess raw NIfTI cases into a cache (register, crop, normalise, map labels)."""
    from duetseg.config import NormalizationConfig, PrepareConfig, RegistrationConfig
    from duetseg.data.discovery import detect_layout
    from duetseg.data.prepare import prepare_dataset

    resolved_layout = detect_layout(input_path) if layout == "auto" else layout
    mapping = parse_label_mapping(label_mapping)
    if mapping == "auto":
        mapping = "whole_tumour" if resolved_layout == "brats" else "identity"
    per_mod = {}
    for item in norm or []:
        name, _, scheme = item.partition("=")
        extra = {"window_level": window[0], "window_width": window[1]} if window else {}
        per_mod[name] = NormalizationConfig(scheme=scheme, **extra)
    if reference is not None and not register:
        raise typer.BadParameter("--reference needs --register", param_hint="--reference")
    cfg = PrepareConfig(
        modalities=modalities or ["t1ce", "t2"], layout=resolved_layout, target_spacing=spacing,
        crop_margin=crop_margin, normalization=per_mod, label_mapping=mapping,
        num_classes=num_classes,
        registration=RegistrationConfig(enabled=register, reference=reference),
    )
    cache = prepare_dataset(input_path, out, cfg, num_workers=workers)
    n_lab = len(cache.labelled_cases)
    typer.echo(f"cache {cache.root}: {len(cache.cases)} cases ({n_lab} labelled), "
               f"modalities {cache.modalities}, label mapping {mapping}")


@app.command("train")
@interruptible("duetseg train --resume --out {out} resumes it from its last checkpoint")
def train_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory")],
    cache: Annotated[Path | None, typer.Option(help="cache from `duetseg prepare`")] = None,
    modalities: Annotated[list[str] | None, typer.Option(
        help="train on these of the cache's modalities, e.g. --modalities t2 (default: all)")
    ] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="preset or YAML")] = None,
    method: Annotated[str | None, typer.Option(help="see `duetseg methods`")] = None,
    labeled: Annotated[str | None, typer.Option(help="labelled subset: '5%' or a count")] = None,
    iterations: Annotated[int | None, typer.Option(help="train.max_iterations")] = None,
    seed: Annotated[int | None, typer.Option(help="train.seed and splits.seed")] = None,
    splits_dir: Annotated[Path | None, typer.Option(
        help="folder with train.txt, val.txt, test.txt case lists")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda[:N]")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key.sub=value")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Train a method; writes config.yaml, splits.json, checkpoints/, log.csv, tensorboard/.

    Data-parallel: ``torchrun --nproc_per_node N -m duetseg train ...`` (batch sizes are per
    process; see docs/training.md, "Multi-GPU / multi-process training").
    """
    from duetseg.config import load_config
    from duetseg.run.layout import RunDir
    from duetseg.training import train
    from duetseg.training.distributed import env_rank

    overrides = list(set_ or [])
    saved_config = RunDir(out).config_file
    if resume and config is None and saved_config.exists():
        config = str(saved_config)
    pairs = {"cache": cache, "method.name": method, "splits.labeled": labeled,
             "train.max_iterations": iterations, "train.seed": seed, "splits.seed": seed,
             "train.device": device}
    if splits_dir is not None:
        for part in ("train", "val", "test"):
            pairs[f"splits.{part}_list"] = splits_dir / f"{part}.txt"
    if modalities:
        pairs["modalities"] = json.dumps(list(modalities))  # YAML reads JSON
    overrides = [f"{k}={v}" for k, v in pairs.items() if v is not None] + overrides
    cfg = load_config(config or "cpu_small", overrides)
    result = train(cfg, out, resume=resume, progress=not quiet)
    if env_rank() == 0:
        typer.echo(f"trained to iteration {result.iteration}; best val "
                   f"{result.best_metric:.2f} at {result.best_iteration}; run dir {result.run_dir}")


@app.command()
@interruptible("run the same command again (the masks written so far are complete; "
               "metrics.csv and summary.json are written at the end)")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best | last")] = "best",
    device: Annotated[str, typer.Option()] = "auto",
    all_outputs: Annotated[bool, typer.Option(help="also save each branch's masks")] = False,
    largest_component: Annotated[bool | None, typer.Option(
        help="keep the largest connected component per class (default: the run's config)",
    )] = None,
) -> None:
    """Predict a split, write NIfTI in the original geometry, metrics.csv and summary.json."""
    from duetseg.workflows.evaluate import evaluate_run

    evaluate_run(run_dir, split, checkpoint, device, save_all_outputs=all_outputs,
                 largest_component=largest_component)


@app.command("evaluate-folder")
@interruptible("nothing was written; run the same command again")
def evaluate_folder_cmd(
    pred: Annotated[Path, typer.Option(help="folder of <case>.nii.gz predictions")],
    ref: Annotated[Path, typer.Option(help="folder of <case>.nii.gz references")],
    out: Annotated[Path, typer.Option(help="where metrics.csv and summary.json go")],
    classes: Annotated[list[int] | None, typer.Option(
        help="classes to score, e.g. --classes 1 2 (default: every non-zero value found)")
    ] = None,
    label_mapping: Annotated[str | None, typer.Option(
        help="reference value -> class before scoring: whole_tumour, tumour_core, "
             "enhancing_tumour (BraTS regions) or pairs, e.g. 1:1,2:1,4:1 (0:0 implied)")
    ] = None,
    nsd_tolerance: Annotated[float, typer.Option(
        help="normalised surface Dice tolerance in mm")] = NSD_TOLERANCE_MM,
) -> None:
    """Score any folder of NIfTI predictions against references.

    Dice, IoU, ASD, ASSD, HD95, RVD and normalised surface Dice per case and class, and
    nnU-Net's summary.json fields; see docs/metrics.md.
    """
    from duetseg.cli_support import parse_class_mapping
    from duetseg.evaluation.folder import OUTPUT_NAME, evaluate_folder
    from duetseg.evaluation.summary import format_table

    mapping = None if label_mapping is None else parse_class_mapping(label_mapping)
    summary = evaluate_folder(pred, ref, out, classes=classes, label_mapping=mapping,
                              nsd_tolerance_mm=nsd_tolerance)
    typer.echo(format_table({OUTPUT_NAME: summary[OUTPUT_NAME]}))
