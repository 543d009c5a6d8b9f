"""Any model this project trains or reads, loaded through Ultralytics kept offline with our layers registered."""

from __future__ import annotations

import sys
from pathlib import Path

from pokedex.model.ultra import ultralytics_offline

# Checkpoints pickle our layers (SlimClassify, DepthwiseDetect) by module: older ones name pokedex.models (before
# the package was laid out by stage) or pokedex.train.models (before models had a floor of their own).
FORMER_LAYERS_MODULES = ("pokedex.models", "pokedex.train.models")


def load_model(source: str | Path, task: str | None = None):
    """An Ultralytics model from a .pt, an .onnx or a model YAML: Ultralytics kept offline, our layers registered
    (a checkpoint or YAML may use pokedex/model/layers.py's SlimClassify)."""
    ultralytics_offline()
    from ultralytics import YOLO

    from pokedex.model import layers

    layers.register()
    for former in FORMER_LAYERS_MODULES:
        sys.modules.setdefault(former, layers)
    return YOLO(str(source), task=task)
