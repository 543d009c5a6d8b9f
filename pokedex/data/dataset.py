"""Reading the YOLO dataset that yolo-format writes (pokedex/data/yolo_format.py): class names, the test split,
images as a model's uint8 input. Light on purpose: evaluate, export-onnx and compile-kmodel import it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pokedex.core.errors import PokedexError


def class_names(dataset_dir: Path) -> list[str]:
    """classes.txt: one name per line, line number = class id."""
    return (dataset_dir / "classes.txt").read_text(encoding="utf-8").splitlines()


def split_images(dataset_dir: Path, split: str) -> tuple[list[Path], np.ndarray]:
    """A split's images (train, validation, test) and their 0-based class ids, read from the YOLO label files."""
    images = sorted((dataset_dir / "images" / split).glob("*.jpg"))
    if not images:
        raise PokedexError(f"{dataset_dir / 'images' / split} has no images; run the yolo-format stage first.")
    labels = [int((dataset_dir / "labels" / split / f"{p.stem}.txt").read_text().split()[0]) for p in images]
    return images, np.asarray(labels)


def test_images(dataset_dir: Path) -> tuple[list[Path], np.ndarray]:
    return split_images(dataset_dir, "test")


def load_uint8(paths: list[Path], size: int) -> np.ndarray:
    """uint8 NCHW RGB at the model's input size (what the K210's camera hands its KPU, too)."""
    arrays = []
    for path in paths:
        with Image.open(path) as img:
            arrays.append(np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(arrays).transpose(0, 3, 1, 2).copy()
