"""Export to ONNX (static input, opset 12, simplified) with a parity check against PyTorch.

The parity check feeds the same real test images to the PyTorch model and to ONNX Runtime and records
the largest absolute difference of their outputs and how often their top-1 classes agree; the stage fails
when either is outside its limit, after writing the report. The same weights give the same .onnx bytes:
Ultralytics' export date is left out of the file's metadata.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from pokedex.core.checks import COUNT, FRACTION, Number
from pokedex.core.errors import PokedexError
from pokedex.core.timings import Timings
from pokedex.data.dataset import load_uint8
from pokedex.model.load import load_model

log = logging.getLogger(__name__)


PARAM_RULES = {
    "export.opset": Number(int, 7),
    "export.parity_images": COUNT,
    "export.max_abs_diff": Number(float, 0),
    "export.min_top1_agreement": FRACTION,
}


def load_input(path: Path, imgsz: int) -> np.ndarray:
    """NCHW float32 in [0, 1], RGB: what both exported tasks take (test images are already square)."""
    return load_uint8([path], imgsz).astype(np.float32) / 255.0


def top1_class(output: np.ndarray) -> int:
    """Classifier: argmax of the probabilities. Detector (1, 4+nc, anchors): class of the best-scoring anchor."""
    if output.ndim == 2:
        return int(output[0].argmax())
    scores = output[0, 4:, :]
    return int(scores[:, scores.max(axis=0).argmax()].argmax())


def export_onnx(weights: Path, imgsz: int, opset: int, simplify: bool, onnx_out: Path) -> Path:
    if not weights.is_file():
        raise PokedexError(f"{weights} is missing; run the train stage first (dvc repro train).")
    # Ultralytics writes the .onnx next to the .pt; work on a copy so the train stage's output stays untouched.
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "model.pt"
        shutil.copyfile(weights, pt)
        exported = load_model(pt).export(format="onnx", imgsz=imgsz, opset=opset, simplify=simplify,
                                         dynamic=False, batch=1, device="cpu")
        onnx_out.parent.mkdir(parents=True, exist_ok=True)
        without_export_date(Path(exported), onnx_out)
    return onnx_out


def without_export_date(onnx_in: Path, onnx_out: Path) -> None:
    """The model of `onnx_in` in `onnx_out` without the `date` Ultralytics stamps into its metadata (the
    checkpoint's own metadata is made stable by training: pokedex/train/train.py)."""
    import onnx

    model = onnx.load(str(onnx_in))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "date"]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_out))


def parity(weights: Path, onnx_path: Path, images: list[Path], imgsz: int, timings: Timings | None = None) -> dict:
    """Compare PyTorch and ONNX Runtime on the same inputs (CPU, batch 1); their ms per image go to `timings`."""
    import onnxruntime as ort  # nncase never loads in this process: importing both crashes (pokedex/deploy/k210.py)
    import torch

    torch_model = load_model(weights).model.float().eval()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    max_diff, agree, t_torch, t_onnx = 0.0, 0, 0.0, 0.0
    for path in images:
        x = load_input(path, imgsz)
        start = time.perf_counter()
        with torch.no_grad():
            y = torch_model(torch.from_numpy(x))
        t_torch += time.perf_counter() - start
        y = (y[0] if isinstance(y, (list, tuple)) else y).numpy()
        start = time.perf_counter()
        z = session.run(None, {input_name: x})[0]
        t_onnx += time.perf_counter() - start
        max_diff = max(max_diff, float(np.abs(y - z).max()))
        agree += top1_class(y) == top1_class(z)
    n = len(images)
    if timings is not None:
        timings.update(torch_ms=round(t_torch / n * 1000, 3), onnx_ms=round(t_onnx / n * 1000, 3))
    return {"images": n, "max_abs_diff": max_diff, "top1_agreement": agree / n}


def export_with_parity(weights: Path, dataset_dir: Path, imgsz: int, export_cfg, onnx_out: Path, report: Path,
                       timings: Timings | None = None) -> dict:
    export_onnx(weights, imgsz, int(export_cfg.opset), bool(export_cfg.simplify), onnx_out)
    images = sorted((dataset_dir / "images" / "test").glob("*.jpg"))[: int(export_cfg.parity_images)]
    if not images:
        raise PokedexError(f"{dataset_dir / 'images' / 'test'} has no images for the parity check; run yolo-format first.")
    result = {"onnx_bytes": onnx_out.stat().st_size, "opset": int(export_cfg.opset), **parity(weights, onnx_out, images, imgsz, timings)}
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2) + "\n")
    log.info("export-onnx: %s", result)
    if result["max_abs_diff"] > float(export_cfg.max_abs_diff) or result["top1_agreement"] < float(export_cfg.min_top1_agreement):
        raise PokedexError(
            f"ONNX parity broke: max abs diff {result['max_abs_diff']:.2e} (limit export.max_abs_diff="
            f"{export_cfg.max_abs_diff}), top-1 agreement {result['top1_agreement']:.3f} (limit "
            f"export.min_top1_agreement={export_cfg.min_top1_agreement}); see {report}."
        )
    return result
