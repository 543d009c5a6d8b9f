"""Style randomisation and light jitter: the same Pokémon drawn otherwise, seen in other light.

The training data is pixel art; people point cameras at official art, cards, 3D renders, toys. A model that
learns the pixel style fails on all of them, so `restyle` redraws a picture's Pokémon in one of four ways, each
of which removes or replaces what is peculiar to pixel art while keeping shape and colour layout:

- smooth: the pixels smoothed away (down-sampled 1.5-4x with a box filter, up-sampled bicubic, a little blur);
- randconv: a random 1x1, 3x3 or 5x5 convolution blended in (RandConv, Xu et al. 2021: random local texture
  and colour mixing);
- posterize: fewer colour levels, then an edge-preserving bilateral filter (flat cel-shaded areas);
- stylize: a painterly abstraction: colours flattened into patches (a median filter, smoothed), outlines inked.

Only the Pokémon changes (its mask is kept), so the background it sits on is still the scene's. `light`
changes brightness and contrast over the whole picture, at the strengths a dim room or a washed-out screen
show. Both draw everything from the numpy generator they are given: the same seed gives the same picture.
Same seed, same bytes, on a busy machine too: `stylize` was OpenCV's `stylization`, whose output for one input
moved with the machine's load (two trainings from one seed differed while other processes ran, and so did the
detection scenes), so it is now Pillow's integer filters; the OpenCV filters left run on one thread, so that
how OpenCV splits their work cannot depend on which of its threads are free.
"""

from __future__ import annotations

from contextlib import contextmanager

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps


def _smooth(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    factor = float(rng.uniform(1.5, 4.0))
    img = Image.fromarray(rgb)
    small = img.resize((max(4, round(w / factor)), max(4, round(h / factor))), Image.Resampling.BOX)
    img = small.resize((w, h), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.2, 0.8))))
    return np.asarray(img)


def _randconv(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.choice([1, 3, 5]))
    kernel = rng.normal(0, 1.0 / np.sqrt(3 * k * k), (3, 3, k, k)).astype(np.float32)  # out, in, kh, kw
    x = rgb.astype(np.float32) / 255.0
    out = np.stack([sum(cv2.filter2D(x[..., c], -1, kernel[o, c], borderType=cv2.BORDER_REFLECT) for c in range(3))
                    for o in range(3)], axis=-1)
    out = (out - out.mean()) / (out.std() + 1e-6) * x.std() + x.mean()  # keep the picture's overall light
    alpha = float(rng.uniform(0.3, 0.8))
    return (np.clip((1 - alpha) * x + alpha * out, 0, 1) * 255).astype(np.uint8)


def _posterize(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    poster = np.asarray(ImageOps.posterize(Image.fromarray(rgb), int(rng.integers(2, 5))))
    return cv2.bilateralFilter(np.ascontiguousarray(poster), 5, float(rng.uniform(30, 90)), float(rng.uniform(3, 9)))


def _stylize(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = Image.fromarray(rgb).filter(ImageFilter.MedianFilter(int(rng.choice([3, 5])))).filter(ImageFilter.SMOOTH_MORE)
    edges = np.asarray(flat.convert("L").filter(ImageFilter.FIND_EDGES), np.float32) / 255.0
    ink = 1 - np.clip(edges * float(rng.uniform(1.0, 3.0)), 0, 0.8)
    return (np.asarray(flat, np.float32) * ink[..., None]).astype(np.uint8)


@contextmanager
def _one_opencv_thread():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


STYLES = {"smooth": _smooth, "randconv": _randconv, "posterize": _posterize, "stylize": _stylize}


def restyle(img: Image.Image, mask: np.ndarray, rng: np.random.Generator, style: str | None = None) -> Image.Image:
    """`img` with its foreground (uint8 `mask`, 255 = Pokémon) redrawn in one style, drawn at random unless given."""
    rgb = np.asarray(img.convert("RGB"))
    name = style or list(STYLES)[int(rng.integers(len(STYLES)))]
    with _one_opencv_thread():
        styled = STYLES[name](rgb, rng).astype(np.float32)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return Image.fromarray((alpha * styled + (1 - alpha) * rgb).round().astype(np.uint8), "RGB")


def light(img: Image.Image, rng: np.random.Generator, contrast: tuple[float, float],
          brightness: tuple[float, float]) -> Image.Image:
    """Contrast, then brightness, each by a factor drawn from its range (1 = unchanged)."""
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(*contrast)))
    return ImageEnhance.Brightness(img).enhance(float(rng.uniform(*brightness)))
