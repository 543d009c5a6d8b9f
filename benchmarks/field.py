"""Score any classifier (.pt or .onnx) on any field folder of `NNNN/*` pictures, and show where it fails.

    python benchmarks/field.py [--model models/adapted/weights/best.pt] \
        --field ../shared/fieldsets/render3d/clean ../shared/fieldsets/render3d/camera [--crop] \
        [--detector models/detector/weights/best.pt] [--tta] [--enrolled models/enrolled] [--sheet reports/field] \
        [--worst 24]

Prints, for each folder, pictures, species, top-1 and top-5 (a species the model was not trained on counts as
wrong) and, with `--crop`, the same on each picture cut to its Pokémon's box (`NNNN/<stem>.txt`, YOLO format,
made square with an 8 % margin: what an ideal detector would hand the classifier); with `--detector`, the same
through the detector as plain `pokedex predict` answers: the box around what it finds, cut out, or the whole
picture, whichever the classifier is surer of (`found`: how many it found a Pokémon in; where it finds none,
the whole picture answers). `--tta` reads each view as it is, mirrored and its centre closer, and averages the
scores (`pokedex predict --tta`). With the enroll stage's
calibration (`--enrolled`, a .pt model only; default: models/enrolled when it exists) also how many answers
are accepted (not "no Pokémon") and the top-1 among them. `--sheet DIR` writes DIR/<folder>.png: the worst
species (lowest top-1), one row each: the picture, the model's answer, the right answer (a training picture of
each species from data/yolo_dataset when there is one).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from pokedex.data.classes import class_label, national_dex
from pokedex.evaluate.field import score_folder
from pokedex.model.detector import box_finder
from pokedex.recognise.openset import Enrolled
from pokedex.recognise.scores import input_size

from common import add_detector, add_enrolled, add_field, add_model, argument_parser, load, shipped

THUMB = 96


def training_picture(dataset: Path, dex: int) -> Image.Image | None:
    first = next(iter(sorted((dataset / "images" / "train").glob(f"{dex:04d}_*.jpg"))), None)
    return Image.open(first).convert("RGB") if first else None


def contact_sheet(rows: list[tuple[Image.Image, str, Image.Image | None, str, Image.Image | None]], path: Path) -> None:
    """One row per picture: it, the answer's training picture and the right one's, labelled."""
    sheet = Image.new("RGB", (3 * (THUMB + 8) + 8, len(rows) * (THUMB + 30) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (picture, answer, answer_img, right, right_img) in enumerate(rows):
        y = 8 + r * (THUMB + 30)
        for c, (img, text) in enumerate(((picture, "picture"), (answer_img, f"answer: {answer}"), (right_img, f"right: {right}"))):
            x = 8 + c * (THUMB + 8)
            if img is not None:
                sheet.paste(img.resize((THUMB, THUMB)), (x, y))
            draw.text((x, y + THUMB + 2), text[:18], fill="black")
            draw.text((x, y + THUMB + 14), text[18:36], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> None:
    parser = argument_parser(__doc__)
    add_model(parser)
    add_field(parser)
    parser.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's own)")
    parser.add_argument("--crop", action="store_true", help="also score each picture cut to its box (NNNN/<stem>.txt)")
    add_detector(parser)
    parser.add_argument("--tta", action="store_true",
                        help="read each view as it is, mirrored and closer (pokedex predict --tta)")
    add_enrolled(parser)
    parser.add_argument("--dataset", type=Path, default=shipped("yolo_dataset"), help="for the sheet's thumbnails")
    parser.add_argument("--sheet", type=Path, default=None, help="write the worst species' contact sheets here")
    parser.add_argument("--worst", type=int, default=24)
    args = parser.parse_args()

    model = load(args.model)
    imgsz = args.imgsz or input_size(model)
    enrolled = None
    if args.model.suffix == ".pt" and (args.enrolled / "enrolled.json").is_file():
        enrolled = Enrolled.load(args.enrolled)
    n_trained = len(model.names)
    names = national_dex()
    labels = {c: class_label(c, names.get(c + 1, str(c + 1))) for c in range(n_trained)}
    if enrolled is not None:
        labels.update({n_trained + k: class_label(dex - 1, name) for k, (dex, name) in enumerate(zip(enrolled.ids, enrolled.names))})
    print(f"model {args.model} ({n_trained} classes, {imgsz} px){', with the no-Pokémon rule' if enrolled else ''}"
          f"{', test-time augmentation' if args.tta else ''}")
    report = {}
    ways = [("", False, None)] + [(" cut to its box", True, None)] * args.crop
    if args.detector:
        detector = load(args.detector)
        ways.append((" through the detector", False, box_finder(detector, input_size(detector), args.conf)))
    for folder in args.field:
        for suffix, crop, find_box in ways:
            scored = score_folder(model, folder, imgsz, crop, enrolled, find_box=find_box, tta=args.tta)
            if scored is None:
                continue  # no boxes in this folder (render3d/clean): nothing to cut to
            result, images, dex_ids, rejects = scored
            name = f"{folder.name}{suffix}"
            report[name] = result["metrics"] | {"rejected": len(rejects)}
            print(f"{name:<24} " + "  ".join(f"{k} {v}" for k, v in report[name].items()))
            if args.sheet and not suffix:
                worst = sorted(result["per_species"].items(), key=lambda kv: (kv[1], kv[0]))[: args.worst]
                rows = []
                for dex, _ in worst:
                    i = dex_ids.index(dex)
                    answer = int(result["ranked"][i][0])
                    accepted = result["accepted"] is None or bool(result["accepted"][i])
                    picture = Image.fromarray(images[i].transpose(1, 2, 0))
                    answer_dex = (answer + 1) if answer < n_trained else enrolled.ids[answer - n_trained]
                    rows.append((picture, labels.get(answer, "?") if accepted else "(no Pokémon)",
                                 training_picture(args.dataset, answer_dex) if accepted else None,
                                 class_label(dex - 1, names.get(dex, "?")), training_picture(args.dataset, dex)))
                contact_sheet(rows, args.sheet / f"{folder.name}.png")
                print(f"  worst {len(rows)} species: {args.sheet / f'{folder.name}.png'}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
