"""Any model this project trains or reads, loaded through Ultralytics kept offline with our layers registered."""

from __future__ import annotations

import sys
from pathlib import Path

from pokedex.train.ultra import ultralytics_offline

# Checkpoints pickle our layers (SlimClassify, DepthwiseDetect) by module: those trained before the package was
# laid out by stage name them pokedex.models, where pokedex/train/models.py used to be.
FORMER_MODELS_MODULE = "pokedex.models"


def load_model(source: str | Path, task: str | None = None):
    """An Ultralytics model from a .pt, an .onnx or a model YAML: Ultralytics kept offline, our layers registered
    (a checkpoint or YAML may use pokedex/train/models.py's SlimClassify)."""
    ultralytics_offline()
    from ultralytics import YOLO

    from pokedex.train import models

    models.register()
    sys.modules.setdefault(FORMER_MODELS_MODULE, models)
    return YOLO(str(source), task=task)
