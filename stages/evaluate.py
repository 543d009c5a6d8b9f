"""Stage evaluate: test-split top-1/top-5, per-class accuracy, confusion matrix, latency."""

from pathlib import Path

from pokedex.evaluate import evaluate
from pokedex.stage import stage


@stage
def main(cfg):
    p = cfg.paths
    evaluate(Path(p.weights), Path(p.yolo_dataset), cfg.data.image_size, cfg.evaluate, Path(p.eval_reports))


if __name__ == "__main__":
    main()
