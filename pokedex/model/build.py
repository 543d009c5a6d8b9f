"""A model built from an architecture YAML (ours in pokedex/model/arch/, or one Ultralytics bundles: nothing is
downloaded), optionally the checkpoint of model.weights in its place."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from pokedex.core.errors import PokedexError
from pokedex.model.layers import resolve_arch
from pokedex.model.load import load_model
from pokedex.model.ultra import ultralytics_offline

TASKS = ("classify", "detect")


def build_model(model_cfg: DictConfig):
    """A fresh model from a bundled architecture YAML, optionally initialised from a local .pt."""
    ultralytics_offline()
    from ultralytics.nn.modules.head import Classify

    task = model_cfg.task
    if task not in TASKS:
        raise PokedexError(f"model.task={task!r} must be one of {', '.join(TASKS)}.")
    if not str(model_cfg.arch).endswith(".yaml"):
        raise PokedexError(f"model.arch={model_cfg.arch!r} must be a model YAML (e.g. yolov8n-cls.yaml, k210n-cls.yaml); "
                           "use model.weights for a local .pt file.")
    try:
        model = load_model(resolve_arch(str(model_cfg.arch)), task=task)
    except FileNotFoundError as exc:
        raise PokedexError(f"model.arch={model_cfg.arch!r} is neither a bundled Ultralytics YAML, one of pokedex/model/arch/, "
                           f"nor a file: {exc}") from exc
    built = "classify" if any(isinstance(m, Classify) for m in model.model.modules()) else "detect"
    if built != task:
        raise PokedexError(f"model.arch={model_cfg.arch!r} builds a {built} model but model.task={task!r}; "
                           "pick a matching architecture (…-cls.yaml for classify).")
    if model_cfg.get("weights"):
        weights = Path(model_cfg.weights)
        if not weights.is_file():
            raise PokedexError(f"model.weights={weights} does not exist; give a local .pt file or set model.weights=null.")
        # the checkpoint's own model, head and class names included: the architecture built above answers 1025
        # classes (its YAML's nc), so loading into it drops a trained head of any other size
        loaded = load_model(weights)
        if loaded.task != task or type(loaded.model.model[-1]) is not type(model.model.model[-1]):
            raise PokedexError(f"model.weights={weights} is a {loaded.task} model with a {type(loaded.model.model[-1]).__name__} "
                               f"head, not one model.arch={model_cfg.arch!r} builds; pick the architecture it was trained as.")
        model = loaded
    return model
