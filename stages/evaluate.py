"""Stage evaluate: test-split top-1/top-5, per-class accuracy, confusion matrix, latency."""

from pathlib import Path

from pokedex import tracking
from pokedex.evaluate import evaluate
from pokedex.stage import stage


@stage("eval_reports")
def main(cfg):
    p = cfg.paths
    reports = Path(p.eval_reports)
    metrics = evaluate(Path(p.weights), Path(p.yolo_dataset), cfg.data.image_size, cfg.evaluate, reports)
    tracking.record("evaluate", cfg, Path(p.weights), metrics,
                    [reports / "metrics.json", reports / "confusion_matrix.png", reports / "per_class.csv"])


if __name__ == "__main__":
    main()
