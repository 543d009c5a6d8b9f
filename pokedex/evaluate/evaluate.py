"""Evaluate: top-1, top-5, per-class accuracy, confusion matrix and latency on the test split, and the same
on the scene test: the test images put onto backgrounds never used in training, through a camera-like
perturbation (pokedex.data.scenes, fixed seed), so that the numbers say how the model does off white.

On `data/field/` (people's own photos, pokedex/evaluate/field.py), field top-1/top-5, per species, and with the enroll
stage's output how many answers are accepted and the top-1 among them; "not measured" when it is empty.

With the enroll stage's output, the open-set figures too: the test images against `evaluate.no_pokemon`
pictures without a Pokémon (backgrounds of the scene test's family, never seen in training or calibration),
ranked with the enrolled species as predict and the K210 rank them; with the detector, those pictures also go
through the whole path (a box, its crop, the rule): the share given a name.

frames.png shows a few scene test frames with the true box (white), the detected one (green) and the answer.

Predictions come from Ultralytics' predictor (the same preprocessing as its validator). For a detector the
predicted class is the class of its highest-confidence box (top-5: the first five distinct classes by
confidence); mAP50 comes from Ultralytics' own validator.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pokedex.core.checks import COUNT, Number
from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.core.timings import Timings
from pokedex.data.boxes import Box, box_from_corners, crop_to_box
from pokedex.data.classes import class_label
from pokedex.data.dataset import class_names, load_uint8, test_images
from pokedex.data.preprocess import square
from pokedex.data.scenes import SCENE_TEST, no_pokemon, scene_image
from pokedex.data.yolo_format import test_split_summary
from pokedex.evaluate.accuracy import accuracy_metrics
from pokedex.evaluate.field import field_evaluation, not_measured
from pokedex.model.load import load_model
from pokedex.model.ultra import ultralytics_data
from pokedex.recognise.openset import Enrolled, auroc, logits_and_embedding
from pokedex.recognise.ranking import NO_DETECTION, NO_DETECTION_LABEL, ranked_classes
from pokedex.recognise.views import crop_is_surer, surer_scores

log = logging.getLogger(__name__)


PARAM_RULES = {
    "evaluate.batch": COUNT,
    "evaluate.latency_images": Number(int, 0),
    "evaluate.no_pokemon": COUNT,
    "evaluate.scene.camera": Number(float, 0),
}

SHOWN_FRAMES = 8  # scene test frames drawn with their boxes and answers (frames.png, the HTML report)
FRAME_SCALE = 2  # the scene test's frames are this many times the classifier's input: a camera sees more pixels


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class, plus a last column for 'no detection'."""
    cm = np.zeros((n_classes, n_classes + 1), dtype=np.int64)
    np.add.at(cm, (truth, np.where(predicted == NO_DETECTION, n_classes, predicted)), 1)
    return cm


def plot_confusion(cm: np.ndarray, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    side = min(24, max(6, n * 0.18))
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm[:, :n] / rows, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if n <= 60:  # beyond that names are unreadable; the CSV keeps them
        ax.set_xticks(range(n), names, rotation=90, fontsize=6)
        ax.set_yticks(range(n), names, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (row-normalised), test split")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def measure_latency(model, images: list[Path], imgsz: int, device, n: int) -> float:
    """Mean wall time (ms) of one batch-1 predict call: decode, preprocess, forward, postprocess."""
    sample = images[: max(1, n)]
    for p in sample[:3]:  # warm-up
        model.predict(str(p), imgsz=imgsz, device=device, verbose=False)
    start = time.perf_counter()
    for p in sample:
        model.predict(str(p), imgsz=imgsz, device=device, verbose=False)
    return (time.perf_counter() - start) / len(sample) * 1000.0


def predict_confident(model, images: list[Path], imgsz: int, eval_cfg) -> list[tuple[list[int], float]]:
    """Each image's ranked class ids and the best one's score."""
    if not images:  # e.g. no frame in which the detector found a Pokémon (Ultralytics refuses an empty source)
        return []
    return [
        (ranked_classes(r), float(r.probs.top1conf) if r.probs is not None
         else float(r.boxes.conf.max()) if len(r.boxes) else 0.0)
        for r in model.predict([str(p) for p in images], imgsz=imgsz, batch=int(eval_cfg.batch),
                               device=eval_cfg.device, stream=True, verbose=False)
    ]


def predict_ranked(model, images: list[Path], imgsz: int, eval_cfg) -> list[list[int]]:
    return [ranked for ranked, _ in predict_confident(model, images, imgsz, eval_cfg)]


@dataclass
class Shown:
    """A scene test frame kept for the frames sheet: its true box and the detector's (pixel corners)."""
    index: int
    frame: Image.Image
    truth: tuple[int, int, int, int] | None
    found: tuple[float, float, float, float] | None


def frames_sheet(shown: list[Shown], answers: list[list[int]], truth: np.ndarray, labels: dict[int, str],
                 path: Path) -> None:
    """The shown frames side by side as the detector path saw them: the true box in white, the detected box in
    green, under each the answer (green when right) and the species."""
    side = shown[0].frame.width
    sheet = Image.new("RGB", (side * len(shown), side + 30), "white")
    draw = ImageDraw.Draw(sheet)
    for k, s in enumerate(shown):
        x, answer, species = k * side, answers[s.index][0], int(truth[s.index])
        sheet.paste(s.frame, (x, 0))
        if s.truth:
            draw.rectangle((x + s.truth[0], s.truth[1], x + s.truth[2] - 1, s.truth[3] - 1), outline="white")
        if s.found:
            draw.rectangle((x + s.found[0], s.found[1], x + s.found[2], s.found[3]), outline=(0, 220, 0), width=2)
        draw.text((x + 3, side + 3), labels[answer][:24], fill=(0, 140, 0) if answer == species else (200, 0, 0))
        draw.text((x + 3, side + 16), labels[species][:24], fill=(90, 90, 90))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def scene_test(models: list, images: list[Path], imgsz: int, eval_cfg,
               find_box: Callable[[Image.Image], Box | None] | None = None,
               shown: list[Shown] | None = None) -> tuple[list[dict[str, list[list[int]]]], list[bool]]:
    """Ranked predictions of each of `models` on the scene test (image i in scene i of the held-out background
    family, a frame of FRAME_SCALE x the models' input), for each way a classifier can read the frame: `whole`
    (shrunk to its input), `box` (cut to the Pokémon's true box: an ideal detector) and, with `find_box`,
    `detected` (what `pokedex predict` answers: the whole frame or the detector's crop, whichever the classifier
    is surer of; the whole frame where it finds nothing); and per frame whether the detector found a Pokémon.
    The frames are drawn and the detector run once for all the models. `shown`: filled with SHOWN_FRAMES frames
    spread over the test split."""
    scene = eval_cfg.scene
    keep = set(np.linspace(0, len(images) - 1, min(SHOWN_FRAMES, len(images))).round().astype(int).tolist())
    scale = (float(scene.scale[0]), float(scene.scale[1]))
    size = imgsz * FRAME_SCALE
    ways: dict[str, list[Path | None]] = {"whole": [], "box": []} | ({"detected": []} if find_box else {})
    with tempfile.TemporaryDirectory(prefix="pokedex-scenes-") as tmp:
        for index, path in enumerate(images):
            with Image.open(path) as img:
                frame, box = scene_image(img, SCENE_TEST, int(scene.seed), index, size, scale, float(scene.camera))
            crops = {"whole": frame, "box": crop_to_box(frame, box_from_corners(*box, size, size)) if box else frame}
            found = find_box(frame) if find_box else None
            if find_box:
                crops["detected"] = crop_to_box(frame, found) if found else None
            if shown is not None and index in keep:
                corners = found and (size * (found[0] - found[2] / 2), size * (found[1] - found[3] / 2),
                                     size * (found[0] + found[2] / 2), size * (found[1] + found[3] / 2))
                shown.append(Shown(index, frame, box, corners))
            for way, picture in crops.items():
                out = Path(tmp) / f"{way}-{path.name}"
                if picture is not None:
                    picture.save(out, quality=95)
                ways[way].append(out if picture is not None else None)
        found = [p is not None for p in ways.get("detected", [])]
        return [_ranked_ways(model, ways, found, imgsz, eval_cfg) for model in models], found


def _ranked_ways(model, ways: dict[str, list[Path | None]], found: list[bool], imgsz: int,
                 eval_cfg) -> dict[str, list[list[int]]]:
    """One model's ranked answers to scene_test's pictures, way by way (`detected`: the surer view)."""
    answers = {}
    for way, paths in ways.items():
        answered = iter(predict_confident(model, [p for p in paths if p is not None], imgsz, eval_cfg))
        answers[way] = [next(answered) if p is not None else ([NO_DETECTION], 0.0) for p in paths]
    ranked = {way: [r for r, _ in answered] for way, answered in answers.items()}
    if "detected" in answers:
        whole, crop = answers["whole"], answers["detected"]
        surer = crop_is_surer([c for _, c in whole], [c for _, c in crop], found)
        ranked["detected"] = [c[0] if s else w[0] for w, c, s in zip(whole, crop, surer)]
    return ranked


def named_after_detection(model, frames: np.ndarray, imgsz: int, enrolled: Enrolled,
                          find_box: Callable[[Image.Image], Box | None]) -> dict:
    """Pictures without a Pokémon through the whole path, as `pokedex predict` reads them: the detector's box,
    the whole frame or its crop (whichever the classifier is surer of), the "no Pokémon" rule. The share given
    a box, and the share given a name (the rule accepts the answer)."""
    wholes, crops, boxed = [], [], []
    for frame in frames:
        picture = Image.fromarray(frame.transpose(1, 2, 0))
        box = find_box(picture)
        boxed.append(box is not None)
        wholes.append(np.asarray(square(picture, imgsz)))
        crops.append(np.asarray(square(crop_to_box(picture, box), imgsz))
                     if box is not None else wholes[-1])

    def ranked(pictures: list[np.ndarray]) -> np.ndarray:
        return enrolled.rank(*logits_and_embedding(model, np.stack(pictures).transpose(0, 3, 1, 2), enrolled.embedding))

    answered = surer_scores(ranked(wholes), ranked(crops), boxed)
    named = int((answered.max(1) >= enrolled.calibration.threshold).sum())
    return {"no_pokemon_boxed": round(sum(boxed) / len(frames), 4),
            "no_pokemon_named_detected": round(named / len(frames), 4)}


def open_set(model, images: list[Path], truth: np.ndarray, imgsz: int, enrolled: Enrolled, eval_cfg,
             find_box: Callable[[Image.Image], Box | None] | None = None) -> dict:
    """How the "no Pokémon" rule and the enrolled species do on the test split and on pictures without one
    (shrunk whole to the classifier's input; with `find_box`, also through the detector, at FRAME_SCALE)."""
    scores = enrolled.rank(*logits_and_embedding(model, load_uint8(images, imgsz), enrolled.embedding))
    negatives = no_pokemon(SCENE_TEST, int(eval_cfg.scene.seed), int(eval_cfg.no_pokemon), imgsz)
    negative_best = enrolled.rank(*logits_and_embedding(model, negatives, enrolled.embedding)).max(1)
    best, right = scores.max(1), scores.argmax(1) == truth
    accepted = best >= enrolled.calibration.threshold
    figures = {
        "top1_with_enrolled": round(float(right.mean()), 4),  # trained classes ranked with the enrolled species
        "open_set_top1": round(float((right & accepted).mean()), 4),  # right and not answered "no Pokémon"
        "known_accepted": round(float(accepted.mean()), 4),
        "no_pokemon_accepted": round(float((negative_best >= enrolled.calibration.threshold).mean()), 4),
        "open_set_auroc": round(auroc(best, negative_best), 4),
        "enrolled_species": len(enrolled.ids),
    }
    if find_box is not None:
        frames = no_pokemon(SCENE_TEST, int(eval_cfg.scene.seed), int(eval_cfg.no_pokemon), imgsz * FRAME_SCALE)
        figures |= named_after_detection(model, frames, imgsz, enrolled, find_box)
    return figures


def side_by_side(model, images: list[Path], truth: np.ndarray, classes: int, scenes: dict[str, list[list[int]]],
                 imgsz: int, eval_cfg, prefix: str = "k210_") -> dict:
    """Another classifier's test-split and scene figures (e.g. the K210's network beside the one it learnt from;
    `scenes`: its scene_test answers), keys prefixed so both sit in one metrics.json."""
    figures = {"top1": accuracy_metrics(truth, predict_ranked(model, images, imgsz, eval_cfg), classes)["top1"],
               **{f"scene_top1{'' if way == 'whole' else '_' + way}": accuracy_metrics(truth, answers, classes)["top1"]
                  for way, answers in scenes.items()}}
    return {prefix + key: round(value, 4) for key, value in figures.items()}


def evaluate(weights: Path, dataset_dir: Path, imgsz: int, eval_cfg, out_dir: Path, enrolled: Enrolled | None = None,
             field_dir: Path | None = None, find_box: Callable[[Image.Image], Box | None] | None = None,
             timings: Timings | None = None, k210_weights: Path | None = None) -> dict:
    """The figures of metrics.json (and its CSVs and plot in out_dir). `find_box`: the one-class detector's best
    box (pokedex.model.detector.box_finder), for the scene test's and the field's figures on detected crops;
    `k210_weights`: the K210's network, whose figures stand beside (k210_top1, k210_scene_top1...).
    The CPU latency goes to `timings`, not metrics.json: it measures this machine, not the model."""
    if not weights.is_file():
        raise PokedexError(f"{weights} is missing; run the train stage first (dvc repro train).")
    if k210_weights is not None and not k210_weights.is_file():
        raise PokedexError(f"{k210_weights} is missing; build it first (`dvc repro` makes every model).")
    model = load_model(weights)
    beside = [load_model(k210_weights)] if k210_weights is not None else []
    names = class_names(dataset_dir)
    images, truth = test_images(dataset_dir)
    device = eval_cfg.device
    ranked = predict_ranked(model, images, imgsz, eval_cfg)
    acc = accuracy_metrics(truth, ranked, len(names))
    shown: list[Shown] = []
    (scenes, *beside_scenes), found = scene_test([model, *beside], images, imgsz, eval_cfg,
                                                 find_box if model.task == "classify" else None, shown)
    scene_acc = accuracy_metrics(truth, scenes["whole"], len(names))
    predicted = np.array([r[0] for r in ranked])
    metrics = {
        "top1": round(acc["top1"], 4),
        "top5": round(acc["top5"], 4),
        "per_class_top1_min": round(float(np.nanmin(acc["per_class"])), 4),
        "scene_top1": round(scene_acc["top1"], 4),
        "scene_top5": round(scene_acc["top5"], 4),
        "scene_per_class_top1_min": round(float(np.nanmin(scene_acc["per_class"])), 4),
        # the same frames cut to the Pokémon's true box, and to the box the detector finds
        **{f"scene_top1_{way}": round(accuracy_metrics(truth, scenes[way], len(names))["top1"], 4)
           for way in ("box", "detected") if way in scenes},
        **({"scene_found": round(float(np.mean(found)), 4)} if found else {}),
        "test_images": len(images),
        **test_split_summary(dataset_dir),
        "classes": len(names),
    }
    if timings is not None:
        timings["latency_ms"] = round(measure_latency(model, images, imgsz, device, int(eval_cfg.latency_images)), 2)
    if enrolled is not None and model.task == "classify":
        metrics.update(open_set(model, images, truth, imgsz, enrolled, eval_cfg, find_box))
    if model.task == "detect":
        with tempfile.TemporaryDirectory() as tmp, ultralytics_data(dataset_dir, "detect") as data:
            val = model.val(data=str(data), split="test", imgsz=imgsz, batch=int(eval_cfg.batch), device=device,
                            plots=False, project=tmp, verbose=False)
        metrics["mAP50"] = round(float(val.box.map50), 4)
        metrics["mAP50_95"] = round(float(val.box.map), 4)

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {c: class_label(c, n) for c, n in enumerate(names)} | {NO_DETECTION: NO_DETECTION_LABEL}
    if field_dir is not None and model.task == "classify":
        metrics.update(field_evaluation(model, field_dir, imgsz, len(names), enrolled, labels, out_dir, find_box))
    else:
        metrics.update(not_measured(out_dir, "a detector" if model.task != "classify" else "no field folder given"))
    for other, other_scenes in zip(beside, beside_scenes):
        metrics.update(side_by_side(other, images, truth, len(names), other_scenes, imgsz, eval_cfg))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_csv(out_dir / "predictions.csv", ["image", "actual", "predicted"],
              [(p.name, labels[int(t)], labels[int(c)]) for p, t, c in zip(images, truth, predicted)])
    write_csv(out_dir / "per_class.csv", ["class", "images", "top1", "scene_top1"],
              [(labels[c], int((truth == c).sum()), round(a, 4), round(b, 4))
               for c, (a, b) in enumerate(zip(acc["per_class"], scene_acc["per_class"]))])
    plot_confusion(confusion_matrix(truth, predicted, len(names)), [labels[c] for c in range(len(names))],
                   out_dir / "confusion_matrix.png")
    frames_sheet(shown, scenes.get("detected", scenes["whole"]), truth, labels, out_dir / "frames.png")
    log.info("evaluate: %s", metrics)
    return metrics
