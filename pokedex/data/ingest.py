"""Ingest: raw images at data/raw/all_pokemon/NNNN/* plus a class table, from `data.source` (the sources live in
pokedex.data.sources: synthetic, folder, hf, pokeapi).

The class table lists 0001..N with the names the source carries, else those of the shipped table of all 1025
Pokémon. Files that cannot even be read are listed in the ingest rejects report; preprocess judges the rest.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from pokedex.data.classes import national_dex, write_class_table
from pokedex.data.sources import SOURCES
from pokedex.errors import PokedexError
from pokedex.io import write_csv

log = logging.getLogger(__name__)


def ingest(data: DictConfig, raw_dir: Path, class_table: Path, rejects: Path, index: Path | None = None) -> None:
    if data.source not in SOURCES:
        raise PokedexError(f"data.source={data.source!r} is not supported; use one of: {', '.join(SOURCES)}.")
    if raw_dir.exists():  # DVC removes outputs before a run; a manual run must not mix old and new images
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)
    result = SOURCES[data.source](data, raw_dir)
    names = national_dex(result.num_classes)
    names.update({i: n for i, n in result.names.items() if i in names})
    write_class_table(class_table, sorted(names.items()))
    write_csv(rejects, ["source", "reason"], result.rejects)
    if index is not None:
        write_file_index(raw_dir, index)
    skipped = f", {result.skipped} skipped: classes above data.num_classes" if result.skipped else ""
    log.info("ingest (%s): %d files written to %s, %d rejected (see %s)%s; class table %s", data.source,
             result.written, raw_dir, len(result.rejects), rejects, skipped, class_table)


def write_file_index(raw_dir: Path, index: Path) -> None:
    """One row per raw file: its path under raw_dir, size and sha256.

    Preprocess depends on this file instead of the raw folder: DVC checks the folder file by file once, as
    ingest's output (a hand-edited raw file makes ingest rerun); a second per-file check of the ~10k default
    frames cost every `dvc repro` about half a second. Files that cannot be read get an empty hash; preprocess
    still reads (and rejects) them."""
    rows = []
    for path in sorted(p for p in raw_dir.rglob("*") if not p.is_dir()):
        try:
            size, digest = path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:  # a broken link, a FIFO or an unreadable file: listed, judged by preprocess
            size, digest = 0, ""
        rows.append([path.relative_to(raw_dir).as_posix(), size, digest])
    write_csv(index, ["path", "bytes", "sha256"], rows)
