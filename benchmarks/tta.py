"""Does test-time augmentation pay? The classifier's top-1 on field folders, each picture read whole, with the
softmax averaged over views of it: mirrored, and the picture zoomed in (its centre) or out (on a white margin).

    python benchmarks/tta.py --field ../shared/fieldsets/web149 ../shared/fieldsets/render3d/clean \
        [--model models/train/weights/best.pt] [--zoom 0.85]

One pass of each view over each folder; every rule is an average of those passes, so the rules are compared on
the same pictures with the same model. A rule is worth adding to evaluate and predict only where it beats
"none" on every folder by more than the spread between seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pokedex.data.fieldset import field_set
from pokedex.evaluate.field import class_scores, load_pictures, score
from pokedex.evaluate.views import zoomed
from pokedex.model.load import load_model
from pokedex.model.ultra import trained_size


def rules(model, images: np.ndarray, zoom: float) -> dict[str, np.ndarray]:
    mirrored = images[..., ::-1].copy()
    view = {"whole": class_scores(model, images), "mirror": class_scores(model, mirrored),
            "closer": class_scores(model, zoomed(images, zoom)), "farther": class_scores(model, zoomed(images, 1 / zoom))}
    return {
        "none": view["whole"],
        "flip": (view["whole"] + view["mirror"]) / 2,
        "flip + closer": (view["whole"] + view["mirror"] + view["closer"]) / 3,
        "flip + farther": (view["whole"] + view["mirror"] + view["farther"]) / 3,
        "all four": sum(view.values()) / 4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/train/weights/best.pt"))
    parser.add_argument("--field", type=Path, nargs="+", required=True, help="folders of NNNN/* pictures")
    parser.add_argument("--zoom", type=float, default=0.85, help="share of the side seen closer (its inverse: farther)")
    args = parser.parse_args()
    model = load_model(args.model)
    size = trained_size(model, 96)
    for n, folder in enumerate(args.field):
        found = field_set(folder)
        images, kept, _ = load_pictures(found, size)
        dex_ids = [found.dex_ids[i] for i in kept]
        top1 = {rule: score(s, dex_ids, len(model.names))["metrics"]["top1"] for rule, s in rules(model, images, args.zoom).items()}
        if n == 0:  # the table's header names the rules as rules() does
            print(f"| folder | pictures | {' | '.join(top1)} |\n|---|---|{'---|' * len(top1)}")
        print(f"| {folder} | {len(kept)} | {' | '.join(f'{v:.3f}' for v in top1.values())} |")


if __name__ == "__main__":
    main()
