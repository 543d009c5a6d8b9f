"""What every data source returns, and the download cache the remote ones share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pokedex import project_dir


@dataclass
class IngestResult:
    """One source's ingest into raw/NNNN/*: what was written, skipped and rejected, and the class names."""

    num_classes: int  # the class table lists 0001..num_classes
    written: int = 0
    skipped: int = 0  # classes above num_classes, by the user's choice
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    names: dict[int, str] = field(default_factory=dict)  # names the source itself carries; the shipped table fills the rest


def cache_dir() -> Path:
    """$POKEDEX_CACHE, else .cache/pokedex under DVC's root (shared by queued experiments' temporary copies)."""
    if os.environ.get("POKEDEX_CACHE"):
        return Path(os.environ["POKEDEX_CACHE"])
    return project_dir() / ".cache" / "pokedex"
