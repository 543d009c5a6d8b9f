"""What every data source returns, and the download cache the remote ones share (pokedex.cache_dir)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pokedex import cache_dir

__all__ = ["IngestResult", "cache_dir"]


@dataclass
class IngestResult:
    """One source's ingest into raw/NNNN/*: what was written, skipped and rejected, and the class names."""

    num_classes: int  # the class table lists 0001..num_classes
    written: int = 0
    skipped: int = 0  # classes above num_classes, by the user's choice
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    names: dict[int, str] = field(default_factory=dict)  # names the source itself carries; the shipped table fills the rest

