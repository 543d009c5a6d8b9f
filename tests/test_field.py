"""Field evaluation (pokedex/evaluate/field.py): which files count as pictures, boxes and crops, the figures' arithmetic,
and "not measured" for an empty folder. A trained model is scored in tests/test_model_stages.py."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from PIL import Image

from pokedex.data.boxes import crop_to_box
from pokedex.data.fieldset import field_set
from pokedex.evaluate.field import field_evaluation, load_pictures, score
from pokedex.model.build import build_model
from pokedex.recognise.openset import Calibration, Enrolled
from pokedex.recognise.scores import class_scores
from pokedex.recognise.views import crop_is_surer, surer_scores, tta_views

from .conftest import make_cfg


def fixture_folder(root):
    (root / "0001").mkdir(parents=True)
    (root / "0002").mkdir()
    (root / "9999").mkdir()
    Image.new("RGB", (80, 40), (200, 30, 30)).save(root / "0001" / "desk.jpg")
    (root / "0001" / "desk.txt").write_text("0 0.5 0.5 0.25 0.5\n")  # its box: 20x20 px in the middle
    Image.new("RGBA", (30, 30), (0, 0, 0, 0)).save(root / "0002" / "card.png")
    (root / "0002" / "notes.txt").write_text("no picture beside me")
    Image.new("RGB", (30, 30)).save(root / "stray.jpg")
    Image.new("RGB", (30, 30)).save(root / "9999" / "x.jpg")
    (root / "README.md").write_text("how to collect photos")
    return root


def test_pictures_boxes_and_rejects_of_a_field_folder(tmp_path):
    found = field_set(fixture_folder(tmp_path / "field"))
    assert [p.relative_to(found.root).as_posix() for p in found.paths] == ["0001/desk.jpg", "0002/card.png", "0002/notes.txt"]
    assert found.dex_ids == [1, 2, 2] and found.boxes == [(0.5, 0.5, 0.25, 0.5), None, None]
    images, kept, _ = load_pictures(found, 32)
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8 and kept == [0, 1]
    assert images[1].min() == 255  # transparency on white, as preprocess does
    reasons = dict(found.rejects)
    assert set(reasons) == {"stray.jpg", "9999/x.jpg", "0002/notes.txt"}
    assert reasons["0002/notes.txt"].startswith("not an image") and reasons["stray.jpg"].startswith("not inside a class folder")
    cropped = field_set(tmp_path / "field")
    images, kept, _ = load_pictures(cropped, 32, crop=True)
    assert kept == [0] and dict(cropped.rejects)["0002/card.png"].startswith("no box")


def test_the_ideal_crop_is_the_box_made_square_with_a_margin():
    img = Image.new("RGB", (100, 50))
    crop = crop_to_box(img, (0.5, 0.5, 0.2, 0.4), margin=0.1)  # 20x20 px -> 24x24 around the centre
    assert crop.size == (24, 24)
    assert crop_to_box(img, (0.1, 0.5, 0.2, 0.2), margin=0.0).size == (20, 20)  # leaving the frame: still square


def test_field_figures_count_unknown_species_as_wrong_and_answers_under_the_threshold_as_refused():
    scores = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.3, 0.6, 0.0], [0.2, 0.5, 0.3, 0.0], [0.05, 0.05, 0.1, 0.8]])
    result = score(scores[:, :3], [1, 3, 9, 3], n_trained=3)
    assert result["metrics"] == {"images": 4, "species": 3, "unknown_species": 1, "top1": 0.75, "top5": 0.75}
    assert result["per_species"] == {1: 1.0, 3: 1.0, 9: 0.0}
    enrolled = Enrolled([9], ["Nine"], np.zeros((1, 2), np.float32), np.zeros(1, int), Calibration(1.0, 0.0, 0.55, 0.1),
                        np.zeros(2, np.float32))
    result = score(scores, [1, 3, 3, 9], n_trained=3, enrolled=enrolled)  # species 9 is enrolled: column 3
    assert result["metrics"]["top1"] == 0.75  # the third answer is wrong, and under the threshold: refused
    assert result["metrics"]["accepted"] == 0.75 and result["metrics"]["top1_accepted"] == 1.0


def test_an_empty_field_folder_is_not_measured(tmp_path):
    (tmp_path / "field").mkdir()
    (tmp_path / "field" / "README.md").write_text("put photos here")
    metrics = field_evaluation(None, tmp_path / "field", 32, 4, None, {}, tmp_path / "out")
    assert list(metrics) == ["field"] and metrics["field"].startswith("not measured")
    json.dumps(metrics)
    with (tmp_path / "out" / "field_per_class.csv").open() as f:
        assert list(csv.reader(f)) == [["class", "images", "top1"]]


def test_a_detectors_box_replaces_the_photos_own_and_the_surer_view_answers(tmp_path):
    found = field_set(fixture_folder(tmp_path / "field"))
    seen = []

    def find_box(picture):  # stands for pokedex.model.detector.box_finder: the left half of 0001/desk.jpg, nothing in 0002
        seen.append(picture.size)
        return (0.25, 0.5, 0.5, 1.0) if picture.size == (80, 40) else None

    images, kept, detected = load_pictures(found, 32, find_box=find_box)
    assert kept == [0, 1] and found.missed == {1} and seen == [(80, 40), (30, 30)]
    # the crop handed on is the found box (40x40, square, 8 % margin), not the photo's own 20x20 box
    expected = crop_to_box(Image.open(tmp_path / "field" / "0001" / "desk.jpg").convert("RGB"), (0.25, 0.5, 0.5, 1.0))
    assert np.array_equal(detected[0], np.asarray(expected.resize((32, 32), Image.Resampling.BICUBIC)).transpose(2, 0, 1))
    assert np.array_equal(detected[1], images[1])  # nothing found: the whole picture stands in
    whole = Image.open(tmp_path / "field" / "0001" / "desk.jpg").convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
    assert np.array_equal(images[0], np.asarray(whole).transpose(2, 0, 1))

    # per picture, the view the classifier is surer of; never the crop where nothing was found
    whole_scores = np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    crop_scores = np.array([[0.1, 0.9], [0.9, 0.1], [0.45, 0.55]])
    boxed = np.array([True, False, True])
    assert crop_is_surer(whole_scores.max(1), crop_scores.max(1), boxed).tolist() == [True, False, True]
    assert np.array_equal(surer_scores(whole_scores, crop_scores, boxed), crop_scores[[0, 1, 2]] * [[1], [0], [1]]
                          + whole_scores * [[0], [1], [0]])

    scores = np.array([[0.9, 0.1], [0.1, 0.9]])
    result = score(scores, [1, 2], n_trained=2, found=np.array([True, False]))
    assert result["metrics"]["top1"] == 1.0 and result["metrics"]["found"] == 0.5  # the whole picture answered
    enrolled = Enrolled([], [], np.zeros((0, 2), np.float32), np.zeros(0, int), Calibration(1.0, 0.0, 0.5, 0.1),
                        np.zeros(2, np.float32))
    result = score(np.array([[0.9, 0.1], [0.4, 0.3]]), [1, 2], n_trained=2, enrolled=enrolled)  # 0.4: under 0.5
    assert result["metrics"]["accepted"] == 0.5 and result["metrics"]["top1_accepted"] == 1.0


def test_test_time_augmentation_averages_the_picture_its_mirror_and_its_centre_closer():
    bar = np.full((1, 3, 20, 20), 255, np.uint8)
    bar[0, :, 6:14, 2:6] = 0  # a dark bar left of the centre
    whole, mirrored, closer = tta_views(bar)
    assert np.array_equal(whole, bar) and np.array_equal(mirrored, bar[..., ::-1])
    assert closer.shape == bar.shape and (closer[0, 0] < 128).sum() > (bar[0, 0] < 128).sum()  # seen closer: larger

    model = build_model(make_cfg("data=tiny").model)
    torch.manual_seed(0)
    for layer in model.model.modules():  # random weights that keep the signal: scores differ between pictures
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(layer.weight)
    pictures = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    averaged = class_scores(model, pictures, tta=True)
    assert np.allclose(averaged, np.mean([class_scores(model, view) for view in tta_views(pictures)], axis=0))
    assert np.abs(averaged - class_scores(model, pictures)).max() > 1e-5  # the scores are about 1/1025
    # where every view is the same picture (a plain one: mirrored and closer it is unchanged), the same answer
    plain = np.stack([np.full((3, 32, 32), v, np.uint8) for v in (30, 140, 250)])
    assert np.allclose(class_scores(model, plain, tta=True), class_scores(model, plain), atol=1e-6)
