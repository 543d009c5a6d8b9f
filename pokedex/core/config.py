"""Compose conf/ into params.yaml exactly as `dvc exp run -S ...` does (DVC's own Hydra helper)."""

from __future__ import annotations

from pathlib import Path

import yaml
from dvc.utils.hydra import compose_and_dump

from pokedex import CHECKOUT
from pokedex.core.errors import PokedexError


HEADER = """\
# Composed from conf/ (conf/config.yaml's defaults list and the groups it names): edit conf/, then run
# `make params` (or `dvc exp run -S key=value`, which composes it the same way). Every stage reads this file;
# dvc.yaml lists the keys each stage reads. What each key means: the comments in conf/<group>/<name>.yaml.
"""


def compose_params(output: Path, overrides: list[str] | None = None, root: Path = CHECKOUT) -> None:
    """Write params.yaml = composition of root/conf/config.yaml with the given Hydra overrides, under a header
    saying so (`dvc exp run -S` writes the same keys without it)."""
    root = root.resolve()  # Hydra wants an absolute config dir
    compose_and_dump(output, str(root / "conf"), None, "config", str(root), list(overrides or []))
    output.write_text(HEADER + output.read_text(encoding="utf-8"), encoding="utf-8")


class Paths(dict):
    """paths: of a params.yaml; a key it lacks (a params.yaml older than conf/) is a one-sentence error."""

    def __missing__(self, key: str) -> Path:
        raise PokedexError(f"params.yaml has no paths.{key}; compose it again from conf/ with `pokedex params` "
                           "(or `make params`).")


def project_params(root: Path) -> dict:
    """root/params.yaml as a dict."""
    params = root / "params.yaml"
    if not params.is_file():
        raise PokedexError(f"{params} is missing; compose it with `pokedex params` (or `make params`).")
    return yaml.safe_load(params.read_text(encoding="utf-8")) or {}


def project_paths(root: Path) -> Paths:
    """The `paths:` of root/params.yaml, as absolute paths: the one place that says where stages write."""
    return Paths({key: root / value for key, value in (project_params(root).get("paths") or {}).items()})


def user_pictures(root: Path) -> Path:
    """Where your labelled pictures go (`data.user.root`, read by the user source)."""
    folder = ((project_params(root).get("data") or {}).get("user") or {}).get("root")
    if not folder:
        raise PokedexError("params.yaml has no data.user.root; compose it again from conf/ with `pokedex params`.")
    return root / folder


def project_root(start: Path | None = None) -> Path:
    """The project the user stands in: the nearest folder at or above `start` (default: here) with conf/config.yaml."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    raise PokedexError(f"{start} is not inside a Pokédex project (no conf/config.yaml here or above); run this "
                       "in your checkout.")
