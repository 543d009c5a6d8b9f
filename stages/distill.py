"""Stage distill: the K210's network (distill.model) trained with the train stage's classifier as its teacher;
best weights in models/distilled/weights/best.pt, which export-onnx and compile-kmodel read."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.train.distill import distill


@stage("distill_run")
def main(cfg):
    p = cfg.paths
    run_dir = Path(p.distill_run)
    timings = Timings()
    # the run holds the stage's params (distill.model, distill.train: the student's), so export-onnx and
    # compile-kmodel, which read the student, add their figures to it
    with tracking.training_run(cfg, timings, stage="distill") as run:
        best = distill(cfg, teacher=Path(p.trained_weights), dataset_dir=Path(p.yolo_dataset), run_dir=run_dir,
                       run=run, timings=timings)
        tracking.record_training(run, best, [best, run_dir / "results.csv"])


if __name__ == "__main__":
    main()
