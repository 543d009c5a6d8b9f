"""The one decorator every stage entrypoint uses: Hydra over the committed params.yaml.

DVC composes conf/ into params.yaml (`dvc exp run -S ...`); stages only read params.yaml, so a sweep
override can never be lost by a stage composing conf/ on its own. Hydra still parses the command line,
so ad-hoc overrides work: `python stages/train.py train.epochs=1`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pokedex.errors import PokedexError

# Hydra's own settings live here, not in conf/: DVC drops a `hydra:` block when it composes params.yaml.
HYDRA_SETTINGS = {
    "hydra.run.dir": ".",                 # no outputs/<date>/ folders in the repository
    "hydra.output_subdir": "null",        # no .hydra/ folder
    "hydra/job_logging": "stdout",        # log to the console only, no <stage>.log files
}

log = logging.getLogger("pokedex")


def hydra_argv(argv: list[str]) -> list[str]:
    """Our Hydra settings first, unless the user set the same key on the command line."""
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in argv}
    return [f"{k}={v}" for k, v in HYDRA_SETTINGS.items() if k not in given] + argv


def stage(func: Callable[[DictConfig], object]) -> Callable[[], None]:
    """Turn `func(cfg)` into a CLI entrypoint reading params.yaml from the repository root.

    A PokedexError (a mistake the user can fix) ends the run with its one-sentence message and exit code 2,
    without a traceback.
    """
    root = Path(inspect.getfile(func)).resolve().parent.parent

    def run(cfg: DictConfig) -> None:
        try:
            func(cfg)
        except PokedexError as exc:
            log.error("error: %s", exc)
            sys.exit(2)

    @functools.wraps(func)
    def main() -> None:
        if not (root / "params.yaml").is_file():
            sys.exit(f"error: {root / 'params.yaml'} is missing; run `make params` to compose it from conf/.")
        sys.argv[1:] = hydra_argv(sys.argv[1:])
        hydra.main(config_path=str(root), config_name="params", version_base="1.3")(run)()

    return main
