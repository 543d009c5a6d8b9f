"""A field folder: `NNNN/*` pictures of Pokémon people took (NNNN = Pokédex id), each with an optional box beside
it (`NNNN/<stem>.txt`, YOLO format `0 cx cy w h` in fractions). Read here; scored by pokedex/evaluate/field.py and
the detector's benchmark. A file that is not a picture in a class folder is listed with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pokedex.data.boxes import Box
from pokedex.data.classes import ALL_POKEMON, CLASS_DIR

DOCS = {"README.md", ".gitignore", "classes.csv"}  # a field folder's own notes, not pictures


@dataclass
class FieldSet:
    root: Path
    paths: list[Path] = field(default_factory=list)
    dex_ids: list[int] = field(default_factory=list)
    boxes: list[Box | None] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    missed: set[int] = field(default_factory=set)  # pictures (indices into paths) where a detector found no Pokémon


def read_box(path: Path) -> Box | None:
    try:
        values = [float(v) for v in path.read_text(encoding="utf-8").split()[1:5]]
    except (OSError, ValueError):
        return None
    return tuple(values) if len(values) == 4 else None


def field_set(root: Path) -> FieldSet:
    """Every picture of root/NNNN/ with its species (and box, if given); every other file with its reason."""
    found = FieldSet(root)
    if not root.is_dir():
        return found
    files = sorted(p for p in root.rglob("*") if not p.is_dir())
    pictures = {p.with_suffix("") for p in files if p.suffix.lower() != ".txt"}
    for path in files:
        rel = path.relative_to(root)
        if len(rel.parts) == 1 and rel.name in DOCS:
            continue
        if len(rel.parts) != 2 or not CLASS_DIR.match(rel.parts[0]) or not 1 <= int(rel.parts[0]) <= ALL_POKEMON:
            found.rejects.append((rel.as_posix(), "not inside a class folder named by a 4-digit Pokédex id (0001-1025)"))
            continue
        if path.suffix.lower() == ".txt" and path.with_suffix("") in pictures:
            continue  # the box of the picture beside it
        found.paths.append(path)
        found.dex_ids.append(int(rel.parts[0]))
        box = path.with_suffix(".txt")
        found.boxes.append(read_box(box) if box.is_file() else None)
    return found
