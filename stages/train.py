"""Stage train: Ultralytics from a bundled model YAML; best weights in models/train/weights/best.pt."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.train.train import train


@stage("train_run")
def main(cfg):
    run_dir = Path(cfg.paths.train_run)
    timings = Timings()
    with tracking.training_run(cfg, timings) as run:  # open before training: every epoch is logged
        best = train(cfg, dataset_dir=Path(cfg.paths.yolo_dataset), run_dir=run_dir, run=run, timings=timings)
        tracking.record_training(run, best, [best, run_dir / "results.csv"])


if __name__ == "__main__":
    main()
