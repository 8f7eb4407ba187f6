"""The cross-validated real-BraTS protocol on a lent GPU: pack here, run there, report here.

``../shared`` does not travel to the device machine, and a run's weights are too large to
come back, so the runs train *and* evaluate there and only their results return:

1. here: ``python benchmarks/gpu_grid.py pack [--caches brats_2mm_zscore_nonzero ...]`` copies 2 mm
   caches of the 15 brats-dev cases (``local_data/<name>``, made by ``duetseg prepare`` as
   each grid's comment says), each
   as one ``.tar.xz``, and each case's reference label (the 1 mm ``*_seg.nii.gz`` the
   evaluation scores against) into ``local_data/gpu_pack`` (about 18 MB per cache;
   name it in the device call's ``carry``).
2. there (``benchmarks/gpu_protocol.sh``): ``unpack`` extracts each cache to
   ``local_data/<name>`` (where the grids find it) and points
   each case's ``label_file`` at the packed label;
   ``duetseg experiment benchmarks/grids/<grid>.yaml --parallel N`` trains and
   evaluates; ``collect OUT`` archives every evaluated run without its weights and
   TensorBoard logs (``OUT/gpu_runs.tar.gz``).
3. here: ``python benchmarks/gpu_grid.py report --archive FILE --grid NAME`` extracts the
   runs under ``runs/`` (where the grid put them) and archives their report files in
   ``benchmarks/results`` with the machine they trained on; then
   ``python benchmarks/results_page.py`` rebuilds the page.

On CUDA the ``cpu_small`` preset trains in bf16 with channels-last, so a grid trained there
should write to an ``out`` folder of its own, apart from the float32 CPU runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from common import REPO, RESULTS, RUNS, machine

from duetseg.analysis.archive import archive_grid, archive_path
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
            sys.exit(f"no finished cache at {cache}: run duetseg prepare first (see the grids)")
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


def report(archive: Path | None, grid_name: str) -> None:
    """Extract returned runs and archive the evaluated runs of one grid with their machine."""
    if archive is not None:
        with tarfile.open(archive) as tar:
            tar.extractall(REPO, filter="data")
    grid = load_grid(GRIDS / f"{grid_name}.yaml")
    copies = archive_grid(grid, RUNS, RESULTS)
    machine_file = grid.out / MACHINE_FILE
    if machine_file.exists():
        kept = archive_path(machine_file, RUNS, RESULTS)
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(machine_file.read_text())
    print(f"{len(copies)} evaluated run(s) of {grid_name} archived; "
          "now run python benchmarks/results_page.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: caches + reference labels -> local_data/gpu_pack")
    p.add_argument("--caches", nargs="+", default=["brats_2mm_zscore_nonzero"],
                   help="cache folders of local_data (see the grids' cache)")
    sub.add_parser("unpack", help="there: extract the packed cache")
    c = sub.add_parser("collect", help="there: archive the evaluated runs of grids")
    c.add_argument("out", type=Path)
    c.add_argument("--grids", nargs="+", required=True, help="grid names in benchmarks/grids")
    r = sub.add_parser("report", help="here: extract returned runs and archive a grid's")
    r.add_argument("--archive", type=Path, default=None)
    r.add_argument("--grid", required=True, help="grid name in benchmarks/grids")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.caches)
        download_wheels()
    elif args.command == "unpack":
        unpack()
    elif args.command == "collect":
        collect(args.out, [GRIDS / f"{g}.yaml" for g in args.grids])
    else:
        report(args.archive, args.grid)


if __name__ == "__main__":
    main()
