"""Stage export-onnx: static, simplified ONNX plus a PyTorch-vs-ONNX-Runtime parity report."""

from pathlib import Path

from pokedex import tracking
from pokedex.export import export_with_parity
from pokedex.stage import stage


@stage("onnx", "onnx_report")
def main(cfg):
    p = cfg.paths
    report = export_with_parity(Path(p.weights), Path(p.yolo_dataset), cfg.data.image_size, cfg.export,
                                Path(p.onnx), Path(p.onnx_report))
    tracking.record("export-onnx", cfg, Path(p.weights), report, [Path(p.onnx), Path(p.onnx_report)])


if __name__ == "__main__":
    main()
