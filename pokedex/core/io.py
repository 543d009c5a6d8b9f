"""CSV as every stage writes it, and file hashes read in blocks."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """UTF-8 CSV with '\\n' line ends, so outputs hash the same on every platform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def file_digest(path: Path, algorithm: str = "sha256"):
    """hashlib's digest of a file read 1 MB at a time (checkpoints and packages can be hundreds of MB)."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest
