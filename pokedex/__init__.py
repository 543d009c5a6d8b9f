"""Pokédex: a reproducible DVC + Hydra pipeline that trains a Pokémon classifier for the Kendryte K210."""

import os
from pathlib import Path

__version__ = "0.1.0"

# The checkout this package is loaded from (installed editable; a stage runs the copy it sits in).
CHECKOUT = Path(__file__).resolve().parent.parent


def project_dir() -> Path:
    """Where shared state lives (MLflow store, caches): DVC's root under DVC, which is the main checkout even for
    queued experiments running in temporary copies; else this checkout."""
    return Path(os.environ.get("DVC_ROOT") or CHECKOUT).resolve()


def cache_dir() -> Path:
    """Downloads and derived caches (npm package, Hugging Face, CLIP): $POKEDEX_CACHE, else .cache/pokedex under
    DVC's root (shared by queued experiments' temporary copies), never the home folder."""
    if os.environ.get("POKEDEX_CACHE"):
        return Path(os.environ["POKEDEX_CACHE"])
    return project_dir() / ".cache" / "pokedex"

# Offline by default: ONNX Runtime (1.2x+) otherwise keeps a telemetry queue and device id in ~/.cache.
# Set before anything imports onnxruntime; every stage and the CLI import this package first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow 3.x would report usage to its servers
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # huggingface_hub, under `datasets`
