"""The model file of ``duetseg export``: a zip archive of plain data, checked on reading.

Members (all but the manifest listed in it with their SHA-256 and size)::

    manifest.json       format, format_version, duetseg_version, created, members
    config.json         the run's full resolved configuration
    preprocessing.json  the cache's settings and identity (:class:`~duetseg.run.Preprocessing`)
    model.json          method, checkpoint, iteration, identity, outputs, window size, ONNX
    weights.npz         the method's state dict as numpy arrays (read with allow_pickle=False)
    model.onnx          optional (``--onnx``): the network's graph (:mod:`duetseg.export.onnx`)

Nothing in the file is a pickle, so reading it never runs code. :func:`read_package` refuses,
with a :class:`~duetseg.errors.ModelFileError` naming the file and the fault, a file that is
not such an archive, a newer format version, a missing or unexpected member, a member whose
checksum differs from the manifest's, and pickled content. This module needs no torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from duetseg import __version__
from duetseg.atomic import atomic_path
from duetseg.errors import ModelFileError

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "ONNX_MEMBER", "OPTIONAL_MEMBERS",
           "REQUIRED_MEMBERS", "ModelPackage", "read_package", "write_package"]

FORMAT = "duetseg-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_MEMBER = "model.onnx"
REQUIRED_MEMBERS = ("config.json", "preprocessing.json", "model.json", "weights.npz")
OPTIONAL_MEMBERS = (ONNX_MEMBER,)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same model gives the same bytes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_pickle(data: bytes) -> bool:
    """True for the start of a pickle (protocol 2 and above: ``\\x80`` + protocol byte)."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def weights_to_npz(weights: dict[str, np.ndarray]) -> bytes:
    """The ``weights.npz`` member: one array per state-dict entry, no object arrays.

    Raises:
        ValueError: an entry that is not a numeric or boolean array.
    """
    for name, array in weights.items():
        if not isinstance(array, np.ndarray) or array.dtype.hasobject:
            raise ValueError(f"weight {name!r} is not a plain numeric array")
    buf = io.BytesIO()
    np.savez(buf, **weights)
    return buf.getvalue()


def write_package(path: str | Path, members: dict[str, bytes]) -> Path:
    """Write ``members`` and their manifest to ``path`` atomically.

    Args:
        path: the model file (a temporary file next to it is renamed onto it at the end,
            so a failed write leaves nothing).
        members: member name -> content; every required member, optional ones allowed.

    Returns:
        ``path``.

    Raises:
        ValueError: a missing or unknown member.
    """
    path = Path(path)
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    unknown = [m for m in members if m not in (*REQUIRED_MEMBERS, *OPTIONAL_MEMBERS)]
    if missing or unknown:
        raise ValueError(f"model file members: missing {missing}, unknown {unknown}")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "duetseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "members": {name: {"sha256": _sha256(data), "size": len(data)}
                    for name, data in members.items()},
    }
    with atomic_path(path, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode()),
                               *members.items()]:
                zf.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data,
                            compress_type=zipfile.ZIP_DEFLATED)
    return path


@dataclass(frozen=True)
class ModelPackage:
    """A model file read and verified by :func:`read_package`.

    Attributes:
        path: the file.
        manifest: its manifest.
        members: member name -> content (checksums verified).
    """

    path: Path
    manifest: dict[str, Any]
    members: dict[str, bytes]

    def error(self, message: str) -> ModelFileError:
        """A :class:`ModelFileError` about this file."""
        return ModelFileError(message, file=self.path)

    def has(self, name: str) -> bool:
        """Whether the file holds member ``name``."""
        return name in self.members

    def json(self, name: str) -> Any:
        """A JSON member, parsed.

        Raises:
            ModelFileError: not valid JSON.
        """
        try:
            return json.loads(self.members[name])
        except ValueError as exc:
            raise self.error(f"member {name} is not valid JSON ({exc})") from exc

    def weights(self) -> dict[str, np.ndarray]:
        """The ``weights.npz`` arrays, read without pickle.

        Raises:
            ModelFileError: unreadable arrays or pickled (object) arrays.
        """
        arrays: dict[str, np.ndarray] = {}
        try:
            with np.load(io.BytesIO(self.members["weights.npz"]), allow_pickle=False) as npz:
                for name in npz.files:
                    value = npz[name]
                    if not isinstance(value, np.ndarray):
                        raise self.error(f"member weights.npz: entry {name!r} is not an array")
                    arrays[name] = value
        except ModelFileError:
            raise
        except ValueError as exc:  # numpy refuses object arrays without allow_pickle
            if "pickle" in str(exc):
                raise self.error("member weights.npz holds pickled objects; refused, as "
                                 "loading them could run code") from exc
            raise self.error(f"member weights.npz is unreadable ({exc})") from exc
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise self.error(f"member weights.npz is unreadable ({exc})") from exc
        return arrays


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """The manifest, checked for format and version."""
    if MANIFEST not in zf.namelist():
        raise ModelFileError(f"no {MANIFEST}: not a duetseg model file", file=path)
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except (ValueError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"unreadable {MANIFEST} ({exc})", file=path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{MANIFEST} does not describe a {FORMAT} file", file=path)
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"invalid format_version {version!r}", file=path)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"format version {version} is newer than this duetseg {__version__} reads "
            f"({FORMAT_VERSION}); upgrade duetseg (the file was written by duetseg "
            f"{manifest.get('duetseg_version', '?')})", file=path)
    if not isinstance(manifest.get("members"), dict):
        raise ModelFileError(f"{MANIFEST} lists no members", file=path)
    return manifest


def read_package(path: str | Path) -> ModelPackage:
    """Open a model file and verify it.

    Args:
        path: a file written by :func:`write_package`.

    Returns:
        The verified contents.

    Raises:
        ModelFileError: a missing file, not a zip archive, no or an invalid manifest, a newer
            format version, a missing or unexpected member, a checksum mismatch, or a
            member that is a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError("model file does not exist", file=path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"not a duetseg model file ({exc})", file=path) from exc
    with zf:
        names = zf.namelist()
        if len(names) != len(set(names)):
            raise ModelFileError("duplicate member names", file=path)
        manifest = _read_manifest(zf, path)
        listed = manifest["members"]
        for name in names:
            if name != MANIFEST and (name not in listed
                                     or name not in (*REQUIRED_MEMBERS, *OPTIONAL_MEMBERS)):
                raise ModelFileError(f"unexpected member {name}", file=path)
        for name in (*REQUIRED_MEMBERS, *listed):
            if name not in names:
                raise ModelFileError(f"missing member {name}", file=path)
        members = {}
        for name in names:
            if name == MANIFEST:
                continue
            try:
                data = zf.read(name)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelFileError(f"member {name} is corrupt ({exc})", file=path) from exc
            if _is_pickle(data):
                raise ModelFileError(f"member {name} is a pickle; refused, as loading it "
                                     f"could run code", file=path)
            expected = listed[name].get("sha256") if isinstance(listed[name], dict) else None
            if _sha256(data) != expected:
                raise ModelFileError(f"member {name} has been changed (sha256 "
                                     f"{_sha256(data)[:12]}... differs from the manifest's "
                                     f"{str(expected)[:12]}...)", file=path)
            members[name] = data
    return ModelPackage(path=path, manifest=manifest, members=members)
