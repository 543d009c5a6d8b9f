"""Ingest: put raw images at data/raw/all_pokemon/NNNN/* plus a class table, from `data.source`:

- `synthetic`: the embedded synthetic Pokédex (default, generated here, no download);
- `folder`: a tree `data.folder.root/NNNN/*` (jpg, jpeg, png, webp, bmp, gif, ...), copied as it is;
- `hf`: a Hugging Face dataset, from the hub or a local copy (see pokedex.data.sources);
- `pokeapi`: PokeAPI's sprites, from a clone or the pinned npm package (see pokedex.data.pokeapi).

Real sources take their class names from the source when it has them, else from the shipped table of all
1025 Pokémon; `data.num_classes` keeps classes 0001..N only. Files that cannot even be read are listed in the
ingest rejects report; preprocess judges the rest.
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from pokedex.data.classes import ALL_POKEMON, national_dex, write_class_table
from pokedex.data.pokeapi import ingest_pokeapi
from pokedex.data.sources import IngestResult, ingest_folder, ingest_hf
from pokedex.data.synthetic import Species, make_species, render_jpeg
from pokedex.errors import PokedexError
from pokedex.io import write_csv
from pokedex.parallel import parallel_map

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "folder", "hf", "pokeapi")


def _render_one(job: tuple[Species, int], seed: int, size: int, quality: int, root: Path) -> None:
    sp, index = job
    (root / f"{sp.dex_id:04d}" / f"{index:04d}.jpg").write_bytes(render_jpeg(sp, seed, index, size, quality))


def ingest_synthetic(cfg: DictConfig, raw_dir: Path, class_table: Path, workers: int | None) -> int:
    """Generate the synthetic Pokédex; returns the number of images written."""
    n_classes, per_class = int(cfg.num_classes), int(cfg.images_per_class)
    if not 1 <= n_classes <= ALL_POKEMON:
        raise PokedexError(f"data.synthetic.num_classes={n_classes} must be between 1 and {ALL_POKEMON} (the national Pokédex).")
    if per_class < 1:
        raise PokedexError(f"data.synthetic.images_per_class={per_class} must be at least 1.")
    species = make_species(n_classes, int(cfg.seed))
    for sp in species:
        (raw_dir / f"{sp.dex_id:04d}").mkdir(parents=True)
    jobs = [(sp, i) for sp in species for i in range(per_class)]
    render = functools.partial(_render_one, seed=int(cfg.seed), size=int(cfg.image_size), quality=int(cfg.jpeg_quality), root=raw_dir)
    for _ in parallel_map(render, jobs, total=len(jobs), workers=workers, desc="ingest (synthetic)"):
        pass
    write_class_table(class_table, [(sp.dex_id, sp.name) for sp in species])
    return len(jobs)


def ingest(data: DictConfig, raw_dir: Path, class_table: Path, rejects: Path) -> None:
    if data.source not in SOURCES:
        raise PokedexError(f"data.source={data.source!r} is not supported; use one of: {', '.join(SOURCES)}.")
    if raw_dir.exists():  # DVC removes outputs before a run; a manual run must not mix old and new images
        shutil.rmtree(raw_dir)
    if data.source == "synthetic":
        n = ingest_synthetic(data.synthetic, raw_dir, class_table, data.workers)
        write_csv(rejects, ["source", "reason"], [])
        log.info("ingest: %d images in %s, class table %s", n, raw_dir, class_table)
        return
    raw_dir.mkdir(parents=True)
    num_classes = int(data.num_classes)
    names = national_dex(num_classes)
    if data.source == "folder":
        result: IngestResult = ingest_folder(data.folder, raw_dir, num_classes)
    elif data.source == "hf":
        result = ingest_hf(data.hf, raw_dir, num_classes)
    else:
        result = ingest_pokeapi(data.pokeapi, raw_dir, num_classes, data.workers)
    names.update({i: n for i, n in result.names.items() if i in names})
    write_class_table(class_table, sorted(names.items()))
    write_csv(rejects, ["source", "reason"], result.rejects)
    log.info("ingest (%s): %d files written to %s, %d rejected (see %s), %d skipped: classes above "
             "data.num_classes=%d", data.source, result.written, raw_dir, len(result.rejects), rejects,
             result.skipped, num_classes)
