"""Pokémon off the white background: procedural scenes and camera-like perturbations.

Sprites come on white; the K210's camera sees a Pokémon on a screen, a card or a desk. `foreground_mask` finds
the picture's background as the near-white region connected to its border (sprites have dark outlines, so
white inside a Pokémon stays), `compose` puts the Pokémon onto a procedural background at a random scale and
place, and `camera` adds what a cheap camera does: light, colour balance, blur, noise, JPEG. A picture with no
white border (a photo) keeps its own background: only scale, place and camera apply.

Backgrounds come in families drawn from disjoint seed streams: `TRAIN` for training augmentation, `SCENE_TEST`
for evaluate's scene test and its "no Pokémon" images, `NO_POKEMON_VAL` for the open-set threshold, so a test
never shows a background used in training or calibration. Everything is
drawn from numpy generators, so a seed always gives the same picture.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from scipy import ndimage

# background families: first element of every background generator's seed. NO_POKEMON_VAL: the negatives that
# set the open-set threshold (pokedex/recognise/enroll.py); evaluate's negatives come from SCENE_TEST
TRAIN, SCENE_TEST, NO_POKEMON_VAL = 0, 1, 2
NEAR_WHITE = 230  # min(R, G, B) at or above this counts as white (JPEG leaves 240-255 on a white field)


def foreground_mask(rgb: np.ndarray) -> np.ndarray:
    """float32 alpha in [0, 1]: 0 on the near-white region that touches the picture's border, 1 elsewhere."""
    labels, _ = ndimage.label(rgb.min(axis=2) >= NEAR_WHITE)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, border[border > 0])
    # grow the background by a pixel, then soften: the resampled white fringe of a sprite's outline goes with it
    background = ndimage.binary_dilation(background, iterations=1) if background.any() else background
    return ndimage.gaussian_filter((~background).astype(np.float32), 0.6)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def gradient(rng: np.random.Generator, size: int) -> Image.Image:
    """A linear ramp between two random colours, vertical or horizontal."""
    ramp = np.linspace(0.0, 1.0, size)[:, None]
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    grad = np.repeat((c0[None, :] * (1 - ramp) + c1[None, :] * ramp)[:, None, :], size, axis=1).astype(np.uint8)
    if rng.random() < 0.5:
        grad = grad.transpose(1, 0, 2)
    return Image.fromarray(np.ascontiguousarray(grad), "RGB")


def _texture(rng: np.random.Generator, size: int) -> Image.Image:
    """Blotchy colour noise at a random grain: carpet, wood, a blurred room."""
    cells = int(rng.integers(2, 12))
    base = rng.integers(0, 256, 3) * rng.uniform(0.3, 1.0)
    low = np.clip(base + rng.normal(0, rng.uniform(10, 70), (cells, cells, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(low, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    grain = rng.normal(0, rng.uniform(0, 12), (size, size, 1))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8), "RGB")


def _pattern(rng: np.random.Generator, size: int) -> Image.Image:
    """Stripes, checks or a grid: fabric, tiles, a screen's pixels."""
    img = Image.new("RGB", (size, size), _colour(rng))
    d = ImageDraw.Draw(img)
    step, ink, kind = int(rng.integers(3, max(4, size // 3))), _colour(rng), int(rng.integers(0, 3))
    for k in range(-size, 2 * size, step):
        if kind == 0:
            d.line([(k, 0), (k + size * rng.uniform(-0.5, 0.5), size)], fill=ink, width=max(1, step // 3))
        elif kind == 1:
            d.line([(0, k), (size, k)], fill=ink, width=1)
            d.line([(k, 0), (k, size)], fill=ink, width=1)
        else:
            for j in range(0, size, step):
                if (k // step + j // step) % 2 == 0:
                    d.rectangle([k, j, k + step - 1, j + step - 1], fill=ink)
    return img


def _card(rng: np.random.Generator, size: int) -> Image.Image:
    """A trading card: a coloured border around an inner panel, on a table."""
    img = _texture(rng, size)
    d = ImageDraw.Draw(img)
    inset = rng.uniform(-0.1, 0.15, 4) * size
    outer = [inset[0], inset[1], size - inset[2], size - inset[3]]
    d.rounded_rectangle(outer, radius=int(size * 0.06), fill=_colour(rng))
    border = size * rng.uniform(0.04, 0.1)
    d.rectangle([outer[0] + border, outer[1] + border, outer[2] - border, outer[3] - border], fill=_colour(rng))
    return img


def clutter(rng: np.random.Generator, img: Image.Image, count: int, line_width=(1, 6)) -> Image.Image:
    """`count` translucent ellipses, boxes and lines over `img`; returns RGBA."""
    size = img.width
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    for _ in range(count):
        colour = _colour(rng) + (int(rng.integers(90, 230)),)
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.08, 0.5, 2) * size
        kind = rng.integers(0, 3)
        if kind == 0:
            d.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            d.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            d.line([(x0, y0), (x0 + w, y0 + h)], fill=colour, width=int(rng.integers(*line_width)))
    return Image.alpha_composite(img.convert("RGBA"), layer)


KINDS = (gradient, _texture, _pattern, _card)


def background(family: int, seed: int, index: int, size: int) -> Image.Image:
    """One background of a family: its seed stream never meets another family's."""
    rng = np.random.default_rng([family, seed, index])
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    return clutter(rng, kind(rng, size), int(rng.integers(0, 6))).convert("RGB")


def compose(rgb: Image.Image, scene: Image.Image, rng: np.random.Generator, scale: tuple[float, float],
            mask: np.ndarray | None = None) -> Image.Image:
    """The picture's foreground on `scene` (same size), scaled by a factor in `scale`, at a random place, slightly
    turned; parts that leave the frame are cut off, as a camera would. `mask`: the picture's uint8 foreground
    mask, if already known."""
    return compose_with_box(rgb, scene, rng, scale, mask)[0]


def compose_with_box(rgb: Image.Image, scene: Image.Image, rng: np.random.Generator, scale: tuple[float, float],
                     mask: np.ndarray | None = None) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """compose, and the Pokémon's box in the frame: (x0, y0, x1, y1) pixels, x1/y1 exclusive, around the pixels
    where its mask is at least half opaque after scaling and turning (None if none is left in the frame)."""
    size = scene.width
    fg = rgb.convert("RGB")
    if mask is None:
        mask = (foreground_mask(np.asarray(fg)) * 255).astype(np.uint8)
    fg = fg.convert("RGBA")
    fg.putalpha(Image.fromarray(mask, "L"))
    fg = fg.resize((size, size), Image.Resampling.BILINEAR) if fg.size != (size, size) else fg
    fg = fg.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    side = max(4, int(round(size * rng.uniform(*scale))))
    fg = fg.resize((side, side), Image.Resampling.BILINEAR)
    slack = size - side
    x = int(rng.uniform(-0.1, 1.1) * slack) if slack > 0 else int(rng.uniform(slack, 0))
    y = int(rng.uniform(-0.1, 1.1) * slack) if slack > 0 else int(rng.uniform(slack, 0))
    out = scene.convert("RGBA")
    out.alpha_composite(fg, (max(x, 0), max(y, 0)), (max(-x, 0), max(-y, 0)))
    alpha = Image.new("L", scene.size, 0)
    alpha.paste(fg.getchannel("A"), (x, y))  # pasting clips what leaves the frame, as alpha_composite did
    ys, xs = np.nonzero(np.asarray(alpha) >= 128)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else None
    return out.convert("RGB"), box


def camera(img: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """Light, contrast, colour balance, focus, sensor noise and JPEG of a cheap camera; strength 0 is none."""
    s = float(strength)
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(1 - 0.4 * s, 1 + 0.35 * s)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(1 - 0.35 * s, 1 + 0.25 * s)))
    if rng.random() < 0.6 * s:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5 * s))))
    arr = np.asarray(img, dtype=np.float32) * rng.uniform(1 - 0.15 * s, 1 + 0.15 * s, 3).astype(np.float32)
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * float(rng.uniform(0, 8 * s))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5 * s:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=int(rng.integers(30, 90)))
        img = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return img


def viewpoint(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What holding a camera by hand adds: a tilted view (a perspective warp of up to 12 % of the side per
    corner, the edges reflected in), darker corners (vignetting) and, half the time, a soft glare spot."""
    import cv2  # scope: only training imports this path

    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * np.float32([w, h])
    arr = cv2.warpPerspective(arr, cv2.getPerspectiveTransform(corners, moved), (w, h), borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    out = arr.astype(np.float32) * (1 - float(rng.uniform(0, 0.35)) * r2 / 2)[..., None]
    if rng.random() < 0.5:
        cx, cy, radius = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.15, 0.5) * w
        glare = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius ** 2)) * float(rng.uniform(0.2, 0.6))
        out = out * (1 - glare[..., None]) + 255 * glare[..., None]
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def scene_image(rgb: Image.Image, family: int, seed: int, index: int, size: int, scale: tuple[float, float],
                strength: float = 1.0) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """`rgb` put into scene number `index` of a background family and photographed, and its box (as
    compose_with_box): deterministic."""
    rng = np.random.default_rng([family, seed, index, 1])
    frame, box = compose_with_box(rgb, background(family, seed, index, size), rng, scale)
    return camera(frame, rng, strength), box


def no_pokemon(family: int, seed: int, n: int, size: int) -> np.ndarray:
    """n uint8 NCHW pictures without a Pokémon: photographed backgrounds of a family, and every eighth a plain
    colour (a wall, a blank screen)."""
    pictures = []
    for index in range(n):
        rng = np.random.default_rng([family, seed, index, 2])
        if index % 8 == 7:
            plain = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
            pictures.append(camera(plain, rng, 0.5))
        else:
            pictures.append(camera(background(family, seed, index, size), rng))
    return np.stack([np.asarray(p) for p in pictures]).transpose(0, 3, 1, 2).copy()

