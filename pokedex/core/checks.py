"""Params checked before a stage touches its outputs, and checked again after: the ones DVC records for it.

dvc.yaml lists, for each stage, the params it reads; DVC writes their values into dvc.lock (and its run
cache) when the stage ends. So a stage (1) validates those params before deleting anything, and (2) fails
when params.yaml changed under it while it ran (e.g. a refused `dvc exp run -S` has already rewritten it),
because DVC would otherwise record outputs made with one value under another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from pokedex.core.errors import PokedexError

MISSING = object()


@dataclass(frozen=True)
class Number:
    """An int (or any number), within [low, high]; `above` makes low exclusive; `nullable` allows null."""

    kind: type = float
    low: float | None = None
    high: float | None = None
    above: bool = False
    nullable: bool = False

    def describe(self) -> str:
        bounds = [f"{'>' if self.above else '≥'} {self.low:g}" if self.low is not None else "",
                  f"≤ {self.high:g}" if self.high is not None else ""]
        text = " and ".join(["an integer" if self.kind is int else "a number", *filter(None, bounds)])
        return text.replace("and ", "", 1) + (" (or null)" if self.nullable else "")

    def accepts(self, value) -> bool:
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return ((self.kind is not int or value == int(value))
                and (self.low is None or (value > self.low if self.above else value >= self.low))
                and (self.high is None or value <= self.high))


FRACTION = Number(float, 0, 1)
COUNT = Number(int, 1)
# Keys whose values no library checks before work starts (or checks only after outputs were deleted).
RULES: dict[str, Number] = {
    "seed": Number(int, 0),
    "data.num_classes": Number(int, 1, 1025),
    "data.synthetic.num_classes": Number(int, 1, 1025),
    "data.synthetic.images_per_class": COUNT,
    "data.synthetic.image_size": Number(int, 16),
    "data.synthetic.jpeg_quality": Number(int, 1, 100),
    "data.pokeapi.frames_per_animation": COUNT,
    "data.image_size": Number(int, 16),
    "data.jpeg_quality": Number(int, 1, 100),
    "data.min_image_size": COUNT,
    "data.max_pixels": COUNT,
    "data.workers": Number(int, 1, nullable=True),
    "data.split.train": FRACTION,
    "data.split.validation": FRACTION,
    "data.split.test": FRACTION,
    "train.epochs": COUNT,
    "train.batch": COUNT,  # Ultralytics reads 0 and -1 as "pick one" and trains at 16 while we'd record 0
    "train.nbs": COUNT,
    "train.lr0": Number(float, 0, above=True),
    "train.lrf": Number(float, 0, above=True),
    "train.patience": COUNT,
    "train.workers": Number(int, 0),
    "train.warmup_epochs": Number(float, 0),
    "train.weight_decay": Number(float, 0),
    "augment.p": FRACTION,
    "augment.ramp": FRACTION,
    "augment.camera": Number(float, 0),
    "augment.style": FRACTION,
    "augment.light": FRACTION,
    "augment.view": FRACTION,
    "enroll.shots": COUNT,
    "enroll.false_accept_rate": Number(float, 0, 0.99),
    "enroll.negatives": COUNT,
    "enroll.seed": Number(int, 0),
    "evaluate.batch": COUNT,
    "evaluate.latency_images": Number(int, 0),
    "evaluate.no_pokemon": COUNT,
    "evaluate.scene.camera": Number(float, 0),
    "export.opset": Number(int, 7),
    "export.parity_images": COUNT,
    "export.max_abs_diff": Number(float, 0),
    "export.min_top1_agreement": FRACTION,
    "kmodel.calibration_images": COUNT,
    "kmodel.eval_images": Number(int, 0),
    "kmodel.ram_limit_mb": Number(float, 0, above=True),
    "kmodel.flash_limit_mb": Number(float, 0, above=True),
    "clip.batch": COUNT,
    "clip.probe.steps": COUNT,
}


def dvc_stages(root: Path) -> dict[str, dict]:
    """dvc.yaml's stages as written (`${...}` not resolved), by name; {} without a dvc.yaml."""
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.is_file():
        return {}
    return (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}


def stage_params(root: Path, stage: str) -> list[str] | None:
    """The params dvc.yaml lists for a stage (e.g. ['data.image_size', 'train']), or None if it is not there."""
    spec = dvc_stages(root).get(stage)
    if spec is None:
        return None
    return [p for p in spec.get("params") or [] if isinstance(p, str)]


def _covered(key: str, watched: list[str]) -> bool:
    return any(key == w or key.startswith(f"{w}.") or w.startswith(f"{key}.") for w in watched)


def _select(data, key: str):
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def check_params(cfg: DictConfig, watched: list[str], reference: dict) -> None:
    """Each watched param has the shape params.yaml gives it and passes its rule; else one sentence naming it.

    `reference` is params.yaml as read from disk: a command-line override like `model=other` replaces a whole
    group with a string, which no stage can read.
    """
    values = OmegaConf.to_container(cfg, resolve=True)
    for key in watched:
        expected, given = _select(reference, key), _select(values, key)
        if isinstance(expected, dict) and not isinstance(given, dict):
            raise PokedexError(f"{key}={given!r} replaces the whole {key}: group of params.yaml with a value; stages "
                               f"read the composed params.yaml, so pick a group with `pokedex params {key}=<name>` "
                               f"(or `dvc exp run -S {key}=<name>`), or set one key, e.g. {key}.<key>=<value>.")
    for key, rule in RULES.items():
        if not _covered(key, watched):
            continue
        value = _select(values, key)
        if value is MISSING:
            continue
        if not rule.accepts(value):
            raise PokedexError(f"{key}={value!r} is invalid: it must be {rule.describe()}; "
                               "fix it in conf/ or in the override that set it.")


def changed_params(before: dict, after: dict, watched: list[str]) -> list[str]:
    """'key: old → new' for each leaf under the watched params that differs between two readings of params.yaml."""
    def leaves(value, key: str) -> dict:
        if isinstance(value, dict):
            return {k: v for name, child in value.items() for k, v in leaves(child, f"{key}.{name}").items()}
        return {key: value}

    def shown(value) -> str:
        return "(absent)" if value is MISSING else repr(value)

    changes = []
    for key in watched:
        old, new = leaves(_select(before, key), key), leaves(_select(after, key), key)
        for leaf in sorted(old.keys() | new.keys()):
            a, b = old.get(leaf, MISSING), new.get(leaf, MISSING)
            if a != b:
                changes.append(f"{leaf}: {shown(a)} → {shown(b)}")
    return changes


def read_params(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
