"""Stage evaluate: test-split top-1/top-5, per-class accuracy, confusion matrix, latency, open-set figures, and
the field figures on data/field/ (people's own photos)."""

from pathlib import Path

from pokedex import tracking
from pokedex.evaluate import evaluate
from pokedex.openset import Enrolled
from pokedex.stage import stage


@stage("eval_reports")
def main(cfg):
    p = cfg.paths
    reports = Path(p.eval_reports)
    enrolled = Enrolled.load(Path(p.enrolled)) if cfg.model.task == "classify" else None  # a detector: no embedding
    metrics = evaluate(Path(p.weights), Path(p.yolo_dataset), cfg.data.image_size, cfg.evaluate, reports, enrolled,
                       Path(p.field))
    tracking.record("evaluate", cfg, Path(p.weights), metrics,
                    [reports / "metrics.json", reports / "confusion_matrix.png", reports / "per_class.csv",
                     reports / "field_per_class.csv"])


if __name__ == "__main__":
    main()
