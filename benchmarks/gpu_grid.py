"""The cross-validated real-BraTS protocol on a lent GPU: pack here, run there, report here.

``../shared`` does not travel to the device machine, and a run's weights are too large to
come back, so the runs train *and* evaluate there and only their results return:

1. here: ``python benchmarks/gpu_grid.py pack [--caches brats_2mm_zscore_nonzero ...]`` copies 2 mm
   caches of the 15 brats-dev cases (``local_data/<name>``, made by ``real_brats.py``), each
   as one ``.tar.xz``, and each case's reference label (the 1 mm ``*_seg.nii.gz`` the
   evaluation scores against) into ``local_data/gpu_pack`` (about 18 MB per cache;
   name it in the device call's ``carry``).
2. there (``benchmarks/gpu_protocol.sh``): ``unpack`` extracts each cache to
   ``local_data/<name>`` (where ``cv_protocol.py`` finds it without ``../shared``) and points
   each case's ``label_file`` at the packed label;
   ``duetseg experiment benchmarks/grids/<grid>.yaml --parallel N`` trains and
   evaluates; ``collect OUT`` archives every evaluated run without its weights and
   TensorBoard logs (``OUT/gpu_runs.tar.gz``).
3. here: ``python benchmarks/gpu_grid.py report --archive FILE --grid NAME`` extracts the
   runs under ``runs/`` (where the grid put them) and appends Table 1 and the gain table
   over the labelled-only control to BENCHMARKS.md.

The grids in ``benchmarks/grids/`` are the protocol of ``cv_protocol.py`` written as
``duetseg experiment`` grids (3 folds, no validation split, last checkpoint, ``cpu_small``
at 1000 iterations; on CUDA the preset trains in bf16 with channels-last, so their figures
are reported apart from the float32 CPU runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from common import REPO, append_benchmark, machine
from cv_protocol import report_tables
from run_archive import archive_path, finished_run

from duetseg.run.layout import RunDir
from duetseg.workflows.experiment import GridConfig, load_grid, plan_grid

LOCAL = REPO / "local_data"
PACK = LOCAL / "gpu_pack"
GRIDS = REPO / "benchmarks" / "grids"
# left behind by collect: weights, logs and NIfTI predictions (about 1 MB a run; the
# returned files are limited) nobody reads once the run is evaluated
HEAVY = ("checkpoints", "tensorboard", "predictions")
MACHINE_FILE = "machine.txt"  # in each grid's out folder: where its runs trained
# what duetseg imports that the lent GPU machine's image lacks (it has torch, numpy, scipy,
# PyYAML, typer, tqdm, matplotlib, tensorboard); the versions of this environment travel
WHEELS = ("monai", "nibabel", "pydantic", "pydantic_core", "annotated_types",
          "typing_inspection")
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")


def _case_files(cache: Path) -> list[Path]:
    """Each case's properties file (every JSON of the cache but ``dataset.json``)."""
    return sorted(f for f in cache.glob("*.json") if f.name != "dataset.json")


def pack(names: list[str], local: Path = LOCAL, out: Path = PACK) -> None:
    """Write each named cache of ``local`` as an archive, and the reference labels, to ``out``."""
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for name in names:
        cache = local / name
        if not (cache / "dataset.json").exists():
            sys.exit(f"no finished cache at {cache}: run benchmarks/real_brats.py --cv first")
        for props_file in _case_files(cache):
            label = json.loads(props_file.read_text()).get("label_file")
            if label:
                (out / "labels" / Path(label).name).write_bytes(Path(label).read_bytes())
        archive = out / f"{name}.tar.xz"
        tmp = archive.with_suffix(".tmp")
        with tarfile.open(tmp, "w:xz", preset=6) as tar:
            tar.add(cache, arcname=name)
        tmp.replace(archive)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"packed {', '.join(names)} into {out} ({size:.1f} MiB)")


def download_wheels(out: Path = REPO / ".whl") -> None:
    """Download the device's missing packages, at this environment's versions, into ``out``."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", DEVICE_PYTHON, "--implementation", "cp", "-d", str(out)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + [f"{name}=={version(name)}" for name in WHEELS], check=True)
    print(f"wheels for Python {DEVICE_PYTHON} in {out}: {', '.join(WHEELS)}")


def unpack(pack_dir: Path = PACK, local: Path = LOCAL) -> list[Path]:
    """Extract every packed cache into ``local``; labels point at the packed ones."""
    caches = []
    for archive in sorted(pack_dir.glob("*.tar.xz")):
        with tarfile.open(archive) as tar:
            tar.extractall(local, filter="data")
        cache = local / archive.name.removesuffix(".tar.xz")
        for props_file in _case_files(cache):
            props = json.loads(props_file.read_text())
            if props.get("label_file"):
                label = pack_dir / "labels" / Path(props["label_file"]).name
                props["label_file"] = str(label.resolve())
                props_file.write_text(json.dumps(props, indent=1))
        print(f"unpacked {cache}")
        caches.append(cache)
    return caches


def evaluated_runs(grid: GridConfig) -> list[Path]:
    """The run directories of a grid that have their evaluation."""
    return [r.run_dir for r in plan_grid(grid) if RunDir(r.run_dir).is_evaluated(grid.split)]


def collect(out: Path, grid_files: list[Path]) -> None:
    """Archive every evaluated run of the grids (no weights) into ``out/gpu_runs.tar.gz``."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(out / "gpu_runs.tar.gz", "w:gz") as tar:
        for grid_file in grid_files:
            grid = load_grid(grid_file)
            out_dir = grid.out.resolve()
            if out_dir.is_dir():
                (out_dir / MACHINE_FILE).write_text(machine() + "\n")
                tar.add(out_dir / MACHINE_FILE,
                        arcname=str((out_dir / MACHINE_FILE).relative_to(REPO)))
            for run_dir in evaluated_runs(grid):
                tar.add(run_dir, arcname=str(run_dir.resolve().relative_to(REPO)),
                        filter=lambda info: None if Path(info.name).name in HEAVY else info)
                count += 1
    print(f"collected {count} evaluated runs into {out / 'gpu_runs.tar.gz'}")


def report(archive: Path | None, grid_name: str, reference: str, baseline: str,
           versus: list[str]) -> None:
    """Extract returned runs, report one grid and append it to BENCHMARKS.md."""
    if archive is not None:
        with tarfile.open(archive) as tar:
            tar.extractall(REPO, filter="data")
    grid_file = GRIDS / f"{grid_name}.yaml"
    grid = load_grid(grid_file)
    if grid.split == "test":  # runs of earlier sessions come from the committed archive
        done = [p for p in map(finished_run, [r.run_dir for r in plan_grid(grid)]) if p]
    else:
        done = evaluated_runs(grid)
    if not done:
        sys.exit(f"no evaluated run of {grid_file} under {grid.out}")
    missing = sorted({r.name for r in plan_grid(grid)} - {d.name for d in done})
    tables = report_tables(done, grid.out.parent / f"report_{grid.out.name}", reference,
                           baseline, versus)
    machine_file = grid.out / MACHINE_FILE
    kept = archive_path(machine_file)
    if machine_file.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(machine_file.read_text())
    trained_on = kept.read_text().strip() if kept.exists() else "unknown"
    notes = (f"Grid `benchmarks/grids/{grid_name}.yaml` ({grid.folds}-fold CV over the 15 "
             f"brats-dev cases, labelled {grid.labeled}, seeds {grid.seeds}, no validation "
             f"split, last checkpoint, cpu_small, {' '.join(grid.overrides)}), trained and "
             f"evaluated by `benchmarks/gpu_protocol.sh` on {trained_on} (the machine line above "
             f"is where the report was made); "
             f"metrics in the original 1 mm geometry; `ours` = today's default.")
    if missing:
        notes += f" Not finished: {', '.join(missing)}."
    append_benchmark(f"Real BraTS on the GPU, grid {grid_name}",
                     "python benchmarks/gpu_grid.py " + " ".join(sys.argv[1:]), tables,
                     notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: caches + reference labels -> local_data/gpu_pack")
    p.add_argument("--caches", nargs="+", default=["brats_2mm_zscore_nonzero"],
                   help="cache folders of local_data (see cv_protocol.CACHES)")
    sub.add_parser("unpack", help="there: extract the packed cache")
    c = sub.add_parser("collect", help="there: archive the evaluated runs of grids")
    c.add_argument("out", type=Path)
    c.add_argument("--grids", nargs="+", required=True, help="grid names in benchmarks/grids")
    r = sub.add_parser("report", help="here: extract returned runs and report a grid")
    r.add_argument("--archive", type=Path, default=None)
    r.add_argument("--grid", required=True, help="grid name in benchmarks/grids")
    r.add_argument("--reference", default="ours")
    r.add_argument("--baseline", default="ours-w0")
    r.add_argument("--versus", nargs="*", default=[])
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.caches)
        download_wheels()
    elif args.command == "unpack":
        unpack()
    elif args.command == "collect":
        collect(args.out, [GRIDS / f"{g}.yaml" for g in args.grids])
    else:
        report(args.archive, args.grid, args.reference, args.baseline, args.versus)


if __name__ == "__main__":
    main()
