"""Ingest: put raw images at data/raw/all_pokemon/NNNN/*.jpg plus a class table."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from pokedex.data.classes import write_class_table
from pokedex.data.synthetic import Species, make_species, render_jpeg
from pokedex.errors import PokedexError
from pokedex.parallel import parallel_map

log = logging.getLogger(__name__)

SOURCES = ("synthetic",)  # real-data loaders (Hugging Face, folders) come next


def _render_one(job: tuple[Species, int], seed: int, size: int, quality: int, root: Path) -> None:
    sp, index = job
    (root / f"{sp.dex_id:04d}" / f"{index:04d}.jpg").write_bytes(render_jpeg(sp, seed, index, size, quality))


def ingest_synthetic(cfg: DictConfig, raw_dir: Path, class_table: Path, workers: int | None) -> int:
    """Generate the synthetic Pokédex; returns the number of images written."""
    n_classes, per_class = int(cfg.num_classes), int(cfg.images_per_class)
    if not 1 <= n_classes <= 1025:
        raise PokedexError(f"data.synthetic.num_classes={n_classes} must be between 1 and 1025 (the national Pokédex).")
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


def ingest(data: DictConfig, raw_dir: Path, class_table: Path) -> None:
    if data.source not in SOURCES:
        raise PokedexError(f"data.source={data.source!r} is not supported; use one of: {', '.join(SOURCES)}.")
    if raw_dir.exists():  # DVC removes outputs before a run; a manual run must not mix old and new images
        shutil.rmtree(raw_dir)
    n = ingest_synthetic(data.synthetic, raw_dir, class_table, data.workers)
    log.info("ingest: %d images in %s, class table %s", n, raw_dir, class_table)
