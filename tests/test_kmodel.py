"""nncase 1.x in its own venv: compile a small classifier for the K210 and run it in the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pokedex.core.errors import PokedexError
from pokedex.deploy.k210 import clear_reserved_bits, compile_kmodel, nncase_python, parse_memory_summary, simulate

from .conftest import needs_nncase

SUMMARY = """SUMMARY
MEMORY USAGES
.input	  27.00 KB	(27648 B)
.output	 200.00 B	(200 B)
.data	 270.00 KB	(276480 B)
MODEL	   2.74 MB	(2873000 B)
TOTAL	   3.03 MB	(3177328 B)
"""


def test_memory_summary_is_parsed_in_bytes():
    assert parse_memory_summary(SUMMARY) == {"input": 27648, "output": 200, "data": 276480, "model": 2873000,
                                             "total": 3177328}
    with pytest.raises(PokedexError, match="no complete memory summary"):
        parse_memory_summary("MODEL 1 MB (1 B)")


def test_missing_nncase_python_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("POKEDEX_NNCASE_PYTHON", str(tmp_path / "python3.10"))
    with pytest.raises(PokedexError, match=r"install Python 3.10 .* run `make setup`"):
        nncase_python()


def _activation_table(x_starts: list[int], garbage: int) -> np.ndarray:
    """16 KPU activation segment words as nncase lays them out (shift 8 bits, mul 16 bits, x_start 36 bits,
    4 reserved bits at the top, here filled with `garbage`), then the two bias words."""
    words = [(garbage << 60) | ((x & (2**36 - 1)) << 24) | (7 << 8) | 3 for x in x_starts]
    words[0] = (garbage << 60) | (0x800000000 << 24)  # nncase's first segment: from the lowest x, mul 0, shift 0
    return np.array(words + [0x0102030405060708, 0x1112131415161718], dtype="<u8")


def test_reserved_bits_of_activation_tables_are_cleared_and_nothing_else():
    ascending = [-(2**35)] + list(range(-700, 800, 100))
    table = _activation_table(ascending, garbage=0xA)
    not_a_table = _activation_table([-(2**35)] + list(range(800, -700, -100)), garbage=0xA)  # x must not decrease
    kmodel = b"LDMK" + bytes(4) + table.tobytes() + not_a_table.tobytes() + b"tail"
    cleared, tables = clear_reserved_bits(kmodel)
    assert tables == 1 and len(cleared) == len(kmodel) and cleared.endswith(b"tail")
    assert cleared == b"LDMK" + bytes(4) + _activation_table(ascending, 0).tobytes() + not_a_table.tobytes() + b"tail"
    assert clear_reserved_bits(cleared) == (cleared, 1)


def _colour_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NCHW images whose dominant channel is the class (0 red, 1 green, 2 blue)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 110, (n, 3, size, size))
    images[np.arange(n), labels] += 120
    return images.astype(np.uint8), labels


@pytest.mark.slow
@needs_nncase
def test_constructed_classifier_agrees_between_onnxruntime_and_the_k210_simulator(tmp_path, monkeypatch):
    import onnx
    import onnxruntime as ort
    import torch

    # A model that separates the images by construction: per-channel means through a linear layer.
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3), torch.nn.Softmax(1),
    ).eval()
    with torch.no_grad():
        first, second, linear = model[0], model[2], model[6]
        first.weight.zero_(), first.bias.zero_(), second.bias.zero_()
        for c in range(3):
            first.weight[c, c, 1, 1] = 1.0
            second.weight[c, c] = 1.0
        second.weight[:, 3:] = 0.0
        linear.weight.copy_(torch.eye(3) * 8.0), linear.bias.zero_()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, torch.rand(1, 3, 32, 32), str(path), opset_version=12, dynamo=False,
                      input_names=["images"], output_names=["output0"])
    onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(path))), str(path))

    images, labels = _colour_images(24, 32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_top1 = np.array([session.run(None, {"images": image[None].astype(np.float32) / 255.0})[0].argmax()
                          for image in images])
    assert (onnx_top1 == labels).all(), "the constructed model must separate the images"

    calibration, _ = _colour_images(16, 32, seed=1)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # relative paths work, and nncase's kmodel_info.txt lands elsewhere
    kmodel = tmp_path / "model.kmodel"
    memory = compile_kmodel(Path("..") / "model.onnx", calibration, kmodel, method="no_clip")
    assert kmodel.read_bytes()[:4] == b"LDMK" and memory["total"] >= memory["model"] > 0
    # one activation table per KPU layer (both convolutions and the linear layer), reserved bits cleared
    assert clear_reserved_bits(kmodel.read_bytes()) == (kmodel.read_bytes(), 3)
    assert memory["input"] == 3 * 32 * 32  # uint8 camera input

    kmodel_out = simulate(Path("..") / "model.kmodel", images)
    assert kmodel_out.shape == (24, 3)
    assert (kmodel_out.argmax(1) == onnx_top1).all()
    assert not any((tmp_path / "cwd").iterdir()), "nncase must not write into the working directory"


@pytest.mark.slow
@needs_nncase
def test_k210_architecture_with_1025_classes_fits_the_chip(tmp_path):
    """model=k210n-cls at 1025 classes and 224 px: kmodel <= 3 MB and nncase's total memory <= 6 MB."""
    from pokedex.deploy.export import export_onnx
    from pokedex.model.build import build_model

    from .conftest import make_cfg

    model = build_model(make_cfg("model=k210n-cls").model)
    assert model.model.model[-1].linear.in_features == 256
    weights = tmp_path / "k210n.pt"
    model.save(str(weights))
    onnx_path = export_onnx(weights, imgsz=224, opset=12, simplify=True, onnx_out=tmp_path / "k210n.onnx")
    calibration = np.random.default_rng(0).integers(0, 256, (4, 3, 224, 224), dtype=np.uint8)
    kmodel = tmp_path / "k210n.kmodel"
    memory = compile_kmodel(onnx_path, calibration, kmodel, method="no_clip")
    assert kmodel.stat().st_size == memory["model"] <= 3 * 1024 * 1024
    assert memory["total"] <= 6 * 1024 * 1024
    assert simulate(kmodel, calibration[:1]).shape == (1, 1025)


@pytest.mark.slow
@needs_nncase
def test_compile_kmodel_stage_bundle_report_and_budget_gate(tmp_path, tiny_dataset):
    """The stage's function on a tiny trained k210n-cls: bundle files, report, and the strict budget gate."""
    import json

    from pokedex.deploy.export import export_onnx
    from pokedex.deploy.kmodel import compile_and_measure
    from pokedex.train.train import train

    from .conftest import make_cfg

    cfg = make_cfg("data=tiny", "model=k210n-cls", "train.epochs=1", "train.batch=8", "train.plots=false",
                   "+train.val=false", "kmodel.eval_images=6", "kmodel.calibration_images=8")
    yolo = tiny_dataset["yolo"]
    best = train(cfg, yolo, tmp_path / "train")
    onnx_path = export_onnx(best, cfg.data.image_size, 12, True, tmp_path / "model.onnx")
    bundle, report_path, metrics_path = tmp_path / "k210", tmp_path / "kmodel.json", tmp_path / "kmodel_metrics.json"
    report = compile_and_measure(onnx_path, yolo, cfg.data.image_size, "classify", cfg.kmodel, bundle, report_path,
                                 metrics_path, None)  # no enrolled species: tests/test_enroll.py has them
    assert json.loads(report_path.read_text()) == report
    assert sorted(p.name for p in bundle.iterdir()) == ["classes.txt", "main.py", "manifest.json", "model.kmodel"]
    assert (bundle / "classes.txt").read_text() == (yolo / "classes.txt").read_text()  # index = class id
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["input_size"] == [32, 32] and manifest["classes"] == 4
    assert report["fits_k210"] and report["kmodel_bytes"] == (bundle / "model.kmodel").stat().st_size
    assert report["eval_images"] == 6 and report["agreement"] is not None, report.get("simulator_error")
    assert 0 <= report["kmodel_top1"] <= 1 and 0 <= report["agreement"] <= 1
    metrics = json.loads(metrics_path.read_text())  # what DVC compares experiments on
    assert metrics == {"kmodel_bytes": report["kmodel_bytes"], "ram_bytes": report["memory_bytes"]["total"],
                       "fits_k210": True, "kmodel_top1": report["kmodel_top1"], "agreement": report["agreement"]}

    strict = make_cfg("kmodel.strict=true", "kmodel.ram_limit_mb=0.01").kmodel
    with pytest.raises(PokedexError, match=r"needs [\d.]+ MB of RAM .* over the K210 limits kmodel.ram_limit_mb=0.01"):
        compile_and_measure(onnx_path, yolo, cfg.data.image_size, "classify", strict, bundle, report_path, metrics_path,
                            None)
    assert json.loads(report_path.read_text())["fits_k210"] is False  # written before the stage fails

    # species enrolled in another network's features (the big classifier's 1280) are refused before compiling
    other = tmp_path / "enrolled-by-lite0"
    other.mkdir()
    (other / "enrolled.json").write_text(json.dumps({"dim": 1280, "embedding": {"kind": "classifier"}}))
    report_path.unlink()
    with pytest.raises(PokedexError, match=r"enrolled.json holds prototypes of 1280 features but the network being "
                                           r"compiled gives 256; enrol with that network"):
        compile_and_measure(onnx_path, yolo, cfg.data.image_size, "classify", cfg.kmodel, bundle, report_path,
                            metrics_path, other)
    assert not report_path.exists()


@pytest.mark.slow
@needs_nncase
def test_detector_compiles_and_reports_without_simulator_accuracy(tmp_path, tiny_dataset):
    """task=detect: the kmodel and its memory are reported (fits or not); top-1 is a classifier's measure."""
    import json

    from pokedex.deploy.export import export_onnx
    from pokedex.deploy.kmodel import compile_and_measure
    from pokedex.model.build import build_model

    from .conftest import make_cfg

    cfg = make_cfg("data=tiny", "model=yolov8n", "kmodel.calibration_images=4")
    weights = tmp_path / "det.pt"
    build_model(cfg.model).save(str(weights))
    onnx_path = export_onnx(weights, cfg.data.image_size, 12, True, tmp_path / "det.onnx")
    report = compile_and_measure(onnx_path, tiny_dataset["yolo"], cfg.data.image_size, "detect", cfg.kmodel,
                                 tmp_path / "k210", tmp_path / "kmodel.json", tmp_path / "kmodel_metrics.json", None)
    assert report["memory_bytes"]["total"] > report["kmodel_bytes"] > 0 and "kmodel_top1" not in report
    assert json.loads((tmp_path / "k210" / "manifest.json").read_text())["task"] == "detect"


def _main_py_functions() -> dict:
    """main.py's pure functions (decode, iou, union, square), run here as MicroPython would run them: main.py imports
    MaixPy modules at its top, so only these definitions are taken from its source."""
    import ast
    import math

    from pokedex.deploy.kmodel import MAIXPY_MAIN

    tree = ast.parse(MAIXPY_MAIN.read_text(encoding="utf-8"))
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in {"decode", "iou", "union", "square"}]
    namespace = {"math": math}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(MAIXPY_MAIN), "exec"), namespace)
    return namespace


def test_the_detector_grid_decodes_to_ultralytics_boxes_in_the_pipeline_and_in_main_py(tmp_path):
    """A k210n-det detector with random weights (score bias 0, scores spread): its raw grid exported
    to ONNX and decoded by pokedex.deploy.grid gives exactly Ultralytics' boxes and scores; main.py's decode,
    fed the flat list the KPU returns, gives the same boxes."""
    import onnxruntime as ort
    import torch
    from omegaconf import OmegaConf

    from pokedex.deploy.grid import decode, export_grid_onnx
    from pokedex.model.build import build_model
    from pokedex.model.load import load_model

    torch.manual_seed(0)
    model = build_model(OmegaConf.create({"task": "detect", "arch": "k210n-det.yaml", "weights": None}))
    head = model.model.model[-1]
    with torch.no_grad():  # signals that survive 17 random layers; scores spread over (0, 1), no two cells tie
        for layer in model.model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.weight.fill_(3.5)
        head.cv3[0][-1].weight.mul_(0.02)
        head.cv3[0][-1].bias.zero_()
        head.cv2[0][-1].weight.mul_(0.03)
    weights = tmp_path / "det.pt"
    model.save(str(weights))
    stride = export_grid_onnx(weights, 64, tmp_path / "grid.onnx")
    assert stride == 16
    session = ort.InferenceSession(str(tmp_path / "grid.onnx"), providers=["CPUExecutionProvider"])
    yolo, on_k210 = load_model(weights), _main_py_functions()
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(4):
        picture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        grid = session.run(None, {"images": picture.transpose(2, 0, 1)[None].astype(np.float32) / 255})[0][0]
        assert grid.shape == (5, 4, 4)
        ours = decode(grid, stride, 0.4, max_boxes=300)
        result = yolo.predict(np.ascontiguousarray(picture[..., ::-1]), imgsz=64, conf=0.4, verbose=False)[0]
        theirs = np.concatenate([result.boxes.xyxy.numpy(), result.boxes.conf.numpy()[:, None]], 1)
        assert ours.shape == theirs.shape and np.allclose(ours, theirs, atol=1e-3), (ours, theirs)
        board = np.array(on_k210["decode"](grid.reshape(-1).tolist(), 4, 4, stride, 0.4, 0.7, 300), np.float32)
        assert np.allclose(board.reshape(-1, 5), ours, atol=1e-4)
        compared += len(ours)
    assert compared > 4  # boxes were compared, not only empty lists
    x, y, s = on_k210["square"]((-10.0, 50.0, 30.0, 70.0), 64, 240, 0.08)  # a box leaving the frame's left side
    assert x == 0 and 0 <= y <= 240 - s and s == int(40 * 240 / 64 * 1.16)
    # an ear and a tail boxed apart: the classifier reads the square around both, as `pokedex predict` does
    assert on_k210["union"]([(10.0, 5.0, 20.0, 15.0, 0.9), (30.0, 40.0, 50.0, 60.0, 0.5)]) == (10.0, 5.0, 50.0, 60.0)


@needs_nncase
def test_the_k210_bundle_holds_both_kmodels_and_a_main_py_that_parses(tmp_path, tiny_dataset):
    """compile-kmodel with the detector: detector.kmodel beside model.kmodel, the manifest says how to read its
    grid, their memory counts together, the simulator's boxes are measured next to float's; main.py parses."""
    import ast
    import json

    from omegaconf import OmegaConf

    from pokedex.data.detection import write_detection_dataset
    from pokedex.deploy.export import export_onnx
    from pokedex.deploy.kmodel import Detector, compile_and_measure
    from pokedex.model.build import build_model

    from .conftest import make_cfg

    cfg = make_cfg("data=tiny", "debug=quick", "kmodel.eval_images=4", "kmodel.calibration_images=4",
                   "kmodel.detector_eval_images=6")
    classifier, detector = tmp_path / "cls.pt", tmp_path / "det.pt"
    build_model(cfg.model).save(str(classifier))
    build_model(OmegaConf.create({"task": "detect", "arch": "k210n-det.yaml", "weights": None})).save(str(detector))
    onnx_path = export_onnx(classifier, cfg.data.image_size, 12, True, tmp_path / "model.onnx")
    scenes = tmp_path / "detect"
    write_detection_dataset(tiny_dataset["yolo"], scenes, cfg.detector.data)
    bundle = tmp_path / "k210"
    report = compile_and_measure(onnx_path, tiny_dataset["yolo"], cfg.data.image_size, "classify", cfg.kmodel, bundle,
                                 tmp_path / "kmodel.json", tmp_path / "metrics.json", None,
                                 Detector(detector, scenes, 64, 0.25))
    assert sorted(p.name for p in bundle.iterdir()) == ["classes.txt", "detector.kmodel", "main.py", "manifest.json",
                                                        "model.kmodel"]
    found = report["detector"]
    assert found["kmodel_bytes"] == (bundle / "detector.kmodel").stat().st_size and found["stride"] == 16
    assert report["memory_bytes_both"] == report["memory_bytes"]["total"] + found["memory_bytes"]["total"]
    assert found["eval_images"] == 6 and {"float_recall", "kmodel_recall", "best_box_iou"} <= set(found)
    manifest = json.loads((bundle / "manifest.json").read_text())["detector"]
    assert manifest["model"] == "detector.kmodel" and manifest["input_size"] == [64, 64] and manifest["conf"] == 0.25
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ram_bytes_both"] == report["memory_bytes_both"] and metrics["detector_kmodel_bytes"] > 0
    ast.parse((bundle / "main.py").read_text(encoding="utf-8"))  # MicroPython's syntax is a subset of this one's
