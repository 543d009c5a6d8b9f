"""`data=synthetic`: the embedded synthetic Pokédex, rendered here (no download, byte-identical per seed)."""

from __future__ import annotations

import functools
from pathlib import Path

from omegaconf import DictConfig

from pokedex.core.checks import COUNT, Number, check_value
from pokedex.core.parallel import parallel_map
from pokedex.data.classes import ALL_POKEMON
from pokedex.data.sources.base import IngestResult
from pokedex.data.synthetic import Species, make_species, render_jpeg

PARAM_RULES = {
    "data.synthetic.num_classes": Number(int, 1, ALL_POKEMON),
    "data.synthetic.images_per_class": COUNT,
    "data.synthetic.image_size": Number(int, 16),
    "data.synthetic.jpeg_quality": Number(int, 1, 100),
}


def _render_one(job: tuple[Species, int], seed: int, size: int, quality: int, root: Path) -> None:
    sp, index = job
    (root / f"{sp.dex_id:04d}" / f"{index:04d}.jpg").write_bytes(render_jpeg(sp, seed, index, size, quality))


def ingest(data: DictConfig, raw_dir: Path) -> IngestResult:
    """data.synthetic.images_per_class JPEGs of each of data.synthetic.num_classes species (its own class count:
    data.num_classes is for real sources)."""
    cfg = data.synthetic
    n_classes, per_class = int(cfg.num_classes), int(cfg.images_per_class)
    check_value(PARAM_RULES, "data.synthetic.num_classes", n_classes)
    check_value(PARAM_RULES, "data.synthetic.images_per_class", per_class)
    species = make_species(n_classes, int(cfg.seed))
    for sp in species:
        (raw_dir / f"{sp.dex_id:04d}").mkdir()
    jobs = [(sp, i) for sp in species for i in range(per_class)]
    render = functools.partial(_render_one, seed=int(cfg.seed), size=int(cfg.image_size), quality=int(cfg.jpeg_quality), root=raw_dir)
    for _ in parallel_map(render, jobs, total=len(jobs), workers=data.workers, desc="ingest (synthetic)"):
        pass
    return IngestResult(num_classes=n_classes, written=len(jobs), names={sp.dex_id: sp.name for sp in species})
