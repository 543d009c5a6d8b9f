"""compile-kmodel: the exported ONNX model as a K210 kmodel, measured in nncase's simulator, plus the bundle.

uint8 post-training quantisation calibrated on train images; the kmodel takes the camera's uint8 RGB and
does the model's normalisation itself. A classifier's kmodel has one output row, [logits | embedding]: the
trained classes' logits followed by the pooled features the enrolled species are matched against (main.py
normalises them and applies the softmax on the K210's CPU; pokedex/recognise/openset.py). The report always gets written (sizes, nncase's memory summary,
whether it fits, simulator top-1 next to float ONNX top-1 on the same test images); with
`kmodel.strict=true` a model over budget then fails the stage.

With the one-class detector (train-detector), its raw grid (pokedex/deploy/grid.py) is compiled too, calibrated
on the detection scenes' train split and simulated on their test split: recall and precision at `detector.conf`
from the simulator's boxes next to float ONNX's, and how well their best boxes overlap. Both kmodels go into
the bundle; main.py keeps both loaded, so their memory counts together against `kmodel.ram_limit_mb`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pokedex.core.checks import COUNT, Number
from pokedex.core.errors import PokedexError
from pokedex.core.timings import Timings
from pokedex.data.boxes import BOX_MARGIN, at_threshold, iou, true_boxes
from pokedex.data.dataset import class_names, load_uint8, test_images
from pokedex.deploy import grid
from pokedex.deploy.k210 import compile_kmodel, simulate

log = logging.getLogger(__name__)


PARAM_RULES = {
    "kmodel.calibration_images": COUNT,
    "kmodel.eval_images": Number(int, 0),
    "kmodel.ram_limit_mb": Number(float, 0, above=True),
    "kmodel.flash_limit_mb": Number(float, 0, above=True),
}

MB = 1024 * 1024
MAIXPY_MAIN = Path(__file__).resolve().parent / "maixpy_main.py"
ENROLLED_FILES = ("enrolled.json", "prototypes.bin")  # pokedex/recognise/openset.py's format, read by main.py as it is


def spread(items: list, n: int) -> list:
    """n items evenly spread over a sorted list (so every class is represented), deterministic."""
    if n >= len(items):
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def with_embedding_output(onnx_in: Path, onnx_out: Path) -> tuple[int, int]:
    """A copy of a classifier's ONNX whose one output is [logits | embedding] instead of the softmax: the Gemm of
    the head's last layer gives the logits, its input is the pooled embedding. Returns (classes, embedding size)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(onnx_in))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    softmax = producers.get(graph.output[0].name)
    gemm = producers.get(softmax.input[0]) if softmax is not None and softmax.op_type == "Softmax" else None
    if gemm is None or gemm.op_type != "Gemm":
        raise PokedexError(f"{onnx_in} does not end in Gemm -> Softmax (a classifier head); cannot add its embedding.")
    weight = next(t for t in graph.initializer if t.name == gemm.input[1])
    classes, dim = weight.dims  # Gemm with transB: (out, in)
    graph.node.remove(softmax)
    graph.node.append(helper.make_node("Concat", [gemm.output[0], gemm.input[0]], ["logits_embedding"], axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits_embedding", onnx.TensorProto.FLOAT, [1, classes + dim]))
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_out))
    return int(classes), int(dim)


def onnx_outputs(onnx: Path, images: np.ndarray) -> np.ndarray:
    """The float ONNX model's output row for each uint8 NCHW image."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.stack([session.run(None, {name: x[None].astype(np.float32) / 255.0})[0][0] for x in images])


def simulator_accuracy(onnx: Path, kmodel: Path, dataset_dir: Path, n_images: int, size: int, classes: int,
                       timings: Timings) -> dict:
    """Top-1 of the kmodel in nncase's simulator next to the float ONNX model (both compiled from the same
    graph: the first `classes` values of each output row rank the trained classes), on the same test images."""
    paths, labels = test_images(dataset_dir)  # the labels evaluate uses: read from the YOLO label files
    picked = spread(list(range(len(paths))), n_images)
    chosen, truth = [paths[i] for i in picked], labels[picked]
    images = load_uint8(chosen, size)
    f_top1 = onnx_outputs(onnx, images)[:, :classes].argmax(1)
    start = time.perf_counter()
    try:
        k_top1 = simulate(kmodel, images)[:, :classes].argmax(1)
    except PokedexError as exc:  # e.g. residual adds, which nncase 1.9's simulator rejects: report, don't hide
        return {"eval_images": len(chosen), "onnx_top1": round(float((f_top1 == truth).mean()), 4),
                "kmodel_top1": None, "agreement": None, "simulator_error": str(exc)}
    timings["sim_ms_per_image"] = round((time.perf_counter() - start) / len(chosen) * 1000, 1)
    return {"eval_images": len(chosen), "onnx_top1": round(float((f_top1 == truth).mean()), 4),
            "kmodel_top1": round(float((k_top1 == truth).mean()), 4),
            "agreement": round(float((k_top1 == f_top1).mean()), 4)}


@dataclass
class Detector:
    """What compile-kmodel needs of the detector: its weights, its scenes (images/ and labels/ per split), input
    size and score threshold."""
    weights: Path
    dataset: Path
    size: int
    conf: float


def detector_simulation(onnx: Path, kmodel: Path, det: Detector, stride: int, n_images: int) -> dict:
    """The detector kmodel in the simulator next to float ONNX on the same test scenes: recall and precision
    at det.conf (IoU 0.5), and the overlap of their best boxes where both find one."""
    scenes = spread(sorted((det.dataset / "images" / "test").glob("*.jpg")), n_images)
    images = load_uint8(scenes, det.size)
    truths = [true_boxes(det.dataset / "labels" / "test" / f"{p.stem}.txt", det.size, det.size) for p in scenes]
    grid_shape = (5, det.size // stride, det.size // stride)
    found = {}
    for name, rows in (("float", onnx_outputs(onnx, images)), ("kmodel", simulate(kmodel, images))):
        found[name] = [grid.decode(row.reshape(grid_shape), stride, det.conf) for row in rows]
    both = [(f[0], k[0]) for f, k in zip(found["float"], found["kmodel"]) if len(f) and len(k)]
    figures = {"eval_images": len(scenes)}
    for name, boxes in found.items():
        at_conf = at_threshold(boxes, truths)
        figures |= {f"{name}_recall": at_conf["recall_at_conf"], f"{name}_precision": at_conf["precision_at_conf"]}
    figures["best_box_iou"] = round(float(np.mean([iou(f, k) for f, k in both])), 4) if both else None
    return figures


def compile_detector(det: Detector, cfg: DictConfig, bundle: Path) -> dict:
    """bundle/detector.kmodel from the detector's raw grid; its sizes, memory and simulator figures."""
    if not det.weights.is_file():
        raise PokedexError(f"{det.weights} is missing; run the train-detector stage first (dvc repro train-detector).")
    onnx = Path(tempfile.mkdtemp()) / "detector_grid.onnx"  # in the stage's scratch folder
    stride = grid.export_grid_onnx(det.weights, det.size, onnx)
    scenes = sorted((det.dataset / "images" / "train").glob("*.jpg"))
    if not scenes:
        raise PokedexError(f"{det.dataset / 'images' / 'train'} has no scenes; run the detect-format stage first.")
    kmodel = bundle / "detector.kmodel"
    memory = compile_kmodel(onnx, load_uint8(spread(scenes, int(cfg.calibration_images)), det.size), kmodel,
                            method=str(cfg.calibration_method))
    return {"kmodel_bytes": kmodel.stat().st_size, "memory_bytes": memory, "input_size": det.size, "stride": stride,
            "conf": det.conf, **detector_simulation(onnx, kmodel, det, stride, int(cfg.detector_eval_images))}


def write_bundle(bundle: Path, classes: list[str], size: int, task: str, embedding: int, enrolled: Path | None,
                 detector: dict | None = None) -> None:
    """Everything a Maix Bit needs next to model.kmodel: with a classifier, the enrolled species too; with a
    detector (compile_detector's report), how main.py reads its grid."""
    (bundle / "classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    shutil.copyfile(MAIXPY_MAIN, bundle / "main.py")
    if enrolled is not None:
        for name in ENROLLED_FILES:
            shutil.copyfile(enrolled / name, bundle / name)
    manifest = {"input_size": [size, size], "input": "uint8 RGB, NCHW", "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0], "input_range": [0, 1], "classes": len(classes), "task": task,
                "output": "logits of the classes, then the embedding" if embedding else "class scores",
                "embedding_size": embedding}
    if detector is not None:
        side = detector["input_size"]
        manifest["detector"] = {"model": "detector.kmodel", "input_size": [side, side], "stride": detector["stride"],
                                "output": "grid (5, H/stride, W/stride): 4 distances to the box's sides in strides, "
                                          "then the score logit", "conf": detector["conf"], "iou_nms": grid.IOU_NMS,
                                "max_boxes": grid.MAX_BOXES, "box_margin": BOX_MARGIN}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def enrolled_on_the_k210(enrolled: Path | None) -> bool:
    """Whether the enroll stage's species are matched in the classifier's own features (main.py computes those)."""
    if enrolled is None or not (enrolled / "enrolled.json").is_file():
        return enrolled is not None  # write_bundle names the missing file
    meta = json.loads((enrolled / "enrolled.json").read_text(encoding="utf-8"))
    return meta.get("embedding", {}).get("kind", "classifier") == "classifier"


def check_enrolled_width(enrolled: Path | None, embedding: int) -> None:
    """Prototypes made by another network (e.g. the big classifier's 1280 features) mean nothing to this one."""
    if enrolled is None or not (enrolled / "enrolled.json").is_file():
        return
    dim = json.loads((enrolled / "enrolled.json").read_text(encoding="utf-8")).get("dim")
    if dim != embedding:
        raise PokedexError(f"{enrolled / 'enrolled.json'} holds prototypes of {dim} features but the network being "
                           f"compiled gives {embedding}; enrol with that network (paths.distilled_weights: dvc repro "
                           "enroll).")


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    log.info("compile-kmodel: %s", report)


def key_metrics(report: dict) -> dict:
    """The few numbers experiments are compared on (DVC metrics); the full report stays beside them."""
    return {"kmodel_bytes": report.get("kmodel_bytes"), "ram_bytes": report.get("memory_bytes", {}).get("total"),
            "fits_k210": report["fits_k210"], "kmodel_top1": report.get("kmodel_top1"),
            "agreement": report.get("agreement"), **({
                "detector_kmodel_bytes": report["detector"].get("kmodel_bytes"),
                "detector_recall": report["detector"].get("kmodel_recall"),
                "ram_bytes_both": report.get("memory_bytes_both")} if "detector" in report else {})}


def compile_and_measure(onnx: Path, dataset_dir: Path, size: int, task: str, cfg: DictConfig, bundle: Path,
                        report_path: Path, metrics_path: Path, enrolled: Path | None,
                        detector: Detector | None = None, timings: Timings | None = None) -> dict:
    """Compile into bundle/model.kmodel (and the detector, if given, into bundle/detector.kmodel), write the
    rest of the bundle (with the enrolled species of `enrolled`, the enroll stage's output, for a classifier),
    the full report and its key metrics (`metrics_path`); returns the report."""
    if not onnx.is_file():
        raise PokedexError(f"{onnx} is missing; run the export-onnx stage first (dvc repro export-onnx).")
    classes, embedding = len(class_names(dataset_dir)), 0
    if task == "classify":
        graph = Path(tempfile.mkdtemp()) / "logits_embedding.onnx"  # in the stage's scratch folder
        classes, embedding = with_embedding_output(onnx, graph)
        onnx = graph
    on_chip = enrolled if task == "classify" and enrolled_on_the_k210(enrolled) else None
    check_enrolled_width(on_chip, embedding)  # before the minutes of compiling
    if bundle.exists():
        shutil.rmtree(bundle)
    kmodel = bundle / "model.kmodel"
    train_images = sorted((dataset_dir / "images" / "train").glob("*.jpg"))
    calibration = load_uint8(spread(train_images, int(cfg.calibration_images)), size)
    ram, flash = float(cfg.ram_limit_mb) * MB, float(cfg.flash_limit_mb) * MB

    timings = Timings() if timings is None else timings
    start = time.perf_counter()
    try:
        memory = compile_kmodel(onnx, calibration, kmodel, method=str(cfg.calibration_method))
    except PokedexError as exc:  # an op nncase cannot compile: say so in the report, then fail the stage
        failed = {"fits_k210": False, "compile_error": str(exc)}
        write_report(report_path, failed)
        write_report(metrics_path, key_metrics(failed))
        raise
    timings["compile_s"] = round(time.perf_counter() - start, 2)
    report: dict = {
        "kmodel_bytes": kmodel.stat().st_size,
        "memory_bytes": memory,
        "ram_limit_bytes": int(ram),
        "flash_limit_bytes": int(flash),
        "fits_k210": memory["total"] <= ram and kmodel.stat().st_size <= flash,
    }
    if detector is not None:  # both loaded at once by main.py: their memory and flash add up
        report["detector"] = compile_detector(detector, cfg, bundle)
        report["memory_bytes_both"] = memory["total"] + report["detector"]["memory_bytes"]["total"]
        flash_both = report["kmodel_bytes"] + report["detector"]["kmodel_bytes"]
        report["fits_k210"] = report["memory_bytes_both"] <= ram and flash_both <= flash
    if task == "classify":
        report.update(simulator_accuracy(onnx, kmodel, dataset_dir, int(cfg.eval_images), size, classes, timings))
    if task == "classify" and on_chip is None:  # enrolled with CLIP embeddings: the K210 cannot compute them
        report["enrolled_species"] = "not in the bundle: enrolled with enroll.embedding=clip, which the K210 cannot run"
    write_bundle(bundle, class_names(dataset_dir), size, task, embedding, on_chip, report.get("detector"))
    write_report(report_path, report)
    write_report(metrics_path, key_metrics(report))
    if cfg.strict and not report["fits_k210"]:
        ram_used = report.get("memory_bytes_both", memory["total"])
        flash_used = report["kmodel_bytes"] + report.get("detector", {}).get("kmodel_bytes", 0)
        raise PokedexError(
            f"The K210 bundle needs {ram_used / MB:.2f} MB of RAM and {flash_used / MB:.2f} MB of flash, "
            f"over the K210 limits kmodel.ram_limit_mb={cfg.ram_limit_mb} / kmodel.flash_limit_mb={cfg.flash_limit_mb}; "
            "pick a smaller network (e.g. distill.model=k210n-cls) or set kmodel.strict=false to only report it."
        )
    return report
