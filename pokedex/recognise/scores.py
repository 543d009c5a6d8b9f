"""A model's scores for pictures, and the size it reads them at.

A classifier sees each picture resized square (as preprocess resizes the training pictures) at its input size:
the size it was trained at, or an exported ONNX file's fixed side, or the pipeline's default for its task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pokedex.recognise.openset import Enrolled, logits_and_embedding
from pokedex.recognise.views import tta_views

CLASSIFIER_SIZE = 96  # conf/data/base.yaml image_size: a classifier's input when nothing records its own
DETECTOR_SIZE = 128  # conf/detector/default.yaml data.image_size: the one-class detector's


def input_size(model) -> int:
    """The square side a model reads, in pixels: its checkpoint's training size (.pt), else the fixed input side of
    its ONNX graph (export-onnx writes one), else CLASSIFIER_SIZE or DETECTOR_SIZE by its task."""
    trained = (getattr(model, "ckpt", None) or {}).get("train_args", {}).get("imgsz")
    if trained:
        return int(trained)
    source = Path(str(getattr(model, "ckpt_path", None) or ""))
    if source.suffix == ".onnx" and source.is_file():
        import onnx

        side = onnx.load(str(source), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[-1]
        if side.dim_value > 0:  # 0: a dynamic axis
            return int(side.dim_value)
    return DETECTOR_SIZE if model.task == "detect" else CLASSIFIER_SIZE


def class_scores(model, images: np.ndarray, enrolled: Enrolled | None = None, batch: int = 64,
                 tta: bool = False) -> np.ndarray:
    """(pictures, classes) scores, best = most likely: softmax over the trained classes (then the enrolled
    species, with `enrolled`). Any Ultralytics classifier, .pt or .onnx; `enrolled` needs the .pt. `tta`: the
    scores averaged over each picture, its mirror image and its centre seen closer (pokedex/recognise/views.py)."""
    if tta:
        return np.mean([class_scores(model, view, enrolled, batch) for view in tta_views(images)], axis=0)
    if len(images) == 0:
        return np.zeros((0, len(model.names) + (len(enrolled.ids) if enrolled is not None else 0)), np.float32)
    if enrolled is not None:
        return enrolled.rank(*logits_and_embedding(model, images, enrolled.embedding))
    scores = []
    for start in range(0, len(images), batch):
        bgr = [np.ascontiguousarray(x.transpose(1, 2, 0)[..., ::-1]) for x in images[start:start + batch]]
        for result in model.predict(bgr, imgsz=images.shape[-1], verbose=False):
            scores.append(result.probs.data.cpu().numpy())
    return np.stack(scores) if scores else np.zeros((0, len(model.names)), np.float32)
