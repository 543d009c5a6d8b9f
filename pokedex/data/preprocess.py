"""Preprocess: decode every raw file, convert to RGB, resize, re-encode as JPEG; reject what cannot be used.

Every input file ends up either in the manifest (source -> processed, class, hash) or in the rejects
report with its reason: empty, unreadable, not an image, truncated or corrupt, a decompression bomb (over
`data.max_pixels`), too small (under `data.min_image_size`), outside a class folder. Handled on the way:
EXIF orientation, transparency (RGBA, LA, palette) flattened on white, CMYK, 16-bit greyscale, the first
frame of animations. Exact duplicates (same processed bytes) are kept once per class; the same image under
two classes is label noise and is rejected everywhere, so no split can leak it.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pokedex.core.checks import COUNT, Number
from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.core.parallel import parallel_map
from pokedex.data.classes import ALL_POKEMON, CLASS_DIR

log = logging.getLogger(__name__)

MANIFEST_FIELDS = ["source", "processed", "dex_id", "sha256"]
REJECT_FIELDS = ["source", "reason"]
UPSCALERS = ("bicubic", "scale2x")  # data.upscale: how a picture smaller than data.image_size is enlarged
MAX_PIXELS = 100_000_000  # data.max_pixels's default: the header of a "decompression bomb" says more

PARAM_RULES = {  # data.image_size, which every later stage reads too, is pokedex/data/__init__.py's
    "data.jpeg_quality": Number(int, 1, 100),
    "data.min_image_size": COUNT,
    "data.max_pixels": COUNT,
    "data.workers": Number(int, 1, nullable=True),
}


@dataclass(frozen=True)
class Processed:
    source: str      # relative to the raw root
    processed: str   # relative to the processed image root
    dex_id: int
    sha256: str


@dataclass(frozen=True)
class Rejected:
    source: str
    reason: str


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB with the EXIF orientation applied; transparency is flattened onto white; 16-bit scaled to 8."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale PNG: keep the top 8 bits, not a clip
        return Image.fromarray((np.asarray(img, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def processed_name(source: Path) -> str:
    """Keep the source name so a processed file can be traced back by eye; non-JPEG names get '.jpg' added."""
    return source.name if source.suffix == ".jpg" else source.name + ".jpg"


def decode(source: Path, size: int, min_size: int, max_pixels: int) -> Image.Image | str:
    """The image as RGB, or the reason it cannot be used."""
    Image.MAX_IMAGE_PIXELS = None  # our own limit (max_pixels, read from the header below) is the one that speaks
    try:
        if source.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(source) as img:
            width, height = img.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                return (f"decompression bomb refused: {width}x{height} = {width * height:,} pixels, over "
                        f"data.max_pixels={max_pixels:,}")
            if min(width, height) < min_size:
                return f"too small: {width}x{height}, under data.min_image_size={min_size}"
            # JPEGs decode straight at a reduced scale (1/2..1/8) that still covers the target size:
            # most of the work saved on large photos, no visible loss after the downscale below
            img.draft("RGB", (size, size))
            img.load()  # the first frame of an animated GIF/WebP/PNG
            return to_rgb(img)
    except PermissionError:
        return "cannot be read: permission denied"
    except (UnidentifiedImageError, ImportError):
        # ImportError: once Ultralytics is imported, its patched Image.open retries unknown files with the
        # pi-heif plugin (HEIC), which is not installed; the file is still no image Pillow can read
        return "not an image (no known image format)"
    except Exception as exc:  # truncated/corrupt data raises many types; every one is a reject, not a crash
        return f"truncated or corrupt image: {type(exc).__name__}: {exc}"


def scale2x(rgb: np.ndarray) -> np.ndarray:
    """Pixel art at twice the side by Scale2x (EPX/AdvMAME2x, the simplest of the xBR/hqx family): each pixel
    becomes four, and a corner takes its two neighbours' colour where they agree and the other two do not, so a
    diagonal staircase becomes a line instead of larger steps (nearest neighbour) or a blur (bicubic)."""
    padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
    up, down, left, right = padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]

    def same(a, b):
        return (a == b).all(axis=2, keepdims=True)

    corners = [np.where(same(left, up) & ~same(left, down) & ~same(up, right), up, rgb),        # top left
               np.where(same(up, right) & ~same(up, left) & ~same(right, down), right, rgb),    # top right
               np.where(same(down, left) & ~same(down, right) & ~same(left, up), left, rgb),    # bottom left
               np.where(same(right, down) & ~same(right, up) & ~same(down, left), down, rgb)]   # bottom right
    h, w, c = rgb.shape
    out = np.empty((2 * h, 2 * w, c), rgb.dtype)
    out[0::2, 0::2], out[0::2, 1::2], out[1::2, 0::2], out[1::2, 1::2] = corners
    return out


def check_upscale(upscale: str) -> None:
    if upscale not in UPSCALERS:
        raise PokedexError(f"data.upscale={upscale!r} must be one of {', '.join(UPSCALERS)}.")


def square(picture: Image.Image, size: int) -> Image.Image:
    """The picture as the classifier reads it: size x size, bicubic, whatever its shape (no centre cut out). Every
    path to the classifier calls this (training pictures unless data.upscale=scale2x, evaluate, predict, enroll,
    suggest, the benchmarks), so a picture scores the same wherever it is read."""
    return picture.resize((size, size), Image.Resampling.BICUBIC)


def resized(rgb: Image.Image, size: int, upscale: str) -> Image.Image:
    """The picture at size x size: bicubic; or, with `upscale` "scale2x" and a picture smaller than that, doubled
    by scale2x until it is at least as large, then shrunk with Lanczos (`upscale` checked by check_upscale)."""
    if upscale == "scale2x" and min(rgb.size) < size:
        pixels = np.asarray(rgb.convert("RGB"))
        while min(pixels.shape[:2]) < size:
            pixels = scale2x(pixels)
        return Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS)
    return square(rgb, size)


def process_file(source: Path, raw_root: Path, out_root: Path, size: int, quality: int, min_size: int,
                 max_pixels: int, upscale: str = "bicubic") -> Processed | Rejected:
    rel = source.relative_to(raw_root).as_posix()
    class_dir = source.parent.name
    if source.parent.parent != raw_root or not CLASS_DIR.match(class_dir) or not 1 <= int(class_dir) <= ALL_POKEMON:
        return Rejected(rel, "not inside a class folder named by a 4-digit Pokédex id (0001-1025)")
    if not source.is_file():  # checked before any open(): reading a FIFO would block
        return Rejected(rel, "not a regular file (a broken link, FIFO or socket)")
    rgb = decode(source, size, min_size, max_pixels)
    if isinstance(rgb, str):
        return Rejected(rel, rgb)
    buf = io.BytesIO()
    resized(rgb, size, upscale).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    out_rel = f"{class_dir}/{processed_name(source)}"
    (out_root / out_rel).write_bytes(data)
    return Processed(rel, out_rel, int(class_dir), hashlib.sha256(data).hexdigest())


def drop_duplicates(records: list[Processed]) -> tuple[list[Processed], list[Rejected]]:
    """Same bytes in one class: keep the first by name. Same bytes in two classes: reject all copies."""
    by_hash: dict[str, list[Processed]] = {}
    for rec in sorted(records, key=lambda r: r.processed):
        by_hash.setdefault(rec.sha256, []).append(rec)
    kept, rejected = [], []
    for group in by_hash.values():
        classes = sorted({r.dex_id for r in group})
        if len(classes) > 1:
            names = ", ".join(f"{c:04d}" for c in classes)
            rejected += [Rejected(r.source, f"same image under several classes ({names}): label noise") for r in group]
        else:
            kept.append(group[0])
            rejected += [Rejected(r.source, f"exact duplicate of {group[0].source}") for r in group[1:]]
    return kept, rejected


def preprocess(raw_root: Path, out_root: Path, manifest: Path, rejects: Path, size: int, quality: int,
               workers: int | None, min_size: int, max_pixels: int, upscale: str = "bicubic") -> tuple[int, int]:
    """Returns (processed, rejected) counts; they add up to the number of files under raw_root."""
    check_upscale(upscale)  # a wrong data.upscale is named before any file is read
    if out_root.exists():
        shutil.rmtree(out_root)
    sources = sorted(p for p in raw_root.rglob("*") if not p.is_dir())  # broken links too: each gets a verdict
    for class_dir in {p.parent for p in sources}:
        (out_root / class_dir.relative_to(raw_root)).mkdir(parents=True, exist_ok=True)
    work = functools.partial(process_file, raw_root=raw_root, out_root=out_root, size=size, quality=quality,
                             min_size=min_size, max_pixels=max_pixels, upscale=upscale)
    results = list(parallel_map(work, sources, total=len(sources), workers=workers, desc="preprocess"))
    processed = [r for r in results if isinstance(r, Processed)]
    rejected = [r for r in results if isinstance(r, Rejected)]
    kept, duplicates = drop_duplicates(processed)
    dropped = {r.source for r in duplicates}
    for rec in processed:
        if rec.source in dropped:
            (out_root / rec.processed).unlink()
    rejected += duplicates
    for d in [d for d in out_root.rglob("*") if d.is_dir() and not any(d.iterdir())]:
        d.rmdir()
    write_csv(manifest, MANIFEST_FIELDS, [[getattr(r, k) for k in MANIFEST_FIELDS] for r in sorted(kept, key=lambda r: r.processed)])
    write_csv(rejects, REJECT_FIELDS, [[r.source, r.reason] for r in sorted(rejected, key=lambda r: r.source)])
    log.info("preprocess: %d files in, %d processed, %d rejected (see %s)", len(sources), len(kept), len(rejected), rejects)
    # tallied by kind (the part before ':' or ' of '): one line per kind, the detail is in rejects.csv
    for reason, count in Counter(r.reason.split(":")[0].split(" of ")[0] for r in rejected).most_common():
        log.info("  rejected %6d  %s", count, reason)
    assert len(kept) + len(rejected) == len(sources)
    return len(kept), len(rejected)


def read_manifest(path: Path) -> list[Processed]:
    if not path.is_file():
        raise PokedexError(f"{path} is missing; run the preprocess stage first (dvc repro preprocess).")
    with path.open(newline="", encoding="utf-8") as f:
        return [Processed(r["source"], r["processed"], int(r["dex_id"]), r["sha256"]) for r in csv.DictReader(f)]
