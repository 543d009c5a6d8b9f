"""Measure a one-class detector on the test scenes and on any folder of photos with boxes.

    python benchmarks/detector.py [--model models/detector/weights/best.pt] [--dataset data/detect_dataset] \
        [--field ../shared/fieldsets/render3d/camera data/field] [--conf 0.25] [--out reports/detector-field.json]

Prints one row per set: pictures, boxes, mAP50, precision and recall at IoU 0.5 (Ultralytics' validator, at its
best-F1 score), and at `--conf` the share of Pokémon found, the share of boxes that are one, and the share of
pictures without a Pokémon given a box. A field folder is `NNNN/*` photos with `NNNN/<stem>.txt` boxes beside
them (YOLO format); photos without one are left out. Same measures as the train-detector stage
(pokedex.detector).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from pokedex.detector import evaluate_detector
from pokedex.ultra import load_model, trained_size

COLUMNS = ("images", "boxes", "map50", "precision", "recall", "recall_at_conf", "precision_at_conf", "empty_with_box")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/detector/weights/best.pt"))
    parser.add_argument("--dataset", type=Path, default=Path("data/detect_dataset"))
    parser.add_argument("--field", type=Path, nargs="*", default=[])
    parser.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's training size)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    imgsz = args.imgsz or trained_size(load_model(args.model), 128)
    cfg = OmegaConf.create({"data": {"image_size": imgsz}, "conf": args.conf})
    report = {"test scenes": evaluate_detector(args.model, args.dataset, cfg)["test"]}
    for folder in args.field:
        report[str(folder)] = evaluate_detector(args.model, None, cfg, folder)["field"]
    print(f"detector {args.model} ({imgsz} px, conf {args.conf})\n")
    print("| set | " + " | ".join(COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 1))
    for name, figures in report.items():
        cells = [str(figures.get(c)) for c in COLUMNS] if isinstance(figures, dict) else [figures] + [""] * (len(COLUMNS) - 1)
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
