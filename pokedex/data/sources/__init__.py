"""Where raw images come from (`data.source`). Each source is a module here with one function,

    ingest(data: DictConfig, raw_dir: Path) -> IngestResult

that writes images to raw_dir/NNNN/* (raw_dir exists and is empty), reads its own keys under `data.<source>`,
and returns counts, the files it rejected with their reasons, and the class names it carries. To add a source,
add a module, list it in SOURCES and give it a `data.<name>` block in conf/data/synthetic.yaml (ingest depends
on the whole pokedex/data folder, so dvc.yaml needs no change).
"""

from pokedex.data.sources import folder, hf, pokeapi, pokesprite, synthetic, user
from pokedex.data.sources.base import IngestResult, cache_dir

SOURCES = {"synthetic": synthetic.ingest, "folder": folder.ingest, "hf": hf.ingest, "pokeapi": pokeapi.ingest,
           "pokesprite": pokesprite.ingest, "user": user.ingest}

__all__ = ["SOURCES", "IngestResult", "cache_dir"]
