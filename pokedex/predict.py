"""Top-k classes of images with a trained model (PyTorch .pt or exported .onnx), through Ultralytics."""

from __future__ import annotations

from pathlib import Path

from pokedex.errors import PokedexError
from pokedex.evaluate import NO_DETECTION, NO_DETECTION_LABEL
from pokedex.io import class_label
from pokedex.ultra import ultralytics_offline


def class_labels(classes_file: Path, model_names: dict[int, str]) -> dict[int, str]:
    """'0025 Pikachu' style labels: from classes.txt when present, else the names stored in the model."""
    if classes_file.is_file():
        names = classes_file.read_text(encoding="utf-8").splitlines()
        return {i: class_label(i, n) for i, n in enumerate(names)}
    return {i: class_label(i, n) for i, n in model_names.items()}


def predict(images: list[Path], model_path: Path, classes_file: Path, imgsz: int | None = None,
            top: int = 5) -> list[tuple[Path, list[tuple[str, float]]]]:
    """For each image, its `top` (label, score) pairs, best first."""
    if not model_path.is_file():
        raise PokedexError(f"model {model_path} does not exist; train one with `dvc repro` or pass --model.")
    for image in images:
        if not image.is_file():
            raise PokedexError(f"image {image} does not exist.")
    ultralytics_offline()
    from ultralytics import YOLO

    model = YOLO(str(model_path), task=None)
    kwargs = {"imgsz": imgsz} if imgsz else {}
    labels = None
    rows = []
    for image in images:
        try:
            (result,) = model.predict(str(image), verbose=False, **kwargs)
        except Exception as exc:  # an unreadable image is a user input problem, not a crash
            raise PokedexError(f"could not read image {image}: {exc}") from exc
        labels = labels or class_labels(classes_file, result.names)
        if result.probs is not None:
            scores = result.probs.data.cpu().numpy()
            order = scores.argsort()[::-1][:top]
            rows.append((image, [(labels[int(i)], float(scores[i])) for i in order]))
        else:  # detector: best confidence per class
            best: dict[int, float] = {}
            for c, conf in zip(result.boxes.cls.tolist(), result.boxes.conf.tolist()):
                best[int(c)] = max(best.get(int(c), 0.0), conf)
            ranked = sorted(best.items(), key=lambda kv: -kv[1])[:top] or [(NO_DETECTION, 0.0)]
            rows.append((image, [(labels.get(c, NO_DETECTION_LABEL), s) for c, s in ranked]))
    return rows


def format_predictions(rows: list[tuple[Path, list[tuple[str, float]]]]) -> str:
    lines = []
    for image, ranked in rows:
        lines.append(f"{image}")
        lines += [f"  {rank}. {label:<28} {score:.3f}" for rank, (label, score) in enumerate(ranked, start=1)]
    return "\n".join(lines)
