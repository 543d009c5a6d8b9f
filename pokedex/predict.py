"""Top-k classes of images with a trained model (PyTorch .pt or exported .onnx), through Ultralytics. A classifier
sees each picture resized square, as preprocess resizes the training pictures and evaluate the field sets.

With the enroll stage's output (models/enrolled/) and a .pt classifier, enrolled species are ranked with the
trained classes and an image far from every known species is answered "(no Pokémon)" (pokedex/recognise/openset.py).

With the one-class detector (models/detector/, pokedex/model/detector.py), one answer per picture: the box around
what it finds is cut out (made square with a margin) and the answer comes from that crop or from the whole
picture, whichever the classifier is surer of (pokedex/recognise/views.py: a Pokémon that fills the picture is
often found as parts); where it finds nothing, from the whole picture. `each_box` answers every box on its
own instead (several Pokémon in one picture), and "(no Pokémon)" where it finds none. `tta` reads each view
three times (as it is, mirrored, its centre closer: pokedex/recognise/views.py) and averages the scores.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.boxes import box_from_corners, crop_to_box
from pokedex.data.classes import class_label, national_dex
from pokedex.data.preprocess import MAX_PIXELS, decode, square
from pokedex.model.detector import box_finder, detect
from pokedex.model.load import load_model
from pokedex.recognise.openset import NO_POKEMON, Enrolled
from pokedex.recognise.ranking import NO_DETECTION, NO_DETECTION_LABEL
from pokedex.recognise.scores import class_scores, input_size
from pokedex.recognise.views import crop_is_surer


def class_labels(classes_file: Path | None, model_names: dict[int, str]) -> dict[int, str]:
    """'0025 Pikachu' style labels: from classes.txt when present, else the names stored in the model."""
    if classes_file is not None and classes_file.is_file():
        names = classes_file.read_text(encoding="utf-8").splitlines()
        return {i: class_label(i, n) for i, n in enumerate(names)}
    # a classifier stores its class folders' names: dex ids, named from the shipped table
    dex = national_dex()
    return {i: class_label(i, dex.get(int(n), n) if str(n).isdigit() else n) for i, n in model_names.items()}


def image_files(paths: list[Path]) -> list[Path]:
    """The files given, with a folder standing for every file in it (recursively, sorted)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.exists():
            files.append(path)
        else:
            raise PokedexError(f"{path} does not exist; give image files or folders of images.")
    return files


def open_model(model_path: Path):
    """The model, or one sentence saying why it cannot be used."""
    if not model_path.is_file():
        raise PokedexError(f"model {model_path} does not exist; train one with `dvc repro` or pass --model.")
    try:
        return load_model(model_path)
    except Exception as exc:  # noqa: BLE001 - any loader failure means the same to the user
        raise PokedexError(f"could not load model {model_path} ({type(exc).__name__}: {exc}); pass --model a .pt from "
                           "the train stage or an .onnx from export-onnx.") from None


def predict(images: list[Path], model_path: Path, classes_file: Path | None, imgsz: int | None = None, top: int = 5,
            max_pixels: int = MAX_PIXELS, enrolled: Enrolled | None = None, detector: Path | None = None,
            conf: float = 0.25, each_box: bool = False,
            tta: bool = False) -> Iterator[tuple[str, list[tuple[str, float]] | str]]:
    """For each image, its `top` (label, score) pairs, best first, or the reason it could not be read. With
    `detector`, the image's name says which view answered ("image [box x0,y0,x1,y1]" or "image [whole
    picture]"); with `each_box` too, every box the detector finds is answered ("image [box x0,y0,x1,y1 score]").

    The model and the paths are checked at once; images are decoded as preprocess decodes them (so a 48 KB
    PNG declaring 20000x20000 pixels is refused from its header, never decoded) and predicted one by one.
    With `enrolled` (a .pt classifier only), enrolled species take part and "(no Pokémon)" comes first, with
    the best score, when that score is under the open-set threshold.
    """
    model, files = open_model(model_path), image_files(images)
    if enrolled is not None and (model_path.suffix != ".pt" or model.task != "classify"):
        raise PokedexError(f"enrolled species need the PyTorch classifier (.pt); {model_path} is not one: pass a "
                           ".pt model, or leave the enrolled species out (--no-enrolled).")
    find = None
    if detector is not None:
        found_by = open_model(detector)
        if found_by.task != "detect":
            raise PokedexError(f"--detector {detector} is not a detection model; pass models/detector/weights/best.pt, "
                               "or classify whole pictures (--whole).")
        size = input_size(found_by)
        find = functools.partial(detect, found_by, imgsz=size, conf=conf) if each_box else box_finder(found_by, size, conf)
    if tta and model.task != "classify":
        raise PokedexError(f"--tta averages a classifier's scores; {model_path} is a detection model: leave --tta out.")
    return _predictions(model, files, classes_file, imgsz, top, max_pixels, enrolled, find, each_box, tta)


def _square_ranking(model, rgb: Image.Image, size: int, labels: dict[int, str], enrolled: Enrolled | None,
                    top: int, tta: bool):
    """The picture resized square as preprocess does, scored (with `tta`, averaged over its views); with `enrolled`,
    its species too and the "no Pokémon" rule (its threshold was calibrated on one view)."""
    x = np.asarray(square(rgb, size)).transpose(2, 0, 1)[None]
    scores = class_scores(model, x, enrolled, tta=tta)[0]
    names = [labels[i] for i in range(len(labels))]
    if enrolled is not None:
        names += [class_label(i - 1, n) for i, n in zip(enrolled.ids, enrolled.names)]
    ranked = [(names[int(i)], float(scores[i])) for i in scores.argsort()[::-1][:top]]
    if enrolled is not None and scores.max() < enrolled.calibration.threshold:
        return [(NO_POKEMON, float(scores.max()))] + ranked[: top - 1]
    return ranked


def _ranking(model, rgb: Image.Image, imgsz: int | None, size: int, labels: dict[int, str],
             enrolled: Enrolled | None, top: int, tta: bool = False) -> list[tuple[str, float]]:
    """One picture's `top` (label, score) pairs, best first."""
    if model.task == "classify":  # as evaluate and benchmarks/field.py score it
        return _square_ranking(model, rgb, size, labels, enrolled, top, tta)
    (result,) = model.predict(rgb, verbose=False, **({"imgsz": imgsz} if imgsz else {}))
    # a detector of species (model.task=detect): best confidence per class
    best: dict[int, float] = {}
    for c, score in zip(result.boxes.cls.tolist(), result.boxes.conf.tolist()):
        best[int(c)] = max(best.get(int(c), 0.0), score)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:top] or [(NO_DETECTION, 0.0)]
    return [(labels.get(c, NO_DETECTION_LABEL), s) for c, s in ranked]


def _predictions(model, files: list[Path], classes_file: Path | None, imgsz: int | None, top: int, max_pixels: int,
                 enrolled: Enrolled | None, find=None, each_box: bool = False, tta: bool = False):
    size = imgsz or input_size(model)
    labels = class_labels(classes_file, model.names)
    for image in files:
        rgb = decode(image, max(imgsz or 640, 640), 1, max_pixels)
        if isinstance(rgb, str):
            yield str(image), rgb
            continue
        if find is None:
            yield str(image), _ranking(model, rgb, imgsz, size, labels, enrolled, top, tta)
            continue
        if not each_box:
            whole, box = _ranking(model, rgb, imgsz, size, labels, enrolled, top, tta), find(rgb)
            crop = box and _ranking(model, crop_to_box(rgb, box), imgsz, size, labels, enrolled, top, tta)
            if box is None or not crop_is_surer(whole[0][1], crop[0][1], True):
                yield f"{image} [whole picture]", whole
                continue
            (cx, cy, w, h), (width, height) = box, rgb.size
            corners = ",".join(f"{v:.0f}" for v in ((cx - w / 2) * width, (cy - h / 2) * height,
                                                     (cx + w / 2) * width, (cy + h / 2) * height))
            yield f"{image} [box {corners}]", crop
            continue
        boxes = find([rgb])[0]
        if not len(boxes):
            yield str(image), [(NO_POKEMON, 0.0)]
        for x0, y0, x1, y1, score in boxes.tolist():
            crop = crop_to_box(rgb, box_from_corners(x0, y0, x1, y1, *rgb.size))
            yield (f"{image} [box {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f} {score:.2f}]",
                   _ranking(model, crop, imgsz, size, labels, enrolled, top, tta))


def format_prediction(image: str, ranked: list[tuple[str, float]]) -> str:
    lines = [f"{image}"] + [f"  {rank}. {label:<28} {score:.3f}" for rank, (label, score) in enumerate(ranked, start=1)]
    return "\n".join(lines)
