"""Stage export-onnx: the K210's network (the distill stage's) as static, simplified ONNX, plus a
PyTorch-vs-ONNX-Runtime parity report."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.deploy.export import export_with_parity


@stage("onnx", "onnx_report")
def main(cfg):
    p = cfg.paths
    student = Path(p.distilled_weights)  # the K210's network
    timings = Timings()
    report = export_with_parity(weights=student, dataset_dir=Path(p.yolo_dataset), imgsz=cfg.data.image_size,
                                export_cfg=cfg.export, onnx_out=Path(p.onnx), report=Path(p.onnx_report), timings=timings)
    tracking.record("export-onnx", cfg, student, report, [Path(p.onnx), Path(p.onnx_report)], timings)


if __name__ == "__main__":
    main()
