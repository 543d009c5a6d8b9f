"""YOLO dataset: a per-class 70/15/15 split of the processed images in the original plan's layout.

    images/{train,validation,test}/{id:04d}_{n:03d}.jpg
    labels/{train,validation,test}/{id:04d}_{n:03d}.txt   "{class_id} 0.5 0.5 1.0 1.0", class_id = id - 1
    data.yaml, classes.txt, splits.csv

Ultralytics' classifier reads a class-folder tree instead; the train stage builds it as links in a
temporary folder (pokedex.model.ultra.ultralytics_data), so nothing Ultralytics writes lands in this dataset.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig

from pokedex.core.checks import FRACTION
from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.data.classes import read_class_table
from pokedex.data.preprocess import Processed, read_manifest

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MIN_IMAGES = len(SPLITS)  # one image per split at least


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Images per split for a class of n images: every split gets at least one, train takes the rest."""
    val = max(1, round(n * fractions["validation"]))
    test = max(1, round(n * fractions["test"]))
    return {"train": n - val - test, "validation": val, "test": test}


def check_fractions(split: DictConfig) -> dict[str, float]:
    fractions = {s: float(split[s]) for s in SPLITS}
    if any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise PokedexError(
            f"data.split fractions {fractions} must be positive and add up to 1; fix data.split.train/validation/test."
        )
    return fractions


def source_split(rec: Processed) -> str | None:
    """The split a source file name carries (`train-000042.jpg`, as the hf source writes them)."""
    prefix = Path(rec.source).name.split("-", 1)[0]
    return prefix if prefix in SPLITS else None


GROUPINGS = ("animation", "image")
GROUP_SEPARATOR = "~"  # `<animation>~<frame>.png`, as data=pokeapi writes frames

PARAM_RULES = {"data.split.train": FRACTION, "data.split.validation": FRACTION, "data.split.test": FRACTION}


def group_of(source: str, group_by: str = "animation") -> str:
    """The split group of a raw image: its animation (the name before `~`), or the image itself."""
    name = Path(source).name
    if group_by == "animation" and GROUP_SEPARATOR in name:
        return f"{Path(source).parent}/{name.split(GROUP_SEPARATOR, 1)[0]}"
    return source


def split_groups(groups: list[list[Processed]], fractions: dict[str, float], rng: np.random.Generator) -> dict[str, list[Processed]]:
    """Spread one class's groups over the splits (seeded shuffle, at least one group per split).

    Policy for a species with few groups (docs/real-data.md): with two, one trains and the other is divided
    picture by picture between validation and test (those two may then hold near-copies of each other, never
    of training); when that other group is a single picture, or there is only one group, every picture trains
    and the species is not tested: holding out its only pictures would leave nothing to learn it from (most
    of pokesprite's species 810-905 have two pictures, regular and shiny).
    """
    order = rng.permutation(len(groups))
    if len(groups) == 2 and len(held_out := groups[order[1]]) > 1:
        half = len(held_out) // 2
        return {"train": groups[order[0]], "validation": held_out[:half], "test": held_out[half:]}
    if len(groups) < MIN_IMAGES:
        return {"train": [rec for group in groups for rec in group], "validation": [], "test": []}
    counts, start, parts = split_counts(len(groups), fractions), 0, {}
    for name in SPLITS:
        parts[name] = [rec for i in sorted(order[start:start + counts[name]]) for rec in groups[i]]
        start += counts[name]
    return parts


def assign_splits(records: list[Processed], split: DictConfig) -> dict[int, dict[str, list[Processed]]]:
    """Split each class independently with its own seeded shuffle (adding a class does not move others),
    or keep the source's own splits (`data.split.source_splits`).

    With `data.split.group_by=animation` the shuffle and the 70/15/15 are over each class's groups (all frames
    of one animation), so no animation straddles two splits; with single-image groups this is the plain
    per-image split. A species with too few groups to be tested trains only (split_groups); when no species
    at all can be tested, the stage stops with the list of them. Pictures whose raw name holds one of
    `data.split.train_only` (the Dream World art) train, outside the shuffle, so the others split as before.
    """
    keep = bool(split.get("source_splits", False))
    fractions = None if keep else check_fractions(split)
    group_by = str(split.get("group_by", "image"))
    if group_by not in GROUPINGS:
        raise PokedexError(f"data.split.group_by={group_by!r} is not one of {', '.join(GROUPINGS)}.")
    train_only = [str(part) for part in split.get("train_only") or []]
    if any(not part for part in train_only):
        raise PokedexError("data.split.train_only holds an empty name, which every picture holds; remove it.")
    by_class: dict[int, list[Processed]] = defaultdict(list)
    for rec in records:
        by_class[rec.dex_id].append(rec)
    result, short = {}, []
    for dex_id in sorted(by_class):
        items = sorted(by_class[dex_id], key=lambda r: r.processed)
        if keep:
            parts = {name: [] for name in SPLITS}
            for rec in items:
                name = source_split(rec)
                if name is None:
                    raise PokedexError(f"data.split.source_splits=true, but {rec.source} carries no split name "
                                       "(train-/validation-/test-, as data=hf writes them); set "
                                       "data.split.source_splits=false to split per class.")
                parts[name].append(rec)
        else:
            groups: dict[str, list[Processed]] = {}
            always_train = []
            for rec in items:  # groups in the order of their first image: singletons keep the per-image order
                if any(part in Path(rec.source).name for part in train_only):
                    always_train.append(rec)
                else:
                    groups.setdefault(group_of(rec.source, group_by), []).append(rec)
            rng = np.random.default_rng([int(split.seed), dex_id])
            parts = split_groups(list(groups.values()), fractions, rng)
            parts["train"] = parts["train"] + always_train
        if any(not parts.get(name) for name in SPLITS):
            short.append(f"{dex_id:04d} ({len(items)})")
        result[dex_id] = parts
    shown = ", ".join(short[:10]) + (f" and {len(short) - 10} more" if len(short) > 10 else "")
    if keep and short:
        raise PokedexError(f"data.split.source_splits=true, but these classes (usable images) miss a split: {shown}; "
                           "set data.split.source_splits=false to split per class.")
    if short and len(short) == len(result):
        raise PokedexError(
            f"No class can be tested: each needs at least one usable image in each of train/validation/test (with "
            f"data.split.group_by=animation: at least two animations), but these classes (usable images) fall "
            f"short: {shown}; add images of them to the data source, or keep fewer classes with "
            "data.num_classes, or re-split with data.split.source_splits=false.")
    if short:
        log.info("yolo-format: %d of %d species train only (too few groups to test them without near-copies in "
                 "training): %s", len(short), len(result), shown)
    return result


def test_split_summary(dataset_dir: Path) -> dict[str, int]:
    """What the test split holds: its groups (animations, or single images) and how many of them also have
    images in training (0 unless a source's own splits were kept)."""
    with (dataset_dir / "splits.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    groups = {s: {group_of(r["source"]) for r in rows if r["split"] == s} for s in SPLITS}
    tested = {r["image"][:4] for r in rows if r["split"] == "test"}
    summary = {"test_groups": len(groups["test"]), "test_groups_seen_in_training": len(groups["test"] & groups["train"]),
               "untested_classes": len({r["image"][:4] for r in rows} - tested)}
    log.info("the test split holds %d groups of images (all frames of an animation form one group; an image "
             "without '~' in its name, one of its own); %d of them have images in training; %d species are "
             "trained but not tested (too few groups)", *summary.values())
    return summary


def check_contiguous(dex_ids: list[int]) -> None:
    """class_id = id - 1 must also be Ultralytics' folder index, so classes must be 0001..N with no gap."""
    missing = sorted(set(range(1, max(dex_ids) + 1)) - set(dex_ids))
    if missing:
        shown = ", ".join(f"{m:04d}" for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise PokedexError(
            f"Classes must run from 0001 without gaps, but {shown} have no usable image; add images for them or "
            "renumber the class folders."
        )


def write_yolo_dataset(manifest: Path, processed_root: Path, class_table: Path, out: Path, split: DictConfig) -> dict:
    if not split.get("source_splits", False):
        check_fractions(split)  # a params mistake is named before any input is read
    records = read_manifest(manifest)
    if not records:
        raise PokedexError(f"{manifest} lists no usable image; check the preprocess rejects report next to it.")
    names = read_class_table(class_table)
    splits = assign_splits(records, split)
    check_contiguous(list(splits))
    unknown = sorted(set(splits) - set(names))
    if unknown:
        raise PokedexError(f"Class {unknown[0]:04d} has images but no row in {class_table}; add it to the class table.")

    if out.exists():
        shutil.rmtree(out)
    for s in SPLITS:
        (out / "images" / s).mkdir(parents=True)
        (out / "labels" / s).mkdir(parents=True)
    rows, counts = [], {s: 0 for s in SPLITS}
    for dex_id, parts in splits.items():
        numbered = sorted((rec for s in SPLITS for rec in parts[s]), key=lambda r: r.processed)
        number = {rec.processed: n for n, rec in enumerate(numbered, start=1)}
        for s in SPLITS:
            for rec in parts[s]:
                stem = f"{dex_id:04d}_{number[rec.processed]:03d}"
                shutil.copyfile(processed_root / rec.processed, out / "images" / s / f"{stem}.jpg")
                (out / "labels" / s / f"{stem}.txt").write_text(f"{dex_id - 1} 0.5 0.5 1.0 1.0\n")
                rows.append((f"{stem}.jpg", s, rec.source, rec.sha256))
                counts[s] += 1

    n_classes = max(splits)
    class_names = [names[i] for i in range(1, n_classes + 1)]
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in class_names), encoding="utf-8")
    data_yaml = {  # no 'path': Ultralytics resolves the splits next to this file, wherever it is checked out
        "train": "images/train",
        "val": "images/validation",
        "test": "images/test",
        "nc": n_classes,
        "names": dict(enumerate(class_names)),
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False, allow_unicode=True), encoding="utf-8")
    write_csv(out / "splits.csv", ["image", "split", "source", "sha256"], sorted(rows))
    log.info("yolo-format: %d classes, %s images -> %s", n_classes, counts, out)
    return counts
