"""Stage clip: CLIP zero-shot, a linear probe on CLIP embeddings and a CLIP + classifier hybrid (clip.model)."""

from pathlib import Path

from pokedex import cache_dir
from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.evaluate.clip import measure


@stage("clip_reports")
def main(cfg):
    p = cfg.paths
    reports = Path(p.clip_reports)
    metrics = measure(cfg.clip, weights=Path(p.weights), dataset_dir=Path(p.yolo_dataset), imgsz=cfg.data.image_size,
                      out_dir=reports, cache=cache_dir() / "clip")
    if cfg.clip.model is not None:
        tracking.record("clip", cfg, Path(p.weights), metrics, [reports / "metrics.json", reports / "per_class.csv"])


if __name__ == "__main__":
    main()
