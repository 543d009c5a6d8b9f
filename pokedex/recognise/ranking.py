"""The classes a model answers for a picture, best first: a classifier's probabilities, or a detector of species'
boxes (its first distinct classes by confidence; NO_DETECTION where it finds none)."""

from __future__ import annotations

import numpy as np

NO_DETECTION = -1  # predicted class of a detector that found no box
NO_DETECTION_LABEL = "(no detection)"


def ranked_classes(result, k: int = 5) -> list[int]:
    """The k most likely class ids of one Ultralytics result, best first."""
    if result.probs is not None:
        return [int(i) for i in result.probs.top5[:k]]
    boxes = result.boxes
    ranked: list[int] = []
    for i in np.argsort(-boxes.conf.cpu().numpy()):
        c = int(boxes.cls[i])
        if c not in ranked:
            ranked.append(c)
        if len(ranked) == k:
            break
    return ranked or [NO_DETECTION]
