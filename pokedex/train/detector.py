"""The one-class detector ("Pokémon") trained on detect-format's scenes (stage train-detector), and its figures on
the test scenes written beside it.

It is a detection model of its own (`detector:` params, models/detector/), trained by the same function as the
classifier (pokedex.train.train.train on `detector_view(cfg)`: the detector's group in place of `model:`/`train:`);
pokedex/model/detector.py runs and measures it.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pokedex.core import tracking
from pokedex.core.errors import PokedexError
from pokedex.core.timings import Timings
from pokedex.model.detector import evaluate_detector
from pokedex.train.train import train


def detector_view(cfg: DictConfig) -> DictConfig:
    """cfg as pokedex.train.train reads it, with the detector's model and train groups and its input size."""
    d = cfg.detector
    if d.model.task != "detect":
        raise PokedexError(f"detector.model.task={d.model.task!r} must be detect (the classifier is model:).")
    return OmegaConf.create({"seed": cfg.seed, "data": {"image_size": d.data.image_size}, "model": d.model,
                             "train": d.train, "augment": {}})


def train_detector(cfg: DictConfig, dataset: Path, run_dir: Path, metrics_path: Path, run: tracking.Run | None = None,
                   timings: Timings | None = None) -> Path:
    """Train the detector on `dataset` (detect-format's) into run_dir; its figures on the test scenes go to
    metrics_path (and the MLflow run). Returns its best weights."""
    best = train(detector_view(cfg), dataset, run_dir, run, timings)
    metrics = evaluate_detector(best, dataset, cfg.detector)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if run is not None:
        run.log_metrics(tracking.numbers(metrics, "detector/"))
    return best
