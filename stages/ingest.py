"""Stage ingest: raw images in data/raw/all_pokemon/NNNN/, their index and the class table (data.source)."""

from pathlib import Path

from pokedex.core.stage import stage
from pokedex.data.ingest import ingest


@stage("raw", "classes", "ingest_rejects", "raw_index")
def main(cfg):
    p = cfg.paths
    ingest(cfg.data, raw_dir=Path(p.raw), class_table=Path(p.classes), rejects=Path(p.ingest_rejects),
           index=Path(p.raw_index))


if __name__ == "__main__":
    main()
