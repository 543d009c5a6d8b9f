"""Stage train-detector: the one-class detector ("Pokémon") on detect-format's scenes; its figures on the test
scenes (mAP50, precision, recall at IoU 0.5) in reports/detector/metrics.json."""

import json
from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.train.detector import detector_view, evaluate_detector
from pokedex.train.train import train


@stage("detector_run", "detector_metrics")
def main(cfg):
    p = cfg.paths
    run_dir, dataset = Path(p.detector_run), Path(p.detect_dataset)
    timings = Timings()
    with tracking.training_run(cfg, timings, stage="train-detector") as run:
        best = train(detector_view(cfg), dataset, run_dir, run, timings)
        metrics = evaluate_detector(best, dataset, cfg.detector)
        Path(p.detector_metrics).parent.mkdir(parents=True, exist_ok=True)
        Path(p.detector_metrics).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        run.log_metrics(tracking.numbers(metrics, "detector/"))
        tracking.record_training(run, best, [best, run_dir / "results.csv", Path(p.detector_metrics)])


if __name__ == "__main__":
    main()
