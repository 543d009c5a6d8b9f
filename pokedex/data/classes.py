"""The class table (Pokédex id, name) that travels with the data: `classes.csv` next to the raw images."""

from __future__ import annotations

import csv
from pathlib import Path

from pokedex.errors import PokedexError
from pokedex.io import write_csv


def write_class_table(path: Path, rows: list[tuple[int, str]]) -> None:
    write_csv(path, ["id", "name"], rows)


def read_class_table(path: Path) -> dict[int, str]:
    """Pokédex id -> name."""
    if not path.is_file():
        raise PokedexError(f"Class table {path} is missing; run the ingest stage first (dvc repro ingest).")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or set(rows[0]) != {"id", "name"}:
        raise PokedexError(f"Class table {path} must be a CSV with the header 'id,name'.")
    return {int(r["id"]): r["name"] for r in rows}
