"""Ingest: raw images at data/raw/all_pokemon/NNNN/* plus a class table, from `data.source` (the sources live in
pokedex.data.sources: synthetic, folder, hf, pokeapi, pokesprite).

`data.source` is one source or a list of them: the raw data is then their union, each file's name starting
with its source (`pokesprite.shiny.pikachu~pokemon-gen8.png`), so names never clash, split groups (the part
before `~`) never cross sources, and the manifest and splits.csv still say where each picture came from.

The class table lists 0001..N with the names the source carries, else those of the shipped table of all 1025
Pokémon. Files that cannot even be read are listed in the ingest rejects report; preprocess judges the rest.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.core.process import process_dir
from pokedex.data.classes import national_dex, write_class_table
from pokedex.data.sources import SOURCES, IngestResult

log = logging.getLogger(__name__)


def source_list(source) -> list[str]:
    """`data.source` as a list of known source names: one name, or a list of them without repeats."""
    names = [source] if isinstance(source, str) else list(source) if isinstance(source, (list, ListConfig)) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise PokedexError(f"data.source={source!r} must be a source name or a list of them, e.g. "
                           "data.source=pokeapi or 'data.source=[pokeapi,pokesprite]'.")
    if unknown := [n for n in names if n not in SOURCES]:
        raise PokedexError(f"data.source={unknown[0]!r} is not supported; use one of: {', '.join(SOURCES)}.")
    if len(set(names)) != len(names):
        raise PokedexError(f"data.source={names} names a source twice; list each once.")
    return names


def ingest_union(data: DictConfig, raw_dir: Path, names: list[str]) -> IngestResult:
    """Each source ingested into a scratch folder beside raw_dir, then moved in with its name as a prefix."""
    union = IngestResult(num_classes=0)
    for name in names:
        with process_dir(raw_dir.parent, f".ingest-{name}-") as staging:
            result = SOURCES[name](data, staging)
            for path in sorted(p for p in staging.rglob("*") if not p.is_dir()):
                rel = path.relative_to(staging)
                target = raw_dir / rel.parent / f"{name}.{rel.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                path.replace(target)
        union.num_classes = max(union.num_classes, result.num_classes)
        union.written += result.written
        union.skipped += result.skipped
        union.rejects += [(f"{name}:{source}", reason) for source, reason in result.rejects]
        union.names = {**result.names, **union.names}  # the first source that names a species wins
    return union


def ingest(data: DictConfig, raw_dir: Path, class_table: Path, rejects: Path, index: Path | None = None) -> None:
    sources = source_list(data.source)
    if raw_dir.exists():  # DVC removes outputs before a run; a manual run must not mix old and new images
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)
    result = SOURCES[sources[0]](data, raw_dir) if len(sources) == 1 else ingest_union(data, raw_dir, sources)
    names = national_dex(result.num_classes)
    names.update({i: n for i, n in result.names.items() if i in names})
    write_class_table(class_table, sorted(names.items()))
    write_csv(rejects, ["source", "reason"], result.rejects)
    if index is not None:
        write_file_index(raw_dir, index)
    skipped = f", {result.skipped} skipped: classes above data.num_classes" if result.skipped else ""
    log.info("ingest (%s): %d files written to %s, %d rejected (see %s)%s; class table %s", "+".join(sources),
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
