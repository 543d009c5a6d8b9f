"""Class tables (Pokédex id, name): the one that travels with the data (`classes.csv` next to the raw images),
and the shipped table of all 1025 Pokémon (national dex id -> English name) for sources without names."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from pokedex.core.checks import Number, check_value
from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv

NATIONAL_DEX = Path(__file__).with_name("pokemon_names.csv")
ALL_POKEMON = 1025
CLASS_DIR = re.compile(r"^\d{4}$")  # a class folder is named by a 4-digit Pokédex id: 0001 .. 1025

PARAM_RULES = {"data.num_classes": Number(int, 1, ALL_POKEMON)}


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


def national_dex(num_classes: int = ALL_POKEMON) -> dict[int, str]:
    """The shipped names of Pokémon 0001..num_classes (151: generation 1, 386: generations 1-3, 1025: all)."""
    check_value(PARAM_RULES, "data.num_classes", num_classes)
    return {i: name for i, name in read_class_table(NATIONAL_DEX).items() if i <= num_classes}


def read_names_file(path: Path) -> dict[int, str]:
    """A names file given with real data: a CSV `id,name`, or plain text with one name per line (line 1 = 0001)."""
    if not path.is_file():
        raise PokedexError(f"names file {path} does not exist; fix data.folder.names or set it to null.")
    text = path.read_text(encoding="utf-8")
    if text.startswith("id,name"):
        return read_class_table(path)
    return {i: line.strip() for i, line in enumerate(text.splitlines(), 1) if line.strip()}


def class_label(class_id: int, name: str) -> str:
    """How a class is shown to people: its Pokédex id and name, e.g. '0025 Pikachu' for class_id 24."""
    return f"{class_id + 1:04d} {name}"
