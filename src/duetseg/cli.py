"""The ``duetseg`` command line: one command per pipeline stage, plus grids and reports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from duetseg import __version__
from duetseg.cli_support import (
    expand_multi_value,
    interruptible,
    log_to_stderr,
    parse_label_mapping,
    run_app,
)
from duetseg.data.discovery import LAYOUTS
from duetseg.evaluation.overlap import NSD_TOLERANCE_MM

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Semi-supervised multi-modal 3D segmentation (DuetNet).")

_AGAIN = "run the same command again to resume (finished {what} are kept)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"duetseg {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False,
) -> None:
    """Semi-supervised multi-modal 3D segmentation (DuetNet)."""


@app.command()
@interruptible(_AGAIN.format(what="cases"))
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
        help="auto (BraTS: whole tumour, else identity) | whole_tumour | identity | 1:1,2:1",
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
        help="reference value -> class before scoring, e.g. 1:1,2:1,4:1 (0:0 is implied)")
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


@app.command()
@interruptible("the masks written so far are complete; run the same command with "
               "--skip-existing to predict only the rest")
def predict(
    input_path: Annotated[Path, typer.Option("--input", help="folder or CSV of new cases")],
    out: Annotated[Path, typer.Option(help="output folder for <case>.nii.gz")],
    run: Annotated[Path | None, typer.Option(help="trained run directory")] = None,
    model: Annotated[Path | None, typer.Option(
        help="model file from `duetseg export` (instead of --run)")] = None,
    checkpoint: Annotated[str, typer.Option(help="best | last (with --run)")] = "best",
    device: Annotated[str, typer.Option()] = "auto",
    backend: Annotated[str, typer.Option(
        help="auto (onnxruntime on the CPU for a --model exported with --onnx, when "
             "onnxruntime is installed; else torch) | torch | onnxruntime")] = "auto",
    tta: Annotated[bool, typer.Option(help="flip test-time augmentation")] = False,
    layout: Annotated[str, typer.Option(help=" | ".join(("auto", *LAYOUTS)))] = "auto",
    largest_component: Annotated[bool, typer.Option(
        help="keep only the largest connected component of each foreground class")] = False,
    save_probabilities: Annotated[bool, typer.Option(
        help="also write <case>_prob.nii.gz (float32, X,Y,Z,C)")] = False,
    save_disagreement: Annotated[bool, typer.Option(
        help="also write <case>_disagreement.nii.gz (float32 map in [0, 1])")] = False,
    skip_existing: Annotated[bool, typer.Option(
        help="keep cases already complete in --out (default: predict all again)")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Segment new cases with a run (--run) or a model file (--model); masks keep each
    input's shape and affine.

    Writes <case>.nii.gz per case and disagreement.csv (case, disagreement, entropy,
    foreground_voxels, volume_ml, modalities_used): sort by disagreement, highest first, to
    review the least trustworthy cases first. A case may lack some modalities when the run
    was trained with train.modality_dropout > 0 (absent inputs are zero-filled).
    """
    from duetseg.workflows.predict import predict_folder

    if (run is None) == (model is None):
        raise typer.BadParameter("give either --run or --model", param_hint="--run/--model")
    if run is not None and backend == "onnxruntime":
        raise typer.BadParameter("--backend onnxruntime needs --model (a file from "
                                 "`duetseg export --onnx`)", param_hint="--backend")
    paths = predict_folder(run or model, input_path, out, checkpoint, device, layout=layout,
                           tta_flip=tta, progress=not quiet,
                           largest_component=largest_component,
                           save_probabilities=save_probabilities,
                           save_disagreement=save_disagreement, skip_existing=skip_existing,
                           backend=backend)
    typer.echo(f"wrote {len(paths)} masks to {out} (and disagreement.csv)")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="trained run directory")],
    out: Annotated[Path, typer.Argument(help="model file to write, e.g. model.zip")],
    checkpoint: Annotated[str, typer.Option(help="best | last")] = "best",
    onnx: Annotated[bool, typer.Option(
        help="also store the network as ONNX (predict --backend onnxruntime)")] = False,
) -> None:
    """Pack a run's weights, config and preprocessing into one file for `predict --model`.

    The file needs neither the run directory nor its cache; it holds no pickle and every
    member is checked against the manifest's SHA-256 when it is read.
    """
    from duetseg.export import export_model

    path = export_model(run_dir, out, checkpoint, onnx=onnx)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@app.command()
def suggest(
    run: Annotated[Path, typer.Option(help="trained run directory")],
    top: Annotated[int, typer.Option(help="cases to print")] = 5,
    out: Annotated[Path | None, typer.Option(
        help="CSV of every unlabelled case, ranked (default: RUN/suggestions.csv)")] = None,
    checkpoint: Annotated[str, typer.Option(help="best | last")] = "last",
    device: Annotated[str, typer.Option()] = "auto",
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Rank the run's unlabelled training cases, least trusted first, to pick cases to review.

    Score: mean branch disagreement over the predicted foreground (normalised entropy for
    single-network methods), with entropy and predicted volume beside it. Measured on real
    cases: high disagreement goes with poor segmentation, but retraining with the top cases
    labelled did not beat random cases; it is not a way to choose cases to contour
    (docs/suggest.md).
    """
    from duetseg.run.layout import RunDir
    from duetseg.workflows.suggest import suggest_cases, write_suggestions

    rows = suggest_cases(run, checkpoint, device, progress=not quiet)
    path = write_suggestions(rows, out or RunDir(run).suggestions_file)
    typer.echo("rank  case                          disagreement  entropy  volume_ml")
    for row in rows[:top]:
        typer.echo(f"{row['rank']:>4}  {row['case']:<28}  {row['disagreement']:>12.4f}  "
                   f"{row['entropy']:>7.4f}  {row['volume_ml']:>9.2f}")
    typer.echo(f"wrote {len(rows)} ranked cases to {path}")


@app.command()
@interruptible(_AGAIN.format(what="runs") + "; unfinished runs resume from their last "
               "checkpoint")
def experiment(
    grid: Annotated[Path, typer.Argument(help="grid YAML (methods x labelled x seeds)")],
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
    parallel: Annotated[int | None, typer.Option(
        min=1, help="trainings at once, each its own process with cores/N threads and a "
                    "log <run>/experiment.log (default: the grid's 'parallel', else 1)")] = None,
) -> None:
    """Run a grid of trainings + evaluations; finished runs are skipped, others resume."""
    from duetseg.workflows.experiment import load_grid, run_grid
    from duetseg.workflows.parallel import check_parallel, resolve_parallel, run_grid_parallel

    loaded = load_grid(grid)
    n = resolve_parallel(parallel, loaded)
    check_parallel(n)
    if n == 1:
        run_dirs = run_grid(loaded, progress=not quiet)
    else:
        run_dirs = run_grid_parallel(grid, n, progress=not quiet)
    typer.echo(f"{len(run_dirs)} runs complete under {run_dirs[0].parent}")


@app.command("experiment-run", hidden=True)
@interruptible("the parent `duetseg experiment` resumes this run next time")
def experiment_run(
    grid: Annotated[Path, typer.Argument(help="grid YAML")],
    name: Annotated[str, typer.Argument(help="run name (as planned by the grid)")],
    threads: Annotated[int, typer.Option(min=1, help="torch intra-op threads")] = 1,
    parallel: Annotated[int, typer.Option(min=1, help="runs the parent keeps alive")] = 1,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
) -> None:
    """Train and evaluate one run of a grid (a child of ``experiment --parallel``)."""
    from duetseg.workflows.parallel import run_child

    run_child(grid, name, threads=threads, parallel=parallel, progress=not quiet)
    typer.echo(f"{name}: complete")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (evaluated)")],
    out: Annotated[Path, typer.Option(help="report folder")],
    split: Annotated[str, typer.Option(help="evaluated split")] = "test",
    baseline: Annotated[str | None, typer.Option(
        help="configuration name for the gain table (every other one is compared to it; "
             "default: supervised when a configuration has that name)")] = None,
    reference: Annotated[str, typer.Option(
        help="configuration name of Table 1's p column (Wilcoxon against it)")] = "ours",
) -> None:
    """Table 1 / Table 2 style tables, Wilcoxon tests, gain table, curves and an HTML page.

    Runs are grouped by their config's 'name' (else the method name): the seeds and the
    cross-validation folds of one configuration make one row. A gain table is also printed.
    """
    from duetseg.reporting.report import write_report

    result = write_report(run_dirs, out, split=split, baseline=baseline, reference=reference)
    if result.gain is not None:
        typer.echo(result.gain.to_markdown())
    typer.echo(f"report: {result.index}")


@app.command()
def methods() -> None:
    """List the registered training methods."""
    from duetseg.methods import available_methods

    for name, description in available_methods().items():
        typer.echo(f"{name:<14} {description}")


@app.command()
def presets() -> None:
    """List the built-in configuration presets."""
    from duetseg.config import PRESET_DIR, list_presets

    for name in list_presets():
        first = (PRESET_DIR / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
        typer.echo(f"{name:<12} {first}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/demo"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override")] = None,
) -> None:
    """Whole pipeline on a built-in synthetic two-modality dataset (a few minutes on a CPU)."""
    from duetseg.workflows.demo import run_demo

    run_demo(out, overrides=list(set_ or []))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: clear one-line errors for expected failures."""
    args = expand_multi_value(list(sys.argv[1:] if argv is None else argv))
    log_to_stderr()
    run_app(app, args)
