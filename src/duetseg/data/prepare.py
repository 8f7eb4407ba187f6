"""Build a cache (``prepare_dataset``): preprocess every case of a dataset, resumably.

Every file is written atomically and ``<case>.json`` last, so a case whose json exists with
the current fingerprint and the same, unchanged source files is complete; a re-run skips
it. A case that fails leaves no files, and ``dataset.json`` is written last, once every
case is complete. A cache made with other settings or from another source is rebuilt,
never reused. The layout is described in :mod:`duetseg.data.cache`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from duetseg.atomic import remove_temporaries, save_json, save_npy
from duetseg.config import PrepareConfig
from duetseg.data.cache import FORMAT_VERSION, Cache, fingerprint
from duetseg.data.discovery import CaseSpec, discover_cases
from duetseg.data.preprocess import preprocess_case
from duetseg.errors import ConfigError, DuetsegError, InputError
from duetseg.progress import progress_bar

__all__ = ["prepare_dataset"]


def _case_files(out: Path, case: str) -> list[Path]:
    return [out / f"{case}.npy", out / f"{case}_seg.npy", out / f"{case}.json"]


def _source_stamp(spec: CaseSpec) -> dict[str, list[int]]:
    """Size and modification time of each source file: a replaced file is prepared again."""
    files = [*spec.images.values(), *([] if spec.label is None else [spec.label])]
    return {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _is_complete(out: Path, spec: CaseSpec, fp: str) -> bool:
    try:
        props = json.loads((out / f"{spec.case}.json").read_text())
        stamp = _source_stamp(spec)
    except (OSError, json.JSONDecodeError):
        return False
    label = None if spec.label is None else str(spec.label)
    return (props.get("fingerprint") == fp
            and props.get("source_stamp") == stamp
            and props.get("source_files") == {m: str(p) for m, p in spec.images.items()}
            and props.get("label_file") == label
            and (out / f"{spec.case}.npy").exists()
            and (label is None or (out / f"{spec.case}_seg.npy").exists()))


def _prepare_one(spec: CaseSpec, cfg: PrepareConfig, out: Path, fp: str) -> tuple[str, bool]:
    """Preprocess one case and write its files (json last). Runs in a worker process.

    A case that fails leaves none of its files behind (not even those of an earlier run).
    """
    (out / f"{spec.case}.json").unlink(missing_ok=True)
    try:
        return _write_case(spec, cfg, out, fp)
    except BaseException:
        for path in _case_files(out, spec.case):
            path.unlink(missing_ok=True)
        raise


def _write_case(spec: CaseSpec, cfg: PrepareConfig, out: Path, fp: str) -> tuple[str, bool]:
    stamp = _source_stamp(spec)  # before reading: a file changed meanwhile is redone later
    try:
        result = preprocess_case(spec, cfg)
    except DuetsegError:
        raise
    except Exception as exc:  # surface any failure with the case name
        raise InputError(f"preprocessing failed: {type(exc).__name__}: {exc}",
                         case=spec.case) from exc
    save_npy(result.image, out / f"{spec.case}.npy")
    seg = out / f"{spec.case}_seg.npy"
    if result.label is not None:
        save_npy(result.label, seg)
    else:
        seg.unlink(missing_ok=True)
    save_json({**result.properties, "fingerprint": fp, "source_stamp": stamp},
              out / f"{spec.case}.json")
    return spec.case, result.label is not None


def _reset_if_stale(out: Path, fp: str, source: str) -> None:
    """Remove a cache made with other settings or from another source (and say so)."""
    meta_path = out / "dataset.json"
    if not meta_path.exists():
        return
    try:
        old = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        old = {}
    if old.get("fingerprint") == fp and old.get("source") == source:
        return
    why = "settings changed" if old.get("fingerprint") != fp else f"source was {old.get('source')}"
    print(f"duetseg prepare: cache {out} was made differently ({why}); rebuilding it",
          file=sys.stderr)
    if "format_version" in old:
        for entry in old.get("cases", []):
            for path in _case_files(out, str(entry.get("case"))):
                path.unlink(missing_ok=True)
    meta_path.unlink()


def _ignore_sigint() -> None:
    """Pool worker initializer: Ctrl-C is the parent's to handle.

    The terminal sends SIGINT to the whole process group; a worker that raised
    ``KeyboardInterrupt`` itself would die with a traceback (or, when idle, break the pool).
    Instead each worker finishes its current case (its files complete) and the parent stops
    handing out new ones.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(todo: list[CaseSpec], cfg: PrepareConfig, out: Path, fp: str, num_workers: int,
         progress: bool) -> None:
    bar = progress_bar(total=len(todo), desc="prepare", unit="case",
                       disable=not progress or not todo)
    try:
        if num_workers <= 1 or len(todo) <= 1:
            for spec in todo:
                _prepare_one(spec, cfg, out, fp)
                bar.update()
            return
        # fork: workers only run numpy/scipy/nibabel, and fork works from any __main__
        # (stdin, notebooks); spawn elsewhere.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx,
                                 initializer=_ignore_sigint) as pool:
            futures = [pool.submit(_prepare_one, s, cfg, out, fp) for s in todo]
            try:
                for fut in as_completed(futures):
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        raise DuetsegError(f"a prepare worker died ({exc}); out of memory? "
                                           "try fewer workers") from exc
                    if exc is not None:
                        raise exc
                    bar.update()
            except BaseException:
                # a failure or Ctrl-C: drop the queued cases (leaving the pool's ``with``
                # would otherwise wait for every one of them) and let the running ones
                # finish, so each case is either complete or absent
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        bar.close()


def prepare_dataset(input_path: Path, out: Path, cfg: PrepareConfig, num_workers: int = 2,
                    progress: bool = True) -> Cache:
    """Preprocess every case of a dataset into a cache folder.

    Args:
        input_path: dataset folder or CSV manifest (layout ``cfg.layout``).
        out: cache folder (created if needed).
        cfg: preparation settings.
        num_workers: worker processes (1 = in this process).
        progress: show a progress bar.

    Returns:
        The finished cache.

    Raises:
        InputError: bad input (the first failing case stops the run; cases finished
            before it stay complete, the failing case leaves no files).
        ConfigError: ``out`` is the input folder, or an existing file.
    """
    input_path, out = Path(input_path), Path(out)
    input_dir = input_path if input_path.is_dir() else input_path.parent
    if out.resolve() == input_dir.resolve():
        raise ConfigError(f"cache folder {out} must differ from the input folder {input_dir}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"cache folder {out} is an existing file")
    specs = discover_cases(input_path, cfg.modalities, cfg.layout)
    specs = [CaseSpec(s.case, {m: p.resolve() for m, p in s.images.items()},
                      None if s.label is None else s.label.resolve()) for s in specs]
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)  # left by a killed atomic write
    fp, source = fingerprint(cfg), str(input_path.resolve())
    _reset_if_stale(out, fp, source)
    todo = [s for s in specs if not _is_complete(out, s, fp)]
    if todo:  # dataset.json is only there while every case it lists is complete
        (out / "dataset.json").unlink(missing_ok=True)
    if progress and len(todo) < len(specs):
        print(f"duetseg prepare: {len(specs) - len(todo)} cases already cached, "
              f"{len(todo)} to do", file=sys.stderr)
    _run(todo, cfg, out, fp, num_workers, progress)
    save_json({
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "settings": cfg.model_dump(mode="json"),
        "modalities": list(cfg.modalities),
        "num_classes": cfg.num_classes,
        "cases": [{"case": s.case, "labelled": s.label is not None} for s in specs],
        "source": source,
    }, out / "dataset.json")
    return Cache(out)
