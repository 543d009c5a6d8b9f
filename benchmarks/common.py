"""What the benchmarks share: the models the pipeline ships as their defaults (params.yaml's paths), the common
arguments (--model, --detector, --enrolled, --field), conf/ composed as the stages compose it, and a model loaded
or refused in one sentence. Run each script from the repository root: `python benchmarks/NAME.py --help`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from pokedex import CHECKOUT
from pokedex.core.config import project_paths


def shipped(key: str) -> Path:
    """params.yaml's paths.<key> in this checkout: what the pipeline writes there (e.g. `weights`, the classifier
    `pokedex predict` reads; `detector_weights`; `enrolled`)."""
    return project_paths(CHECKOUT)[key]


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose --help is the script's docstring as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_model(parser: argparse.ArgumentParser, key: str = "weights", what: str = "the classifier") -> None:
    """--model, defaulting to the model the pipeline ships at params.yaml's paths.<key>."""
    parser.add_argument("--model", type=Path, default=shipped(key),
                        help=f"{what} (.pt, or .onnx where the script says so; default: paths.{key}, %(default)s)")


def add_detector(parser: argparse.ArgumentParser, default: bool = False) -> None:
    """--detector (the one-class detector; with `default`, the shipped one unless --whole) and --conf."""
    parser.add_argument("--detector", type=Path, default=shipped("detector_weights") if default else None,
                        help="the one-class detector" + (" (default: %(default)s)" if default else ""))
    parser.add_argument("--conf", type=float, default=0.25, help="the detector's score threshold (default: %(default)s)")


def add_enrolled(parser: argparse.ArgumentParser) -> None:
    """--enrolled: the enroll stage's species and "no Pokémon" rule (the shipped ones by default)."""
    parser.add_argument("--enrolled", type=Path, default=shipped("enrolled"),
                        help="enrolled species and the no-Pokémon rule; a folder without enrolled.json: none "
                             "(default: %(default)s)")


def add_field(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--field: folders of NNNN/* pictures (docs/field.md)."""
    parser.add_argument("--field", type=Path, nargs="+" if required else "*", required=required, default=[],
                        help="folders of NNNN/* pictures (NNNN: the Pokédex id), e.g. ../shared/fieldsets/web149")


def compose_cfg(overrides: list[str] | None = None) -> DictConfig:
    """conf/config.yaml with Hydra overrides, resolved: the config a stage reads after `dvc exp run -S ...`."""
    with initialize_config_dir(str(CHECKOUT / "conf"), version_base=None):
        cfg = compose("config", overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def load(path: Path):
    """The model at `path` (.pt or .onnx), or one sentence saying why not (`pokedex predict`'s own check)."""
    from pokedex.predict import open_model

    return open_model(path)
