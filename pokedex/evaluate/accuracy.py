"""Top-1, top-5 and per-class top-1 from ranked predictions: shared by evaluate and the CLIP measurements."""

from __future__ import annotations

import numpy as np


def accuracy_metrics(truth: np.ndarray, ranked: list[list[int]], n_classes: int) -> dict:
    """ranked[i]: class ids for image i, best first. per_class is NaN for a class without test images."""
    top1 = np.array([r[0] == t for r, t in zip(ranked, truth)])
    top5 = np.array([t in r[:5] for r, t in zip(ranked, truth)])
    per_class = [float(top1[truth == c].mean()) if (truth == c).any() else float("nan") for c in range(n_classes)]
    return {"top1": float(top1.mean()), "top5": float(top5.mean()), "per_class": per_class}


def ranked_by_score(scores: np.ndarray, k: int = 5) -> list[list[int]]:
    """The k best class ids of each row of (images, classes) scores, best first."""
    return np.argsort(-scores, axis=1)[:, :k].tolist()
