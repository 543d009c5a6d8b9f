"""The pokesprite source (data=pokesprite) and sources combined (data.source as a list).

The fixture is a pokesprite-like package drawn here (box sprites, data/pokemon.json, the files that are no
species' sprite), read as a tree and as an npm package made with `npm pack <folder>` (offline).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.ingest import ingest
from pokedex.data.yolo_format import group_of

from .conftest import build_dataset, make_cfg
from .sprites import GEN5, VIEWS, npm_pack, sprite_frame, sprite_tree

SLUGS = {"001": "bulbasaur", "002": "mr-mime", "003": "mr-rime", "004": "porygon-z"}


def box_sprite(dex: int, colour: int, shift: int = 0) -> Image.Image:
    """A 68x56 box sprite: the creature somewhere on a transparent field."""
    img = Image.new("RGBA", (68, 56), (0, 0, 0, 0))
    img.alpha_composite(sprite_frame(dex, colour, 0), (10 + shift, 8))
    return img


def pokesprite_tree(root: Path) -> tuple[Path, dict[str, str]]:
    """A pokesprite-like tree, and the reason each file that is no usable picture must be rejected for."""
    table = {dex: {"idx": dex, "name": {"eng": slug.title()}, "slug": {"eng": slug}} for dex, slug in SLUGS.items()}
    (root / "data").mkdir(parents=True)
    (root / "data" / "pokemon.json").write_text(json.dumps(table))
    def save(img: Image.Image, rel: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel)
    for folder in ("pokemon-gen7x", "pokemon-gen8"):
        for c, colour in enumerate(("regular", "shiny")):
            for dex in (1, 2, 3):
                # gen8 repeats gen7x's picture (species 1: one pixel lower, the same once cropped), except species 3
                save(box_sprite(dex, c + (4 * (folder == "pokemon-gen8") if dex == 3 else 0),
                                shift=int(dex == 1 and folder == "pokemon-gen8")), f"{folder}/{colour}/{SLUGS[f'00{dex}']}.png")
    save(box_sprite(2, 6), "pokemon-gen7x/regular/mr-mime-galar.png")  # a form: Mr. Mime, not an unknown 'mr'
    save(box_sprite(2, 7), "pokemon-gen7x/regular/female/mr-mime.png")
    save(box_sprite(2, 8), "pokemon-gen7x/regular/right/mr-mime.png")
    save(box_sprite(4, 0), "pokemon-gen8/regular/porygon-z.png")  # species 4, above num_classes=3 in the tests
    rejected = {
        "pokemon-gen8/egg.png": "not a species sprite: not under pokemon-gen8/regular/",
        "pokemon-gen8/regular/missingno.png": "'missingno' is no species slug",
        "pokemon-gen8/regular/notes.txt": "not a PNG sprite",
        "pokemon-gen8/regular/bulbasaur-broken.png": "truncated or corrupt",
        "pokemon-gen8/regular/ghost/bulbasaur.png": "unknown sub-folder regular/ghost",
        "pokemon-gen8/shiny/mr-rime-ghost.png": "nothing visible",
        "pokemon-gen8/regular/bulbasaur.png": "exact duplicate of pokemon-gen7x/regular/bulbasaur.png",
        "pokemon-gen8/shiny/bulbasaur.png": "exact duplicate of pokemon-gen7x/shiny/bulbasaur.png",
        "pokemon-gen8/regular/mr-mime.png": "exact duplicate of pokemon-gen7x/regular/mr-mime.png",
        "pokemon-gen8/shiny/mr-mime.png": "exact duplicate of pokemon-gen7x/shiny/mr-mime.png",
    }
    save(box_sprite(9, 0), "pokemon-gen8/egg.png")
    save(box_sprite(9, 1), "pokemon-gen8/regular/missingno.png")
    (root / "pokemon-gen8/regular/notes.txt").write_text("not a sprite")
    (root / "pokemon-gen8/regular/bulbasaur-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    save(box_sprite(1, 3), "pokemon-gen8/regular/ghost/bulbasaur.png")
    save(Image.new("RGBA", (68, 56), (0, 0, 0, 0)), "pokemon-gen8/shiny/mr-rime-ghost.png")
    (root / "icons").mkdir()  # outside data.pokesprite.folders: never read
    box_sprite(1, 0).save(root / "icons" / "bulbasaur.png")
    return root, rejected


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sprite_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for folder in ("pokemon-gen7x", "pokemon-gen8")
                  for p in (root / folder).rglob("*") if p.is_file())


def test_every_file_is_a_picture_or_a_reject_and_near_copies_share_a_group(tmp_path):
    root, expected = pokesprite_tree(tmp_path / "tree")
    raw, rejects = tmp_path / "raw", tmp_path / "ingest_rejects.csv"
    ingest(make_cfg("data=pokesprite", f"data.pokesprite.root={root}", "data.num_classes=3").data, raw,
           tmp_path / "classes.csv", rejects)
    reasons = {r["source"]: r["reason"] for r in read_rows(rejects)}
    assert set(reasons) == set(expected)
    for source, reason in expected.items():
        assert reasons[source].startswith(reason), (source, reasons[source])
    written = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.png"))
    skipped = 1  # porygon-z: species 4 > data.num_classes
    assert len(written) + len(reasons) + skipped == len(sprite_files(root))
    assert "0002/regular.mr-mime-galar~pokemon-gen7x.png" in written
    assert {"0002/regular.mr-mime~pokemon-gen7x-female.png", "0002/regular.mr-mime~pokemon-gen7x-right.png"} <= set(written)
    # species 3's gen8 icons are new drawings: kept, in the group of the same colouring
    assert {group_of(p) for p in written if p.startswith("0003/")} == {"0003/regular.mr-rime", "0003/shiny.mr-rime"}
    assert sum(p.startswith("0003/") for p in written) == 4
    with Image.open(raw / "0001" / "regular.bulbasaur~pokemon-gen7x.png") as img:  # cropped, square, transparent margin
        assert img.mode == "RGBA" and img.width == img.height < 56


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_the_pinned_package_is_read_from_its_tarball_like_the_tree(tmp_path, monkeypatch):
    root, _ = pokesprite_tree(tmp_path / "pkg")
    tarball, integrity = npm_pack(root, tmp_path / "packed")
    monkeypatch.setenv("POKEDEX_CACHE", str(tmp_path / "cache"))
    raw, tree_raw = tmp_path / "raw", tmp_path / "raw-tree"
    ingest(make_cfg("data=pokesprite", f"data.pokesprite.package='{root}'", f"data.pokesprite.integrity='{integrity}'",
                    "data.num_classes=3").data, raw, tmp_path / "classes.csv", tmp_path / "rejects.csv")
    ingest(make_cfg("data=pokesprite", f"data.pokesprite.root={root}", "data.num_classes=3").data, tree_raw,
           tmp_path / "classes.csv", tmp_path / "rejects-tree.csv")
    assert sorted(p.relative_to(raw) for p in raw.rglob("*.png")) == sorted(p.relative_to(tree_raw) for p in tree_raw.rglob("*.png"))
    assert read_rows(tmp_path / "rejects.csv") == read_rows(tmp_path / "rejects-tree.csv")
    wrong = "sha512-" + "A" * 86 + "=="
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(PokedexError, match="does not match data.pokesprite.integrity"):
        ingest(make_cfg("data=pokesprite", f"data.pokesprite.package='{root}'", f"data.pokesprite.integrity='{wrong}'").data,
               raw, tmp_path / "classes.csv", tmp_path / "rejects.csv")


def test_two_sources_combine_without_clashes_and_keep_their_groups_apart(tmp_path):
    pokeapi_root = sprite_tree(tmp_path / "clone", species=(1, 2, 3))
    sprites_root, expected = pokesprite_tree(tmp_path / "tree")
    folders = ",".join(VIEWS)
    cfg = make_cfg("data=sprites", f"data.pokeapi.root={pokeapi_root}", f"data.pokeapi.folders=[{folders}]",
                   f"data.pokesprite.root={sprites_root}", "data.num_classes=3", "data.image_size=32")
    paths = build_dataset(cfg, tmp_path / "data")
    raw = paths["raw"]
    names = [p.relative_to(raw).as_posix() for p in raw.rglob("*.png")]
    by_source = {s: [n for n in names if n.split("/")[1].startswith(f"{s}.")] for s in ("pokeapi", "pokesprite")}
    assert len(by_source["pokeapi"]) + len(by_source["pokesprite"]) == len(names) and all(by_source.values())
    assert "0001/pokesprite.regular.bulbasaur~pokemon-gen7x.png" in names
    assert f"0001/pokeapi.{GEN5.replace('/', '-')}.1~000.png" in names
    reasons = {r["source"]: r["reason"] for r in read_rows(tmp_path / "data" / "raw" / "ingest_rejects.csv")}
    assert {s.removeprefix("pokesprite:") for s in reasons if s.startswith("pokesprite:")} == set(expected)
    assert f"pokeapi:{GEN5}/10001.gif" in reasons
    # splits: every group in one split, groups of one source only
    rows = read_rows(paths["yolo"] / "splits.csv")
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(group_of(row["source"]), set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert all(g.split("/")[1].split(".")[0] in ("pokeapi", "pokesprite") for g in split_of)
    assert {r["source"] for r in rows} == set(names) - {r["source"] for r in read_rows(paths["rejects"])}
    with pytest.raises(PokedexError, match=r"data.source=\['pokeapi', 'pokeapi'\] names a source twice"):
        ingest(make_cfg("data=sprites", "data.source=[pokeapi,pokeapi]").data, raw, tmp_path / "c.csv", tmp_path / "r.csv")
    with pytest.raises(PokedexError, match="data.source='pokedex' is not supported"):
        ingest(make_cfg("data=sprites", "data.source=[pokeapi,pokedex]").data, raw, tmp_path / "c.csv", tmp_path / "r.csv")
