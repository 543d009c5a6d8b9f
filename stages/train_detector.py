"""Stage train-detector: the one-class detector ("Pokémon") on detect-format's scenes; its figures on the test
scenes (mAP50, precision, recall at IoU 0.5) in reports/detector/metrics.json."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.train.detector import train_detector


@stage("detector_run", "detector_metrics")
def main(cfg):
    p = cfg.paths
    timings = Timings()
    with tracking.training_run(cfg, timings, stage="train-detector") as run:
        best = train_detector(cfg, dataset=Path(p.detect_dataset), run_dir=Path(p.detector_run),
                              metrics_path=Path(p.detector_metrics), run=run, timings=timings)
        tracking.record_training(run, best, [best, Path(p.detector_run) / "results.csv", Path(p.detector_metrics)])


if __name__ == "__main__":
    main()
