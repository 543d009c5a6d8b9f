"""Dataset folders as DVC tracks them: one uncompressed tar per folder, the folder an unpacked view of it.

DVC checks every file of a folder it tracks on each `dvc repro` (about 0.04 ms a file: the 46k files of the
four dataset folders made a no-op repro take 3-4 s, and it grows with every image). So a stage that writes a
dataset folder also packs it into `<folder>.tar`, dvc.yaml names that one file (`${paths.raw}.tar`), and the
folder stays on disk where the trainer, the seed's layouts and the user expect it. Whoever reads a folder
unpacks it first when it is missing or does not match its archive (after `dvc pull`, a checkout of another
commit, an applied experiment, or a hand edit): `unpacked()`, which the stage decorator runs for every archive
a stage depends on, and `pokedex unpack` for all of them.

The tar is byte-stable (sorted names, zero times and owners, fixed modes), so the same folder gives the same
archive and DVC reruns nothing downstream.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from pokedex.core.checks import dvc_stages
from pokedex.core.errors import PokedexError
from pokedex.core.io import file_digest

SUFFIX = ".tar"
ARCHIVE_DEP = re.compile(r"^\$\{paths\.(\w+)\}" + re.escape(SUFFIX) + "$")  # as dvc.yaml names them


def archive_of(folder: Path) -> Path:
    return folder.with_name(folder.name + SUFFIX)


def stamp_of(folder: Path) -> Path:
    """Beside the view, not in it (readers see only the dataset): the archive it came from, what its files
    looked like then."""
    return folder.with_name(f".{folder.name}.unpacked.json")


def _archive_keys(entries) -> list[str]:
    names = [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]
    return [m.group(1) for m in map(ARCHIVE_DEP.match, names) if m]


def stage_archives(root: Path, stage: str) -> tuple[list[str], list[str]]:
    """The `paths:` keys whose archives a dvc.yaml stage reads (deps) and writes (outs)."""
    spec = dvc_stages(root).get(stage) or {}
    return _archive_keys(spec.get("deps")), _archive_keys(spec.get("outs"))


def _files(folder: Path) -> list[Path]:
    """Every file and folder below `folder`, in a fixed order."""
    return sorted(folder.rglob("*"))


def _listing_digest(folder: Path) -> str:
    """What the view's files look like (name, size, mtime): a hand edit, a new or a lost file changes it."""
    digest = hashlib.sha256()
    for path in _files(folder):
        stat = path.lstat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _stamp(folder: Path, archive_sha256: str) -> None:
    listing = _listing_digest(folder)
    stamp_of(folder).write_text(json.dumps({"archive_sha256": archive_sha256, "files": listing}))


def pack(folder: Path) -> Path:
    """Write `<folder>.tar` from the folder (byte-stable) and stamp the folder as its view."""
    if not folder.is_dir():
        raise PokedexError(f"{folder} is not a folder, so there is nothing to pack into {archive_of(folder)}.")
    archive = archive_of(folder)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in _files(folder):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_symlink():
                raise PokedexError(f"{path} is a link; dataset folders hold files, so write a copy instead.")
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = path.stat().st_size, 0o644
                with path.open("rb") as f:
                    tar.addfile(info, f)
    partial.replace(archive)
    _stamp(folder, file_digest(archive).hexdigest())
    return archive


def is_current(folder: Path, archive_sha256: str) -> bool:
    try:
        stamp = json.loads(stamp_of(folder).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("archive_sha256") == archive_sha256 and stamp.get("files") == _listing_digest(folder)


def unpacked(folder: Path) -> bool:
    """Make `folder` the view of `<folder>.tar` (unpack it unless it already is); True if it unpacked."""
    archive = archive_of(folder)
    if not archive.is_file():
        raise PokedexError(f"{archive} is missing, so {folder} cannot be restored from it; `dvc pull` fetches it, "
                           "or `dvc repro` rebuilds it.")
    sha256 = file_digest(archive).hexdigest()
    if folder.is_dir() and is_current(folder, sha256):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    # unpack beside it, then swap: a reader never sees half a folder, and a stopped unpack leaves the old one
    fresh = Path(tempfile.mkdtemp(prefix=f".{folder.name}.unpacking-", dir=folder.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(fresh, filter="data")
        stamp_of(folder).unlink(missing_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(fresh, folder)
        _stamp(folder, sha256)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return True


def view(folder: Path) -> Path:
    """`folder`, to be read outside a stage: unpacked first when it has an archive (after `dvc pull` a dataset is
    its archive only); as it is otherwise (a dataset written before archives, or none at all)."""
    if archive_of(folder).is_file():
        unpacked(folder)
    return folder


def archived_folders(root: Path, paths: dict[str, Path]) -> list[Path]:
    """Every dataset folder a stage of dvc.yaml packs, in the DAG's order (`paths` as project_paths gives)."""
    return [paths[key] for spec in dvc_stages(root).values() for key in _archive_keys(spec.get("outs"))]
