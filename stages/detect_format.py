"""Stage detect-format: camera scenes with each Pokémon's exact box, in the YOLO detection layout, from the
classifier's splits (pokedex.data.detection)."""

from pathlib import Path

from pokedex.core.stage import stage
from pokedex.data.detection import write_detection_dataset


@stage("detect_dataset")
def main(cfg):
    write_detection_dataset(classifier_dataset=Path(cfg.paths.yolo_dataset), out=Path(cfg.paths.detect_dataset),
                            cfg=cfg.detector.data)


if __name__ == "__main__":
    main()
