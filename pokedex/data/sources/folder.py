"""`data=folder`: your own pictures, a tree `data.folder.root/NNNN/*`, copied as it is.

Nothing is decoded here: preprocess decides what is usable. A file that cannot even be read (no read
permission, a broken link, a FIFO) goes to the ingest rejects report; classes above `data.num_classes` are
skipped and counted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig

from pokedex.core.errors import PokedexError
from pokedex.data.classes import CLASS_DIR, read_names_file
from pokedex.data.sources.base import IngestResult


def ingest(data: DictConfig, raw_dir: Path) -> IngestResult:
    """Copy every file of `data.folder.root` into raw_dir, keeping relative paths."""
    cfg, num_classes = data.folder, int(data.num_classes)
    if not cfg.root:
        raise PokedexError("data.folder.root is not set; point it at a folder of class folders (root/0001/*.jpg).")
    root = Path(cfg.root)
    if not root.is_dir():
        raise PokedexError(f"data.folder.root={root} is not a directory; point it at a folder of class folders "
                           "(root/0001/*.jpg).")
    names_file = Path(cfg.names) if cfg.get("names") else root / "classes.csv"
    names = read_names_file(names_file) if names_file.is_file() or cfg.get("names") else {}
    result = IngestResult(num_classes=num_classes, names=names)
    copy_files(root, sorted(p for p in root.rglob("*") if not p.is_dir() and p != names_file), raw_dir, result)
    return result


def copy_files(root: Path, files: list[Path], raw_dir: Path, result: IngestResult) -> None:
    """Copy files of root into raw_dir, keeping relative paths; classes above result.num_classes are skipped and
    counted, a file that cannot be read goes to result.rejects."""
    for source in files:
        rel = source.relative_to(root)
        if len(rel.parts) == 2 and CLASS_DIR.match(rel.parts[0]) and int(rel.parts[0]) > result.num_classes:
            result.skipped += 1
            continue
        if not source.is_file():  # never open() a FIFO: it would block
            result.rejects.append((rel.as_posix(), "not a regular file (a broken link, FIFO or socket)"))
            continue
        target = raw_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, target)
        except OSError as exc:  # e.g. no read permission: reported, never silently dropped
            target.unlink(missing_ok=True)
            result.rejects.append((rel.as_posix(), f"cannot be read: {exc.strerror or exc}"))
            continue
        result.written += 1
