"""Stage preprocess: every raw file decoded, RGB, resized, re-encoded; or listed in the rejects report."""

from pathlib import Path

from pokedex.core.stage import stage
from pokedex.data.preprocess import preprocess


@stage("processed", "manifest", "rejects")
def main(cfg):
    p = cfg.paths
    preprocess(raw_root=Path(p.raw), out_root=Path(p.processed), manifest=Path(p.manifest), rejects=Path(p.rejects),
               size=cfg.data.image_size, quality=cfg.data.jpeg_quality, workers=cfg.data.workers,
               min_size=cfg.data.min_image_size, max_pixels=cfg.data.max_pixels, upscale=cfg.data.upscale)


if __name__ == "__main__":
    main()
