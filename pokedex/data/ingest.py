"""Ingest: raw images at data/raw/all_pokemon/NNNN/* plus a class table, from `data.source` (the sources live in
pokedex.data.sources: synthetic, folder, hf, pokeapi).

The class table lists 0001..N with the names the source carries, else those of the shipped table of all 1025
Pokémon. Files that cannot even be read are listed in the ingest rejects report; preprocess judges the rest.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from pokedex.data.classes import national_dex, write_class_table
from pokedex.data.sources import SOURCES
from pokedex.errors import PokedexError
from pokedex.io import write_csv

log = logging.getLogger(__name__)


def ingest(data: DictConfig, raw_dir: Path, class_table: Path, rejects: Path) -> None:
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
    skipped = f", {result.skipped} skipped: classes above data.num_classes" if result.skipped else ""
    log.info("ingest (%s): %d files written to %s, %d rejected (see %s)%s; class table %s", data.source,
             result.written, raw_dir, len(result.rejects), rejects, skipped, class_table)
