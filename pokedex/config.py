"""Compose conf/ into params.yaml exactly as `dvc exp run -S ...` does (DVC's own Hydra helper)."""

from __future__ import annotations

from pathlib import Path

from dvc.utils.hydra import compose_and_dump

from pokedex.errors import PokedexError

ROOT = Path(__file__).resolve().parent.parent


def compose_params(output: Path, overrides: list[str] | None = None, root: Path = ROOT) -> None:
    """Write params.yaml = composition of root/conf/config.yaml with the given Hydra overrides."""
    root = root.resolve()  # Hydra wants an absolute config dir
    compose_and_dump(output, str(root / "conf"), None, "config", str(root), list(overrides or []))


def project_root(start: Path | None = None) -> Path:
    """The project the user stands in: the nearest folder at or above `start` (default: here) with conf/config.yaml."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    raise PokedexError(f"{start} is not inside a Pokédex project (no conf/config.yaml here or above); run this "
                       "in your checkout.")
