"""The one-class detector ("Pokémon") run and measured: its boxes on pictures, the box a classifier's crop is cut
to, and its figures at IoU 0.5.

Measured two ways: Ultralytics' validator (mAP50, and precision and recall at IoU 0.5 where their balance is
best), and at the score the pipeline uses, `detector.conf`: the share of Pokémon found (a box at IoU >= 0.5), the
share of boxes that are a Pokémon, and the share of scenes without a Pokémon that get a box. Field photos with a
box beside them (`data/field/NNNN/<stem>.txt`, pokedex.evaluate.field) are measured the same way. It is trained
by pokedex/train/detector.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml
from omegaconf import DictConfig
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.boxes import Box, at_threshold, box_from_corners, true_boxes
from pokedex.data.detection import NAMES
from pokedex.data.fieldset import field_set
from pokedex.model.load import load_model
from pokedex.model.ultra import ultralytics_data


def detect(model, pictures: list[Image.Image], imgsz: int, conf: float, batch: int = 32) -> list[np.ndarray]:
    """Each picture's boxes above `conf`: (n, 5) float arrays of x0, y0, x1, y1 (pixels of the picture), score,
    best first."""
    found = []
    for start in range(0, len(pictures), batch):
        bgr = [np.ascontiguousarray(np.asarray(p.convert("RGB"))[..., ::-1]) for p in pictures[start:start + batch]]
        for result in model.predict(bgr, imgsz=imgsz, conf=conf, verbose=False):
            b = result.boxes
            found.append(torch.cat([b.xyxy, b.conf[:, None]], 1).cpu().numpy().astype(np.float32))
    return found


def box_finder(model, imgsz: int, conf: float) -> Callable[[Image.Image], Box | None]:
    """picture -> the box around every box the detector finds (cx, cy, w, h as fractions, as
    pokedex.evaluate.field reads boxes), or None. Their union, not the best one: on a Pokémon that fills the
    picture the detector finds parts of it (ears, a tail, feet), and together they cover the Pokémon."""
    def find(picture: Image.Image) -> Box | None:
        boxes = detect(model, [picture], imgsz, conf)[0]
        if not len(boxes):
            return None
        return box_from_corners(float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()),
                                float(boxes[:, 3].max()), *picture.size)
    return find


def ultralytics_figures(model, data_yaml: Path, split: str, imgsz: int) -> dict:
    """Ultralytics' validator on a split: mAP50 and its precision and recall at IoU 0.5."""
    with tempfile.TemporaryDirectory(prefix="pokedex-val-") as tmp:
        r = model.val(data=str(data_yaml), split=split, imgsz=imgsz, batch=32, plots=False, verbose=False,
                      project=tmp, name="val", exist_ok=True)
    return {"map50": round(float(r.box.map50), 4), "precision": round(float(r.box.mp), 4),
            "recall": round(float(r.box.mr), 4)}


@contextmanager
def field_view(root: Path) -> Iterator[Path | None]:
    """The field photos that have a box, as a YOLO detection dataset (a `test` split of links): its data.yaml,
    or None when no photo has one."""
    found = field_set(root)
    boxed = [p for p, b in zip(found.paths, found.boxes) if b is not None]
    if not boxed:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="pokedex-field-") as tmp:
        view = Path(tmp)
        for sub in ("images/test", "labels/test"):
            (view / sub).mkdir(parents=True)
        for i, photo in enumerate(boxed):
            name = f"{i:06d}"
            (view / "images" / "test" / f"{name}{photo.suffix.lower()}").symlink_to(photo.resolve())
            (view / "labels" / "test" / f"{name}.txt").symlink_to(photo.with_suffix(".txt").resolve())
        (view / "data.yaml").write_text(yaml.safe_dump({"path": str(view), "train": "images/test", "val": "images/test",
                                                        "test": "images/test", "names": NAMES}), encoding="utf-8")
        yield view / "data.yaml"


def measure(model, data_yaml: Path, split: str, images: list[Path], imgsz: int, conf: float) -> dict:
    pictures = [Image.open(p).convert("RGB") for p in images]
    labels = [data_yaml.parent / "labels" / split / f"{Path(p.name).stem}.txt" for p in images]
    truths = [true_boxes(label, *pic.size) for label, pic in zip(labels, pictures)]
    return {"images": len(images), "boxes": int(sum(len(t) for t in truths)),
            **ultralytics_figures(model, data_yaml, split, imgsz),
            **at_threshold(detect(model, pictures, imgsz, conf), truths)}


def evaluate_detector(weights: Path, dataset: Path | None, cfg: DictConfig, field: Path | None = None) -> dict:
    """The detector's figures on the test scenes of `dataset` and, where photos have boxes, on the field folder
    (`cfg`: the detector's group, for its input size and score threshold)."""
    model = load_model(weights)
    imgsz, conf = int(cfg.data.image_size), float(cfg.conf)
    metrics: dict = {}
    if dataset is not None:
        if not (dataset / "boxes.csv").is_file():
            raise PokedexError(f"{dataset / 'boxes.csv'} is missing: {dataset} is not a detect-format dataset; run "
                               "`dvc repro detect-format`.")
        with ultralytics_data(dataset, "detect") as data:
            images = sorted((data.parent / "images" / "test").iterdir())
            metrics["test"] = measure(model, data, "test", images, imgsz, conf)
    if field is not None:
        metrics["field"] = "not measured: no field photo has a box (NNNN/<stem>.txt)"
        with field_view(field) as data:
            if data is not None:
                metrics["field"] = measure(model, data, "test", sorted((data.parent / "images" / "test").iterdir()),
                                           imgsz, conf)
    metrics["conf"] = conf
    return metrics
