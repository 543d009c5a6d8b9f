"""Stage export-onnx: static, simplified ONNX plus a PyTorch-vs-ONNX-Runtime parity report."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.deploy.export import export_with_parity


@stage("onnx", "onnx_report")
def main(cfg):
    p = cfg.paths
    timings = Timings()
    report = export_with_parity(Path(p.weights), Path(p.yolo_dataset), cfg.data.image_size, cfg.export,
                                Path(p.onnx), Path(p.onnx_report), timings)
    tracking.record("export-onnx", cfg, Path(p.weights), report, [Path(p.onnx), Path(p.onnx_report)], timings)


if __name__ == "__main__":
    main()
