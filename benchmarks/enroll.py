"""Enrolment on real data: train on species 1-493, enrol 494-649 from k pictures each, test on held-out animations.

    python benchmarks/enroll.py [--trained 493] [--shots 1 3 5] [--kmodel-images 300] [--out FILE.json]
                                [--clip-model ViT-B-32 --clip-pretrained FILE]

Reads the workspace's YOLO dataset (`dvc repro yolo-format` with the default data=pokeapi: PokeAPI's animated
sprites of species 1-649, split by animation) and the workspace's 649-class model as the upper bound. It
trains a model on species 1..--trained with the pipeline's own params (cached in .cache/pokedex/benchmarks/;
--retrain to train again), then, for each k in --shots, runs the enroll stage's function with k training-split
frames of each remaining species (their test animations are never used to enrol) and measures on the test
split: top-1 on the enrolled species, on the trained species before and after enrolment, overall; the kmodel
(nncase simulator) next to the float model on enrolled species' test images; and the open-set rule with the
last fifth of the new species left unknown (neither trained nor enrolled) plus pictures without a Pokémon.
With --clip-pretrained, the enrolment and open-set figures again with prototypes made of CLIP image embeddings
(enroll.embedding=clip), beside the classifier's ("clip 5-shot", "clip open_set"); the kmodel has no CLIP.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from pokedex import CHECKOUT as ROOT
from pokedex.data.dataset import load_uint8, split_images
from pokedex.data.scenes import SCENE_TEST, no_pokemon
from pokedex.data.sources import cache_dir
from pokedex.model.load import load_model
from pokedex.recognise.clip import clip_features, enrolment_embedding
from pokedex.recognise.enroll import enroll
from pokedex.recognise.features import logits_and_features
from pokedex.recognise.openset import Enrolled, auroc, logits_and_embedding

from common import add_model, argument_parser, compose_cfg, load


def subset_dataset(dataset: Path, classes: int, out: Path) -> Path:
    """A YOLO dataset of the first `classes` species of `dataset` (links), as yolo-format would write it."""
    if out.exists():
        shutil.rmtree(out)
    names = (dataset / "classes.txt").read_text(encoding="utf-8").splitlines()[:classes]
    for split in ("train", "validation", "test"):
        for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
            (out / kind / split).mkdir(parents=True)
            for path in (dataset / kind / split).glob(f"*{suffix}"):
                if int(path.name[:4]) <= classes:
                    (out / kind / split / path.name).symlink_to(path.resolve())
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    data = {"path": str(out), "train": "images/train", "val": "images/validation", "test": "images/test",
            "names": dict(enumerate(names))}
    (out / "data.yaml").write_text(json.dumps(data), encoding="utf-8")
    return out


def trained_subset_model(cfg, dataset: Path, subset: Path, classes: int, work: Path, retrain: bool) -> Path:
    from pokedex.train.train import train

    key = json.dumps({"classes": classes, "train": OmegaConf.to_container(cfg.train), "model": OmegaConf.to_container(cfg.model),
                      "imgsz": int(cfg.data.image_size), "splits": (dataset / "splits.csv").stat().st_size}, sort_keys=True)
    best, stamp = work / "train" / "weights" / "best.pt", work / "train.key"
    if best.is_file() and stamp.is_file() and stamp.read_text() == key and not retrain:
        print(f"reusing {best} (trained with the same params; --retrain to train again)")
        return best
    start = time.perf_counter()
    best = train(cfg, subset, work / "train")
    print(f"trained species 1-{classes} in {time.perf_counter() - start:.0f} s")
    stamp.write_text(key)
    return best


def main() -> None:
    parser = argument_parser(__doc__)
    add_model(parser, what="the pipeline's classifier of every species, the upper bound")
    parser.add_argument("--trained", type=int, default=493)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--kmodel-images", type=int, default=300, help="enrolled test images through the simulator")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture for CLIP enrolment")
    parser.add_argument("--clip-pretrained", default=None, help="its checkpoint file (or tag): compares CLIP enrolment")
    args = parser.parse_args()
    cfg = compose_cfg()
    paths, size = cfg.paths, int(cfg.data.image_size)
    dataset = ROOT / paths.yolo_dataset
    work = cache_dir() / "benchmarks" / "enroll"
    work.mkdir(parents=True, exist_ok=True)
    subset = subset_dataset(dataset, args.trained, work / "dataset")  # what the model trains and calibrates on
    weights = trained_subset_model(cfg, dataset, subset, args.trained, work, args.retrain)
    model = load_model(weights)

    test_paths, truth = split_images(dataset, "test")
    test_images = load_uint8(test_paths, size)
    logits, features = logits_and_features(model, test_images)
    new = truth >= args.trained  # 0-based class ids: species 494.. are ids 493..
    results: dict = {"trained_species": args.trained, "new_species": int(len(np.unique(truth[new]))),
                     "test_images": {"trained": int((~new).sum()), "new": int(new.sum())},
                     "trained_top1_before": round(float((logits.argmax(1) == truth)[~new].mean()), 4)}
    full = load(args.model)  # the pipeline's model of all species: the upper bound
    full_right = logits_and_features(full, test_images)[0].argmax(1) == truth
    results["upper_bound_full_training_top1"] = round(float(full_right.mean()), 4)
    results["upper_bound_full_training_new_top1"] = round(float(full_right[new].mean()), 4)

    train_paths, train_truth = split_images(dataset, "train")
    embeddings = {"": ({"embedding": "classifier"}, features)}  # result-key prefix -> (enroll overrides, test features)
    if args.clip_pretrained:
        spec = enrolment_embedding(args.clip_model, args.clip_pretrained)
        embeddings["clip "] = ({"embedding": "clip", "clip": {"model": args.clip_model, "pretrained": args.clip_pretrained}},
                               clip_features(spec, test_images))
    for prefix, (overrides, test_features) in embeddings.items():
        for k in args.shots:
            row = run_shots(k, args, cfg, overrides, weights, subset, work, train_paths, train_truth, logits,
                            test_features, truth, new)
            results[f"{prefix}{k}-shot"] = row
            print(f"{prefix}{k}-shot: {json.dumps(row)}")
        if not prefix:  # the K210 computes the classifier's features, not CLIP's
            results["kmodel"] = kmodel_check(cfg, weights, work / f"enrolled-{max(args.shots)}", test_images[new],
                                             truth[new], args.kmodel_images, size)
            print("kmodel:", json.dumps(results["kmodel"]))
        results[f"{prefix}open_set"] = open_set_check(args, cfg, overrides, weights, subset, work, train_paths,
                                                      train_truth, logits, test_features, truth, size)
        print(f"{prefix}open set:", json.dumps(results[f"{prefix}open_set"]))
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def enrol_pictures(folder: Path, species: list[int], k: int, train_paths: list[Path], train_truth: np.ndarray) -> None:
    """k training-split frames of each species (spread over its sorted frames), as data/enroll/NNNN/* holds them."""
    if folder.exists():
        shutil.rmtree(folder)
    for class_id in species:
        frames = [train_paths[i] for i in np.flatnonzero(train_truth == class_id)]
        picked = [frames[i] for i in np.linspace(0, len(frames) - 1, min(k, len(frames))).round().astype(int)]
        (folder / f"{class_id + 1:04d}").mkdir(parents=True)
        for frame in picked:
            (folder / f"{class_id + 1:04d}" / frame.name).symlink_to(frame.resolve())


def run_enroll(k: int, cfg, overrides: dict, weights: Path, dataset: Path, pictures: Path, out: Path) -> dict:
    enroll_cfg = OmegaConf.merge(cfg.enroll, {"shots": k, **overrides})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = enroll(weights, dataset, pictures, int(cfg.data.image_size), int(cfg.data.min_image_size),
                        int(cfg.data.max_pixels), enroll_cfg, out, Path(tmp) / "report.json")
        return {**report, "seconds": round(time.perf_counter() - start, 2)}


def run_shots(k, args, cfg, overrides, weights, subset, work, train_paths, train_truth, logits, features, truth,
              new) -> dict:
    kind = overrides["embedding"]
    pictures, out = work / f"pictures-{k}", work / (f"enrolled-{k}" if kind == "classifier" else f"enrolled-{kind}-{k}")
    enrol_pictures(pictures, sorted(set(truth[new].tolist())), k, train_paths, train_truth)
    report = run_enroll(k, cfg, overrides, weights, subset, pictures, out)
    enrolled = Enrolled.load(out)
    scores = enrolled.rank(logits, features)
    columns = np.array(list(range(args.trained)) + [i - 1 for i in enrolled.ids])  # column -> 0-based class id
    predicted = columns[scores.argmax(1)]
    right = predicted == truth
    return {"enrolled_top1": round(float(right[new].mean()), 4), "trained_top1_after": round(float(right[~new].mean()), 4),
            "overall_top1": round(float(right.mean()), 4), "enroll_seconds": report["seconds"],
            "pictures": report["pictures"], "species": report["species"], "calibration": {
                key: report[key] for key in ("scale", "bias", "threshold", "val_top1_enrolled", "val_open_set_auroc")}}


def kmodel_check(cfg, weights: Path, enrolled_dir: Path, images: np.ndarray, truth: np.ndarray, n: int, size: int) -> dict:
    """Enrolled top-1 of the compiled kmodel (nncase's simulator) next to the float model, same test images."""
    from pokedex.deploy.export import export_onnx
    from pokedex.deploy.k210 import compile_kmodel, simulate
    from pokedex.deploy.kmodel import spread, with_embedding_output

    enrolled = Enrolled.load(enrolled_dir)
    classes = len(load_model(weights).names)
    columns = np.array(list(range(classes)) + [i - 1 for i in enrolled.ids])
    picked = spread(list(range(len(images))), n)
    images, truth = images[picked], truth[picked]
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(weights, size, int(cfg.export.opset), bool(cfg.export.simplify), Path(tmp) / "model.onnx")
        with_embedding_output(onnx, Path(tmp) / "both.onnx")
        train_paths, _ = split_images(ROOT / cfg.paths.yolo_dataset, "train")
        calibration = load_uint8(spread(train_paths, int(cfg.kmodel.calibration_images)), size)
        compile_kmodel(Path(tmp) / "both.onnx", calibration, Path(tmp) / "model.kmodel", str(cfg.kmodel.calibration_method))
        rows = simulate(Path(tmp) / "model.kmodel", images)
    kmodel = columns[enrolled.rank(rows[:, :classes], rows[:, classes:]).argmax(1)] == truth
    logits, features = logits_and_features(load_model(weights), images)
    float_right = columns[enrolled.rank(logits, features).argmax(1)] == truth
    return {"images": len(picked), "float_enrolled_top1": round(float(float_right.mean()), 4),
            "kmodel_enrolled_top1": round(float(kmodel.mean()), 4)}


def open_set_check(args, cfg, overrides, weights, subset, work, train_paths, train_truth, logits, features, truth,
                   size) -> dict:
    """Enrol the first four fifths of the new species (5 pictures); the rest are unknown. Known: test images of
    trained and enrolled species; negatives: unknown species' test images and pictures without a Pokémon."""
    new_species = sorted(set(truth[truth >= args.trained].tolist()))
    cut = len(new_species) * 4 // 5
    enrolled_species, unknown = new_species[:cut], new_species[cut:]
    pictures, out = work / "pictures-open-set", work / f"enrolled-open-set-{overrides['embedding']}"
    enrol_pictures(pictures, enrolled_species, 5, train_paths, train_truth)
    run_enroll(5, cfg, overrides, weights, subset, pictures, out)
    enrolled = Enrolled.load(out)
    best = enrolled.rank(logits, features).max(1)
    is_unknown = np.isin(truth, unknown)
    model = load_model(weights)
    background = enrolled.rank(*logits_and_embedding(model, no_pokemon(SCENE_TEST, 0, 400, size),
                                                     enrolled.embedding)).max(1)
    threshold = enrolled.calibration.threshold
    negatives = np.concatenate([best[is_unknown], background])
    return {"unknown_species": len(unknown), "known_images": int((~is_unknown).sum()),
            "unknown_images": int(is_unknown.sum()), "no_pokemon_pictures": len(background),
            "auroc": round(auroc(best[~is_unknown], negatives), 4),
            "auroc_no_pokemon_only": round(auroc(best[~is_unknown], background), 4),
            "auroc_unknown_species_only": round(auroc(best[~is_unknown], best[is_unknown]), 4),
            "threshold": round(threshold, 4), "false_accept_rate": round(float((negatives >= threshold).mean()), 4),
            "false_accept_no_pokemon": round(float((background >= threshold).mean()), 4),
            "known_accepted": round(float((best[~is_unknown] >= threshold).mean()), 4)}


if __name__ == "__main__":
    main()
