"""Which view the detector path should answer from: the whole picture, the detector's best box, the box around
all its boxes, or a combination; each rule's top-1 on field folders, from one pass of both models.

    python benchmarks/views.py --field ../shared/fieldsets/web149 ../shared/fieldsets/render3d/clean \
        ../shared/fieldsets/render3d/camera [--model models/train/weights/best.pt] \
        [--detector models/detector/weights/best.pt] [--conf 0.25]

Every picture is read whole and, where the detector finds a box, cut to its best box and to the union of its
boxes (square, 8 % margin, at the picture's resolution); the classifier's softmax on each view is combined by
each rule; the last rules average each of the kept rule's two views with its mirror image and its centre seen
closer (test-time augmentation, as benchmarks/tta.py on whole pictures). The kept rule (pokedex/evaluate/views.py)
is the one `pokedex predict`, evaluate and benchmarks/field.py use; docs/detector.md has the table. Per folder
it also counts the pictures only the kept rule and only the whole picture (`--whole`) answer right, with a
two-sided sign test: whether "never worse than the whole picture" is a difference or chance.
"""

from __future__ import annotations

import argparse
from math import comb
from pathlib import Path

import numpy as np

from pokedex.data.boxes import box_from_corners, crop_to_box
from pokedex.data.fieldset import field_set
from pokedex.data.preprocess import MAX_PIXELS, decode, square
from pokedex.evaluate.field import class_scores
from pokedex.evaluate.views import surer_scores, tta_views
from pokedex.model.detector import detect
from pokedex.model.load import load_model
from pokedex.model.ultra import trained_size

KEPT, WHOLE = "surer of whole, union (kept)", "whole picture"  # the rule pokedex predict uses, and --whole


def views(classifier, detector, folder: Path, conf: float):
    """Softmax on the whole picture, the best box and the union of boxes; the best box's and the union's shares of
    the picture (0 where none was found); the truth."""
    size, found_at = trained_size(classifier, 96), trained_size(detector, 128)
    found = field_set(folder)
    pictures: dict[str, list[np.ndarray]] = {"whole": [], "best": [], "union": []}
    area, union_area, truth = [], [], []
    for path, dex in zip(found.paths, found.dex_ids):
        rgb = decode(path, size * 4, 1, MAX_PIXELS)
        if isinstance(rgb, str):
            continue
        boxes = detect(detector, [rgb], found_at, conf)[0]
        whole = rgb
        best = crop_to_box(rgb, box_from_corners(*boxes[0, :4], *rgb.size)) if len(boxes) else whole
        union = crop_to_box(rgb, box_from_corners(boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(),
                                                  boxes[:, 3].max(), *rgb.size)) if len(boxes) else whole
        for name, picture in (("whole", whole), ("best", best), ("union", union)):
            pictures[name].append(np.asarray(square(picture, size)))
        x0, y0, x1, y1 = boxes[0, :4] if len(boxes) else (0, 0, 0, 0)
        area.append((x1 - x0) * (y1 - y0) / (rgb.width * rgb.height))
        u0, v0, u1, v1 = (*boxes[:, :2].min(0), *boxes[:, 2:4].max(0)) if len(boxes) else (0, 0, 0, 0)
        union_area.append((u1 - u0) * (v1 - v0) / (rgb.width * rgb.height))
        truth.append(dex - 1)
    scores = {}
    for name, p in pictures.items():
        images = np.stack(p).transpose(0, 3, 1, 2).copy()
        if name == "best":
            scores[name] = class_scores(classifier, images)
            continue
        for suffix, view in zip(("", " mirrored", " closer"), tta_views(images)):  # the kept rule's two views
            scores[f"{name}{suffix}"] = class_scores(classifier, view)
    return scores, np.array(area), np.array(union_area), np.array(truth)


def rules(s: dict[str, np.ndarray], area: np.ndarray, union_area: np.ndarray) -> dict[str, np.ndarray]:
    """Each rule's scores; a row of NaN is "no Pokémon" (always wrong)."""
    whole, best, union = s["whole"], s["best"], s["union"]
    three, boxed = np.stack([whole, best, union]), area > 0
    return {
        WHOLE: whole,
        "best box, none: no Pokémon": np.where(boxed[:, None], best, np.nan),
        "best box, none: whole": best,
        **{f"best box if under {t:.0%} of the picture, else whole": np.where(((area < t) & boxed)[:, None], best, whole)
           for t in (0.25, 0.4, 0.6)},
        "union of boxes, none: whole": union,
        "mean whole + best": (whole + best) / 2,
        "product whole x best": np.log(whole + 1e-9) + np.log(best + 1e-9),
        "surer of whole, best": surer_scores(whole, best, boxed),
        "surer of whole, best, union": three[three.max(2).argmax(0), np.arange(len(whole))],
        "mean whole + best + union": three.mean(0),
        "mean whole + union": (whole + union) / 2,
        KEPT: surer_scores(whole, union, boxed),
        **{f"surer of whole, union if the union covers under {t:.0%} of the picture, else whole":
           surer_scores(whole, union, boxed & (union_area < t)) for t in (0.5, 0.7)},
        "surer of whole, union; the union surer by a factor 1.5": surer_scores(whole, union / 1.5, boxed),
        **{f"surer of whole, union; each {name}": surer_scores(tta(s, "whole", extra), tta(s, "union", extra), boxed)
           for name, extra in TTA.items()},
    }


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's, on the pictures the two rules answer differently): the chance of a
    split at least this uneven if either rule were as likely to be the right one."""
    n, low = wins + losses, min(wins, losses)
    return min(1.0, 2 * sum(comb(n, k) for k in range(low + 1)) / 2 ** n) if n else 1.0


TTA = {"and mirrored": ["mirrored"], "mirrored and closer": ["mirrored", "closer"]}  # views averaged with each one


def tta(s: dict[str, np.ndarray], view: str, extra: list[str]) -> np.ndarray:
    """A view's softmax averaged with its mirrored and closer versions."""
    return np.mean([s[view]] + [s[f"{view} {e}"] for e in extra], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", type=Path, nargs="+", required=True)
    parser.add_argument("--model", type=Path, default=Path("models/train/weights/best.pt"))
    parser.add_argument("--detector", type=Path, default=Path("models/detector/weights/best.pt"))
    parser.add_argument("--conf", type=float, default=0.25)
    args = parser.parse_args()
    classifier, detector = load_model(args.model), load_model(args.detector)
    table: dict[str, dict[str, float]] = {}
    for folder in args.field:
        scores, area, union_area, truth = views(classifier, detector, folder, args.conf)
        right = {}
        for rule, combined in rules(scores, area, union_area).items():
            right[rule] = (np.nan_to_num(combined, nan=-1.0).argmax(1) == truth) & ~np.isnan(combined).any(1)
            table.setdefault(rule, {})[folder.name] = float(right[rule].mean())
        kept_only, whole_only = int((right[KEPT] & ~right[WHOLE]).sum()), int((right[WHOLE] & ~right[KEPT]).sum())
        print(f"{folder}: {len(truth)} pictures, a box found in {(area > 0).mean():.3f}, median best box "
              f"{np.median(area[area > 0]):.3f} of the picture, the union {np.median(union_area[area > 0]):.3f}; "
              f"right by the kept rule only {kept_only}, by the whole picture only {whole_only} (two-sided sign test "
              f"p = {sign_test(kept_only, whole_only):.2f})", flush=True)
    names = [f.name for f in args.field]
    print("| answer from | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for rule, row in table.items():
        print(f"| {rule} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")


if __name__ == "__main__":
    main()
