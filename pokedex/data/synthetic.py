"""The embedded synthetic Pokédex: procedurally drawn creatures, one species per class.

Nothing can be downloaded here, so the default data is generated. Each species is a distinct creature
(body shape, colours, pattern, eyes, ears, legs, tail, wings). Species come in evolution families of one
to three that share body plan and colours and differ in size, hue, horns, wings and pattern, so that
neighbouring classes are deliberately close. Every image is rendered with a random pose, scale,
rotation, background clutter, lighting, blur, noise and partial occlusion.

Everything is drawn from numpy generators seeded by (seed, class, image), so one seed always gives
byte-identical JPEGs, whatever the number of worker processes.
"""

from __future__ import annotations

import colorsys
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter

from pokedex.data.scenes import clutter, gradient

BODIES = ("ellipse", "box", "diamond", "pear", "blob")
PATTERNS = ("none", "stripes", "spots", "belly", "split")
EARS = ("none", "pointy", "round")
TAILS = ("none", "thin", "flame", "leaf")

_ONSETS = ["b", "br", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pl",
           "r", "s", "sh", "sk", "sn", "sp", "st", "t", "th", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ee", "oo", "y"]
_CODAS = ["", "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "x", "z", "nd", "rk", "mp"]
_SUFFIXES = (["let", "ito", "ip", "y", "ee", "ling", "pup", "kit"],       # first stage
             ["ander", "ora", "ix", "on", "isk", "ast", "ern"],           # second stage
             ["izard", "orus", "aroth", "king", "adon", "eon", "agon"])   # final stage


@dataclass(frozen=True)
class Species:
    """Everything that makes one class look like itself."""

    dex_id: int
    name: str
    body: str
    aspect: float          # body width / height
    blob: tuple            # harmonic amplitudes and phases of a 'blob' outline
    primary: tuple         # RGB
    secondary: tuple       # RGB
    pattern: str
    pattern_angle: int     # stripes: 0 horizontal, 90 vertical
    eyes: int
    eye_size: float
    ears: str
    horns: bool
    legs: int
    tail: str
    wings: bool
    size: float            # evolutions grow


def _rgb(h: float, s: float, v: float) -> tuple:
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)))


def _family_root(rng: np.random.Generator) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(int(rng.integers(1, 3)))]
    return "".join(parts)


def make_species(num_classes: int, seed: int) -> list[Species]:
    """The species table: classes 1..num_classes grouped into evolution families of 1-3."""
    rng = np.random.default_rng([seed, 0x5EED])
    species: list[Species] = []
    names: set[str] = set()
    while len(species) < num_classes:
        family_size = min(int(rng.choice([1, 2, 3], p=[0.25, 0.3, 0.45])), num_classes - len(species))
        base = dict(
            body=str(rng.choice(BODIES)),
            aspect=float(rng.uniform(0.7, 1.4)),
            blob=tuple(float(x) for x in rng.uniform(0, 1, 6)),
            hue=float(rng.uniform(0, 1)),
            hue2=float(rng.uniform(0, 1)),
            sat=float(rng.uniform(0.55, 1.0)),
            val=float(rng.uniform(0.55, 1.0)),
            pattern=str(rng.choice(PATTERNS)),
            pattern_angle=int(rng.choice([0, 90])),
            eyes=int(rng.choice([1, 2, 2, 2, 3])),
            eye_size=float(rng.uniform(0.12, 0.22)),
            ears=str(rng.choice(EARS)),
            legs=int(rng.choice([0, 2, 4])),
            tail=str(rng.choice(TAILS)),
        )
        while True:
            root = _family_root(rng)
            stage_names = [
                (root + str(rng.choice(_SUFFIXES[stage if family_size > 1 else int(rng.integers(0, 3))]))).capitalize()
                for stage in range(family_size)
            ]
            if len(set(stage_names)) == family_size and not names.intersection(stage_names):
                break
        names.update(stage_names)
        for stage in range(family_size):
            # Evolutions keep the body plan and drift in hue, grow, and gain horns, wings and patterns.
            species.append(Species(
                dex_id=len(species) + 1,
                name=stage_names[stage],
                body=base["body"],
                aspect=base["aspect"],
                blob=base["blob"],
                primary=_rgb(base["hue"] + 0.045 * stage, base["sat"], base["val"] - 0.08 * stage),
                secondary=_rgb(base["hue2"], 0.8, 0.9),
                pattern=base["pattern"] if stage == 0 else PATTERNS[(PATTERNS.index(base["pattern"]) + stage) % 5],
                pattern_angle=base["pattern_angle"],
                eyes=base["eyes"],
                eye_size=base["eye_size"] * (1.0 - 0.12 * stage),
                ears=base["ears"],
                horns=stage >= 1,
                legs=base["legs"],
                tail=base["tail"] if stage < 2 else "flame",
                wings=stage >= 2,
                size=0.8 + 0.14 * stage,
            ))
    return species


def _outline(sp: Species, cx: float, cy: float, bw: float, bh: float, n: int = 72) -> list[tuple]:
    """Body outline as a polygon (image y grows downwards)."""
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        c, s = math.cos(t), math.sin(t)
        if sp.body in ("box", "diamond"):
            e = 2 / (4.0 if sp.body == "box" else 1.1)
            x, y = math.copysign(abs(c) ** e, c), math.copysign(abs(s) ** e, s)
        elif sp.body == "pear":
            x, y = c * (1 + 0.35 * s), s
        elif sp.body == "blob":
            a = sp.blob
            r = 1 + 0.12 * math.cos(2 * t + 6 * a[0]) + 0.1 * math.cos(3 * t + 6 * a[1]) + 0.08 * math.cos(5 * t + 6 * a[2])
            x, y = r * c, r * s
        else:
            x, y = c, s
        pts.append((cx + bw * x, cy + bh * y))
    return pts


def _shade(rgb: tuple, f: float) -> tuple:
    return tuple(int(min(255, max(0, c * f))) for c in rgb)


def _draw_species(sp: Species, canvas: int) -> Image.Image:
    """The creature alone on a transparent square canvas, facing right."""
    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx, cy = canvas / 2, canvas / 2 + canvas * 0.04
    bh = canvas * 0.25 * sp.size
    bw = bh * sp.aspect
    dark = _shade(sp.primary, 0.6)
    outline = _shade(sp.primary, 0.35)

    if sp.wings:
        for side in (-1, 1):
            wx = cx + side * bw * 0.9
            d.ellipse([wx - bw * 0.55, cy - bh * 1.45, wx + bw * 0.55, cy - bh * 0.2],
                      fill=_shade(sp.secondary, 1.1) + (200,), outline=outline + (255,), width=2)
    if sp.tail != "none":
        tx0, ty0 = cx + bw * 0.8, cy + bh * 0.3
        tx1, ty1 = cx + bw * 1.55, cy - bh * 0.55
        d.line([(tx0, ty0), (cx + bw * 1.4, cy + bh * 0.2), (tx1, ty1)], fill=dark + (255,), width=max(3, int(bh * 0.16)))
        r = bh * 0.3
        if sp.tail == "flame":
            d.polygon([(tx1 - r, ty1), (tx1, ty1 - 2.2 * r), (tx1 + r, ty1), (tx1, ty1 + r * 0.8)], fill=(255, 140, 20, 255))
            d.ellipse([tx1 - r * 0.5, ty1 - r * 0.6, tx1 + r * 0.5, ty1 + r * 0.5], fill=(255, 230, 80, 255))
        elif sp.tail == "leaf":
            d.ellipse([tx1 - r * 1.3, ty1 - r * 0.7, tx1 + r * 1.3, ty1 + r * 0.7], fill=(60, 170, 60, 255), outline=outline + (255,))
    for i in range(sp.legs):
        lx = cx + bw * (-0.6 + 1.2 * (i + 0.5) / sp.legs) - bw * 0.12
        d.rounded_rectangle([lx, cy + bh * 0.6, lx + bw * 0.26, cy + bh * 1.35], radius=bw * 0.1, fill=dark + (255,))

    body = _outline(sp, cx, cy, bw, bh)
    ears = []
    if sp.ears == "pointy":
        for side in (-1, 1):
            ex = cx + side * bw * 0.5
            ears.append(("poly", [(ex - bw * 0.25, cy - bh * 0.7), (ex + side * bw * 0.15, cy - bh * 1.45), (ex + bw * 0.25, cy - bh * 0.75)]))
    elif sp.ears == "round":
        for side in (-1, 1):
            ex, ey, r = cx + side * bw * 0.6, cy - bh * 0.85, bw * 0.28
            ears.append(("ellipse", [ex - r, ey - r, ex + r, ey + r]))
    for kind, geom in ears:
        (d.polygon if kind == "poly" else d.ellipse)(geom, fill=sp.primary + (255,), outline=outline + (255,))
    d.polygon(body, fill=sp.primary + (255,), outline=outline + (255,))

    # Pattern in the secondary colour, clipped to the body.
    mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(mask).polygon(body, fill=255)
    pat = Image.new("L", layer.size, 0)
    p = ImageDraw.Draw(pat)
    if sp.pattern == "stripes":
        step = bh * 0.42
        for k in range(-4, 5):
            if sp.pattern_angle == 0:
                y = cy + k * step
                p.rectangle([cx - bw * 1.5, y, cx + bw * 1.5, y + step * 0.45], fill=255)
            else:
                x = cx + k * step
                p.rectangle([x, cy - bh * 1.5, x + step * 0.45, cy + bh * 1.5], fill=255)
    elif sp.pattern == "spots":
        for k in range(6):
            ang = 2 * math.pi * (k / 6 + sp.blob[3])
            sx, sy, r = cx + bw * 0.55 * math.cos(ang), cy + bh * 0.5 * math.sin(ang), min(bw, bh) * 0.17
            p.ellipse([sx - r, sy - r, sx + r, sy + r], fill=255)
    elif sp.pattern == "belly":
        p.ellipse([cx - bw * 0.55, cy - bh * 0.05, cx + bw * 0.55, cy + bh * 1.0], fill=255)
    elif sp.pattern == "split":
        p.rectangle([cx - bw * 1.5, cy + bh * 0.15, cx + bw * 1.5, cy + bh * 1.5], fill=255)
    if sp.pattern != "none":
        colour = Image.new("RGBA", layer.size, sp.secondary + (255,))
        layer.paste(colour, (0, 0), ImageChops.multiply(pat, mask))

    if sp.horns:
        for side in (-1, 1):
            hx = cx + side * bw * 0.25
            d.polygon([(hx - bw * 0.1, cy - bh * 0.85), (hx + side * bw * 0.1, cy - bh * 1.6), (hx + bw * 0.1, cy - bh * 0.85)],
                      fill=(235, 225, 200, 255), outline=outline + (255,))
    er = bw * sp.eye_size
    for i in range(sp.eyes):
        ex = cx + bw * (0.05 + 0.32 * (i - (sp.eyes - 1) / 2))
        ey = cy - bh * 0.35
        d.ellipse([ex - er, ey - er, ex + er, ey + er], fill=(250, 250, 250, 255), outline=(20, 20, 20, 255))
        pr = er * 0.5
        d.ellipse([ex - pr + er * 0.25, ey - pr, ex + pr + er * 0.25, ey + pr], fill=(15, 15, 25, 255))
    return layer


def _background(rng: np.random.Generator, canvas: int) -> Image.Image:
    return clutter(rng, gradient(rng, canvas), int(rng.integers(3, 9)), line_width=(2, 10))


def render(sp: Species, seed: int, index: int, size: int) -> Image.Image:
    """One photo of a species: random pose, scale, place, clutter, light, blur, noise, occlusion."""
    rng = np.random.default_rng([seed, sp.dex_id, index])
    canvas = size * 2  # draw at 2x, then downsample: cheap anti-aliasing
    scene = _background(rng, canvas)

    creature = _draw_species(sp, canvas)
    if rng.random() < 0.5:
        creature = creature.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    creature = creature.rotate(float(rng.uniform(-25, 25)), resample=Image.Resampling.BICUBIC)
    scale = float(rng.uniform(0.65, 1.15))
    side = max(8, int(canvas * scale))
    creature = creature.resize((side, side), Image.Resampling.BILINEAR)
    max_shift = canvas * 0.15
    ox = int((canvas - side) / 2 + rng.uniform(-max_shift, max_shift))
    oy = int((canvas - side) / 2 + rng.uniform(-max_shift, max_shift))
    scene.alpha_composite(creature, (max(ox, 0), max(oy, 0)), (max(-ox, 0), max(-oy, 0)))

    if rng.random() < 0.35:  # something in front of it
        d = ImageDraw.Draw(scene)
        w, h = rng.uniform(0.15, 0.35, 2) * side
        x0 = ox + rng.uniform(0.1, 0.9) * side - w / 2
        y0 = oy + rng.uniform(0.1, 0.9) * side - h / 2
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x0 + w, y0 + h], fill=colour)

    img = scene.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.65, 1.35)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(0.7, 1.3)))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr * rng.uniform(0.9, 1.1, 3)[None, None, :]  # colour cast of the light
    arr = arr + rng.normal(0.0, float(rng.uniform(0, 6)), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def render_jpeg(sp: Species, seed: int, index: int, size: int, quality: int) -> bytes:
    buf = io.BytesIO()
    render(sp, seed, index, size).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
