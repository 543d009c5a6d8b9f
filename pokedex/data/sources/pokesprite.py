"""`data=pokesprite`: the box sprites of species 1-905 from pokesprite (npm `pokesprite-images`, MIT).

The tree is `data.pokesprite.root` (an unpacked package or a clone of msikma/pokesprite), or, when that is unset,
the pinned npm package `data.pokesprite.package`, fetched once and checked against `data.pokesprite.integrity`
(pokedex.data.sources.npm), read straight from its tarball. Every file under the folders listed in
`data.pokesprite.folders` (`pokemon-gen8`, `pokemon-gen7x`) is read, sub-folders included:

    {folder}/{regular|shiny}/[female/|right/]{slug}[-{form}].png

The species comes from the slug (`data/pokemon.json` of the same tree maps dex ids to slugs; the longest slug
that the name starts with wins, so `mr-mime-galar` is Mr. Mime in its Galar form). Pictures are cropped to
their visible pixels and written as `raw/NNNN/{regular|shiny}.{slug-form}~{folder}[-female|-right].png`: the
split group (before `~`) is one colouring of one form, so a picture and its near-copies (the gen8 icon that
repeats gen7x's, the female and right-facing variants) always share a split. Exact duplicates (the same
pixels once cropped: gen8 often repeats the gen7x picture) are one picture: the first in path order is kept, the others
are listed in the rejects with the file they repeat, as is every file that is no species' sprite.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError

from pokedex.core.errors import PokedexError
from pokedex.data.sources import npm
from pokedex.data.sources.base import IngestResult, cache_dir
from pokedex.data.sources.pokeapi import GROUP_SEPARATOR, crop_to_visible, png

log = logging.getLogger(__name__)

SPECIES_TABLE = "data/pokemon.json"
COLOURS = ("regular", "shiny")
VARIANTS = ("female", "right")  # a female or right-facing drawing of the same form: same split group
ALTERNATIVES = ("set data.pokesprite.root to an unpacked pokesprite-images package, or leave pokesprite out of "
                "data.source")


@dataclass
class Sprite:
    path: str  # relative to the tree root, e.g. pokemon-gen8/shiny/female/frillish.png
    content: bytes


def tree_files(root: Path | None, tarball: Path | None, folders: list[str]) -> tuple[dict, list[Sprite]]:
    """The species table and every file under `folders` (recursively), sorted by path."""
    wanted = [f.strip("/") for f in folders]
    files, table = [], None
    if root is not None:
        base = root / "package" if (root / "package" / SPECIES_TABLE).is_file() else root
        if not (base / SPECIES_TABLE).is_file():
            raise PokedexError(f"data.pokesprite.root={root} holds no {SPECIES_TABLE}; point it at an unpacked "
                               "pokesprite-images package or a clone of pokesprite.")
        table = json.loads((base / SPECIES_TABLE).read_text(encoding="utf-8"))
        for folder in wanted:
            if not (base / folder).is_dir():
                raise PokedexError(f"data.pokesprite.folders lists {folder!r}, but {base / folder} is not a folder.")
            files += [Sprite(p.relative_to(base).as_posix(), p.read_bytes())
                      for p in (base / folder).rglob("*") if p.is_file()]
    else:
        seen = set()
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.startswith("package/"):
                    continue
                path = member.name.removeprefix("package/")
                if path == SPECIES_TABLE:
                    table = json.loads(tar.extractfile(member).read())
                elif (top := path.split("/", 1)[0]) in wanted:
                    seen.add(top)
                    files.append(Sprite(path, tar.extractfile(member).read()))
        if table is None:
            raise PokedexError(f"the package {tarball} holds no {SPECIES_TABLE}; check data.pokesprite.package.")
        if missing := [f for f in wanted if f not in seen]:
            raise PokedexError(f"data.pokesprite.folders lists {', '.join(missing)}, which the package has no files "
                               "in; fix the list or set data.pokesprite.root to a tree that has them.")
    return table, sorted(files, key=lambda s: s.path)


def slug_table(table: dict) -> dict[str, int]:
    """English slug -> dex id, from the package's data/pokemon.json ({"025": {"slug": {"eng": "pikachu"}}})."""
    return {entry["slug"]["eng"]: int(dex) for dex, entry in table.items()}


def species_of(stem: str, slugs: dict[str, int]) -> tuple[int, str] | None:
    """(dex id, form name) of a sprite name: the longest slug that is the name or starts it before a '-'."""
    best = max((s for s in slugs if stem == s or stem.startswith(s + "-")), key=len, default=None)
    return None if best is None else (slugs[best], stem[len(best) + 1:])


def raw_name(path: str, stem: str) -> tuple[str | None, str | None]:
    """(`{colour}.{stem}~{folder}[-{variant}]`, None), or (None, why the path is no sprite of a species)."""
    folder, *middle, _ = PurePosixPath(path).parts
    if not middle or middle[0] not in COLOURS:
        return None, f"not a species sprite: not under {folder}/regular/ or {folder}/shiny/"
    if len(middle) > 2 or (len(middle) == 2 and middle[1] not in VARIANTS):
        return None, f"unknown sub-folder {'/'.join(middle)} (known: {', '.join(VARIANTS)})"
    variant = f"-{middle[1]}" if len(middle) == 2 else ""
    return f"{middle[0]}.{stem}{GROUP_SEPARATOR}{folder}{variant}", None


def ingest(data: DictConfig, raw_dir: Path) -> IngestResult:
    cfg, num_classes = data.pokesprite, int(data.num_classes)
    if not cfg.folders:
        raise PokedexError("data.pokesprite.folders is empty; list pokemon-gen8 and/or pokemon-gen7x.")
    root = Path(cfg.root).expanduser() if cfg.get("root") else None
    if root is not None and not root.is_dir():
        raise PokedexError(f"data.pokesprite.root={root} is not a directory; point it at an unpacked package, or "
                           "set it to null to fetch data.pokesprite.package.")
    tarball = None if root is not None else npm.fetch_package(
        str(cfg.package), str(cfg.integrity or ""), cache_dir(), "data.pokesprite", ALTERNATIVES)
    table, sprites = tree_files(root, tarball, list(cfg.folders))
    slugs = slug_table(table)
    result = IngestResult(num_classes=num_classes)
    first_seen: dict[bytes, str] = {}  # pixels -> the path that brought them first
    for sprite in sprites:
        name = PurePosixPath(sprite.path)
        if name.suffix.lower() != ".png":
            result.rejects.append((sprite.path, f"not a PNG sprite ({name.suffix or 'no extension'})"))
            continue
        target, why_not = raw_name(sprite.path, name.stem)
        if why_not:
            result.rejects.append((sprite.path, why_not))
            continue
        found = species_of(name.stem, slugs)
        if found is None:
            result.rejects.append((sprite.path, f"{name.stem!r} is no species slug of {SPECIES_TABLE}"))
            continue
        dex, _form = found
        if dex > num_classes:
            result.skipped += 1
            continue
        try:
            with Image.open(io.BytesIO(sprite.content)) as img:
                rgba = img.convert("RGBA")
        except UnidentifiedImageError:
            result.rejects.append((sprite.path, "not an image (no known image format)"))
            continue
        except Exception as exc:  # noqa: BLE001 - corrupt data raises many types; each is a reject, not a crash
            result.rejects.append((sprite.path, f"truncated or corrupt image: {type(exc).__name__}: {exc}"))
            continue
        crop = crop_to_visible(rgba)
        if crop is None:
            result.rejects.append((sprite.path, "nothing visible (fully transparent)"))
            continue
        # the same pixels once cropped: a gen8 icon that repeats gen7x's, if need be a pixel further down
        key = hashlib.blake2b(f"{crop.size}".encode() + crop.tobytes(), digest_size=16).digest()
        if key in first_seen:
            result.rejects.append((sprite.path, f"exact duplicate of {first_seen[key]}"))
            continue
        first_seen[key] = sprite.path
        (raw_dir / f"{dex:04d}").mkdir(parents=True, exist_ok=True)
        (raw_dir / f"{dex:04d}" / f"{target}.png").write_bytes(png(crop))
        result.written += 1
    result.rejects.sort()
    assert result.written + result.skipped + len(result.rejects) == len(sprites)
    log.info("ingest (pokesprite): %d files under %s: %d pictures written, %d rejected (%d exact duplicates), "
             "%d skipped (species above data.num_classes)", len(sprites), ", ".join(cfg.folders), result.written,
             len(result.rejects), sum(r.startswith("exact duplicate") for _, r in result.rejects), result.skipped)
    return result

