"""`data=pokeapi` (the default): real Pokémon from any tree with PokeAPI/sprites' layout.

The tree is `data.pokeapi.root` (a git clone of PokeAPI/sprites, or an unpacked npm package), or, when that is
unset, the pinned npm package `data.pokeapi.package`, fetched once with `npm pack` into the project's cache
(`.cache/pokedex/`, beside DVC's root) and checked against `data.pokeapi.integrity` before anything is read
from it. The package is read straight from its tarball; nothing else of it is unpacked.

Only the files directly inside the folders listed in `data.pokeapi.folders` (relative to `sprites/pokemon/`)
are read. Each is named `{id}.ext` or `{id}-{form}.ext`; forms belong to their species. An animated GIF gives
`data.pokeapi.frames_per_animation` distinct frames spread over the animation (exact repeats dropped before
choosing); a static image gives itself; an SVG (the Dream World art in `other/dream-world/`) is rendered by
resvg (a self-contained wheel, no system library) with its longer side `data.pokeapi.svg_size` pixels and no
system fonts, so it renders alike on every machine. Every picture is cropped to its visible pixels (on a transparent square
with a small margin) and written as PNG to `raw/NNNN/{folder}.{name}~{frame:03d}.png`: the part before `~` names
its animation, so that yolo-format can keep all frames of one animation in one split. Every other file ends in
the ingest rejects with its reason: PokeAPI's alternate-form ids (above 10000, no species number), names that
are no species (`substitute.gif`), files that are no image, corrupt images or SVGs, frames with nothing visible.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, ImageSequence, UnidentifiedImageError

from pokedex.core.checks import COUNT, check_value
from pokedex.core.errors import PokedexError
from pokedex.core.parallel import parallel_map
from pokedex.data.classes import ALL_POKEMON
from pokedex.data.sources import npm
from pokedex.data.sources.base import IngestResult, cache_dir
from pokedex.data.sources.npm import file_integrity  # noqa: F401 - re-exported for tests and benchmarks

log = logging.getLogger(__name__)

SPRITES = "sprites/pokemon"
SPECIES_NAME = re.compile(r"^(\d+)(?:-([A-Za-z0-9-]+))?$")  # 25, 201-a, 351-rainy
ALTERNATE_FORM_IDS = 10000  # PokeAPI numbers alternate forms 10001+: no species number in the name
RASTER = {".gif", ".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VECTOR = ".svg"
PARAM_RULES = {"data.pokeapi.frames_per_animation": COUNT}
GROUP_SEPARATOR = "~"  # raw name `{animation}~{frame}.png`: what comes before it is the animation (the split group)
MARGIN = 0.08  # transparent border around the visible pixels, as a fraction of the longer side
ALTERNATIVES = ("set data.pokeapi.root to a clone of PokeAPI/sprites or an unpacked package, or use data=folder "
                "with your own images, or data=synthetic")


# --- the pinned package ------------------------------------------------------------------------------------

def fetch_package(spec: str, integrity: str, cache: Path) -> Path:
    """The pinned PokeAPI package's tarball (pokedex.data.sources.npm), its errors naming data.pokeapi."""
    return npm.fetch_package(spec, integrity, cache, "data.pokeapi", ALTERNATIVES)


# --- reading a tree ----------------------------------------------------------------------------------------

def sprite_root(root: Path) -> Path:
    """root/sprites/pokemon of a clone, or root/package/sprites/pokemon of an unpacked npm package."""
    for candidate in (root / SPRITES, root / "package" / SPRITES):
        if candidate.is_dir():
            return candidate
    raise PokedexError(f"data.pokeapi.root={root} holds no {SPRITES}/ folder; point it at a clone of PokeAPI/sprites "
                       "or an unpacked npm package.")


def folder_files(root: Path | None, tarball: Path | None, folders: list[str]) -> Iterator[tuple[str, str, bytes | Path]]:
    """(folder, file name, content) of every file directly inside each folder: a Path in a tree, bytes from a
    tarball. Sub-folders are folders of their own (list them to read them)."""
    wanted = [f.strip("/") for f in folders]
    if root is not None:
        base = sprite_root(root)
        for folder in wanted:
            if not (base / folder).is_dir():
                raise PokedexError(f"data.pokeapi.folders lists {folder!r}, but {base / folder} is not a folder.")
            for path in sorted(p for p in (base / folder).iterdir() if not p.is_dir()):
                yield folder, path.name, path
        return
    prefix = f"package/{SPRITES}/"
    seen = set()
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            if not member.name.startswith(prefix) or member.isdir():
                continue
            folder, _, name = member.name[len(prefix):].rpartition("/")
            if folder in wanted:
                seen.add(folder)
                reader = tar.extractfile(member)
                yield folder, name, reader.read() if reader else b""
    if missing := [f for f in wanted if f not in seen]:
        raise PokedexError(f"data.pokeapi.folders lists {', '.join(missing)}, which the package has no files in; "
                           "fix the list or set data.pokeapi.root to a tree that has them.")


# --- one file -> frames ------------------------------------------------------------------------------------

@dataclass
class FileResult:
    source: str
    written: int = 0
    frames_seen: int = 0
    skipped: bool = False
    reject: str | None = None


def species_id(stem: str) -> int | str:
    """The species number of a sprite name, or why it has none."""
    match = SPECIES_NAME.match(stem)
    if not match:
        return "not named by a species number ({id}.ext or {id}-{form}.ext)"
    dex = int(match.group(1))
    if dex > ALTERNATE_FORM_IDS:
        return f"PokeAPI alternate-form id {dex}: no species number in the name"
    if not 1 <= dex <= ALL_POKEMON:
        return f"species number {dex} is outside the national Pokédex (1-{ALL_POKEMON})"
    return dex


def render_svg(data: bytes, size: int) -> Image.Image:
    """An SVG drawn in RGBA with its longer side `size` pixels (raises on an SVG that resvg cannot read)."""
    import resvg_py

    svg = data.decode("utf-8")
    natural = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True))))
    side = {"width": size} if natural.width >= natural.height else {"height": size}
    drawn = resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True, **side)
    return Image.open(io.BytesIO(bytes(drawn))).convert("RGBA")


def distinct_frames(img: Image.Image) -> list[tuple[int, Image.Image]]:
    """(index, RGBA frame) of every frame that is not an exact repeat of an earlier one."""
    seen, frames = set(), []
    for index, frame in enumerate(ImageSequence.Iterator(img)):
        rgba = frame.convert("RGBA")
        key = hashlib.blake2b(rgba.tobytes(), digest_size=16).digest()
        if key not in seen:
            seen.add(key)
            frames.append((index, rgba))
    return frames


def spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over 0..n-1 (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def crop_to_visible(rgba: Image.Image) -> Image.Image | None:
    """The visible pixels on a transparent square with a margin; None when nothing is visible."""
    box = rgba.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None:
        return None
    part = rgba.crop(box)
    side = int(round(max(part.size) * (1 + 2 * MARGIN)))
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(part, ((side - part.width) // 2, (side - part.height) // 2))
    return square


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def folder_label(folder: str) -> str:
    """A folder as part of a file name: versions/generation-v/black-white/animated/back -> ...-animated-back."""
    return folder.replace("/", "-")


def ingest_file(item: tuple[str, str, bytes | Path], raw_dir: Path, num_classes: int, frames: int,
                svg_size: int = 256) -> FileResult:
    folder, name, content = item
    result = FileResult(f"{folder}/{name}")
    suffix = Path(name).suffix.lower()
    dex = species_id(Path(name).stem)
    if isinstance(dex, str):
        result.reject = dex
        return result
    if dex > num_classes:
        result.skipped = True
        return result
    if suffix not in RASTER | {VECTOR}:
        result.reject = f"not an image ({suffix or 'no extension'}: neither raster nor SVG)"
        return result
    try:
        data = content.read_bytes() if isinstance(content, Path) else content
        if suffix == VECTOR:
            candidates = [(0, render_svg(data, svg_size))]
        else:
            with Image.open(io.BytesIO(data)) as img:
                candidates = distinct_frames(img)
    except PermissionError:
        result.reject = "cannot be read: permission denied"
        return result
    except (UnidentifiedImageError, ImportError):
        result.reject = "not an image (no known image format)"
        return result
    except Exception as exc:  # noqa: BLE001 - corrupt data raises many types; each is a reject, not a crash
        what = "SVG that cannot be drawn" if suffix == VECTOR else "truncated or corrupt image"
        result.reject = f"{what}: {type(exc).__name__}: {exc}"
        return result
    result.frames_seen = len(candidates)
    visible = [(i, crop) for i, frame in candidates if (crop := crop_to_visible(frame)) is not None]
    if not visible:
        result.reject = "nothing visible (every frame is fully transparent)"
        return result
    target = raw_dir / f"{dex:04d}"
    target.mkdir(parents=True, exist_ok=True)
    animation = f"{folder_label(folder)}.{Path(name).stem}"
    for position in spread(len(visible), frames):
        index, crop = visible[position]
        (target / f"{animation}{GROUP_SEPARATOR}{index:03d}.png").write_bytes(png(crop))
        result.written += 1
    return result


@dataclass
class PokeapiResult(IngestResult):
    files: int = 0
    frames_seen: int = 0
    seconds: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)


def ingest(data: DictConfig, raw_dir: Path) -> PokeapiResult:
    cfg, num_classes = data.pokeapi, int(data.num_classes)
    frames, svg_size = int(cfg.frames_per_animation), int(cfg.get("svg_size", 256))
    check_value(PARAM_RULES, "data.pokeapi.frames_per_animation", frames)
    if svg_size < 16:
        raise PokedexError(f"data.pokeapi.svg_size={svg_size} is too small to draw a Pokémon; use 16 or more (256).")
    if not cfg.folders:
        raise PokedexError("data.pokeapi.folders is empty; list sprite folders relative to sprites/pokemon/.")
    root = Path(cfg.root).expanduser() if cfg.get("root") else None
    if root is not None and not root.is_dir():
        raise PokedexError(f"data.pokeapi.root={root} is not a directory; point it at a clone of PokeAPI/sprites "
                           "or an unpacked npm package, or set it to null to fetch data.pokeapi.package.")
    tarball = None if root is not None else fetch_package(str(cfg.package), str(cfg.integrity or ""), cache_dir())
    start = time.perf_counter()
    items = list(folder_files(root, tarball, list(cfg.folders)))
    work = functools.partial(ingest_file, raw_dir=raw_dir, num_classes=num_classes, frames=frames, svg_size=svg_size)
    result = PokeapiResult(num_classes=num_classes, files=len(items))
    for done in parallel_map(work, items, total=len(items), workers=data.workers, desc="ingest (pokeapi)"):
        result.frames_seen += done.frames_seen
        if done.reject:
            result.rejects.append((done.source, done.reject))
        elif done.skipped:
            result.skipped += 1
        else:
            result.written += done.written
    result.rejects.sort()
    result.seconds = time.perf_counter() - start
    accepted = result.files - len(result.rejects) - result.skipped
    assert accepted + len(result.rejects) + result.skipped == result.files
    log.info("ingest (pokeapi): %d files in %d folders: %d animations/images -> %d frames written, %d rejected, "
             "%d skipped (species above data.num_classes); %d frames decoded in %.1f s (%.0f frames/s)",
             result.files, len(cfg.folders), accepted, result.written, len(result.rejects), result.skipped,
             result.frames_seen, result.seconds, result.frames_seen / max(result.seconds, 1e-9))
    return result
