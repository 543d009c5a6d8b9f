"""The detector's data and model: exact boxes, the detection dataset's layout and determinism, a tiny detector."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict
from PIL import Image, ImageDraw

from pokedex.core.errors import PokedexError
from pokedex.data.boxes import at_threshold, crop_to_box, iou, matched
from pokedex.data.detection import write_detection_dataset
from pokedex.data.scenes import compose, compose_with_box, foreground_mask
from pokedex.model.build import build_model
from pokedex.model.detector import box_finder, detect, evaluate_detector
from pokedex.model.load import load_model
from pokedex.predict import predict
from pokedex.recognise.openset import NO_POKEMON
from pokedex.recognise.scores import class_scores
from pokedex.train.detector import detector_view
from pokedex.train.train import train

from .conftest import make_cfg

GREY = (120, 120, 120)


def known_sprite() -> Image.Image:
    """A 40x40 picture: a red disc with a dark outline on white, off-centre."""
    img = Image.new("RGB", (40, 40), "white")
    ImageDraw.Draw(img).ellipse([8, 12, 27, 35], fill=(220, 30, 30), outline=(10, 10, 10), width=2)
    return img


@pytest.mark.parametrize("seed", range(6))
def test_a_composed_pokemons_box_is_where_its_pixels_are(seed):
    scene = Image.new("RGB", (96, 96), GREY)
    image, box = compose_with_box(known_sprite(), scene, np.random.default_rng(seed), (0.4, 1.2))
    # the same draws as compose: training pictures do not change
    assert np.array_equal(np.asarray(image), np.asarray(compose(known_sprite(), scene, np.random.default_rng(seed), (0.4, 1.2))))
    changed = np.abs(np.asarray(image, np.int16) - np.int16(GREY)).max(axis=2) > 60
    ys, xs = np.nonzero(changed)
    if box is None:  # the whole Pokémon left the frame
        assert not changed.any()
        return
    truth = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert all(abs(a - b) <= 1 for a, b in zip(box, truth)), (box, truth)
    assert 0 <= box[0] < box[2] <= 96 and 0 <= box[1] < box[3] <= 96


def detector_cfg(**data):
    cfg = make_cfg("data=tiny", "debug=quick")
    return OmegaConf.merge(cfg, {"detector": {"data": data}}) if data else cfg


def read_rows(dataset: Path) -> list[dict]:
    with open(dataset / "boxes.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_detection_dataset_layout_boxes_splits_and_determinism(tmp_path, tiny_dataset):
    cfg = detector_cfg(scenes={"train": 30, "validation": 8, "test": 10}, empty=0.2, several=0.3)
    boxes = write_detection_dataset(tiny_dataset["yolo"], tmp_path / "a", cfg.detector.data)
    a = tmp_path / "a"
    for split, n in (("train", 30), ("validation", 8), ("test", 10)):
        assert len(list((a / "images" / split).glob("*.jpg"))) == len(list((a / "labels" / split).glob("*.txt"))) == n
    assert "pokemon" in (a / "data.yaml").read_text()
    rows = read_rows(a)
    split_of = {row["image"]: row["split"] for row in csv.DictReader(open(tiny_dataset["yolo"] / "splits.csv"))}
    per_image: dict[str, list[dict]] = {}
    for row in rows:
        per_image.setdefault(row["image"], []).append(row)
        if row["species"]:  # each Pokémon comes from the same split of the classifier's data
            assert split_of[row["picture"]] == row["split"] and row["picture"].startswith(row["species"])
    assert len(per_image) == 48 and sum(boxes.values()) == sum(1 for r in rows if r["species"])
    counts = {len([r for r in found if r["species"]]) for found in per_image.values()}
    assert counts >= {0, 1} and counts & {2, 3}, counts  # scenes without a Pokémon, with one, with several
    size = int(cfg.detector.data.image_size)
    for image, found in per_image.items():
        label = (a / "labels" / image).with_suffix(".txt").read_text().split("\n")[:-1]
        truth = [tuple(int(v) for v in r["box"].split()) for r in found if r["species"]]
        assert len(label) == len(truth)
        for line, (x0, y0, x1, y1) in zip(label, truth):
            cls, cx, cy, w, h = line.split()
            assert cls == "0" and abs(float(cx) * size - (x0 + x1) / 2) < 0.01 and abs(float(w) * size - (x1 - x0)) < 0.01
        for i, first in enumerate(truth):  # several Pokémon are not piled onto each other
            assert all(iou(first, other) <= 0.2 for other in truth[i + 1:])

    write_detection_dataset(tiny_dataset["yolo"], tmp_path / "b", cfg.detector.data)
    digest = lambda root: hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()  # noqa: E731
    assert digest(a) == digest(tmp_path / "b")


def test_close_ups_fill_the_frame_with_the_pokemon_itself_and_leave_other_scenes_alone(tmp_path, tiny_dataset):
    scenes = {"train": 12, "validation": 4, "test": 4}
    plain = detector_cfg(scenes=scenes, empty=0.0, several=0.0)
    close = detector_cfg(scenes=scenes, empty=0.0, several=0.0, close_up=1.0, close_up_scale=[0.8, 0.9])
    write_detection_dataset(tiny_dataset["yolo"], tmp_path / "plain", plain.detector.data)
    write_detection_dataset(tiny_dataset["yolo"], tmp_path / "close", close.detector.data)
    size = int(plain.detector.data.image_size)

    def sides(root: Path, split: str) -> list[int]:
        return [max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in
                (tuple(int(v) for v in r["box"].split()) for r in read_rows(root) if r["split"] == split)]
    # the Pokémon's own box (not its picture with the sprite's white margin) is 0.8-0.9 of the frame's side, give
    # or take what a turn of up to 12 degrees adds; drawn by the picture, it is anywhere from 0.3 of it
    close_sides, plain_sides = sides(tmp_path / "close", "train"), sides(tmp_path / "plain", "train")
    assert all(0.75 * size <= side <= 0.95 * size for side in close_sides), close_sides
    assert min(plain_sides) < 0.6 * size, plain_sides
    for split in ("validation", "test"):  # only training scenes are close-ups: the measured scenes stay as they were
        assert all((tmp_path / "close" / "images" / split / p.name).read_bytes() == p.read_bytes()
                   for p in (tmp_path / "plain" / "images" / split).glob("*.jpg"))


@pytest.mark.parametrize("data, named", [
    ({"scenes": {"train": 2, "test": 1}}, "detector.data.scenes"),
    ({"empty": 0.7, "several": 0.5}, "detector.data.empty"),
    ({"image_size": 100}, "detector.data.image_size"),
    ({"scale": [0.8, 0.4]}, "detector.data.scale"),
    ({"close_up": 1.5}, "detector.data.close_up"),
    ({"close_up_scale": [0.9, 2.0]}, "detector.data.close_up"),
])
def test_bad_detector_data_params_are_named(tmp_path, tiny_dataset, data, named):
    cfg = make_cfg("data=tiny", "debug=quick")
    if "scenes" in data:  # a group replaced, not merged: a split left out
        cfg.detector.data.scenes = data.pop("scenes")
    cfg = OmegaConf.merge(cfg, {"detector": {"data": data}})
    with pytest.raises(PokedexError, match=named):
        write_detection_dataset(tiny_dataset["yolo"], tmp_path / "d", cfg.detector.data)


def test_matching_at_iou_half():
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    found = np.array([[1, 1, 10, 10, 0.9], [0, 0, 9, 9, 0.8], [50, 50, 60, 60, 0.7]], np.float32)
    assert matched(found, truth) == 1  # two boxes on the first Pokémon count once; the third finds nothing
    figures = at_threshold([found, np.zeros((0, 5), np.float32)], [truth, np.zeros((0, 4), np.float32)])
    assert figures == {"recall_at_conf": 0.5, "precision_at_conf": round(1 / 3, 4), "empty_with_box": 0.0}


@pytest.mark.slow
def test_a_tiny_detector_finds_a_planted_sprite_on_a_plain_background(tmp_path, tiny_dataset):
    cfg = detector_cfg(image_size=128, scenes={"train": 640, "validation": 8, "test": 16}, empty=0.0, several=0.0,
                       style=0.0)
    with open_dict(cfg):
        cfg.detector.train.update({"epochs": 15, "batch": 32, "mosaic": 0.0, "close_mosaic": 0, "val": False})
    dataset = tmp_path / "detect"
    write_detection_dataset(tiny_dataset["yolo"], dataset, cfg.detector.data)
    best = train(detector_view(cfg), dataset, tmp_path / "run")
    metrics = evaluate_detector(best, dataset, cfg.detector)
    assert set(metrics["test"]) >= {"map50", "precision", "recall", "recall_at_conf", "precision_at_conf"}
    assert "field" not in metrics and metrics["conf"] == cfg.detector.conf

    # a test-split sprite planted on a plain background: its best box overlaps the truth
    sprite = Image.open(sorted((tiny_dataset["yolo"] / "images" / "test").glob("*.jpg"))[0]).convert("RGB").resize((64, 64))
    frame = Image.new("RGB", (128, 128), (90, 140, 200))
    frame.paste(sprite, (40, 16))
    ys, xs = np.nonzero(foreground_mask(np.asarray(sprite)) > 0.5)
    truth = np.array([xs.min() + 40, ys.min() + 16, xs.max() + 41, ys.max() + 17], np.float32)
    boxes = detect(load_model(best), [frame], 128, 0.05)[0]
    assert len(boxes) and matched(boxes[:1], truth[None]) == 1, (boxes[:3], truth)


def built(arch: str, task: str, path: Path, score_bias: float, distance: float | None = None) -> Path:
    """An untrained detector saved as a checkpoint, its head set so that every cell scores sigmoid(score_bias) and
    predicts a box `distance` cells to each side of it: a real model whose output is known."""
    model = build_model(OmegaConf.create({"task": task, "arch": arch, "weights": None}))
    head = model.model.model[-1]
    with torch.no_grad():
        head.cv3[0][-1].weight.zero_()
        head.cv3[0][-1].bias.fill_(score_bias)
        if distance is not None:
            head.cv2[0][-1].weight.zero_()
            head.cv2[0][-1].bias.fill_(distance)
    model.save(str(path))
    return path


@pytest.mark.slow  # trains a classifier a little: an untrained one gives every picture the same scores
def test_predict_answers_from_the_surer_of_whole_and_crop_or_names_each_box(tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", "model=k210n-cls", "train=scratch", "augment=none", "train.epochs=6", "train.batch=8",
                   "train.plots=false", "+train.val=false")
    classifier = train(cfg, tiny_dataset["yolo"], tmp_path / "train")
    everywhere = built("k210n-det.yaml", "detect", tmp_path / "everywhere.pt", score_bias=20.0, distance=1.0)
    nowhere = built("k210n-det.yaml", "detect", tmp_path / "nowhere.pt", score_bias=-20.0)
    picture = tmp_path / "frame.png"  # a test sprite in one corner of a plain frame: crops differ from the whole
    frame = Image.new("RGB", (128, 128), (40, 90, 160))
    frame.paste(Image.open(sorted((tiny_dataset["yolo"] / "images" / "test").glob("*.jpg"))[0]), (0, 0))
    frame.save(picture)

    answers = list(predict([picture], classifier, None, top=3, imgsz=64, detector=everywhere, each_box=True))
    assert len(answers) == 64  # a box around each of the 8x8 cells, none overlapping another by IoU 0.7
    model, rgb = load_model(classifier), Image.open(picture).convert("RGB")
    whole = next(predict([picture], classifier, None, top=3, imgsz=64))[1]
    differs = False
    for name, ranked in answers:
        x0, y0, x1, y1 = (float(v) for v in name.split("[box ")[1].split()[0].split(","))
        assert name.startswith(str(picture)) and x1 - x0 <= 32 and y1 - y0 <= 32  # a cell's box, not the frame
        crop = crop_to_box(rgb, ((x0 + x1) / 256, (y0 + y1) / 256, (x1 - x0) / 128, (y1 - y0) / 128))
        probs = model.predict(crop, imgsz=64, verbose=False)[0].probs.data.numpy()
        expected = probs.argsort()[::-1][:3]
        assert [label[:4] for label, _ in ranked] == [f"{i + 1:04d}" for i in expected]  # the crop was classified
        assert np.allclose([s for _, s in ranked], probs[expected], atol=1e-5)
        differs |= [round(s, 4) for _, s in ranked] != [round(s, 4) for _, s in whole]
    assert differs, (whole, answers[:3])  # and not the whole frame
    assert list(predict([picture], classifier, None, detector=nowhere, each_box=True)) == [(str(picture), [(NO_POKEMON, 0.0)])]

    # one answer per picture: the box around all boxes (here the whole frame's cells: the frame) or the whole
    # picture, whichever the classifier is surer of; nothing found: the whole picture
    (name, ranked), = predict([picture], classifier, None, top=3, imgsz=64, detector=everywhere)
    union = box_finder(load_model(everywhere), 128, 0.25)(rgb)
    crop_to_box(rgb, union).save(tmp_path / "union.png")
    cropped = next(predict([tmp_path / "union.png"], classifier, None, top=3, imgsz=64))[1]
    assert (name, ranked) == ((f"{picture} [box 0,0,128,128]", cropped) if cropped[0][1] > whole[0][1]
                              else (f"{picture} [whole picture]", whole))
    assert list(predict([picture], classifier, None, top=3, imgsz=64, detector=nowhere)) == \
        [(f"{picture} [whole picture]", whole)]
    with pytest.raises(PokedexError, match="is not a detection model"):
        predict([picture], classifier, None, detector=classifier)

    # test-time augmentation: the picture (resized square), its mirror and its centre closer, scores averaged
    (_, ranked), = predict([picture], classifier, None, top=3, imgsz=64, tta=True)
    averaged = class_scores(model, np.asarray(rgb.resize((64, 64), Image.Resampling.BICUBIC)).transpose(2, 0, 1)[None],
                            tta=True)[0]
    assert [label[:4] for label, _ in ranked] == [f"{i + 1:04d}" for i in averaged.argsort()[::-1][:3]]
    assert np.allclose([s for _, s in ranked], np.sort(averaged)[::-1][:3], atol=1e-6)
    with pytest.raises(PokedexError, match="--tta averages a classifier's scores"):
        predict([picture], everywhere, None, tta=True)

    # a picture that is not square is resized square, as evaluate scores the field sets (not centre-cropped)
    wide = rgb.resize((128, 40))
    wide.save(tmp_path / "wide.png")
    (_, ranked), = predict([tmp_path / "wide.png"], classifier, None, top=3, imgsz=64)
    square = class_scores(model, np.asarray(wide.resize((64, 64), Image.Resampling.BICUBIC)).transpose(2, 0, 1)[None])[0]
    assert np.allclose([s for _, s in ranked], np.sort(square)[::-1][:3], atol=1e-6)


def test_a_picture_without_a_pokemon_is_named_only_when_the_rule_accepts_what_predict_would_answer(tmp_path):
    """evaluate's no_pokemon_named_detected: the whole frame or the box's crop (the surer), named only if the
    "no Pokémon" rule accepts it (at threshold 0 it accepts every answer, above 1 none), boxed or not."""
    from pokedex.data.scenes import SCENE_TEST, no_pokemon
    from pokedex.evaluate.evaluate import named_after_detection
    from pokedex.recognise.features import logits_and_features
    from pokedex.recognise.openset import CLASSIFIER_EMBEDDING, Calibration, Enrolled

    build_model(make_cfg("data=tiny").model).save(str(tmp_path / "cls.pt"))
    model = load_model(tmp_path / "cls.pt")
    frames = no_pokemon(SCENE_TEST, 0, 8, 64)
    dim = logits_and_features(model, frames[:1])[1].shape[1]

    def rule(threshold: float) -> Enrolled:
        return Enrolled([], [], np.zeros((0, dim), np.float32), np.zeros(0, int), Calibration(1.0, 0.0, threshold, 0.1),
                        np.zeros(dim, np.float32), dict(CLASSIFIER_EMBEDDING))

    middle = lambda picture: (0.5, 0.5, 0.5, 0.5)  # noqa: E731 - a detector that always finds the centre
    assert named_after_detection(model, frames, 32, rule(0.0), lambda picture: None) == {
        "no_pokemon_boxed": 0.0, "no_pokemon_named_detected": 1.0}  # nothing found: the whole frame answers
    assert named_after_detection(model, frames, 32, rule(1.01), lambda picture: None) == {
        "no_pokemon_boxed": 0.0, "no_pokemon_named_detected": 0.0}
    assert named_after_detection(model, frames, 32, rule(0.0), middle) == {
        "no_pokemon_boxed": 1.0, "no_pokemon_named_detected": 1.0}
    assert named_after_detection(model, frames, 32, rule(1.01), middle) == {
        "no_pokemon_boxed": 1.0, "no_pokemon_named_detected": 0.0}
