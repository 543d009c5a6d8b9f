"""train -> evaluate -> export-onnx -> predict on the tiny dataset, for both tasks (real Ultralytics)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pokedex.core.errors import PokedexError
from pokedex.core.timings import Timings
from pokedex.deploy.export import export_with_parity
from pokedex.evaluate.accuracy import accuracy_metrics
from pokedex.evaluate.evaluate import confusion_matrix, evaluate
from pokedex.model.build import build_model
from pokedex.model.load import load_model
from pokedex.predict import predict
from pokedex.recognise.scores import CLASSIFIER_SIZE, DETECTOR_SIZE, input_size
from pokedex.train.train import train, train_args

from .conftest import make_cfg


def test_unknown_train_argument_is_named():
    with pytest.raises(PokedexError, match=r"train\.lr_zero is not an Ultralytics train argument"):
        train_args(make_cfg("+train.lr_zero=0.1").train)
    with pytest.raises(PokedexError, match=r"train\.imgsz is set by the pipeline"):
        train_args(make_cfg("+train.imgsz=64").train)


def test_image_size_must_be_a_multiple_of_the_stride(tmp_path, tiny_dataset):
    with pytest.raises(PokedexError, match=r"data.image_size=80 is not a multiple of 32, so Ultralytics would train at 96"):
        train(make_cfg("data=tiny", "data.image_size=80"), tiny_dataset["yolo"], tmp_path / "run")


def test_missing_weights_file_is_named(tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", f"model.weights={tmp_path}/nope.pt")
    with pytest.raises(PokedexError, match="model.weights=.*nope.pt does not exist"):
        train(cfg, tiny_dataset["yolo"], tmp_path / "run")


def test_wrong_task_for_architecture_is_named(tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", "model.task=detect")
    with pytest.raises(PokedexError, match="builds a classify model but model.task='detect'"):
        train(cfg, tiny_dataset["yolo"], tmp_path / "run")


def test_accuracy_and_confusion_arithmetic():
    import numpy as np

    truth = np.array([0, 0, 1, 2])
    ranked = [[0, 1], [1, 0], [1, 2], [-1]]
    acc = accuracy_metrics(truth, ranked, 3)
    assert acc["top1"] == 0.5 and acc["top5"] == 0.75 and acc["per_class"] == [0.5, 1.0, 0.0]
    cm = confusion_matrix(truth, np.array([r[0] for r in ranked]), 3)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["yolov8n-cls", "yolov8n", "k210n-cls", "lite0"])
def test_train_evaluate_export_predict(model, tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", f"model={model}", "train.epochs=1", "train.batch=8", "train.plots=false",
                   "evaluate.latency_images=3", "export.parity_images=4")
    yolo = tiny_dataset["yolo"]
    before = sorted(p.relative_to(yolo) for p in yolo.rglob("*"))
    best = train(cfg, yolo, tmp_path / "train")
    assert best.is_file() and (tmp_path / "train" / "results.csv").is_file()

    timings = Timings()
    metrics = evaluate(best, yolo, cfg.data.image_size, cfg.evaluate, tmp_path / "eval", timings=timings)
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk == metrics and "latency_ms" not in metrics  # how fast this machine is: not a model figure
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0 and timings["latency_ms"] > 0
    assert metrics["test_images"] == 4 * 2 and metrics["classes"] == 4
    assert ("mAP50" in metrics) == (model == "yolov8n")
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 1000
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "image,actual,predicted" and len(rows) == 1 + metrics["test_images"]
    assert metrics["field"].startswith("not measured")  # no field folder given: its outputs exist, empty
    assert (tmp_path / "eval" / "field_per_class.csv").read_text().splitlines() == ["class,images,top1"]

    if model == "k210n-cls":  # field evaluation: the test pictures as a user's photos, one unreadable file
        field = tmp_path / "field"
        for image in sorted((yolo / "images" / "test").glob("*.jpg")):
            (field / image.name[:4]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, field / image.name[:4] / image.name)
        (field / "0001" / "broken.jpg").write_bytes(b"not a jpeg")
        scored = evaluate(best, yolo, cfg.data.image_size, cfg.evaluate, tmp_path / "eval-field", field_dir=field,
                          k210_weights=best)  # a second classifier beside the first: here the same one
        assert scored["field_images"] == metrics["test_images"] and scored["field_rejected"] == 1
        assert (scored["k210_top1"], scored["k210_scene_top1"]) == (metrics["top1"], metrics["scene_top1"])
        names = (yolo / "classes.txt").read_text().splitlines()
        answers = predict([field], best, yolo / "classes.txt", imgsz=cfg.data.image_size)
        right = [ranked[0][0] == f"{Path(p).parent.name} {names[int(Path(p).parent.name) - 1]}" for p, ranked in answers
                 if not isinstance(ranked, str)]
        assert scored["field_top1"] == round(sum(right) / len(right), 4)  # what predict answers, picture by picture

    onnx = tmp_path / "model.onnx"
    report = export_with_parity(best, yolo, cfg.data.image_size, cfg.export, onnx, tmp_path / "parity.json")
    assert onnx.is_file() and report["images"] == 4
    assert report["max_abs_diff"] <= 1e-4 and report["top1_agreement"] == 1.0
    assert not (best.parent / "best.onnx").exists(), "export must not write into the train stage's output"
    assert sorted(p.relative_to(yolo) for p in yolo.rglob("*")) == before, "nothing may write into the dataset"

    # the size a model reads comes with it: the checkpoint's training size, the exported graph's fixed side
    assert cfg.data.image_size not in (CLASSIFIER_SIZE, DETECTOR_SIZE)
    assert input_size(load_model(best)) == input_size(load_model(onnx, task=cfg.model.task)) == cfg.data.image_size

    names = (yolo / "classes.txt").read_text().splitlines()
    image = sorted((yolo / "images" / "test").iterdir())[0]
    for model_file in (best, onnx):
        ((path, ranked),) = predict([image], model_file, yolo / "classes.txt", imgsz=cfg.data.image_size)
        assert path == str(image) and 1 <= len(ranked) <= 5
        assert all(label[5:] in names for label, _ in ranked if label != "(no detection)")
        assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)

    if model == "yolov8n-cls":  # the console script prints the same top-5
        out = subprocess.run([sys.executable, "-m", "pokedex.cli", "predict", str(image), "--model", str(onnx),
                              "--classes", str(yolo / "classes.txt")], capture_output=True, text=True, check=True)
        lines = out.stdout.splitlines()
        assert lines[0] == str(image) and len(lines) == 1 + 4 and lines[1].strip().startswith("1. 000")


@pytest.mark.slow
def test_parity_failure_is_reported_after_writing_the_report(tmp_path, tiny_dataset):
    """An impossible tolerance makes the stage fail with the numbers and the report path."""
    cfg = make_cfg("data=tiny", "train.epochs=1", "train.batch=8", "train.plots=false", "+train.val=false",
                   "export.parity_images=2", "export.max_abs_diff=-1")
    best = train(cfg, tiny_dataset["yolo"], tmp_path / "train")
    with pytest.raises(PokedexError, match="ONNX parity broke: max abs diff .* export.max_abs_diff=-1"):
        export_with_parity(best, tiny_dataset["yolo"], cfg.data.image_size, cfg.export, tmp_path / "m.onnx",
                           tmp_path / "parity.json")
    assert json.loads((tmp_path / "parity.json").read_text())["images"] == 2


def test_predict_names_a_missing_model(tmp_path):
    with pytest.raises(PokedexError, match="model .*missing.pt does not exist"):
        predict([tmp_path / "x.jpg"], tmp_path / "missing.pt", tmp_path / "classes.txt")


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 PNG whose header claims width x height (a few dozen bytes: a decompression bomb's header)."""
    import struct
    import zlib

    from PIL import Image

    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR starts at byte 8: length, type, then width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow
def test_predict_reads_folders_refuses_bad_images_one_by_one_and_names_a_bad_model(tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", "train.epochs=1", "train.batch=8", "train.plots=false", "+train.val=false")
    best = train(cfg, tiny_dataset["yolo"], tmp_path / "train")
    images = tmp_path / "photos"
    good = sorted((tiny_dataset["yolo"] / "images" / "test").iterdir())[:3]
    (images / "more").mkdir(parents=True)
    for i, image in enumerate(good):
        shutil.copy(image, images / ("more" if i else ".") / image.name)
    (images / "empty.jpg").touch()
    (images / "notes.jpg").write_text("not a picture")
    _png_declaring(images / "bomb.png", 20000, 20000)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pokedex.cli", "predict", *map(str, args)],
                              capture_output=True, text=True)

    done = cli(images, "--model", best, "--classes", tiny_dataset["yolo"] / "classes.txt", "--top", "2")
    assert done.returncode == 1
    predicted = [line for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert sorted(Path(p).name for p in predicted) == sorted(p.name for p in good)
    assert len(done.stdout.splitlines()) == 3 * 3  # each image and its top 2
    errors = done.stderr.strip().splitlines()
    assert errors[:3] == [f"error: {images / 'bomb.png'}: decompression bomb refused: 20000x20000 = 400,000,000 "
                          "pixels, over data.max_pixels=100,000,000",
                          f"error: {images / 'empty.jpg'}: empty file (0 bytes)",
                          f"error: {images / 'notes.jpg'}: not an image (no known image format)"]
    assert errors[3] == "error: 3 of 6 images could not be read (named above); the others were predicted."
    assert "Traceback" not in done.stderr

    not_a_model = tmp_path / "model.pt"
    not_a_model.write_text("weights")
    done = cli(good[0], "--model", not_a_model)
    assert done.returncode == 1 and done.stderr.startswith(f"error: could not load model {not_a_model} (")
    assert "Traceback" not in done.stderr
    done = cli(good[0], "--model", best, "--top", "-1")
    assert done.returncode == 2 and "argument --top: '-1' is not a whole number ≥ 1" in done.stderr
    done = cli(tmp_path / "nowhere", "--model", best)
    assert done.returncode == 1 and "nowhere does not exist; give image files or folders" in done.stderr


@pytest.mark.slow
def test_all_1025_classes_run_through_every_stage(tmp_path):
    """data=synthetic_1025, cut to 3 images a class (one per split) and one epoch: every stage copes."""
    from .conftest import build_dataset

    cfg = make_cfg("data=synthetic_1025", "data.synthetic.images_per_class=3", "train.epochs=1",
                   "train.plots=false", "evaluate.latency_images=3", "export.parity_images=4")
    paths = build_dataset(cfg, tmp_path / "data")
    names = (paths["yolo"] / "classes.txt").read_text().splitlines()
    assert len(names) == len(set(names)) == 1025
    best = train(cfg, paths["yolo"], tmp_path / "train")
    metrics = evaluate(best, paths["yolo"], cfg.data.image_size, cfg.evaluate, tmp_path / "eval")
    assert metrics["classes"] == 1025 and metrics["test_images"] == 1025
    assert (tmp_path / "eval" / "per_class.csv").read_text().count("\n") == 1 + 1025
    report = export_with_parity(best, paths["yolo"], cfg.data.image_size, cfg.export, tmp_path / "m.onnx",
                                tmp_path / "parity.json")
    assert report["top1_agreement"] == 1.0


def test_a_damaged_checkpoint_is_named_when_resuming(tmp_path):
    from pokedex.train.train import resumable

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(PokedexError, match=r"last.pt cannot be resumed from \(.*\); set train.resume=false"):
        resumable(tmp_path, {})


@pytest.mark.parametrize("former", ["pokedex.models", "pokedex.train.models"])
def test_a_checkpoint_saved_before_models_had_their_floor_still_loads(tmp_path, former):
    """Earlier checkpoints (DVC remotes, old experiments, the committed models) pickled our layers as
    pokedex.models.* (before the package was laid out by stage) or pokedex.train.models.* (before pokedex/model/)."""
    import sys
    import zipfile

    from omegaconf import OmegaConf

    from pokedex.model import layers
    from pokedex.model.load import FORMER_LAYERS_MODULES, load_model

    assert former in FORMER_LAYERS_MODULES
    model = build_model(OmegaConf.create({"task": "classify", "arch": "k210n-cls.yaml", "weights": None}))
    sys.modules[former] = layers  # saved as the old package saved it
    layers.SlimClassify.__module__ = former
    try:
        model.save(str(tmp_path / "old.pt"))
    finally:
        layers.SlimClassify.__module__ = layers.__name__
        del sys.modules[former]
    with zipfile.ZipFile(tmp_path / "old.pt") as saved:
        pickled = b"".join(saved.read(name) for name in saved.namelist() if name.endswith(".pkl"))
    assert f"c{former}\nSlimClassify".encode() in pickled  # the class, by the module it had then
    assert type(load_model(tmp_path / "old.pt").model.model[-1]) is layers.SlimClassify


def test_fine_tuning_from_weights_keeps_the_trained_head(tmp_path, tiny_dataset):
    """model.weights carries the head over: with the learning rate at 0 the fine-tuned head is the checkpoint's own
    (Ultralytics used to rebuild it at random: the YAML's 1025 classes did not match the checkpoint's 4)."""
    import torch

    from pokedex.model.load import load_model
    from pokedex.train.train import fit_head

    quick = ("data=tiny", "train.epochs=1", "train.batch=8", "train.plots=false")
    first = train(make_cfg(*quick), tiny_dataset["yolo"], tmp_path / "first")
    tuned = train(make_cfg(*quick, f"model.weights={first}", "train.lr0=0", "train.warmup_epochs=0"),
                  tiny_dataset["yolo"], tmp_path / "tuned")
    before, after = (load_model(p).model.model[-1].linear for p in (first, tuned))
    assert torch.equal(before.weight, after.weight) and torch.equal(before.bias, after.bias)

    model = load_model(first)  # a dataset with other classes: the known ones keep their rows, a new one starts afresh
    assert fit_head(model, ["0002", "0003", "0007"]) == 2
    head = model.model.model[-1].linear
    assert head.out_features == 3 and model.model.names == {0: "0002", 1: "0003", 2: "0007"}
    assert torch.equal(head.weight[:2], before.weight[1:3].float()) and not head.weight[2].any() and not head.bias[2]
