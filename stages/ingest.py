"""Stage ingest: raw images in data/raw/all_pokemon/NNNN/ and the class table (data.source)."""

from pathlib import Path

from pokedex.data.ingest import ingest
from pokedex.stage import stage


@stage("raw", "classes", "ingest_rejects")
def main(cfg):
    ingest(cfg.data, Path(cfg.paths.raw), Path(cfg.paths.classes), Path(cfg.paths.ingest_rejects))


if __name__ == "__main__":
    main()
