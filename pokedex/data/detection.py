"""The detector's data: camera scenes with each Pokémon's exact box, in the YOLO detection layout.

Every scene is a procedural background (pokedex.data.scenes) with none, one, or two or three Pokémon put onto
it, then photographed by the cheap camera; each box comes from the Pokémon's mask after scaling and turning
(scenes.compose_with_box), so it is exact. The Pokémon of a split's scenes are the pictures of the same split of
the classifier's dataset, so no sprite is in two splits, and each split draws its backgrounds from its own
family (train: TRAIN, validation: NO_POKEMON_VAL, test: SCENE_TEST), so no background is either. In training
scenes a share of the Pokémon is restyled first (pokedex.data.styles), as in the classifier's training.

Layout (seed's YOLO detection format): images/{train,validation,test}/NNNNN.jpg, labels/…/NNNNN.txt with one
`0 cx cy w h` line per Pokémon (an empty file for a scene without one), data.yaml (one class, "pokemon"), and
boxes.csv: one row per box with the Pokémon's species, so a detect-then-classify evaluation can name it (a
scene without a Pokémon has one row with an empty species). Deterministic from `detector.data.seed`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig
from PIL import Image, ImageOps

from pokedex.core.errors import PokedexError
from pokedex.core.io import file_digest, write_csv
from pokedex.data.boxes import iou
from pokedex.data.scenes import NO_POKEMON_VAL, SCENE_TEST, TRAIN, background, camera, compose_with_box, foreground_mask
from pokedex.data.styles import restyle

log = logging.getLogger(__name__)

SPLITS = {"train": TRAIN, "validation": NO_POKEMON_VAL, "test": SCENE_TEST}  # split -> background family
NAMES = {0: "pokemon"}
MAX_OVERLAP = 0.2  # a second or third Pokémon is placed so that its box overlaps another by at most this IoU
TRIES = 10          # placements tried for it before the scene keeps fewer Pokémon


def how_many(rng: np.random.Generator, empty: float, several: float) -> int:
    draw = rng.random()
    return 0 if draw < empty else int(rng.integers(2, 4)) if draw < empty + several else 1


def detection_scene(pictures: list[Path], family: int, cfg: DictConfig, index: int, restyled: bool,
                    masks: dict[Path, np.ndarray]) -> tuple[Image.Image, list[tuple[Path, tuple[int, int, int, int]]]]:
    """Scene `index` of a split: its picture and (picture, box) of every Pokémon in it. `masks` caches each
    picture's foreground mask."""
    rng = np.random.default_rng([family, int(cfg.seed), index, 3])
    size = int(cfg.image_size)
    scene = background(family, int(cfg.seed), index, size)
    count = how_many(rng, float(cfg.empty), float(cfg.several))
    low, high = float(cfg.scale[0]), float(cfg.scale[1])
    if count > 1:  # several Pokémon share the frame: each is smaller
        high = max(low, high * 0.6)
    # a close-up: one Pokémon filling the frame, as in art, cards and screens held close (drawn only when asked
    # for, so that close_up 0 leaves every scene's bytes as they were)
    close_up = restyled and count == 1 and float(cfg.close_up) > 0 and rng.random() < float(cfg.close_up)
    if close_up:
        low, high = (float(v) for v in cfg.close_up_scale)
    placed: list[tuple[Path, tuple[int, int, int, int]]] = []
    for _ in range(count):
        path = pictures[int(rng.integers(len(pictures)))]
        rgb = Image.open(path).convert("RGB")
        if path not in masks:
            masks[path] = (foreground_mask(np.asarray(rgb)) * 255).astype(np.uint8)
        mask = masks[path]
        if close_up:  # the scale is then the Pokémon's own side, not its picture's with the sprite's margin
            rgb, mask = square_around_mask(rgb, mask)
        if restyled and rng.random() < float(cfg.style):
            rgb = restyle(rgb, mask, rng)
        for _ in range(TRIES):
            candidate, box = compose_with_box(rgb, scene, rng, (low, high), mask)
            if box is not None and all(iou(box, other) <= MAX_OVERLAP for _, other in placed):
                scene = candidate
                placed.append((path, box))
                break
    return camera(scene, rng, float(cfg.camera)), placed


def square_around_mask(rgb: Image.Image, mask: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """The picture and its mask cut to the square around the Pokémon (white where the square leaves the picture)."""
    ys, xs = np.nonzero(mask >= 128)
    if not len(xs):
        return rgb, mask
    side = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    x0, y0 = (xs.min() + xs.max() + 1 - side) // 2, (ys.min() + ys.max() + 1 - side) // 2
    box = (int(x0) + side, int(y0) + side, int(x0) + 2 * side, int(y0) + 2 * side)  # in the padded picture
    square = ImageOps.expand(rgb, side, fill=(255, 255, 255)).crop(box)
    cut = ImageOps.expand(Image.fromarray(mask, "L"), side, fill=0).crop(box)
    return square, np.asarray(cut)


def yolo_line(box: tuple[int, int, int, int], size: int) -> str:
    x0, y0, x1, y1 = box
    return f"0 {(x0 + x1) / 2 / size:.6f} {(y0 + y1) / 2 / size:.6f} {(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}"


def check(cfg: DictConfig) -> None:
    scenes = dict(cfg.scenes)
    if set(scenes) != set(SPLITS) or any(int(n) < 0 for n in scenes.values()):
        raise PokedexError(f"detector.data.scenes={scenes} must give a number of scenes (0 or more) for each of "
                           f"{', '.join(SPLITS)}.")
    empty, several = float(cfg.empty), float(cfg.several)
    if not (empty >= 0 and several >= 0 and empty + several <= 1):
        raise PokedexError(f"detector.data.empty={cfg.empty} and detector.data.several={cfg.several} are shares of "
                           "the scenes: each 0 or more, together at most 1.")
    low, high = (float(v) for v in cfg.scale)
    if not 0.05 <= low <= high <= 1.5:
        raise PokedexError(f"detector.data.scale={list(cfg.scale)} must be [low, high] with 0.05 <= low <= high <= 1.5.")
    close_low, close_high = (float(v) for v in cfg.close_up_scale)
    if not (0 <= float(cfg.close_up) <= 1 and 0.05 <= close_low <= close_high <= 1.5):
        raise PokedexError(f"detector.data.close_up={cfg.close_up} must be a share (0-1) and "
                           f"detector.data.close_up_scale={list(cfg.close_up_scale)} [low, high] with "
                           "0.05 <= low <= high <= 1.5.")
    if int(cfg.image_size) % 32:
        raise PokedexError(f"detector.data.image_size={cfg.image_size} must be a multiple of 32 (e.g. 128, 160).")


def write_detection_dataset(classifier_dataset: Path, out: Path, cfg: DictConfig) -> dict[str, int]:
    """Build the detection dataset from the classifier's YOLO dataset (its images/{split}/NNNN_*.jpg); returns
    the number of boxes per split."""
    check(cfg)
    size = int(cfg.image_size)
    rows, boxes_per_split = [], {}
    masks: dict[Path, np.ndarray] = {}
    for split, family in SPLITS.items():
        pictures = sorted((classifier_dataset / "images" / split).glob("*.jpg"))
        wanted = int(cfg.scenes[split])
        if wanted and not pictures:
            raise PokedexError(f"{classifier_dataset / 'images' / split} holds no pictures to compose "
                               f"detector.data.scenes.{split}={wanted} scenes from; run yolo-format first "
                               f"(dvc repro yolo-format) or set detector.data.scenes.{split}=0.")
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        boxes_per_split[split] = 0
        for index in range(wanted):
            image, placed = detection_scene(pictures, family, cfg, index, split == "train", masks)
            name = f"{index:05d}"
            jpg = out / "images" / split / f"{name}.jpg"
            image.save(jpg, quality=int(cfg.jpeg_quality))
            (out / "labels" / split / f"{name}.txt").write_text(
                "".join(yolo_line(box, size) + "\n" for _, box in placed), encoding="utf-8")
            digest = file_digest(jpg).hexdigest()
            for path, box in placed or [(None, None)]:
                rows.append((f"{split}/{name}.jpg", split, path.name[:4] if path else "", path.name if path else "",
                             " ".join(map(str, box)) if box else "", digest))
            boxes_per_split[split] += len(placed)
    write_csv(out / "boxes.csv", ["image", "split", "species", "picture", "box", "sha256"], rows)
    (out / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/validation",
                                                   "test": "images/test", "names": NAMES}), encoding="utf-8")
    log.info("detect-format: %s scenes, %s boxes -> %s", dict(cfg.scenes), boxes_per_split, out)
    return boxes_per_split

