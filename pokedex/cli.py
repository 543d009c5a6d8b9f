"""`pokedex` console script: predict with a trained model, compare experiments, compose params.yaml."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pokedex.errors import PokedexError


def _predict(args: argparse.Namespace) -> None:
    os.environ.setdefault("YOLO_VERBOSE", "False")  # stdout carries only the predictions
    from pokedex.predict import format_prediction, predict

    unreadable = total = 0
    for image, ranked in predict(args.images, args.model, args.classes, args.imgsz, args.top):  # printed as they come
        total += 1
        if isinstance(ranked, str):
            unreadable += 1
            print(f"error: {image}: {ranked}", file=sys.stderr, flush=True)
        else:
            print(format_prediction(image, ranked), flush=True)
    if unreadable:
        raise PokedexError(f"{unreadable} of {total} images could not be read (named above); the others were predicted.")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return int(text)


def _params(args: argparse.Namespace) -> None:
    from pokedex.config import compose_params, project_root

    root = project_root()  # the checkout the user stands in, not the one the package was installed from
    compose_params(args.output or root / "params.yaml", args.overrides, root=root)


def _report(args: argparse.Namespace) -> None:
    from pokedex.report import write_report

    print(write_report(args.output, names=args.experiments or None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pokedex", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="print the top classes of each image with names and scores")
    p.add_argument("images", nargs="+", type=Path, help="image files, or folders of them")
    p.add_argument("--model", type=Path, default=Path("models/train/weights/best.pt"),
                   help="PyTorch .pt or exported .onnx (default: %(default)s)")
    p.add_argument("--classes", type=Path, default=Path("data/yolo_dataset/classes.txt"),
                   help="one class name per line, line number = class id (default: %(default)s)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="input size (default: the model's own)")
    p.add_argument("--top", type=positive_int, default=5, help="how many classes to print (default: %(default)s)")
    p.set_defaults(func=_predict)

    c = sub.add_parser("params", help="compose conf/ into params.yaml, as `dvc exp run -S` does")
    c.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=tiny train.epochs=1")
    c.add_argument("--output", type=Path, default=None, help="default: params.yaml of the project you are in")
    c.set_defaults(func=_params)

    r = sub.add_parser("report", help="write a self-contained HTML page comparing the DVC experiments (offline)")
    r.add_argument("experiments", nargs="*", help="experiment names or revs (default: those `dvc exp show` lists)")
    r.add_argument("-o", "--output", type=Path, default=Path("reports/experiments.html"),
                   help="HTML file to write (default: %(default)s)")
    r.set_defaults(func=_report)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except PokedexError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
