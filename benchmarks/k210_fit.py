"""Which architectures fit the K210 at all 1025 classes? Compile each with nncase and print its sizes.

    python benchmarks/k210_fit.py [--imgsz 224] [--models k210n-cls yolov8n-cls yolov8n]

Builds each conf/model/ architecture untrained (sizes do not depend on the weights), exports it to ONNX
and compiles it for the K210 with uint8 quantisation; prints kmodel bytes and nncase's memory summary
against the limits in conf/kmodel/default.yaml, and whether nncase's simulator can run it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from pokedex.core.errors import PokedexError
from pokedex.deploy.export import export_onnx
from pokedex.deploy.k210 import compile_kmodel, simulate
from pokedex.model.build import build_model

from common import argument_parser, compose_cfg

MB = 1024 * 1024


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--models", nargs="+", default=["k210n-cls", "yolov8n-cls", "yolov8n"])
    args = parser.parse_args()
    calibration = np.random.default_rng(0).integers(0, 256, (4, 3, args.imgsz, args.imgsz), dtype=np.uint8)
    for name in args.models:
        cfg = compose_cfg([f"model={name}"])
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(cfg.model)
            head = model.model.model[-1]
            if hasattr(head, "linear"):  # classifier: give it 1025 outputs
                import torch

                head.linear = torch.nn.Linear(head.linear.in_features, 1025)
            else:
                model.model.yaml["nc"] = 1025
                from ultralytics.nn.tasks import DetectionModel

                model.model = DetectionModel(model.model.yaml, nc=1025, verbose=False)
            model.model.names = {i: str(i) for i in range(1025)}
            weights = Path(tmp) / f"{name}.pt"
            model.save(str(weights))
            onnx = export_onnx(weights, args.imgsz, 12, True, Path(tmp) / f"{name}.onnx")
            start = time.perf_counter()
            memory = compile_kmodel(onnx, calibration, Path(tmp) / "m.kmodel", method="no_clip")
            compile_s = time.perf_counter() - start
            try:
                simulate(Path(tmp) / "m.kmodel", calibration[:1])
                sim = "runs"
            except PokedexError as exc:
                sim = f"fails ({exc})"
        ram, flash = float(cfg.kmodel.ram_limit_mb) * MB, float(cfg.kmodel.flash_limit_mb) * MB
        fits = memory["total"] <= ram and memory["model"] <= flash
        print(f"{name:<12} {args.imgsz}px 1025 classes: kmodel {memory['model'] / MB:5.2f} MB, total memory "
              f"{memory['total'] / MB:5.2f} MB (data {memory['data'] / MB:.2f}, output {memory['output'] / 1024:.1f} KB)"
              f" -> {'fits' if fits else 'does NOT fit'} the K210 ({ram / MB:.0f} MB RAM); compile {compile_s:.1f} s;"
              f" simulator {sim}")


if __name__ == "__main__":
    main()
