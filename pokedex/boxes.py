"""Boxes around a Pokémon and the crops cut to them: what the detector finds, field photos carry beside them
(`NNNN/<stem>.txt`) and the classifier is handed. Only PIL: training, evaluation and predict all import it."""

from __future__ import annotations

from PIL import Image

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
