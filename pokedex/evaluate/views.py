"""What the detector path answers: the whole picture, or the box around what the detector finds, whichever view
the classifier is surer of.

The detector learnt Pokémon pasted into scenes; on a picture that the Pokémon fills (art, a card, an anime
frame) it boxes parts of it, and a crop of a part reads far worse than the whole picture. On a camera view the
crop reads far better than the shrunk frame. Neither view wins everywhere; the classifier's own confidence
picks between them per picture (docs/detector.md has the rules tried and what each measured). Where the
detector finds nothing, the whole picture answers (the "no Pokémon" rule, with enrolled species, still can).
"""

from __future__ import annotations

import numpy as np


def crop_is_surer(whole_confidence, crop_confidence, found) -> np.ndarray:
    """Per picture, True where the detector found a Pokémon and the classifier is surer of the crop (its best
    score higher) than of the whole picture."""
    return np.asarray(found, bool) & (np.asarray(crop_confidence, float) > np.asarray(whole_confidence, float))


def surer_scores(whole: np.ndarray, crop: np.ndarray, found) -> np.ndarray:
    """(pictures, classes) scores of the view the classifier is surer of, picture by picture."""
    if len(whole) == 0:
        return whole
    return np.where(crop_is_surer(whole.max(1), crop.max(1), found)[:, None], crop, whole)
