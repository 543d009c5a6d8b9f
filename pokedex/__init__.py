"""Pokédex: a reproducible DVC + Hydra pipeline that trains a Pokémon classifier for the Kendryte K210."""

import os

__version__ = "0.1.0"

# Offline by default: ONNX Runtime (1.2x+) otherwise keeps a telemetry queue and device id in ~/.cache.
# Set before anything imports onnxruntime; every stage and the CLI import this package first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow 3.x would report usage to its servers
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # huggingface_hub, under `datasets`
