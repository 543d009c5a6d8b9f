"""Boxes around a Pokémon: the crops cut to them (what the classifier is handed), their overlap, and how many
true boxes a detector's boxes find. Boxes come from the detector, from YOLO label files (the detection scenes)
and from field photos (`NNNN/<stem>.txt`). Only numpy and PIL: training, evaluation, predict and the K210 stage
all import it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

MATCH_IOU = 0.5  # a box finds a Pokémon when it overlaps its true box by at least this
BOX_MARGIN = 0.08  # the ideal crop: the box made square with this margin on each side
Box = tuple[float, float, float, float]  # cx, cy, w, h (fractions of the picture's width and height), as YOLO


def box_from_corners(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box:
    """A box given by its corners in pixels of a width x height picture, as a Box."""
    return ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)


def crop_to_box(img: Image.Image, box: Box, margin: float = BOX_MARGIN) -> Image.Image:
    """The box made square with a margin, cut out of the picture (black where the square leaves it)."""
    cx, cy, w, h = box[0] * img.width, box[1] * img.height, box[2] * img.width, box[3] * img.height
    side = max(w, h) * (1 + 2 * margin)
    return img.crop((round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)))


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    """The area two x0, y0, x1, y1 boxes share (anything after the fourth value is ignored)."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes (anything after the fourth value is ignored)."""
    inter = intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def matched(predicted: np.ndarray, truth: np.ndarray, at: float = MATCH_IOU) -> int:
    """How many true boxes (n, 4 xyxy) a prediction (best first) finds at IoU `at`, each used once."""
    taken: set[int] = set()
    for box in predicted:
        overlap = np.array([iou(box, t) for t in truth])
        candidates = [j for j in np.argsort(-overlap, kind="stable") if overlap[j] >= at and j not in taken]
        if candidates:
            taken.add(int(candidates[0]))
    return len(taken)


def at_threshold(found: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """recall, precision and empty-picture false alarms of boxes already cut at the threshold."""
    hits = sum(matched(f, t) for f, t in zip(found, truths))
    n_true, n_found = sum(len(t) for t in truths), sum(len(f) for f in found)
    empty = [len(f) > 0 for f, t in zip(found, truths) if not len(t)]
    return {"recall_at_conf": round(hits / n_true, 4) if n_true else None,
            "precision_at_conf": round(hits / n_found, 4) if n_found else None,
            "empty_with_box": round(float(np.mean(empty)), 4) if empty else None}


def true_boxes(label: Path, width: int, height: int) -> np.ndarray:
    """A YOLO label file's boxes as (n, 4) x0, y0, x1, y1 pixels of a width x height picture."""
    rows = [line.split()[1:5] for line in label.read_text(encoding="utf-8").splitlines() if line.strip()]
    cxcywh = np.array(rows, np.float32).reshape(-1, 4) * np.float32([width, height, width, height])
    return np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
