"""Compose conf/ into params.yaml exactly as `dvc exp run -S ...` does (DVC's own Hydra helper)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parent.parent


def compose_params(output: Path, overrides: list[str] | None = None, root: Path = ROOT) -> None:
    """Write params.yaml = composition of root/conf/config.yaml with the given Hydra overrides."""
    root = root.resolve()  # Hydra wants an absolute config dir
    compose_and_dump(output, str(root / "conf"), None, "config", str(root), list(overrides or []))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compose conf/ into params.yaml (what DVC does for `dvc exp run -S`).")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=tiny train.epochs=1")
    parser.add_argument("--output", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args(argv)
    compose_params(args.output, args.overrides)


if __name__ == "__main__":
    main()
