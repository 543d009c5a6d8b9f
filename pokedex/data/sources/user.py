"""`user`: the pictures you labelled (`pokedex suggest`, then `pokedex label` files them into
`data.user.root/NNNN/`, data/user), as a source of their own.

An empty or missing folder gives nothing, so the source costs nothing until you label. Pictures in `none/` (no
Pokémon) are no species to learn: they go to the ingest rejects report with that reason; the folder's README
is its documentation, not a picture. Preprocess judges the rest, as for `data=folder`.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from pokedex.data.fieldset import field_set
from pokedex.data.sources.base import IngestResult
from pokedex.data.sources.folder import copy_files

NONE_DIR = "none"  # pokedex/label/filing.py files "no Pokémon" here
NO_SPECIES = f"no Pokémon ({NONE_DIR}/): not a species to learn"
DOCS = {"README.md", ".gitignore"}


def labelled_pictures(root: Path) -> tuple[list[tuple[Path, int]], list[tuple[str, str]]]:
    """(picture, Pokédex id) of root/NNNN/* (as the adapt stage reads them); every other file with its reason."""
    found = field_set(root)
    rejects = [(rel, NO_SPECIES if rel.startswith(f"{NONE_DIR}/") else why) for rel, why in found.rejects]
    return list(zip(found.paths, found.dex_ids)), rejects


def ingest(data: DictConfig, raw_dir: Path) -> IngestResult:
    root, result = Path(data.user.root), IngestResult(num_classes=int(data.num_classes))
    files = sorted(p for p in root.rglob("*") if not p.is_dir()) if root.is_dir() else []
    pictures = []
    for path in files:
        rel = path.relative_to(root)
        if len(rel.parts) == 1 and rel.name in DOCS:
            continue
        if rel.parts[0] == NONE_DIR:
            result.rejects.append((rel.as_posix(), NO_SPECIES))
            continue
        pictures.append(path)
    copy_files(root, pictures, raw_dir, result)
    return result
