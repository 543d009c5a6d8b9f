"""Field evaluation: a model scored on photos of Pokémon taken by people, never on the training data's kind.

A field folder is `NNNN/*` (NNNN = Pokédex id), pictures of any size and format; `NNNN/<stem>.txt` beside a
picture is its Pokémon's box in YOLO format (`0 cx cy w h`, fractions), used only to measure the ideal crop.
Nothing in it is used for training or calibration. Evaluate scores `data/field/` (the user's own photos), and
`benchmarks/field.py` scores any such folder with any model (.pt or .onnx).

Each picture is decoded as preprocess decodes training images (EXIF, transparency on white) and resized to
the model's square input, as the K210's camera frame is. A file that is no usable picture is listed with its
reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pokedex.core.io import write_csv
from pokedex.data.boxes import Box, crop_to_box
from pokedex.data.fieldset import FieldSet, field_set
from pokedex.data.preprocess import MAX_PIXELS, decode, square
from pokedex.evaluate.accuracy import accuracy_metrics, ranked_by_score
from pokedex.recognise.openset import Enrolled
from pokedex.recognise.scores import class_scores
from pokedex.recognise.views import surer_scores


def load_pictures(found: FieldSet, size: int, crop: bool = False, max_pixels: int = MAX_PIXELS,
                  find_box: Callable[[Image.Image], Box | None] | None = None
                  ) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """uint8 NCHW pictures at the model's input size, the indices (into found.paths) they are, and with
    `find_box` (the detector, pokedex.model.detector.box_finder) each picture cut to the box it finds, the whole
    picture standing in where it finds none (those indices go to found.missed). Unreadable files (and, with
    `crop`, pictures without a box) go to found.rejects; `crop` cuts each picture to its own box."""
    wholes, crops, kept = [], [], []

    def shrunk(picture: Image.Image) -> np.ndarray:
        return np.asarray(square(picture, size))

    for i, path in enumerate(found.paths):
        # a crop needs the picture's own pixels: JPEGs are decoded at a reduced scale that still covers 4x the input
        rgb = decode(path, size * (4 if crop or find_box else 1), 1, max_pixels)
        if isinstance(rgb, str):
            found.rejects.append((path.relative_to(found.root).as_posix(), rgb))
            continue
        if find_box is not None:
            box = find_box(rgb)
            if box is None:
                found.missed.add(i)
            crops.append(shrunk(crop_to_box(rgb, box)) if box is not None else shrunk(rgb))
        elif crop:
            if found.boxes[i] is None:
                found.rejects.append((path.relative_to(found.root).as_posix(), "no box (NNNN/<stem>.txt) to crop to"))
                continue
            rgb = crop_to_box(rgb, found.boxes[i])
        wholes.append(shrunk(rgb))
        kept.append(i)

    def nchw(arrays: list[np.ndarray]) -> np.ndarray:
        return np.stack(arrays).transpose(0, 3, 1, 2).copy() if arrays else np.zeros((0, 3, size, size), np.uint8)

    return nchw(wholes), kept, nchw(crops) if find_box is not None else None


def score(scores: np.ndarray, dex_ids: list[int], n_trained: int, enrolled: Enrolled | None = None,
          found: np.ndarray | None = None) -> dict:
    """top-1/top-5 (a species the model does not know is always wrong), per-species top-1, and with `enrolled`
    how many answers are accepted (not "no Pokémon") and the top-1 among those. `found`: the pictures where the
    detector found a Pokémon, for the share `found`."""
    columns = {dex - 1: dex - 1 for dex in range(1, n_trained + 1)}
    if enrolled is not None:
        columns.update({dex - 1: n_trained + k for k, dex in enumerate(enrolled.ids) if dex > n_trained})  # known: folded
    truth = np.array([columns.get(dex - 1, -1) for dex in dex_ids])
    ranked = ranked_by_score(scores)
    acc = accuracy_metrics(truth, ranked, scores.shape[1])
    species = sorted(set(dex_ids))
    right = np.array([r[0] == t for r, t in zip(ranked, truth)])
    per_species = {dex: float(right[np.array(dex_ids) == dex].mean()) for dex in species}
    metrics = {"images": len(dex_ids), "species": len(species), "unknown_species": sum(columns.get(d - 1) is None for d in species),
               "top1": round(acc["top1"], 4), "top5": round(acc["top5"], 4)}
    if found is not None:
        metrics["found"] = round(float(found.mean()), 4) if len(found) else None
    accepted = None
    if enrolled is not None:
        accepted = scores.max(1) >= enrolled.calibration.threshold
        metrics["accepted"] = round(float(accepted.mean()), 4)
        metrics["top1_accepted"] = round(float(right[accepted].mean()), 4) if accepted.any() else None
    return {"metrics": metrics, "per_species": per_species, "ranked": ranked, "accepted": accepted}


def score_folder(model, folder: Path, imgsz: int, crop: bool = False, enrolled: Enrolled | None = None,
                 trained_only: bool = False, find_box: Callable[[Image.Image], Box | None] | None = None,
                 tta: bool = False):
    """A field folder scored whole, cut to its own boxes (`crop`) or through the detector (`find_box`: each
    picture answered from the whole picture or the detector's crop, whichever the classifier is surer of, as
    `pokedex predict` answers): (score()'s result, pictures, their species, rejects), or None when `crop` is
    asked of a folder without boxes. `trained_only` leaves out species the model lacks; `tta`: each view read
    with test-time augmentation (class_scores)."""
    found = field_set(folder)
    if trained_only:
        known = [i for i, dex in enumerate(found.dex_ids) if dex <= len(model.names)]
        found.paths, found.dex_ids, found.boxes = ([xs[i] for i in known] for xs in (found.paths, found.dex_ids, found.boxes))
    if crop and not any(found.boxes):
        return None
    return _scored(found, [(model, enrolled)], imgsz, crop, find_box, tta)[0]


def score_folder_by(readers: list[tuple[object, Enrolled | None]], folder: Path, imgsz: int,
                    find_box: Callable[[Image.Image], Box | None] | None = None, tta: bool = False) -> list[tuple]:
    """score_folder's result for each (classifier, its enrolled species or None) of `readers`, all reading
    `imgsz` pictures: the folder is decoded, and the detector run, once for all of them."""
    return _scored(field_set(folder), readers, imgsz, False, find_box, tta)


def _scored(found: FieldSet, readers: list[tuple[object, Enrolled | None]], imgsz: int, crop: bool,
            find_box: Callable[[Image.Image], Box | None] | None, tta: bool) -> list[tuple]:
    images, kept, detected = load_pictures(found, imgsz, crop=crop, find_box=find_box)
    dex_ids = [found.dex_ids[i] for i in kept]
    boxed = np.array([i not in found.missed for i in kept], bool) if detected is not None else None
    results = []
    for model, enrolled in readers:
        scores = class_scores(model, images, enrolled, tta=tta)
        if detected is not None:
            scores = surer_scores(scores, class_scores(model, detected, enrolled, tta=tta), boxed)
        results.append((score(scores, dex_ids, len(model.names), enrolled, boxed), images, dex_ids, found.rejects))
    return results


def write_reports(out_dir: Path, per_class: list[tuple], rejects: list[tuple[str, str]]) -> None:
    """field_per_class.csv (species, pictures, top-1) and field_rejects.csv: DVC outputs, written every time."""
    write_csv(out_dir / "field_per_class.csv", ["class", "images", "top1"], per_class)
    write_csv(out_dir / "field_rejects.csv", ["file", "reason"], sorted(rejects))


def not_measured(out_dir: Path, why: str) -> dict:
    """The field figures when there are none: said in words, and the field CSVs written empty."""
    write_reports(out_dir, [], [])
    return {"field": f"not measured: {why}"}


def field_evaluation(model, root: Path, imgsz: int, n_trained: int, enrolled: Enrolled | None, labels: dict[int, str],
                     out_dir: Path, find_box: Callable[[Image.Image], Box | None] | None = None) -> dict:
    """Evaluate's field figures on `root` (data/field): metrics prefixed field_, or 'not measured' when it holds no
    picture; field_per_class.csv (species, pictures, top-1) and field_rejects.csv in out_dir. Besides the whole
    picture: top-1 cut to the photos' own boxes where they have them (`field_top1_box`, on those photos), and
    with `find_box` through the detector as `pokedex predict` answers (`field_top1_detected`, `field_found`)."""
    found = field_set(root)
    images, kept, _ = load_pictures(found, imgsz)
    rows = []
    if len(kept) == 0:
        metrics = {"field": f"not measured: {root} holds no pictures (NNNN/*.jpg: see docs/field.md)"}
    else:
        result = score(class_scores(model, images, enrolled), [found.dex_ids[i] for i in kept], n_trained, enrolled)
        metrics = {f"field_{k}": v for k, v in result["metrics"].items()}
        counts = {dex: found.dex_ids.count(dex) for dex in result["per_species"]}
        rows = [(labels.get(dex - 1, f"{dex:04d}"), counts[dex], round(top1, 4)) for dex, top1 in result["per_species"].items()]
        boxed = score_folder(model, root, imgsz, crop=True, enrolled=enrolled)
        if boxed is not None:
            metrics["field_top1_box"] = boxed[0]["metrics"]["top1"]
        if find_box is not None:
            detected = score_folder(model, root, imgsz, enrolled=enrolled, find_box=find_box)[0]["metrics"]
            metrics.update({"field_top1_detected": detected["top1"], "field_found": detected["found"]})
    write_reports(out_dir, rows, found.rejects)
    if found.rejects:
        metrics["field_rejected"] = len(found.rejects)
    return metrics
