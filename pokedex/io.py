"""Small file helpers shared by the stages."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """UTF-8 CSV with '\\n' line ends, so outputs hash the same on every platform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def class_label(class_id: int, name: str) -> str:
    """How a class is shown to people: its Pokédex id and name, e.g. '0025 Pikachu' for class_id 24."""
    return f"{class_id + 1:04d} {name}"
