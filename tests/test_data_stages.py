"""ingest -> preprocess -> yolo-format on small data: layout, format rules, rejects, determinism."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.classes import read_class_table
from pokedex.data.ingest import ingest
from pokedex.data.preprocess import MAX_PIXELS, preprocess, scale2x
from pokedex.data.yolo_format import SPLITS, split_counts, write_yolo_dataset

from .conftest import build_dataset, make_cfg


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes() if not p.is_symlink() else str(p.readlink()).encode())
    return h.hexdigest()


def test_ingest_layout_and_class_table(tiny_cfg, tiny_dataset):
    raw = tiny_dataset["raw"]
    n, per = tiny_cfg.data.synthetic.num_classes, tiny_cfg.data.synthetic.images_per_class
    assert sorted(d.name for d in raw.iterdir()) == [f"{i:04d}" for i in range(1, n + 1)]
    for d in raw.iterdir():
        files = sorted(d.iterdir())
        assert len(files) == per and all(f.suffix == ".jpg" for f in files)
        with Image.open(files[0]) as img:
            assert img.size == (tiny_cfg.data.synthetic.image_size,) * 2
    table = read_class_table(tiny_dataset["classes"])
    assert sorted(table) == list(range(1, n + 1)) and len(set(table.values())) == n
    # the index preprocess depends on: every raw file with its size and sha256
    with (raw.parent / "files.csv").open() as f:
        index = {row["path"]: row for row in csv.DictReader(f)}
    files = sorted(p for p in raw.rglob("*") if p.is_file())
    assert sorted(index) == [p.relative_to(raw).as_posix() for p in files]
    first = files[0]
    assert index[first.relative_to(raw).as_posix()]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()


def test_same_seed_same_data_and_split_hashes_whatever_the_worker_count(tmp_path):
    one = build_dataset(make_cfg("data=tiny", "data.workers=1"), tmp_path / "a")
    two = build_dataset(make_cfg("data=tiny", "data.workers=2"), tmp_path / "b")
    for key in ("raw", "processed", "yolo"):
        assert _tree_hash(one[key]) == _tree_hash(two[key]), key
    other = build_dataset(make_cfg("data=tiny", "data.split.seed=7"), tmp_path / "c")
    assert _tree_hash(other["raw"]) == _tree_hash(one["raw"])
    assert (other["yolo"] / "splits.csv").read_text() != (one["yolo"] / "splits.csv").read_text()


def test_yolo_dataset_follows_the_original_format_rules(tiny_cfg, tiny_dataset):
    yolo = tiny_dataset["yolo"]
    n_classes = tiny_cfg.data.synthetic.num_classes
    per_class = tiny_cfg.data.synthetic.images_per_class
    size = tiny_cfg.data.image_size
    counts: dict[str, Counter] = defaultdict(Counter)
    hashes: dict[str, set] = defaultdict(set)
    for split in SPLITS:
        images = sorted((yolo / "images" / split).iterdir())
        labels = sorted((yolo / "labels" / split).iterdir())
        assert [p.stem for p in images] == [p.stem for p in labels], "image-label pairs must match"
        for img_path, label_path in zip(images, labels):
            assert re.fullmatch(r"\d{4}_\d{3}\.jpg", img_path.name)
            dex_id = int(img_path.name[:4])
            assert label_path.read_text() == f"{dex_id - 1} 0.5 0.5 1.0 1.0\n"
            with Image.open(img_path) as img:
                assert img.size == (size, size) and img.format == "JPEG"
            counts[split][dex_id] += 1
            hashes[split].add(hashlib.sha256(img_path.read_bytes()).hexdigest())
    expected = split_counts(per_class, {"train": 0.7, "validation": 0.15, "test": 0.15})
    for dex_id in range(1, n_classes + 1):
        assert {s: counts[s][dex_id] for s in SPLITS} == expected
    assert not (hashes["train"] & hashes["validation"]) and not (hashes["train"] & hashes["test"])
    assert not (hashes["validation"] & hashes["test"])

    data = yaml.safe_load((yolo / "data.yaml").read_text())
    assert data["nc"] == n_classes and data["val"] == "images/validation" and "path" not in data
    names = (yolo / "classes.txt").read_text().splitlines()
    assert names == [data["names"][i] for i in range(n_classes)]
    assert names == [read_class_table(tiny_dataset["classes"])[i + 1] for i in range(n_classes)]


def test_split_proportions_at_scale():
    assert split_counts(100, {"train": 0.7, "validation": 0.15, "test": 0.15}) == {"train": 70, "validation": 15, "test": 15}
    assert split_counts(3, {"train": 0.7, "validation": 0.15, "test": 0.15}) == {"train": 1, "validation": 1, "test": 1}


def _write_jpeg(path: Path, colour, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")


def test_preprocess_accounts_for_every_file_duplicates_label_noise_and_strays(tmp_path):
    """Every input in the manifest or the rejects, never both (the kinds of bad file: test_real_data)."""
    raw = tmp_path / "raw"
    for i in range(4):
        _write_jpeg(raw / "0001" / f"good{i}.jpg", (40 * i, 100, 200))
    _write_jpeg(raw / "0002" / "a.jpg", (10, 20, 30))
    (raw / "0002" / "zero.jpg").write_bytes(b"")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(raw / "0002" / "alpha.png")
    Image.new("P", (20, 20), 3).save(raw / "0002" / "palette.gif")
    (raw / "0001" / "z_copy.jpg").write_bytes((raw / "0001" / "good1.jpg").read_bytes())  # duplicate, same class
    (raw / "0003").mkdir()
    (raw / "0003" / "x.jpg").write_bytes((raw / "0002" / "a.jpg").read_bytes())  # same image, other class
    _write_jpeg(raw / "misc" / "stray.jpg", (1, 2, 3))

    out, manifest, rejects = tmp_path / "out", tmp_path / "manifest.csv", tmp_path / "rejects.csv"
    n_ok, n_bad = preprocess(raw, out, manifest, rejects, size=16, quality=90, workers=2, min_size=1,
                             max_pixels=MAX_PIXELS)
    total = sum(1 for p in raw.rglob("*") if p.is_file())
    assert n_ok + n_bad == total
    with rejects.open() as f:
        reasons = {r["source"]: r["reason"] for r in csv.DictReader(f)}
    with manifest.open() as f:
        kept = {r["source"]: r for r in csv.DictReader(f)}
    assert len(reasons) == n_bad and len(kept) == n_ok and not set(reasons) & set(kept)
    assert reasons["0002/zero.jpg"] == "empty file (0 bytes)"
    assert "exact duplicate of 0001/good1.jpg" in reasons["0001/z_copy.jpg"]
    assert "label noise" in reasons["0002/a.jpg"] and "label noise" in reasons["0003/x.jpg"]
    assert "class folder" in reasons["misc/stray.jpg"]
    assert kept["0002/alpha.png"]["processed"] == "0002/alpha.png.jpg"
    with Image.open(out / "0002" / "alpha.png.jpg") as img:  # transparency flattened on white
        assert img.size == (16, 16) and img.mode == "RGB" and min(img.getpixel((8, 8))) > 240
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == sorted(r["processed"] for r in kept.values())


def test_scale2x_turns_a_pixel_staircase_into_a_line_and_preprocess_uses_it_on_small_pictures_only(tmp_path):
    diagonal = np.eye(3, dtype=np.uint8)[..., None].repeat(3, axis=2) * 255  # a one-pixel diagonal
    assert np.array_equal(scale2x(diagonal)[..., 0] // 255, np.array([
        [1, 1, 0, 0, 0, 0],
        [1, 0, 1, 0, 0, 0],  # the steps between the diagonal's pixels are filled in, its two ends rounded off
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 0, 1],
        [0, 0, 0, 0, 1, 1]]))
    checker = (np.indices((4, 4)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    inside = (slice(2, -2), slice(2, -2))  # away from the border, which repeats its own pixels
    assert np.array_equal(scale2x(checker)[inside], checker.repeat(2, 0).repeat(2, 1)[inside])  # nearest neighbour

    raw = tmp_path / "raw"
    (raw / "0001").mkdir(parents=True)
    steps = np.kron(np.eye(6, dtype=np.uint8) * 200, np.ones((2, 2), np.uint8))  # 12 x 12 pixel art
    Image.fromarray(steps).convert("RGB").save(raw / "0001" / "small.png")
    Image.new("RGB", (40, 40), (10, 200, 30)).save(raw / "0001" / "large.png")
    digests = {}
    for upscale in ("bicubic", "scale2x"):
        preprocess(raw, tmp_path / upscale, tmp_path / f"{upscale}.csv", tmp_path / f"{upscale}-rejects.csv", size=32,
                   quality=90, workers=1, min_size=1, max_pixels=MAX_PIXELS, upscale=upscale)
        digests[upscale] = {p.name: p.read_bytes() for p in (tmp_path / upscale / "0001").iterdir()}
    assert digests["bicubic"]["small.png.jpg"] != digests["scale2x"]["small.png.jpg"]
    assert digests["bicubic"]["large.png.jpg"] == digests["scale2x"]["large.png.jpg"]  # shrunk: bicubic either way
    with pytest.raises(PokedexError, match="data.upscale='hq4x' must be one of bicubic, scale2x"):
        preprocess(raw, tmp_path / "x", tmp_path / "x.csv", tmp_path / "x-rejects.csv", size=32, quality=90,
                   workers=1, min_size=1, max_pixels=MAX_PIXELS, upscale="hq4x")


def test_too_small_class_fails_with_its_name(tmp_path):
    cfg = make_cfg("data=tiny", "data.synthetic.images_per_class=2")
    with pytest.raises(PokedexError, match=r"No class can be tested.*these classes \(usable images\) fall short: 0001 \(2\), 0002 \(2\)"):
        build_dataset(cfg, tmp_path)


def test_class_gap_is_refused(tmp_path):
    cfg = make_cfg("data=tiny")
    raw, classes = tmp_path / "raw", tmp_path / "classes.csv"
    ingest(cfg.data, raw, classes, tmp_path / "ingest_rejects.csv")
    for p in (raw / "0002").iterdir():
        p.unlink()
    (raw / "0002").rmdir()
    preprocess(raw, tmp_path / "p", tmp_path / "m.csv", tmp_path / "r.csv", size=32, quality=90, workers=1,
               min_size=1, max_pixels=MAX_PIXELS)
    with pytest.raises(PokedexError, match="0002"):
        write_yolo_dataset(tmp_path / "m.csv", tmp_path / "p", classes, tmp_path / "y", cfg.data.split)


def test_bad_split_fractions_name_the_key(tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", "data.split.train=0.9")
    with pytest.raises(PokedexError, match="data.split"):
        write_yolo_dataset(tiny_dataset["manifest"], tiny_dataset["processed"], tiny_dataset["classes"],
                           tmp_path / "y", cfg.data.split)


def test_ultralytics_views_link_into_the_dataset_and_vanish(tiny_cfg, tiny_dataset):
    from pokedex.model.ultra import ultralytics_data

    yolo = tiny_dataset["yolo"]
    n_classes = tiny_cfg.data.synthetic.num_classes
    with ultralytics_data(yolo, "classify") as root:
        for split in SPLITS:
            assert sorted(d.name for d in (root / split).iterdir()) == [f"{i:04d}" for i in range(1, n_classes + 1)]
            links = sorted((root / split).rglob("*.jpg"))
            assert len(links) == len(list((yolo / "images" / split).iterdir()))
            assert all(p.is_symlink() and p.resolve() == (yolo / "images" / split / p.name).resolve() for p in links)
            assert all(p.parent.name == p.name[:4] for p in links)
    assert not root.exists()
    with ultralytics_data(yolo, "detect") as data_yaml:
        data = yaml.safe_load(data_yaml.read_text())
        assert data["path"] == str(data_yaml.parent) and data["val"] == "images/validation"
        assert data["names"] == yaml.safe_load((yolo / "data.yaml").read_text())["names"]
        image = next((data_yaml.parent / "images" / "train").iterdir())
        label = data_yaml.parent / "labels" / "train" / f"{image.stem}.txt"
        assert label.read_text() == (yolo / "labels" / "train" / label.name).read_text()
    assert not data_yaml.parent.exists()


def test_a_repeated_source_is_linked_that_many_times_in_training_only(tiny_dataset):
    from omegaconf import OmegaConf

    from pokedex.model.ultra import ultralytics_data

    yolo = tiny_dataset["yolo"]
    rows = list(csv.DictReader((yolo / "splits.csv").open(newline="")))
    picked = next(r for r in rows if r["split"] == "train")
    part = Path(picked["source"]).name
    with ultralytics_data(yolo, "classify", OmegaConf.create({part: 3})) as root:  # as train passes augment.repeat
        stem = Path(picked["image"]).stem
        copies = sorted(p.name for p in (root / "train" / stem[:4]).glob(f"{stem}*"))
        assert copies == [f"{stem}.jpg", f"{stem}~r1.jpg", f"{stem}~r2.jpg"]
        assert all((root / "train" / stem[:4] / c).resolve() == (yolo / "images" / "train" / picked["image"]).resolve()
                   for c in copies)
        holding = [r for r in rows if part in Path(r["source"]).name]  # every source name that holds the part
        assert sorted(p.name.split("~")[0] for p in root.rglob("*~r*.jpg")) == sorted(
            Path(r["image"]).stem for r in holding if r["split"] == "train" for _ in range(2))  # in no other split
    with ultralytics_data(yolo, "classify", OmegaConf.create({})) as root:  # augment=none: each picture once
        assert not list(root.rglob("*~r*.jpg"))
    with pytest.raises(PokedexError, match=r"augment\.repeat\.x=0 must map"):
        with ultralytics_data(yolo, "classify", {"x": 0}):
            pass
