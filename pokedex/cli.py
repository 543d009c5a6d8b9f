"""`pokedex` console script: predict with a trained model, enrol species, compare experiments, compose params.yaml."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pokedex.core.errors import PokedexError


def _project_paths() -> dict[str, Path]:
    """paths: of params.yaml in the project the user stands in (the defaults of every command)."""
    from pokedex.core.config import project_paths, project_root

    root = project_root()
    return project_paths(root)


def _trained(args: argparse.Namespace) -> tuple[dict[str, Path], Path, Path | None, Path | None]:
    """What predict and suggest read: the project's paths (none outside a project, with --model), the classifier,
    its classes.txt and the detector (None with --whole): each as given, else as params.yaml names it."""
    try:
        paths = _project_paths() if args.model is None or args.classes is None else {}
    except PokedexError as exc:
        if args.model is None:
            raise PokedexError(f"{exc} Or pass --model (and --classes).") from None
        paths = {}  # a model outside any project: the names stored in it
    classes = args.classes
    if classes is None and paths:
        from pokedex.core.archive import view

        classes = view(paths["yolo_dataset"]) / "classes.txt"
    detector = None
    if not args.whole:
        detector = args.detector or (paths.get("detector_weights") if args.model is None else None)
        detector = detector if detector is not None and (args.detector or detector.is_file()) else None
    return paths, args.model or paths["weights"], classes, detector


def _predict(args: argparse.Namespace) -> None:
    os.environ.setdefault("YOLO_VERBOSE", "False")  # stdout carries only the predictions
    from pokedex.predict import format_prediction, predict

    paths, model, classes, detector = _trained(args)
    enrolled = None
    if not args.no_enrolled:
        from pokedex.recognise.openset import Enrolled

        folder = args.enrolled or (paths.get("enrolled") if args.model is None else None)
        enrolled = Enrolled.load(folder) if folder is not None and (args.enrolled or folder.is_dir()) else None
    unreadable = total = 0
    for image, ranked in predict(args.images, model, classes, args.imgsz, args.top, enrolled=enrolled,
                                 detector=detector, conf=args.conf, each_box=args.each_box, tta=args.tta):
        total += 1
        if isinstance(ranked, str):
            unreadable += 1
            print(f"error: {image}: {ranked}", file=sys.stderr, flush=True)
        else:
            print(format_prediction(image, ranked), flush=True)
    if unreadable:
        raise PokedexError(f"{unreadable} of {total} images could not be read (named above); "
                           "the others were predicted.")


def _suggest(args: argparse.Namespace) -> None:
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from pokedex.label.suggest import suggest, write_package
    from pokedex.model.detector import box_finder
    from pokedex.recognise.scores import input_size
    from pokedex.predict import class_labels, open_model

    _, model_path, classes, detector = _trained(args)
    model = open_model(model_path)
    if model_path.suffix != ".pt" or model.task != "classify":
        raise PokedexError(f"suggest reads the classifier's features: --model {model_path} must be the PyTorch "
                           "classifier (.pt) the train stage writes.")
    find_box = None
    if detector is not None:
        found_by = open_model(detector)
        find_box = box_finder(found_by, input_size(found_by), args.conf)
    suggestions, rejects = suggest(args.folder, model, class_labels(classes, model.names), find_box,
                                   input_size(model))
    table = write_package(args.out, suggestions, rejects, args.show)
    print(f"{len(suggestions)} picture(s) ranked, most useful to label first: {args.out / 'index.html'}")
    if rejects:
        print(f"{len(rejects)} file(s) could not be read: {args.out / 'unreadable.csv'}")
    print(f"fill in the label column of {table}, then: pokedex label {table}")


def _label(args: argparse.Namespace) -> None:
    from pokedex.core.config import project_root, user_pictures
    from pokedex.label.filing import file_labels

    user_dir = args.into or user_pictures(project_root())
    done = file_labels(args.table, user_dir)
    filed = sum(done.filed.values())
    folders = ", ".join(f"{folder}: {n}" for folder, n in sorted(done.filed.items()))
    print(f"filed {filed} picture(s) into {user_dir}" + (f" ({folders})" if folders else ""))
    print(f"{done.already} already there, {done.unlabelled} row(s) not labelled; every row's outcome: {done.report}")
    if done.missing:
        raise PokedexError(f"{len(done.missing)} labelled picture(s) are gone, first {done.missing[0]}; the others "
                           "were filed.")


def _enroll(args: argparse.Namespace) -> None:
    import subprocess

    from pokedex.core.config import project_paths, project_root
    from pokedex.data.preprocess import MAX_PIXELS
    from pokedex.recognise.enroll import add_pictures

    root = project_root()
    added = add_pictures(args.images, args.id, project_paths(root)["enroll_pictures"], MAX_PIXELS)
    print(f"added {len(added)} picture(s) to {added[0].parent}")
    if args.no_repro:
        print("run `dvc repro` to enrol them (only enroll and the stages after it rerun)")
        return
    done = subprocess.run(["dvc", "repro", "enroll"], cwd=root)  # DVC records it: models/enrolled stays in the lock
    if done.returncode:
        raise PokedexError(f"`dvc repro enroll` failed (exit {done.returncode}); see its output above.")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return int(text)


def _params(args: argparse.Namespace) -> None:
    from pokedex.core.config import compose_params, project_root

    root = project_root()  # the checkout the user stands in, not the one the package was installed from
    compose_params(args.output or root / "params.yaml", args.overrides, root=root)


def _exps(args: argparse.Namespace) -> None:
    from pokedex.report import EXP_SHOW_ARGS

    os.execvp("dvc", ["dvc", "exp", "show", "--no-pager", *EXP_SHOW_ARGS, *args.dvc_args])


def _report(args: argparse.Namespace) -> None:
    from pokedex.core.config import project_paths, project_root
    from pokedex.report import write_report

    root = project_root()
    output = args.output or project_paths(root)["experiments_report"]
    page, table = write_report(output, repo=str(root), names=args.experiments or None, field_folders=args.field)
    print(f"{table}\n\n{page}" if table else page)


def _unpack(args: argparse.Namespace) -> None:
    from pokedex.core.archive import archive_of, archived_folders, unpacked
    from pokedex.core.config import project_paths, project_root

    root = project_root()
    for folder in archived_folders(root, project_paths(root)):
        shown = folder.relative_to(root)
        if not archive_of(folder).is_file():
            print(f"{shown}: no archive yet (`dvc pull` or `dvc repro` makes it)")
        else:
            print(f"{shown}: {'unpacked' if unpacked(folder) else 'up to date'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pokedex", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="print the top classes of each image with names and scores")
    p.add_argument("images", nargs="+", type=Path, help="image files, or folders of them")
    p.add_argument("--model", type=Path, default=None,
                   help="PyTorch .pt or exported .onnx (default: paths.weights of params.yaml)")
    p.add_argument("--classes", type=Path, default=None,
                   help="one class name per line, line number = class id (default: the dataset's classes.txt; "
                        "else the names stored in the model)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="input size (default: the model's own)")
    p.add_argument("--top", type=positive_int, default=5, help="how many classes to print (default: %(default)s)")
    p.add_argument("--enrolled", type=Path, default=None,
                   help="the enroll stage's output: enrolled species and the no-Pokémon rule (default: "
                        "paths.enrolled of params.yaml, when it exists and --model is not given)")
    p.add_argument("--no-enrolled", action="store_true", help="trained classes only, no open-set answer")
    p.add_argument("--detector", type=Path, default=None,
                   help="the one-class detector: each Pokémon it finds is cut out and named (default: "
                        "paths.detector_weights of params.yaml, when it exists and --model is not given)")
    p.add_argument("--conf", type=float, default=0.25, help="the detector's score threshold (default: %(default)s)")
    p.add_argument("--whole", action="store_true", help="classify each whole picture, without the detector")
    p.add_argument("--each-box", action="store_true",
                   help="answer every box the detector finds on its own (several Pokémon in a picture), instead of "
                        "one answer per picture from the whole picture or the detector's crop, whichever is surer")
    p.add_argument("--tta", action="store_true",
                   help="read each view as it is, mirrored and its centre closer, and average the scores (3 passes "
                        "a view; web pictures +2 points top-1, docs/detector.md)")
    p.set_defaults(func=_predict)

    s = sub.add_parser("suggest", help="rank a folder of unlabelled pictures by how much a label would teach the "
                       "model, and write them as a package to label (suggestions.csv, index.html)")
    s.add_argument("folder", type=Path, help="the pictures to choose from (any tree of files)")
    s.add_argument("--out", type=Path, required=True, help="folder to write suggestions.csv, index.html and "
                   "unreadable.csv into")
    s.add_argument("--model", type=Path, default=None, help="the classifier .pt (default: paths.weights of params.yaml)")
    s.add_argument("--classes", type=Path, default=None, help="as for predict")
    s.add_argument("--detector", type=Path, default=None, help="as for predict")
    s.add_argument("--conf", type=float, default=0.25, help="the detector's score threshold (default: %(default)s)")
    s.add_argument("--whole", action="store_true", help="read each whole picture, without the detector")
    s.add_argument("--show", type=positive_int, default=300,
                   help="pictures shown in index.html (all are in suggestions.csv; default: %(default)s)")
    s.set_defaults(func=_suggest)

    b = sub.add_parser("label", help="file the labelled rows of a suggestions.csv into data/user/NNNN/")
    b.add_argument("table", type=Path, help="the suggestions.csv, its label column filled in")
    b.add_argument("--into", type=Path, default=None, help="default: data.user.root of params.yaml (data/user)")
    b.set_defaults(func=_label)

    n = sub.add_parser("enroll", help="add a species from a few pictures (data/enroll/NNNN/), then `dvc repro enroll`")
    n.add_argument("images", nargs="+", type=Path, help="pictures of one species")
    n.add_argument("--id", type=int, required=True, help="its Pokédex id, e.g. 0650")
    n.add_argument("--no-repro", action="store_true", help="only copy the pictures")
    n.set_defaults(func=_enroll)

    c = sub.add_parser("params", help="compose conf/ into params.yaml, as `dvc exp run -S` does")
    c.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=tiny train.epochs=1")
    c.add_argument("--output", type=Path, default=None, help="default: params.yaml of the project you are in")
    c.set_defaults(func=_params)

    e = sub.add_parser("exps", help="`dvc exp show` with the key metrics and only the params that differ; "
                       "other `dvc exp show` options pass through (e.g. --md)")
    e.set_defaults(func=_exps)

    r = sub.add_parser("report", help="write a self-contained HTML page comparing the DVC experiments (offline)")
    r.add_argument("experiments", nargs="*", help="experiment names or revs (default: those `dvc exp show` lists)")
    r.add_argument("-o", "--output", type=Path, default=None,
                   help="HTML file to write (default: paths.experiments_report of params.yaml)")
    r.add_argument("--field", type=Path, nargs="+", default=None, metavar="DIR",
                   help="folders of NNNN/* pictures (yours, or a field set): how the workspace's models read them, "
                        "whole and through `pokedex predict`, beside the test split")
    r.set_defaults(func=_report)

    u = sub.add_parser("unpack", help="unpack the dataset folders from the archives DVC tracks (after `dvc pull`: "
                       "`make pull` does both); folders already matching their archive are left alone")
    u.set_defaults(func=_unpack)

    args, args.dvc_args = parser.parse_known_args(argv)
    if args.dvc_args and args.command != "exps":
        parser.error(f"unrecognized arguments: {' '.join(args.dvc_args)}")
    try:
        args.func(args)
    except PokedexError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
