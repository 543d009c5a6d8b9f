"""Stage export-onnx: static, simplified ONNX plus a PyTorch-vs-ONNX-Runtime parity report."""

from pathlib import Path

from pokedex.export import export_with_parity
from pokedex.stage import stage


@stage
def main(cfg):
    p = cfg.paths
    export_with_parity(Path(p.weights), Path(p.yolo_dataset), cfg.data.image_size, cfg.export, Path(p.onnx),
                       Path(p.onnx_report))


if __name__ == "__main__":
    main()
