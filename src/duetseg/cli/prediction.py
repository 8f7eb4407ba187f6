"""Commands that use a trained run: ``predict``, ``export`` and ``suggest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from duetseg.cli.app import app
from duetseg.cli_support import interruptible
from duetseg.data.discovery import LAYOUTS

__all__ = ["export_cmd", "predict", "suggest"]


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
