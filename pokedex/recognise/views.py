"""What the detector path answers: the whole picture, or the box around what the detector finds, whichever view
the classifier is surer of.

The detector learnt Pokémon pasted into scenes; on a picture that the Pokémon fills (art, a card, an anime
frame) it boxes parts of it, and a crop of a part reads far worse than the whole picture. On a camera view the
crop reads far better than the shrunk frame. Neither view wins everywhere; the classifier's own confidence
picks between them per picture (docs/detector.md has the rules tried and what each measured). Where the
detector finds nothing, the whole picture answers (the "no Pokémon" rule, with enrolled species, still can).

Test-time augmentation (`pokedex predict --tta`, `benchmarks/field.py --tta`) reads each view three times, as it
is, mirrored and its centre seen closer, and averages the classifier's scores (tta_views).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pokedex.data.preprocess import square

CLOSER = 0.85  # test-time augmentation's closer view: the central share of the side, enlarged


def crop_is_surer(whole_confidence, crop_confidence, found) -> np.ndarray:
    """Per picture, True where the detector found a Pokémon and the classifier is surer of the crop (its best
    score higher) than of the whole picture."""
    return np.asarray(found, bool) & (np.asarray(crop_confidence, float) > np.asarray(whole_confidence, float))


def surer_scores(whole: np.ndarray, crop: np.ndarray, found) -> np.ndarray:
    """(pictures, classes) scores of the view the classifier is surer of, picture by picture."""
    if len(whole) == 0:
        return whole
    return np.where(crop_is_surer(whole.max(1), crop.max(1), found)[:, None], crop, whole)


def zoomed(images: np.ndarray, share: float) -> np.ndarray:
    """NCHW uint8 pictures seen closer (share < 1: the central share of the side, enlarged) or farther (share > 1:
    the picture shrunk to 1/share of the side on white), at the same size."""
    size = images.shape[-1]
    out = []
    for x in images:
        picture = Image.fromarray(x.transpose(1, 2, 0))
        if share < 1:
            side = round(size * share)
            start = (size - side) // 2
            picture = picture.crop((start, start, start + side, start + side))
            picture = square(picture, size)
        else:
            side = round(size / share)
            canvas = Image.new("RGB", (size, size), "white")
            canvas.paste(square(picture, side), ((size - side) // 2,) * 2)
            picture = canvas
        out.append(np.asarray(picture).transpose(2, 0, 1))
    return np.stack(out) if out else images


def tta_views(images: np.ndarray) -> list[np.ndarray]:
    """The NCHW uint8 pictures as they are, mirrored, and seen closer: the views whose scores test-time
    augmentation averages (measured in docs/detector.md: each view of the detector path read this way)."""
    return [images, images[..., ::-1].copy(), zoomed(images, CLOSER)]
