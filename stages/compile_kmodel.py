"""Stage compile-kmodel: the ONNX classifier (the K210's network, taught by the trained one) and the one-class
detector as K210 kmodels (nncase 1.x), simulated, bundled for a Maix Bit."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.deploy.kmodel import Detector, compile_and_measure


@stage("k210_bundle", "kmodel_report", "kmodel_metrics")
def main(cfg):
    p = cfg.paths
    detector = Detector(Path(p.detector_weights), Path(p.detect_dataset), int(cfg.detector.data.image_size),
                        float(cfg.detector.conf))
    timings = Timings()
    report = compile_and_measure(onnx=Path(p.onnx), dataset_dir=Path(p.yolo_dataset), size=cfg.data.image_size,
                                 task=cfg.distill.model.task, cfg=cfg.kmodel, bundle=Path(p.k210_bundle),
                                 report_path=Path(p.kmodel_report), metrics_path=Path(p.kmodel_metrics),
                                 enrolled=Path(p.enrolled_k210), detector=detector, timings=timings)
    tracking.record("compile-kmodel", cfg, Path(p.distilled_weights), report, [Path(p.kmodel_report)], timings)


if __name__ == "__main__":
    main()
