"""Measure a one-class detector on the test scenes and on any folder of photos with boxes.

    python benchmarks/detector.py [--model models/detector/weights/best.pt] [--dataset data/detect_dataset] \
        [--field ../shared/fieldsets/render3d/camera data/field] [--white ../shared/fieldsets/render3d/clean] \
        [--conf 0.25] [--out reports/detector-field.json]

Prints one row per set: pictures, boxes, mAP50, precision and recall at IoU 0.5 (Ultralytics' validator, at its
best-F1 score), and at `--conf` the share of Pokémon found, the share of boxes that are one, and the share of
pictures without a Pokémon given a box; then, on the test scenes, the share of Pokémon found at `--conf` by how many
share their scene and by the side of their box (where the misses are); and on the validation scenes with one
Pokémon, how the best box errs (its centre off by a share of the true box's side, the log of its width and
height over the true ones, IoU): what `augment.crop_jitter` imitates when the classifier trains on crops. A field
folder is `NNNN/*` photos with `NNNN/<stem>.txt` boxes beside
them (YOLO format); photos without one are left out. Same measures as the train-detector stage
(pokedex.train.detector). On the field folders and on `--white` ones (a Pokémon alone on white, its box where the
picture is not white), also whether the best box and the union of the boxes (what `pokedex predict` cuts out) are
the whole Pokémon, and how often a box is only a part of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from pokedex.data.boxes import MATCH_IOU, intersection, iou, true_boxes
from pokedex.data.fieldset import field_set
from pokedex.data.scenes import foreground_mask
from pokedex.model.detector import detect, evaluate_detector
from pokedex.recognise.scores import input_size

from common import add_field, add_model, argument_parser, load, shipped

SIDES = (0, 40, 64, 96, 10_000)  # box side bins, pixels of the detector's input


def misses(model, dataset: Path, imgsz: int, conf: float) -> dict[str, str]:
    """Share of the test scenes' Pokémon found (a box at IoU >= MATCH_IOU), by Pokémon per scene and box side."""
    images = sorted((dataset / "images" / "test").glob("*.jpg"))
    rows = []  # (side, Pokémon in the scene, found)
    for path, found in zip(images, detect(model, [Image.open(p).convert("RGB") for p in images], imgsz, conf)):
        truth = true_boxes(dataset / "labels" / "test" / f"{path.stem}.txt", imgsz, imgsz)
        rows += [(max(t[2] - t[0], t[3] - t[1]), len(truth), max((iou(t, f) for f in found), default=0) >= MATCH_IOU)
                 for t in truth]
    table = np.array(rows, np.float32).reshape(-1, 3)
    groups = {f"{k} per scene": table[:, 1] == k for k in (1, 2, 3)}
    groups |= {f"side {lo}-{hi} px": (table[:, 0] >= lo) & (table[:, 0] < hi) for lo, hi in zip(SIDES, SIDES[1:])}
    return {name: f"{table[m, 2].mean():.3f} of {int(m.sum())}" for name, m in groups.items() if m.any()}


def box_errors(model, dataset: Path, imgsz: int, conf: float, split: str = "validation") -> dict[str, str]:
    """How the best box errs on the split's scenes that hold one Pokémon and where the detector finds one."""
    errors = []  # dx, dy (shares of the true side), log w, log h (over the truth), IoU
    images = sorted((dataset / "images" / split).glob("*.jpg"))
    for path, found in zip(images, detect(model, [Image.open(p).convert("RGB") for p in images], imgsz, conf)):
        truth = true_boxes(dataset / "labels" / split / f"{path.stem}.txt", imgsz, imgsz)
        if len(truth) != 1 or not len(found):
            continue
        (t, b), w, h = (truth[0], found[0]), truth[0][2] - truth[0][0], truth[0][3] - truth[0][1]
        errors.append(((b[0] + b[2] - t[0] - t[2]) / 2 / w, (b[1] + b[3] - t[1] - t[3]) / 2 / h,
                       np.log((b[2] - b[0]) / w), np.log((b[3] - b[1]) / h), iou(t, b)))
    table = np.array(errors, np.float64).reshape(-1, 5)
    return {name: f"sd {col.std():.3f}, median {np.median(col):.3f}, mean {col.mean():.3f} ({len(col)} scenes)"
            for name, col in zip(("centre x", "centre y", "log width", "log height", "IoU"), table.T)}


def inside(part: np.ndarray, whole: np.ndarray) -> float:
    """Share of box `part`'s area inside box `whole` (x0, y0, x1, y1)."""
    return intersection(part, whole) / max(1e-9, (part[2] - part[0]) * (part[3] - part[1]))


def wholeness(model, pictures: list[Image.Image], truths: list[np.ndarray], imgsz: int,
              conf: float) -> dict[str, float]:
    """On pictures of one Pokémon each: how often the best box, and the union of the boxes (what the detector path
    cuts out), is the Pokémon (IoU >= 0.5), and how often a box is a part of it (at least 80 % inside it, less
    than half its area), or the best box is."""
    rows = []  # best whole, union whole, a part box, best box a part, none found
    for found, truth in zip(detect(model, pictures, imgsz, conf), truths):
        t = truth[0]
        area = (t[2] - t[0]) * (t[3] - t[1])
        part = [inside(b, t) >= 0.8 and (b[2] - b[0]) * (b[3] - b[1]) < 0.5 * area for b in found[:, :4]]
        union = (found[:, 0].min(), found[:, 1].min(), found[:, 2].max(), found[:, 3].max()) if len(found) else None
        rows.append((len(found) > 0 and iou(t, found[0, :4]) >= MATCH_IOU,
                     union is not None and iou(t, union) >= MATCH_IOU,
                     any(part), bool(part) and part[0], len(found) == 0))
    shares = np.array(rows, np.float64).mean(axis=0)
    return {"pictures": len(rows)} | {name: round(float(v), 3) for name, v in zip(
        ("best box is it", "union is it", "a box is a part", "best box is a part", "no box"), shares)}


def one_pokemon_pictures(folder: Path, white: bool) -> tuple[list[Image.Image], list[np.ndarray]]:
    """A field folder's pictures of one Pokémon with its box: from NNNN/<stem>.txt, or with `white` from where
    the picture is not white (a Pokémon alone on white)."""
    found = field_set(folder)
    pictures, truths = [], []
    for path, box in zip(found.paths, found.boxes):
        picture = Image.open(path).convert("RGB")
        if white:
            ys, xs = np.nonzero(foreground_mask(np.asarray(picture)) >= 0.5)
            if not len(xs):
                continue
            truth = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        elif box is None:
            continue
        else:
            truth = true_boxes(path.with_suffix(".txt"), *picture.size)
        if len(truth) == 1:
            pictures.append(picture)
            truths.append(truth)
    return pictures, truths


COLUMNS = ("images", "boxes", "map50", "precision", "recall", "recall_at_conf", "precision_at_conf", "empty_with_box")


def main() -> None:
    parser = argument_parser(__doc__)
    add_model(parser, "detector_weights", "the one-class detector")
    parser.add_argument("--dataset", type=Path, default=shipped("detect_dataset"))
    add_field(parser, required=False)
    parser.add_argument("--white", type=Path, nargs="*", default=[],
                        help="folders of NNNN/* pictures of one Pokémon alone on white (its box: where it is not "
                             "white)")
    parser.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's own)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    imgsz = args.imgsz or input_size(load(args.model))
    cfg = OmegaConf.create({"data": {"image_size": imgsz}, "conf": args.conf})
    report = {"test scenes": evaluate_detector(args.model, args.dataset, cfg)["test"]}
    for folder in args.field:
        report[str(folder)] = evaluate_detector(args.model, None, cfg, folder)["field"]
    print(f"detector {args.model} ({imgsz} px, conf {args.conf})\n")
    print("| set | " + " | ".join(COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 1))
    for name, figures in report.items():
        cells = [str(figures.get(c)) for c in COLUMNS] if isinstance(figures, dict) else [figures] + [""] * (len(COLUMNS) - 1)
        print(f"| {name} | " + " | ".join(cells) + " |")
    sets = [(f, False) for f in args.field] + [(f, True) for f in args.white]
    if sets:
        print("\nWhole Pokémon or parts, on pictures of one Pokémon:\n")
        whole = {str(f): wholeness(load(args.model), *one_pokemon_pictures(f, white), imgsz, args.conf)
                 for f, white in sets}
        names = list(next(iter(whole.values())))
        print("| set | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1))
        print("\n".join(f"| {f} | " + " | ".join(str(v) for v in row.values()) + " |" for f, row in whole.items()))
        report["whole or parts"] = whole
    found = misses(load(args.model), args.dataset, imgsz, args.conf)
    print("\nPokémon of the test scenes found at IoU 0.5:\n\n| Pokémon | found |\n|---|---|")
    print("\n".join(f"| {name} | {share} |" for name, share in found.items()))
    report["test scenes found by"] = found
    errors = box_errors(load(args.model), args.dataset, imgsz, args.conf)
    print("\nThe best box on validation scenes with one Pokémon:\n\n| error | spread |\n|---|---|")
    print("\n".join(f"| {name} | {spread} |" for name, spread in errors.items()))
    report["validation best-box errors"] = errors
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
