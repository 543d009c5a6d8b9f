"""Stage evaluate: test-split top-1/top-5, per-class accuracy, confusion matrix, latency, open-set figures, and
the field figures on data/field/ (people's own photos); scene test and field read whole, cut to the true box and
cut to the box the one-class detector finds; beside them the K210 network's (k210_top1, k210_scene_top1...)."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.evaluate.evaluate import evaluate
from pokedex.model.detector import box_finder
from pokedex.model.load import load_model
from pokedex.recognise.openset import Enrolled


@stage("eval_reports")
def main(cfg):
    p = cfg.paths
    reports = Path(p.eval_reports)
    enrolled = Enrolled.load(Path(p.enrolled)) if cfg.model.task == "classify" else None  # a detector: no embedding
    detector = load_model(Path(p.detector_weights))
    find_box = box_finder(detector, cfg.detector.data.image_size, cfg.detector.conf)
    timings = Timings()
    metrics = evaluate(weights=Path(p.weights), dataset_dir=Path(p.yolo_dataset), imgsz=cfg.data.image_size,
                       eval_cfg=cfg.evaluate, out_dir=reports, enrolled=enrolled, field_dir=Path(p.field),
                       find_box=find_box, timings=timings,
                       k210_weights=Path(p.distilled_weights))
    tracking.record("evaluate", cfg, Path(p.weights), metrics,
                    [reports / "metrics.json", reports / "confusion_matrix.png", reports / "frames.png",
                     reports / "per_class.csv", reports / "field_per_class.csv"], timings)


if __name__ == "__main__":
    main()
