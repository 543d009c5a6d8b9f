"""Params checked before a stage touches its outputs, and checked again after: the ones DVC records for it.

The rules live with the code that reads the keys (each module's PARAM_RULES: what no library checks before work
starts, or checks only after outputs were deleted); the stage decorator collects those of the modules it loaded.

dvc.yaml lists, for each stage, the params it reads; DVC writes their values into dvc.lock (and its run
cache) when the stage ends. So a stage (1) validates those params before deleting anything, and (2) fails
when params.yaml changed under it while it ran (e.g. a refused `dvc exp run -S` has already rewritten it),
because DVC would otherwise record outputs made with one value under another.
"""

from __future__ import annotations

import sys
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
RULES_NAME = "PARAM_RULES"  # a module that owns params declares their rules as PARAM_RULES = {"group.key": Number(...)}


def declared_rules() -> dict[str, Number]:
    """The PARAM_RULES of every loaded pokedex module: the rules of the keys read by the code a stage has loaded.
    Each key is declared once, by the module that reads it (tests/test_config.py checks that no two do)."""
    rules: dict[str, Number] = {}
    for name, module in list(sys.modules.items()):
        declared = getattr(module, RULES_NAME, None) if name.split(".")[0] == "pokedex" else None
        if isinstance(declared, dict):
            rules.update(declared)
    return rules


def check_value(rules: dict[str, Number], key: str, value) -> None:
    """`value` of `key` passes its rule in `rules` (its module's PARAM_RULES); else one sentence naming it."""
    rule = rules[key]
    if not rule.accepts(value):
        raise PokedexError(f"{key}={value!r} is invalid: it must be {rule.describe()}; "
                           "fix it in conf/ or in the override that set it.")


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
    rules = declared_rules()
    for key in rules:
        if _covered(key, watched) and (value := _select(values, key)) is not MISSING:
            check_value(rules, key, value)


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
